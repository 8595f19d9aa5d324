"""Procedural homes and goals for the Household env, and validation of task dicts.

A task is plain JSON::

    {"rooms": ["kitchen", ...], "start": 0,
     "receptacles": [["fridge 1", 0], ...],          # name, room index
     "objects": [["apple 1", "fridge 1"], ...],      # name, receptacle it starts in/on
     "goal": {"type": "heat", "object": "apple", "target": "countertop"}}

The generator draws rooms (ALFWorld has one; ours may have up to four), receptacles, one or
two desk lamps, the goal objects (never starting where the goal wants them) and distractors,
using nothing but its ``rng`` (turngym's task contract).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from turngym.envs.household.vocab import (
    APPLIANCE,
    CLEANABLE,
    COOLABLE,
    EXAMINABLE,
    HEATABLE,
    LAMP,
    LAMP_HOSTS,
    OBJECT_TYPES,
    PLACEMENT,
    ROOM_EXTRAS,
    ROOM_ORDER,
    ROOM_REQUIRED,
    TASK_TYPES,
    kind_of,
)

__all__ = ["generate_task", "check_task", "required_receptacles"]

_TASK_KEYS = frozenset({"rooms", "start", "receptacles", "objects", "goal"})
_OBJECTS_FOR: Mapping[str, frozenset[str] | tuple[str, ...]] = {
    "pick": OBJECT_TYPES, "pick_two": OBJECT_TYPES, "clean": CLEANABLE, "heat": HEATABLE,
    "cool": COOLABLE, "examine": EXAMINABLE,
}  # fmt: skip
_NEVER_TARGET = frozenset({"microwave", "sinkbasin", "garbagecan"})


def required_receptacles(rooms: int) -> int:
    """The fewest receptacles a house of ``rooms`` rooms can have."""
    return sum(len(ROOM_REQUIRED[r]) for r in ROOM_ORDER[:rooms])


def _choice(rng: np.random.Generator, items: Sequence[Any]) -> Any:
    return items[int(rng.integers(len(items)))]


def _layout(rng: np.random.Generator, rooms: int, total: int) -> list[list[Any]]:
    """Receptacles as ``[name, room]``, numbered per type across the house."""
    kinds: list[tuple[int, str]] = [
        (i, kind) for i, room in enumerate(ROOM_ORDER[:rooms]) for kind in ROOM_REQUIRED[room]
    ]
    for _ in range(total - len(kinds)):
        room = int(rng.integers(rooms))
        kinds.append((room, _choice(rng, ROOM_EXTRAS[ROOM_ORDER[room]])))
    kinds.sort()
    counter: dict[str, int] = {}
    out = []
    for room, kind in kinds:
        counter[kind] = counter.get(kind, 0) + 1
        out.append([f"{kind} {counter[kind]}", room])
    return out


def _goal(rng: np.random.Generator, types: Sequence[str], present: set[str]) -> dict[str, Any]:
    """Draw a goal whose object can start somewhere other than its target."""
    while True:  # terminates: "pick" with an apple and a countertop always fits
        kind = _choice(rng, sorted(types))
        obj = _choice(rng, sorted(_OBJECTS_FOR[kind]))
        starts = sorted(set(PLACEMENT[obj]) & present)
        if kind == "examine":
            if starts:
                return {"type": kind, "object": obj, "target": None}
            continue
        banned = _NEVER_TARGET | {APPLIANCE.get(kind, "")}
        targets = sorted(set(starts) - banned)
        if targets and len(starts) >= 2:
            return {"type": kind, "object": obj, "target": _choice(rng, targets)}


def generate_task(rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict[str, Any]:
    """Draw a house and a goal from ``rng`` and the knobs (``rooms``, ``receptacles``, ...)."""
    rooms = int(difficulty["rooms"])
    recs = _layout(rng, rooms, int(difficulty["receptacles"]))
    by_kind: dict[str, list[str]] = {}
    for name, _room in recs:
        by_kind.setdefault(kind_of(name), []).append(name)
    goal = _goal(rng, list(difficulty["task_types"]), set(by_kind))
    objects: list[list[str]] = []
    hosts = [n for k in LAMP_HOSTS for n in by_kind.get(k, [])]
    n_lamps = 1 + int(len(hosts) > 1 and rng.random() < 0.5)
    for i, host in enumerate(rng.permutation(len(hosts))[:n_lamps].tolist()):
        objects.append([f"{LAMP} {i + 1}", hosts[host]])
    counter: dict[str, int] = {}

    def place(obj: str, banned: str | None) -> None:
        kinds = sorted(k for k in PLACEMENT[obj] if k in by_kind and k != banned)
        counter[obj] = counter.get(obj, 0) + 1
        objects.append([f"{obj} {counter[obj]}", _choice(rng, by_kind[_choice(rng, kinds)])])

    n_goal = (2 if goal["type"] == "pick_two" else 1) + int(rng.integers(2))
    for _ in range(n_goal):
        place(goal["object"], goal["target"])
    others = [t for t in OBJECT_TYPES
              if t != goal["object"] and any(k in by_kind for k in PLACEMENT[t])]  # fmt: skip
    for _ in range(int(difficulty["distractors"])):
        place(_choice(rng, others), None)
    return {
        "rooms": list(ROOM_ORDER[:rooms]),
        "start": int(rng.integers(rooms)),
        "receptacles": recs,
        "objects": objects,
        "goal": goal,
    }


def check_task(task: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming what is wrong with a (hand-written) task dict."""
    unknown = sorted(set(task) - _TASK_KEYS)
    missing = sorted(_TASK_KEYS - set(task))
    if unknown or missing:
        raise ValueError(
            f"Household task has unknown key(s) {unknown} / lacks {missing}; "
            f"a task has exactly {sorted(_TASK_KEYS)}."
        )
    rooms = task["rooms"]
    if not isinstance(rooms, list) or not rooms or len(set(rooms)) != len(rooms):
        raise ValueError("Household task 'rooms' must be a non-empty list of distinct names.")
    start = task["start"]
    if not isinstance(start, int) or not 0 <= start < len(rooms):
        raise ValueError(f"Household task 'start' must be a room index below {len(rooms)}.")
    recs: dict[str, int] = {}
    for entry in task["receptacles"]:
        ok = isinstance(entry, list | tuple) and len(entry) == 2 and isinstance(entry[0], str)
        if not ok or not isinstance(entry[1], int) or not 0 <= entry[1] < len(rooms):
            raise ValueError(f"Household receptacle {entry!r} must be [name, room index].")
        if " " not in entry[0] or entry[0] in recs or entry[0] in rooms:
            raise ValueError(f"Household receptacle name {entry[0]!r} must be unique, 'type N'.")
        recs[entry[0]] = entry[1]
    names: set[str] = set()
    for entry in task["objects"]:
        ok = isinstance(entry, list | tuple) and len(entry) == 2
        if not ok or entry[1] not in recs or " " not in str(entry[0]) or entry[0] in names:
            raise ValueError(
                f"Household object {entry!r} must be [unique 'type N' name, receptacle name]."
            )
        names.add(entry[0])
    _check_goal(task["goal"], recs, names)


def _check_goal(goal: Any, recs: Mapping[str, int], objects: set[str]) -> None:
    if not isinstance(goal, Mapping) or set(goal) != {"type", "object", "target"}:
        raise ValueError("Household goal must be {'type': ..., 'object': ..., 'target': ...}.")
    kind = goal["type"]
    if kind not in TASK_TYPES:
        raise ValueError(f"Household goal type {kind!r} is not one of {list(TASK_TYPES)}.")
    kinds = {kind_of(r) for r in recs}
    if not any(kind_of(o) == goal["object"] for o in objects):
        raise ValueError(f"Household goal object {goal['object']!r} is not in the house.")
    if kind == "examine":
        if not any(kind_of(o) == LAMP for o in objects):
            raise ValueError("Household examine goals need a desklamp in the house.")
    elif goal["target"] not in kinds:
        raise ValueError(f"Household goal target {goal['target']!r} is no receptacle type here.")
    if kind in APPLIANCE and APPLIANCE[kind] not in kinds:
        raise ValueError(f"Household {kind} goals need a {APPLIANCE[kind]} in the house.")
