"""Task domains of :class:`~turngym.envs.dialogue.clarify.Clarify`: slots, values, lexicons.

Each domain is a form the agent must fill (book a flight, reserve a restaurant table, set up a
meeting, place an order). Every slot has a value list, the phrase the user uses when a value
is stated up front, and the words of a free-text question that mean it (InfoPO's intent
clarification setting, arXiv 2603.00656; docs/environments.md#clarify).

The value lists are chosen so that no value of one slot appears, as whole words, inside a
different value of another slot of the same domain, nor inside any fixed text the user says;
``tests/envs/test_clarify.py`` checks this, and it is what makes the leak check exact.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "Slot",
    "Domain",
    "DOMAINS",
    "NUMBER_WORDS",
    "normalise_value",
    "values_match",
    "mentions",
]

NUMBER_WORDS: Mapping[str, int] = {
    w: n
    for n, w in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    )
}
"""Number words accepted for count slots (``"two"`` = ``"2 people"``)."""


@dataclass(frozen=True, slots=True)
class Slot:
    """One field of a domain's form.

    Attributes:
        name: The field name used in questions and in the final action (``"party_size"``).
        label: How the user names it (``"party size"``).
        values: Every value the field can take.
        phrase: How the request states a value, with ``{v}`` for it (``"for {v}"``).
        synonyms: Words of a free-text question that refer to this slot.
        count: Values are ``"<n> <noun>"`` and compare by their number.
    """

    name: str
    label: str
    values: tuple[str, ...]
    phrase: str
    synonyms: tuple[str, ...] = ()
    count: bool = False


@dataclass(frozen=True, slots=True)
class Domain:
    """A kind of request: its opening words and its slots (form fields)."""

    name: str
    opening: str
    slots: tuple[Slot, ...]

    def slot(self, name: str) -> Slot:
        """Return the slot called ``name`` (raises ``KeyError`` if there is none)."""
        for slot in self.slots:
            if slot.name == name:
                return slot
        raise KeyError(name)


_DATES = tuple(f"{m} {d}" for m in ("March", "April", "May", "June") for d in range(1, 29))
_CITIES = ("Lisbon", "Oslo", "Denver", "Nairobi", "Osaka", "Lima", "Perth", "Quebec", "Hanoi")


def _count(noun: str, plural: str, low: int, high: int) -> tuple[str, ...]:
    return tuple(f"{n} {noun if n == 1 else plural}" for n in range(low, high + 1))


_FLIGHT = Domain(
    "flight",
    "Hi! Please book me a flight",
    (
        Slot("origin", "departure city", _CITIES, "from {v}",
             ("origin", "from", "departure", "departing", "leaving", "leave")),
        Slot("destination", "destination", _CITIES, "to {v}",
             ("destination", "arrive", "arrival", "going", "heading", "fly to")),
        Slot("date", "travel date", _DATES, "on {v}", ("date", "day", "when")),
        Slot("time", "time of day", ("early morning", "late morning", "afternoon", "evening"),
             "leaving in the {v}", ("time", "hour", "morning")),
        Slot("cabin", "cabin class", ("economy", "business", "first class"), "in {v}",
             ("cabin", "class", "seat")),
        Slot("passengers", "number of passengers", _count("passenger", "passengers", 1, 4),
             "for {v}", ("passengers", "passenger", "how many", "travellers", "people"),
             count=True),
    ),
)  # fmt: skip

_RESTAURANT = Domain(
    "restaurant",
    "Hi! Could you reserve a table for me",
    (
        Slot("cuisine", "cuisine",
             ("thai", "italian", "mexican", "japanese", "indian", "greek", "ethiopian"),
             "at a {v} restaurant", ("cuisine", "food", "kind of restaurant", "type")),
        Slot("area", "area", ("downtown", "harbourside", "old town", "university district",
                              "riverside"), "in the {v} area",
             ("area", "where", "neighbourhood", "neighborhood", "location", "part of town")),
        Slot("date", "date", _DATES, "on {v}", ("date", "day", "when")),
        Slot("time", "time", ("18:00", "18:30", "19:00", "19:30", "20:00", "20:30", "21:00"),
             "at {v}", ("time", "hour", "what time")),
        Slot("party_size", "party size", _count("person", "people", 2, 8), "for {v}",
             ("party size", "party", "how many", "people", "guests", "size"), count=True),
        Slot("seating", "seating", ("indoor", "outdoor", "bar counter"), "with {v} seating",
             ("seating", "seat", "sit", "table")),
    ),
)  # fmt: skip

_MEETING = Domain(
    "meeting",
    "Hi! Please set up a meeting",
    (
        Slot("attendee", "attendee", ("Priya", "Tomas", "Keiko", "Amara", "Lars", "Sofia",
                                      "Diego", "Mei"), "with {v}",
             ("attendee", "who", "with whom", "participant", "invite")),
        Slot("date", "date", _DATES, "on {v}", ("date", "day", "when")),
        Slot("time", "start time", ("09:00", "09:30", "10:00", "11:00", "13:00", "14:30",
                                    "15:00", "16:00"), "at {v}",
             ("time", "start", "hour", "what time")),
        Slot("duration", "duration", ("15 minutes", "30 minutes", "45 minutes", "60 minutes",
                                      "90 minutes"), "for {v}",
             ("duration", "how long", "length", "minutes")),
        Slot("room", "room", ("Maple room", "Cedar room", "Birch room", "Willow room"),
             "in the {v}", ("room", "where", "location", "venue")),
        Slot("format", "format", ("in person", "by video", "by phone"), "held {v}",
             ("format", "video", "phone", "remote", "how should")),
    ),
)  # fmt: skip

_ORDER = Domain(
    "order",
    "Hi! I'd like to place an order",
    (
        Slot("item", "item", ("lamp", "backpack", "kettle", "jacket", "blender", "mug",
                              "toaster"), "for a {v}", ("item", "product", "what to order")),
        Slot("color", "colour", ("black", "white", "red", "blue", "green", "grey"), "in {v}",
             ("color", "colour")),
        Slot("size", "size", ("small", "medium", "large"), "in size {v}", ("size", "big")),
        Slot("quantity", "quantity", _count("unit", "units", 1, 5), "{v} of it",
             ("quantity", "how many", "units", "number"), count=True),
        Slot("shipping", "shipping", ("standard", "express", "overnight"),
             "with {v} shipping", ("shipping", "delivery", "deliver", "ship")),
        Slot("payment", "payment method", ("credit card", "paypal", "gift card",
                                           "bank transfer"), "paid by {v}",
             ("payment", "pay", "paying")),
    ),
)  # fmt: skip

DOMAINS: Mapping[str, Domain] = {d.name: d for d in (_FLIGHT, _RESTAURANT, _MEETING, _ORDER)}
"""Every domain by name, in a fixed order."""

_NOT_VALUE_CHARS = re.compile(r"[^\w: ]+")


def normalise_value(value: object) -> str:
    """Lower-case, drop punctuation other than ``:``, collapse whitespace.

    Example:
        >>> normalise_value("  First   Class. ")
        'first class'
    """
    return _normalise_text(str(value))


@functools.lru_cache(maxsize=4096)  # slot values and user lines recur every turn
def _normalise_text(value: str) -> str:
    text = _NOT_VALUE_CHARS.sub(" ", value.replace("_", " ").lower())
    return " ".join(text.split())


@functools.lru_cache(maxsize=1024)
def _whole_words(value: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w:]){re.escape(value)}(?![\w:])")


def _number_in(text: str) -> int | None:
    for word in text.split():
        if word.isdigit() and len(word) < 4:
            return int(word)
        if word in NUMBER_WORDS:
            return NUMBER_WORDS[word]
    return None


def values_match(slot: Slot, given: object, gold: str) -> bool:
    """Whether the value the agent gave for ``slot`` is the gold one.

    Values compare after :func:`normalise_value`; count slots compare by their number, so
    ``2``, ``"two"`` and ``"2 people"`` all match ``"2 people"``.

    Example:
        >>> values_match(DOMAINS["restaurant"].slot("party_size"), "Two", "2 people")
        True
    """
    if isinstance(given, bool) or not isinstance(given, (str, int, float)):
        return False
    if slot.count:
        number = _number_in(normalise_value(given))
        return number is not None and number == _number_in(normalise_value(gold))
    return normalise_value(given) == normalise_value(gold)


def mentions(text: str, value: str) -> bool:
    """Whether ``value`` occurs in ``text`` as whole words (ignoring case).

    Example:
        >>> mentions("Time: 19:30.", "19:30"), mentions("June 21", "June 2")
        (True, False)
    """
    return _whole_words(normalise_value(value)).search(normalise_value(text)) is not None
