"""Expedition: a 100-300-turn resource-gathering quest with a planner and critic signals.

The agent gathers wood, crafts a pickaxe, mines ore, forges a key, bridges a river, opens a
chest and brings its treasure home (rules and planner in
:mod:`turngym.envs.games.expedition_world`). Every action is one move or one interaction,
so the generator only keeps worlds whose planned quest is ``min_plan``..``max_plan`` actions
long (100-300 by default): the long-horizon regime where
credit must travel back over hundreds of turns and a turn-level critic is worth training
(Odysseus, arXiv 2605.00347).

**Observation**: the turn, position, inventory, the quest log (milestones ticked off) and the
map around the player: with ``memory`` (default) every cell seen so far and ``?`` elsewhere,
else only the window of ``view`` cells in each direction.

**Actions** (inside ``<action></action>``): ``north``/``south``/``east``/``west`` (also ``move
north``), ``chop DIR``, ``mine DIR``, ``build DIR`` (a bridge section on water), ``craft
pickaxe``, ``craft key``, ``open DIR``, ``wait``. A command the game knows but that does not
apply (chopping grass, walking into rock) is legal and does nothing; anything else is invalid.

**Reward.** ``reward_mode="sparse"`` (default): 1 when the treasure is home. ``"shaped"``: also
``milestone_bonus`` the first time each milestone is reached. ``step_penalty`` (default 0) is
added every turn. Success = the treasure is home; ``score`` = that, 1 or 0.

**What a critic reads** (``info["privileged"]``, never shown to the agent): ``milestones``
reached, ``progress`` (their share), ``subgoal`` (the planner's next milestone),
``subgoal_distance`` (moves to where it is served), ``plan_length`` (the planner's quest length
from the start) and the world's ``map``. ``info["metrics"]`` has the progress and inventory.
**State key**: position, inventory, milestones and the terrain. **Leak check**: the start plan
written out as a run of actions, or the full map, never appear in text.

Example:
    >>> env = Expedition()
    >>> obs, info = env.reset(seed=0, options={"split": "test"})
    >>> info["privileged"]["plan_length"] >= 100
    True
    >>> turns = 0
    >>> while not info["success"]:
    ...     obs, reward, done, _, info = env.step(env.oracle_action())
    ...     turns += 1
    >>> reward, turns == info["privileged"]["plan_length"]
    (1.0, True)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from turngym.core import TextEnv, Transition, check_int_knobs
from turngym.envs.games.expedition_world import (
    DIRECTIONS,
    World,
    errand_distance,
    generate_world,
    next_errand,
    plan,
)

__all__ = ["Expedition"]

_INT_KNOBS: Mapping[str, tuple[int, int, str]] = {
    "size": (10, 40, "the map side, border included"),
    "trees": (4, 80, "trees on the near bank"),
    "ore_needed": (1, 8, "ore the key costs"),
    "river_width": (0, 4, "water cells across the river (0: no river)"),
    "view": (1, 40, "cells seen in each direction"),
    "min_plan": (1, 1000, "shortest planned quest a world may have"),
    "max_plan": (1, 1000, "longest planned quest a world may have"),
}
_ALIASES = {"n": "north", "s": "south", "e": "east", "w": "west", "up": "north",
            "down": "south", "left": "west", "right": "east"}  # fmt: skip
_GOALS = {
    "wood": "gather enough wood (chop trees T)",
    "pickaxe": "craft a pickaxe at the workbench W",
    "ore": "mine the ore the key needs (o, needs the pickaxe)",
    "key": "forge the key at the workbench W",
    "crossed": "bridge the river ~ and cross it",
    "chest": "open the chest C with the key and take the treasure",
    "home": "bring the treasure back to the workbench W",
}
_SEP = r"(?:\s|,|;|->|=>|\band\b|\bthen\b)+"


class Expedition(TextEnv):
    """Gather, craft, bridge, open the chest and come home: a long quest with a planner.

    Difficulty knobs: ``size`` (10-40), ``trees`` (4-80), ``ore_needed`` (1-8),
    ``river_width`` (0-4), ``rocks`` (0-0.35, share of rock), ``view`` (1-40), ``memory``,
    ``min_plan``/``max_plan`` (bounds on the planned quest length), ``reward_mode``
    (``sparse``/``shaped``), ``milestone_bonus``, ``step_penalty``. Levels: 0 = 24x24, 3 ore,
    full view; 1 = 24x24, 4 ore, view 4 (default); 2 = 28x28, 5 ore, a 2-wide river, view 3;
    3 = 32x32, 6 ore, a 3-wide river, view 3, quests of 150-300.
    """

    family: ClassVar[str] = "expedition"
    example_actions: ClassVar[tuple[str, ...]] = (
        "<action>north</action>",
        "<action>south</action>",
        "<action>east</action>",
        "<action>west</action>",
        "<action>chop east</action>",
        "<action>mine north</action>",
        "<action>build east</action>",
        "<action>craft pickaxe</action>",
        "<action>craft key</action>",
        "<action>open east</action>",
    )
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "size": 24,
        "trees": 16,
        "ore_needed": 4,
        "river_width": 1,
        "rocks": 0.12,
        "view": 4,
        "memory": True,
        "min_plan": 100,
        "max_plan": 300,
        "reward_mode": "sparse",
        "milestone_bonus": 0.1,
        "step_penalty": 0.0,
    }
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"size": 24, "view": 24, "ore_needed": 3, "river_width": 1, "trees": 16},
        1: {"size": 24, "view": 4, "ore_needed": 4, "river_width": 1, "trees": 16},
        2: {"size": 28, "view": 3, "ore_needed": 5, "river_width": 2, "trees": 20},
        3: {"size": 32, "view": 3, "ore_needed": 6, "river_width": 3, "trees": 24,
            "min_plan": 150},  # fmt: skip
    }

    def __init__(self, **kwargs: Any) -> None:
        """Create the env; keyword arguments are those of :class:`~turngym.core.TextEnv`."""
        super().__init__(**kwargs)
        self.world: World | None = None
        self.shown: list[list[str]] = []
        """The map as the agent knows it: terrain where seen, ``?`` elsewhere."""
        self._plan: list[str] = []
        self._oracle: dict[str, str] = {}

    # --- Tasks --------------------------------------------------------------------------------
    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and what it accepts."""
        check_int_knobs("Expedition", difficulty, _INT_KNOBS)
        if difficulty["min_plan"] > difficulty["max_plan"]:
            raise ValueError("Expedition: min_plan must not exceed max_plan.")
        rocks = difficulty["rocks"]
        if isinstance(rocks, bool) or not isinstance(rocks, int | float) or not 0 <= rocks <= 0.35:
            raise ValueError(f"Expedition: rocks={rocks!r}; use a number from 0 to 0.35.")
        if difficulty["reward_mode"] not in ("sparse", "shaped"):
            raise ValueError(f"Expedition: reward_mode={difficulty['reward_mode']!r}; use "
                             "'sparse' or 'shaped'.")  # fmt: skip
        if not isinstance(difficulty["memory"], bool):
            raise ValueError("Expedition: memory must be true or false.")
        for name in ("milestone_bonus", "step_penalty"):
            value = difficulty[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > 10:
                raise ValueError(f"Expedition: {name}={value!r}; use a number in [-10, 10].")

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw a world whose planned quest fits the length bounds."""
        world, _ = generate_world(rng, difficulty)
        return {"rows": ["".join(row) for row in world.grid], "start": list(world.pos),
                "river": list(world.river), "ore_needed": world.ore_needed}  # fmt: skip

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Parse ``{"rows", "start", "river", "ore_needed"}`` and plan the quest once."""
        try:
            rows = [list(str(row)) for row in task["rows"]]
            start = (int(task["start"][0]), int(task["start"][1]))
            river = (int(task["river"][0]), int(task["river"][1]))
            ore = int(task["ore_needed"])
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise ValueError('An Expedition task is {"rows": [...], "start": [r, c], "river": '
                             f'[col, width], "ore_needed": n}} ({err!r}).') from err  # fmt: skip
        if not rows or len({len(r) for r in rows}) != 1 or set("".join(map("".join, rows))) - set(
            ".#T~=oWC"
        ):
            raise ValueError("Expedition rows must be equal-length strings of . # T ~ = o W C.")
        self.world = World(rows, start, river, ore)
        if self.world.cell(*start) not in ".=":
            raise ValueError("Expedition: the start must be a grass or bridge cell.")
        quest = plan(self.world)
        if quest is None:
            raise ValueError("Expedition: the planner finds no way to open the chest.")
        self._plan, self._oracle = quest, {}
        self.shown = [["?"] * len(rows[0]) for _ in rows]
        self._look()

    # --- Play ---------------------------------------------------------------------------------
    def apply(self, command: str) -> Transition:
        """Parse one command and apply it to the world."""
        world = self.world
        assert world is not None, "call reset() first"
        parsed = _parse(command)
        if isinstance(parsed, str):
            return Transition(valid=False, effective=False, message=f"Invalid action: {parsed}. "
                              "Try north, chop east, craft pickaxe or open west.")  # fmt: skip
        before = len(world.done)
        effective, message = world.act(*parsed)
        self._look()
        d = self.episode_difficulty
        parts = {"step": float(d["step_penalty"]), "milestones": 0.0, "success": 0.0}
        if d["reward_mode"] == "shaped":
            parts["milestones"] = float(d["milestone_bonus"]) * (len(world.done) - before)
        solved = "home" in world.done
        if solved:
            parts["success"] = 1.0
        return Transition(reward=sum(parts.values()), terminated=solved, message=message,
                          reward_components=parts, effective=effective)  # fmt: skip

    def _look(self) -> None:
        world = self.world
        assert world is not None
        v = int(self.episode_difficulty["view"])
        r0, c0 = world.pos
        size_r, size_c = len(world.grid), len(world.grid[0])
        low, high = max(0, c0 - v), min(size_c, c0 + v + 1)
        for r in range(max(0, r0 - v), min(size_r, r0 + v + 1)):
            self.shown[r][low:high] = world.grid[r][low:high]

    # --- Views --------------------------------------------------------------------------------
    def instructions(self) -> str:
        """Rules, legend, action grammar and an example; never the map or the plan."""
        world = self.world
        assert world is not None
        bridge = (f" The river is {world.river[1]} cell(s) wide: each water cell needs a bridge "
                  "section (1 wood), built from the cell next to it." if world.river[1] else "")
        return "\n".join([
            "You lead an expedition. Quest: " + "; then ".join(
                _GOALS[m] for m in world.milestones) + ".",
            f"Recipes (at the workbench W): pickaxe = 2 wood; key = {world.ore_needed} ore."
            + bridge,
            "Legend: @ you, . grass, # rock, T tree, o ore, ~ water, = bridge, W workbench, "
            "C chest, ? not seen yet. Only grass and bridges can be walked on.",
            "Actions: north, south, east, west (one cell); chop DIR, mine DIR, build DIR, "
            "open DIR act on the next cell in that direction; craft pickaxe, craft key; wait.",
            "Answer with one action inside <action></action>, e.g. <action>chop east</action>.",
        ])  # fmt: skip

    def render_text(self) -> str:
        """Status, inventory, quest log and the map as seen."""
        world = self.world
        assert world is not None
        inv = world.inventory
        log = "  ".join(f"[{'x' if m in world.done else ' '}] {m}" for m in world.milestones)
        lines = [
            f"Turn {self.turn}. You are at row {world.pos[0]}, column {world.pos[1]}.",
            f"Inventory: wood {inv['wood']}, ore {inv['ore']}, pickaxe "
            f"{'yes' if inv['pickaxe'] else 'no'}, key {'yes' if inv['key'] else 'no'}.",
            f"Quest: {log}",
        ]
        lines.extend(self._map_rows())
        return "\n".join(lines)

    def _map_rows(self) -> list[str]:
        world = self.world
        assert world is not None
        r0, c0 = world.pos
        if self.episode_difficulty["memory"]:
            out = ["".join(row) for row in self.shown]
            out[r0] = out[r0][:c0] + "@" + out[r0][c0 + 1 :]
            return out
        v = int(self.episode_difficulty["view"])
        return ["".join("@" if (r, c) == (r0, c0) else world.cell(r, c)
                        for c in range(c0 - v, c0 + v + 1))
                for r in range(r0 - v, r0 + v + 1)]  # fmt: skip

    def state_key(self) -> str:
        """Position, inventory, milestones, counters and the terrain (:meth:`World.key`)."""
        assert self.world is not None
        return self.world.key()

    def score(self) -> float:
        """1.0 once the treasure is home, else 0.0."""
        return 1.0 if self.world is not None and "home" in self.world.done else 0.0

    def privileged(self) -> dict[str, Any]:
        """Critic signals: milestones, progress, the next subgoal and its distance, the plan."""
        world = self.world
        assert world is not None
        solved = "home" in world.done
        subgoal = "" if solved else next_errand(world)[0]
        return {
            "milestones": list(world.done),
            "progress": len(world.done) / len(world.milestones),
            "subgoal": subgoal,
            "subgoal_distance": 0 if solved else errand_distance(world),
            "plan_length": len(self._plan),
            "map": ["".join(row) for row in world.grid],
        }

    def metrics(self) -> dict[str, Any]:
        """Progress, milestones reached, inventory and the planned quest length."""
        world = self.world
        assert world is not None
        return {"progress": len(world.done) / len(world.milestones),
                "milestones": len(world.done), "plan_length": len(self._plan),
                **{f"inv_{k}": v for k, v in world.inventory.items()}}  # fmt: skip

    # --- Oracle and leak check ----------------------------------------------------------------
    def oracle_action(self) -> str:
        """The planner's next action from the current state (replanned off the cached plan)."""
        world = self.world
        assert world is not None
        key = world.key()
        if key not in self._oracle:
            self._cache_plan(plan(world) or ["wait"])
        return f"<action>{self._oracle.get(key, 'wait')}</action>"

    def _cache_plan(self, actions: list[str]) -> None:
        assert self.world is not None
        sim = self.world.copy()
        for action in actions:
            self._oracle[sim.key()] = action
            parsed = _parse(action)
            if isinstance(parsed, str):
                break
            sim.act(*parsed)

    def leak_check(self, text: str) -> list[str]:
        """Flag the start plan as a run of 6+ actions, or the whole map as rows."""
        problems = []
        lowered = " ".join(text.lower().split())
        words = " ".join(self._plan[:6])
        if len(self._plan) >= 6:
            compact = re.sub(_SEP, " ", lowered)
            if words in compact:
                problems.append("the planned quest appears as a sequence of actions")
        world = self.world
        if world is not None and "\n".join("".join(r) for r in world.grid[1:-1]) in text:
            problems.append("the full map appears in the text")
        return problems


def _parse(command: str) -> tuple[str, str] | str:
    """``(verb, argument)`` for a known command, else why it is not one."""
    words = command.strip().lower().split()
    if not words:
        return "the action is empty"
    if len(words) == 1:
        word = _ALIASES.get(words[0], words[0])
        if word in DIRECTIONS:
            return "move", word
        if word == "wait":
            return "wait", ""
        return f"{words[0][:30]!r} is not a command"
    verb, arg = words[0], _ALIASES.get(words[1], words[1])
    if len(words) != 2:
        return "a command is one or two words"
    if verb == "craft":
        return ("craft", arg) if arg in ("pickaxe", "key") else "you can craft a pickaxe or a key"
    if verb in ("move", "go", "chop", "mine", "build", "open"):
        if arg not in DIRECTIONS:
            return f"{verb} needs a direction: north, south, east or west"
        return ("move" if verb in ("move", "go") else verb), arg
    return f"{verb[:30]!r} is not a command"
