"""Vocabulary of the Household env: rooms, receptacle and object types, affordances.

The type names follow ALFWorld's object and receptacle vocabulary (Shridhar et al., 2021,
"ALFWorld: Aligning Text and Embodied Environments for Interactive Learning"); the placement
table is our own, much smaller, in the spirit of its ``VAL_RECEPTACLE_OBJECTS``. Everything
here is plain data, so tasks stay JSON and generation depends on nothing but its RNG.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "TASK_TYPES",
    "ROOM_ORDER",
    "ROOM_REQUIRED",
    "ROOM_EXTRAS",
    "OPENABLE",
    "CONTAINERS",
    "APPLIANCE",
    "LAMP",
    "LAMP_HOSTS",
    "OBJECT_TYPES",
    "CLEANABLE",
    "HEATABLE",
    "COOLABLE",
    "EXAMINABLE",
    "PLACEMENT",
    "prep",
    "plural",
    "kind_of",
]

TASK_TYPES: tuple[str, ...] = ("pick", "clean", "heat", "cool", "examine", "pick_two")
"""The six ALFWorld task families: pick & place, clean & place, heat & place, cool & place,
examine in light, and pick two & place."""

ROOM_ORDER: tuple[str, ...] = ("kitchen", "livingroom", "bedroom", "bathroom")
"""Rooms in the order a house of ``n`` rooms takes them (the kitchen always exists)."""

ROOM_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "kitchen": ("fridge", "microwave", "sinkbasin", "countertop", "cabinet", "drawer", "sidetable"),
    "livingroom": ("sofa", "coffeetable", "sidetable"),
    "bedroom": ("bed", "desk", "drawer"),
    "bathroom": ("sinkbasin", "countertop", "cabinet"),
}
"""Receptacle types every room of that kind has (so every task type is possible anywhere)."""

ROOM_EXTRAS: Mapping[str, tuple[str, ...]] = {
    "kitchen": (
        "cabinet", "drawer", "countertop", "stoveburner", "diningtable", "shelf", "garbagecan",
    ),
    "livingroom": ("armchair", "tvstand", "shelf", "drawer", "cabinet", "sidetable", "garbagecan"),
    "bedroom": ("sidetable", "dresser", "shelf", "drawer", "safe", "garbagecan"),
    "bathroom": ("cabinet", "drawer", "toilet", "shelf", "garbagecan"),
}  # fmt: skip
"""Receptacle types drawn for the extra receptacles of a room."""

OPENABLE = frozenset({"fridge", "microwave", "cabinet", "drawer", "safe"})
"""Receptacles that start closed and must be opened before use."""
CONTAINERS = OPENABLE | {"sinkbasin", "garbagecan"}
"""Receptacles one puts things *in* (the rest take *on*)."""

APPLIANCE: Mapping[str, str] = {"clean": "sinkbasin", "heat": "microwave", "cool": "fridge"}
"""The receptacle type that performs each state change."""

LAMP = "desklamp"
LAMP_HOSTS = ("desk", "sidetable")
"""Receptacle types a desk lamp stands on."""

_KITCHEN = ("countertop", "diningtable", "cabinet", "shelf", "sidetable")
_FOOD = (*_KITCHEN, "fridge", "microwave", "sinkbasin", "garbagecan")
_UTENSIL = ("countertop", "diningtable", "drawer", "sinkbasin", "cabinet")
_SMALL = ("desk", "sidetable", "drawer", "shelf", "dresser", "coffeetable", "tvstand", "cabinet")
_SOFT = ("sofa", "armchair", "bed")
_BATH = ("countertop", "cabinet", "toilet", "sinkbasin", "shelf")

PLACEMENT: Mapping[str, tuple[str, ...]] = {
    "apple": _FOOD, "potato": _FOOD, "tomato": _FOOD, "egg": _FOOD, "bread": _FOOD,
    "lettuce": _FOOD,
    "mug": (*_KITCHEN, "sinkbasin", "microwave", "coffeetable", "desk"),
    "cup": (*_KITCHEN, "sinkbasin", "fridge", "microwave"),
    "plate": (*_KITCHEN, "sinkbasin", "fridge"),
    "bowl": (*_KITCHEN, "sinkbasin", "fridge", "coffeetable"),
    "pan": ("stoveburner", "countertop", "cabinet", "sinkbasin"),
    "pot": ("stoveburner", "countertop", "cabinet", "diningtable"),
    "winebottle": ("countertop", "diningtable", "fridge", "shelf", "cabinet"),
    "knife": _UTENSIL, "fork": _UTENSIL, "spoon": _UTENSIL, "spatula": _UTENSIL,
    "ladle": _UTENSIL,
    "dishsponge": (*_UTENSIL, "toilet"),
    "cloth": _BATH, "soapbar": _BATH,
    "book": (*_SMALL, *_SOFT), "cellphone": (*_SMALL, *_SOFT), "laptop": ("desk", "bed", "sofa"),
    "creditcard": _SMALL, "keychain": _SMALL, "pen": _SMALL, "pencil": _SMALL, "cd": _SMALL,
    "watch": _SMALL, "remotecontrol": (*_SMALL, "sofa", "armchair"), "alarmclock": _SMALL,
    "vase": _SMALL, "statue": _SMALL, "pillow": _SOFT,
}  # fmt: skip
"""Where each portable object type may start (receptacle types)."""

OBJECT_TYPES: tuple[str, ...] = tuple(sorted(PLACEMENT))
CLEANABLE = frozenset({
    "apple", "potato", "tomato", "egg", "lettuce", "mug", "cup", "plate", "bowl", "pan", "pot",
    "knife", "fork", "spoon", "spatula", "ladle", "dishsponge", "cloth",
})  # fmt: skip
HEATABLE = frozenset({"apple", "potato", "tomato", "egg", "bread", "mug", "cup", "plate"})
COOLABLE = frozenset({
    "apple", "potato", "tomato", "egg", "bread", "lettuce", "mug", "cup", "plate", "bowl", "pan",
    "pot", "winebottle",
})  # fmt: skip
EXAMINABLE = frozenset({
    "book", "cellphone", "creditcard", "keychain", "pen", "pencil", "cd", "watch",
    "remotecontrol", "alarmclock", "vase", "statue", "pillow", "mug", "bowl", "cloth", "laptop",
})  # fmt: skip

_PLURAL = {"knife": "knives", "tomato": "tomatoes", "potato": "potatoes", "watch": "watches"}


def kind_of(name: str) -> str:
    """The type of an instance name: ``"cabinet 3"`` -> ``"cabinet"``."""
    return name.rsplit(" ", 1)[0]


def prep(receptacle_type: str) -> str:
    """``"in"`` for containers, ``"on"`` for surfaces."""
    return "in" if receptacle_type in CONTAINERS else "on"


def plural(noun: str) -> str:
    """English plural of an object type (``knife`` -> ``knives``)."""
    return _PLURAL.get(noun, noun + "s")
