"""Goal test and the planner oracle of the Household env.

The planner plays the hand-coded expert that ALFWorld's authors describe (Shridhar et al.,
2021): find a goal object, take it, carry it to the appliance that changes its state, then to
a target receptacle, opening whatever is closed on the way. It reads the full world (objects
hidden in closed receptacles included), so it is privileged: an upper bound, not a baseline.
Each subgoal picks the cheapest candidate (same room, already standing there, already open),
ties broken by name, and the whole plan is produced by simulating those choices on a copy of
the world, so every command it returns is admissible when it is played.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from turngym.envs.household.vocab import APPLIANCE, LAMP, kind_of, prep
from turngym.envs.household.world import ON, STATE_BIT, World

__all__ = ["goal_met", "goal_progress", "next_command", "make_plan", "MAX_PLAN"]

MAX_PLAN = 80
"""Longest plan the planner writes (generated tasks need far fewer steps)."""


def _wanted(goal: Mapping[str, Any]) -> int:
    return 2 if goal["type"] == "pick_two" else 1


def _done(world: World, obj: str, goal: Mapping[str, Any]) -> bool:
    """Whether ``obj`` already counts towards a placement goal."""
    bit = STATE_BIT[goal["type"]]
    place = world.where[obj]
    return bool(place) and kind_of(place) == goal["target"] and world.flags[obj] & bit == bit


def _lamp_lit_here(world: World) -> bool:
    if world.at is None or not world.reachable(world.at):
        return False
    return any(kind_of(o) == LAMP and world.flags[o] & ON for o in world.contents[world.at])


def goal_met(world: World, goal: Mapping[str, Any]) -> bool:
    """Whether the world satisfies the goal (the env's success test)."""
    if goal["type"] == "examine":
        held = world.held
        return held is not None and kind_of(held) == goal["object"] and _lamp_lit_here(world)
    count = 0
    for obj in world.where:
        if kind_of(obj) == goal["object"] and _done(world, obj, goal):
            count += 1
    return count >= _wanted(goal)


def goal_progress(world: World, goal: Mapping[str, Any]) -> float:
    """Share of goal conditions met, in [0, 1] (ALFWorld's goal-condition success, simplified).

    Placement goals count, per required object, "has the state" (when one is asked for) and
    "is placed"; examine counts "holds the object" and "a lit lamp is here".
    """
    if goal["type"] == "examine":
        held = world.held is not None and kind_of(world.held) == goal["object"]
        return (held + (held and _lamp_lit_here(world))) / 2
    bit, wanted = STATE_BIT[goal["type"]], _wanted(goal)
    scores = []
    for obj in world.where:
        if kind_of(obj) == goal["object"]:
            place = world.where[obj]
            placed = bool(place) and kind_of(place) == goal["target"]
            state = world.flags[obj] & bit == bit
            scores.append((state + placed) / 2 if bit else float(placed))
    scores.sort(reverse=True)
    return sum(scores[:wanted]) / wanted


def _cost(world: World, rec: str) -> tuple[int, str]:
    """Travel-and-open cost of reaching inside ``rec``, with its name as the tie-break."""
    far = world.rec_room[rec] != world.room
    return (2 * far + (world.at != rec or far) + (not world.reachable(rec)), rec)


def _nearest(world: World, recs: Iterable[str]) -> str | None:
    ranked = sorted(recs, key=lambda rec: _cost(world, rec))
    return ranked[0] if ranked else None


def _travel(world: World, rec: str) -> str | None:
    """The next command towards reaching inside ``rec`` (``None``: already there, open)."""
    if world.rec_room[rec] != world.room:
        return f"go to {world.rooms[world.rec_room[rec]]}"
    if world.at != rec:
        return f"go to {rec}"
    if not world.reachable(rec):
        return f"open {rec}"
    return None


def _drop(world: World) -> str:
    """Put the held object down where the agent is (or at the nearest open surface)."""
    if world.at is not None:
        return _travel(world, world.at) or f"put {world.held} {prep(kind_of(world.at))} {world.at}"
    rec = _nearest(world, world.room_recs[world.room])
    return f"go to {rec}"


def _fetch(world: World, goal: Mapping[str, Any]) -> str | None:
    """Go for the cheapest goal object that does not count yet."""
    candidates = [o for o in world.where if kind_of(o) == goal["object"] and world.where[o]
                  and (goal["type"] == "examine" or not _done(world, o, goal))]  # fmt: skip
    if not candidates:
        return None
    obj = min(candidates, key=lambda o: (_cost(world, world.where[o]), o))
    rec = world.where[obj]
    return _travel(world, rec) or f"take {obj} from {rec}"


def _use_at(world: World, rec_kind: str, verb: str) -> str | None:
    """Travel to the nearest ``rec_kind`` and finish with ``verb`` (``None``: none exists)."""
    rec = _nearest(world, [r for r in world.rec_room if kind_of(r) == rec_kind])
    if rec is None:
        return None
    held = world.held
    if verb == "put":
        return _travel(world, rec) or f"put {held} {prep(rec_kind)} {rec}"
    return _travel(world, rec) or f"{verb} {held} with {rec}"


def next_command(world: World, goal: Mapping[str, Any]) -> str | None:
    """The planner's next command from the current state (``None``: stuck or done)."""
    if goal_met(world, goal):
        return None
    held, kind = world.held, goal["type"]
    if held is not None and kind_of(held) == goal["object"]:
        if kind == "examine":
            lamps = [o for o in world.where if kind_of(o) == LAMP]
            lamp = min(lamps, key=lambda o: (_cost(world, world.where[o]), o), default=None)
            if lamp is None:
                return None
            return _travel(world, world.where[lamp]) or f"use {lamp}"
        bit = STATE_BIT[kind]
        if world.flags[held] & bit != bit:
            return _use_at(world, APPLIANCE[kind], kind)
        return _use_at(world, goal["target"], "put")
    if held is not None:
        return _drop(world)
    return _fetch(world, goal)


def make_plan(world: World, goal: Mapping[str, Any]) -> list[str]:
    """The planner's whole command sequence from the current state, by simulation.

    Returns an empty list when the goal already holds or cannot be reached.
    """
    sim = world.clone()
    plan: list[str] = []
    while len(plan) < MAX_PLAN:
        command = next_command(sim, goal)
        if command is None:
            return plan if goal_met(sim, goal) else []
        valid, _, _ = sim.execute(command)
        if not valid:  # a planner bug; never hand out a broken plan
            return []
        plan.append(command)
    return []
