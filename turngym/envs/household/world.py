"""The Household world: state, STRIPS-like dynamics, views and the goal test.

A Python rule set in the spirit of ALFWorld's ``alfred.pddl`` (Shridhar et al., 2021): the
agent is in a room (standing in its middle) or at one receptacle; openable receptacles must be
opened before anything inside is seen or reached; the agent holds at most one object; the
sink basin, microwave and fridge clean, heat and cool what the agent holds; a desk lamp is
switched with ``use``. All text is our own wording (ALFWorld's sentences are not copied).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from turngym.envs.household.vocab import (
    APPLIANCE,
    CLEANABLE,
    COOLABLE,
    HEATABLE,
    LAMP,
    OPENABLE,
    kind_of,
    prep,
)

__all__ = ["World", "CLEAN", "HOT", "COLD", "ON", "STATE_BIT", "Outcome"]

CLEAN, HOT, COLD, ON = 1, 2, 4, 8
STATE_BIT: Mapping[str, int] = {"pick": 0, "pick_two": 0, "examine": 0, "clean": CLEAN,
                                "heat": HOT, "cool": COLD}  # fmt: skip
"""The object state each task type asks for (0: none)."""
_ADJ = ((CLEAN, "clean"), (HOT, "hot"), (COLD, "cold"))
_CHANGE = {"clean": (CLEANABLE, CLEAN, 0, "wash"), "heat": (HEATABLE, HOT, COLD, "heat"),
           "cool": (COOLABLE, COLD, HOT, "chill")}  # fmt: skip

Outcome = tuple[bool, bool, str]
"""``(valid, effective, message)`` of one command."""

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("look", r"look"),
        ("inventory", r"inventory|inv|i"),
        ("goto", r"go to (?:the )?(.+)"),
        ("open", r"open (?:the )?(.+)"),
        ("close", r"close (?:the )?(.+)"),
        ("take", r"(?:take|pick up) (?:the )?(.+?) from (?:the )?(.+)"),
        ("put", r"(?:put|move|place) (?:the )?(.+?) (?:in|on|into|onto|to) (?:the )?(.+)"),
        ("change", r"(clean|heat|cool) (?:the )?(.+?) with (?:the )?(.+)"),
        ("use", r"(?:use|toggle|turn on|switch on) (?:the )?(.+)"),
        ("examine", r"(?:examine|inspect|look at) (?:the )?(.+)"),
    )
)
_SPACES = re.compile(r"\s+")


def _listing(names: Sequence[str]) -> str:
    """``a, b and c`` (``nothing`` when empty)."""
    if not names:
        return "nothing"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


class World:
    """The mutable state of one household episode, built from a task dict.

    Attributes:
        rooms: Room names; ``room`` is the index of the agent's room.
        rec_room: Receptacle name -> room index.
        room_recs: Per room, its receptacle names in sorted order.
        contents: Receptacle name -> sorted object names in or on it.
        where: Object name -> its receptacle (``""`` while held).
        flags: Object name -> state bits (``CLEAN | HOT | COLD | ON``).
        opened: Openable receptacles that are open now.
        at: The receptacle the agent stands at (``None``: the middle of the room).
        held: The object in the agent's hand (``None``: empty-handed).
    """

    def __init__(self, task: Mapping[str, Any]) -> None:
        """Build the initial state; the task is assumed validated (see ``env.check_task``)."""
        self.rooms: list[str] = list(task["rooms"])
        self.rec_room: dict[str, int] = {name: int(room) for name, room in task["receptacles"]}
        self.room_recs: list[list[str]] = [[] for _ in self.rooms]
        for name in sorted(self.rec_room):
            self.room_recs[self.rec_room[name]].append(name)
        self.contents: dict[str, list[str]] = {name: [] for name in self.rec_room}
        self.where: dict[str, str] = {}
        self.flags: dict[str, int] = {}
        for name, place in task["objects"]:
            self.where[name] = place
            self.contents[place].append(name)
            self.flags[name] = 0
        for items in self.contents.values():
            items.sort()
        self.opened: set[str] = set()
        self.room = int(task["start"])
        self.at: str | None = None
        self.held: str | None = None

    def clone(self) -> World:
        """A copy whose mutable parts are independent (static layout is shared)."""
        other = object.__new__(World)
        other.__dict__.update(self.__dict__)
        other.contents = {rec: list(items) for rec, items in self.contents.items()}
        other.where, other.flags, other.opened = (
            dict(self.where),
            dict(self.flags),
            set(self.opened),
        )
        return other

    # --- Views ---------------------------------------------------------------------------------
    def reachable(self, rec: str) -> bool:
        """Whether the inside of ``rec`` can be seen and reached (open or not openable)."""
        return rec in self.opened or kind_of(rec) not in OPENABLE

    def describe_object(self, obj: str) -> str:
        """``"apple 1 (hot, clean)"`` or ``"desklamp 1 (on)"``."""
        bits = self.flags[obj]
        if kind_of(obj) == LAMP:
            return f"{obj} ({'on' if bits & ON else 'off'})"
        words = [word for bit, word in _ADJ if bits & bit]
        return f"{obj} ({', '.join(words)})" if words else obj

    def describe_receptacle(self, rec: str) -> str:
        """What the agent sees at ``rec``: closed, empty, or its contents."""
        if not self.reachable(rec):
            return f"The {rec} is closed."
        items = [self.describe_object(o) for o in self.contents[rec]]
        where = "Inside" if prep(kind_of(rec)) == "in" else "On top"
        state = " is open." if rec in self.opened else ""
        head = f"The {rec}{state} " if state else ""
        if not items:
            return f"{head}There is nothing {prep(kind_of(rec))} the {rec}."
        return f"{head}{where} of the {rec} you see {_listing(items)}."

    def describe_room(self) -> str:
        """The receptacles of the agent's room and the doorways to the others."""
        here = self.rooms[self.room]
        text = f"Around the {here} you see {_listing(self.room_recs[self.room])}."
        others = [r for i, r in enumerate(self.rooms) if i != self.room]
        if others:
            text += f" Doorways lead to the {_listing(others)}."
        return text

    def describe_place(self) -> str:
        """Where the agent is and what it sees there."""
        room = self.rooms[self.room]
        if self.at is None:
            return f"You stand in the middle of the {room}. {self.describe_room()}"
        return f"You are at the {self.at} in the {room}. {self.describe_receptacle(self.at)}"

    def describe_hand(self) -> str:
        """What the agent carries."""
        held = "nothing" if self.held is None else f"the {self.describe_object(self.held)}"
        return f"You are carrying {held}."

    def admissible(self) -> list[str]:
        """Every command that is valid now: global ones first, then travel, then local ones."""
        out = ["look", "inventory"]
        out += [f"go to {rec}" for rec in self.room_recs[self.room] if rec != self.at]
        out += [f"go to {room}" for i, room in enumerate(self.rooms) if i != self.room]
        rec, held = self.at, self.held
        if held is not None:
            out.append(f"examine {held}")
        if rec is None:
            return out
        out.append(f"examine {rec}")
        if kind_of(rec) in OPENABLE:
            out.append(f"{'close' if rec in self.opened else 'open'} {rec}")
        if not self.reachable(rec):
            return out
        for obj in self.contents[rec]:
            if kind_of(obj) == LAMP:
                out.append(f"use {obj}")
            elif held is None:
                out.append(f"take {obj} from {rec}")
        if held is not None:
            out.append(f"put {held} {prep(kind_of(rec))} {rec}")
            for verb, (able, *_rest) in _CHANGE.items():
                if APPLIANCE[verb] == kind_of(rec) and kind_of(held) in able:
                    out.append(f"{verb} {held} with {rec}")
        return out

    def key(self) -> str:
        """Canonical world state: place, hand, open receptacles, object places and states."""
        place = self.rooms[self.room] if self.at is None else self.at
        objects = ";".join(f"{o}@{self.where[o]}:{self.flags[o]}" for o in sorted(self.where))
        return f"at={place}|hold={self.held or '-'}|open={','.join(sorted(self.opened))}|{objects}"

    # --- Dynamics ------------------------------------------------------------------------------
    def execute(self, command: str) -> Outcome:
        """Apply one command (any string); never raises. Invalid commands change nothing."""
        text = _SPACES.sub(" ", command.strip().lower().rstrip(".!"))
        for name, pattern in _PATTERNS:
            match = pattern.fullmatch(text)
            if match:
                return getattr(self, f"_do_{name}")(*match.groups())
        shown = text if len(text) <= 40 else text[:37] + "..."
        message = f"Nothing happens: {shown!r} is not a command. Pick an admissible action."
        return False, False, message

    def _here(self, rec: str) -> str | None:
        """Why ``rec`` cannot be used where the agent stands (``None`` if it can)."""
        if rec not in self.rec_room:
            return f"there is no receptacle called {rec!r} (use its number, e.g. 'drawer 1')"
        if self.at != rec:
            return f"you are not at the {rec}; go to it first"
        return None

    def _do_look(self) -> Outcome:
        return True, False, f"You look around. {self.describe_room()}"

    def _do_inventory(self) -> Outcome:
        return True, False, self.describe_hand()

    def _do_goto(self, target: str) -> Outcome:
        if target in self.rooms:
            index = self.rooms.index(target)
            if index == self.room:
                return False, False, f"Nothing happens: you are already in the {target}."
            self.room, self.at = index, None
            return True, True, f"You walk into the {target}."
        if target not in self.rec_room:
            return False, False, f"Nothing happens: there is no place called {target!r} here."
        if self.rec_room[target] != self.room:
            room = self.rooms[self.rec_room[target]]
            return False, False, f"Nothing happens: the {target} is in the {room}; go there first."
        if self.at == target:
            return False, False, f"Nothing happens: you are already at the {target}."
        self.at = target
        return True, True, f"You walk over to the {target}."

    def _do_open(self, rec: str) -> Outcome:
        return self._open_close(rec, True)

    def _do_close(self, rec: str) -> Outcome:
        return self._open_close(rec, False)

    def _open_close(self, rec: str, opening: bool) -> Outcome:
        verb = "open" if opening else "close"
        problem = self._here(rec)
        if problem is None and kind_of(rec) not in OPENABLE:
            problem = f"the {rec} cannot be opened or closed"
        if problem is None and (rec in self.opened) == opening:
            problem = f"the {rec} is already {'open' if opening else 'closed'}"
        if problem is not None:
            return False, False, f"Nothing happens: {problem}."
        if opening:
            self.opened.add(rec)
        else:
            self.opened.discard(rec)
        return True, True, f"You {verb} the {rec}."

    def _do_take(self, obj: str, rec: str) -> Outcome:
        problem = self._here(rec)
        if problem is None and not self.reachable(rec):
            problem = f"the {rec} is closed"
        if problem is None and obj not in self.contents[rec]:
            problem = f"there is no {obj} {prep(kind_of(rec))} the {rec}"
        if problem is None and kind_of(obj) == LAMP:
            problem = f"the {obj} is fixed in place; you can only use it"
        if problem is None and self.held is not None:
            problem = f"your hands are full (you carry the {self.held}); put it down first"
        if problem is not None:
            return False, False, f"Nothing happens: {problem}."
        self.contents[rec].remove(obj)
        self.where[obj], self.held = "", obj
        return True, True, f"You pick up the {obj} from the {rec}."

    def _do_put(self, obj: str, rec: str) -> Outcome:
        problem = None if self.held == obj else f"you are not carrying a {obj}"
        problem = problem or self._here(rec)
        if problem is None and not self.reachable(rec):
            problem = f"the {rec} is closed"
        if problem is not None:
            return False, False, f"Nothing happens: {problem}."
        items = self.contents[rec]
        items.append(obj)
        items.sort()
        self.where[obj], self.held = rec, None
        return True, True, f"You set the {obj} down {prep(kind_of(rec))} the {rec}."

    def _do_change(self, verb: str, obj: str, rec: str) -> Outcome:
        able, bit, clears, word = _CHANGE[verb]
        problem = None if self.held == obj else f"you must be carrying the {obj} to {verb} it"
        problem = problem or self._here(rec)
        if problem is None and kind_of(rec) != APPLIANCE[verb]:
            problem = f"you can only {verb} things with a {APPLIANCE[verb]}"
        if problem is None and not self.reachable(rec):
            problem = f"the {rec} is closed"
        if problem is None and kind_of(obj) not in able:
            problem = f"the {obj} cannot be {verb}ed"
        if problem is not None:
            return False, False, f"Nothing happens: {problem}."
        before = self.flags[obj]
        self.flags[obj] = (before | bit) & ~clears
        return True, self.flags[obj] != before, f"You {word} the {obj} with the {rec}."

    def _do_use(self, obj: str) -> Outcome:
        if kind_of(obj) != LAMP or obj not in self.where:
            return False, False, f"Nothing happens: only a {LAMP} can be used, not {obj!r}."
        if self.at is None or self.where[obj] != self.at:
            return False, False, f"Nothing happens: the {obj} is not within reach."
        self.flags[obj] ^= ON
        state = "on" if self.flags[obj] & ON else "off"
        return True, True, f"You switch the {obj} {state}."

    def _do_examine(self, name: str) -> Outcome:
        if name == self.held:
            return True, False, f"You look closely at the {self.describe_object(name)}."
        if name in self.rec_room and name == self.at:
            return True, False, self.describe_receptacle(name)
        if (name in self.where and self.at is not None and self.reachable(self.at)
                and self.where[name] == self.at):  # fmt: skip
            return True, False, f"You look closely at the {self.describe_object(name)}."
        return False, False, f"Nothing happens: there is no {name!r} within reach to examine."
