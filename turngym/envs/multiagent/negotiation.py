"""Deal-or-No-Deal rules and the scripted negotiator (no PettingZoo import).

The game of Lewis et al., "Deal or No Deal? End-to-End Learning for Negotiation Dialogues"
(EMNLP 2017): two players divide a pool of items (books, hats, balls); each player has its own
private value per item type, the values of all items add up to 10 for each player, every item
type is worth something to at least one player, and at least one type is worth something to
both (so interests partly conflict). A deal pays each player the value of its own share; no
deal pays nothing.

The negotiator is a time-dependent concession strategy ("Boulware": it concedes slowly, then
faster near the deadline) from Faratin, Sierra and Jennings, "Negotiation decision functions
for autonomous agents", Robotics and Autonomous Systems 24 (1998). It acts from its own
:class:`BargainView` only: its own values, the pool, the moves so far and the offers made. It
estimates what the opponent wants from the items the opponent has asked for, never from the
opponent's values.

Example:
    >>> view = BargainView(counts=(1, 3, 2), values=(4, 0, 3), move=0, max_moves=10,
    ...                    offer=None, their_offers=(), my_offers=())
    >>> negotiate(view)  # opening demand: all it values (10 points), the hats left to the other
    '<action>propose book=1 hat=0 ball=2</action>'
"""

from __future__ import annotations

import functools
import itertools
import random
import re
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ITEMS",
    "TOTAL_VALUE",
    "BargainView",
    "points",
    "splits",
    "value_vectors",
    "draw_pool",
    "format_take",
    "parse_command",
    "pareto_optimal",
    "negotiate",
]

ITEMS: tuple[str, ...] = ("book", "hat", "ball")
"""The item types, in the order of every count and value vector."""
TOTAL_VALUE = 10
"""What the whole pool is worth to each player (Lewis et al., 2017)."""

_COUNT_RANGE = (1, 4)
_TOTAL_ITEMS = (5, 7)
_RESERVE = 0.5  # the negotiator never asks for less than this share of its total value...
_BETA = 0.5  # ... and concedes towards it as (time ** (1 / beta)): Boulware for beta < 1
_PROPOSE = re.compile(r"(?P<item>[a-z]+)\s*[=:]\s*(?P<count>-?\d+)")


@dataclass(frozen=True, slots=True)
class BargainView:
    """What one seat knows: never the other seat's values.

    Attributes:
        counts: How many items of each type are in the pool.
        values: This seat's value of one item of each type.
        move: Valid moves made so far (proposals, by either seat).
        max_moves: Valid moves allowed; a proposal made as the last one cannot be answered.
        offer: What the other seat proposes to take (the standing offer), or ``None``.
        their_offers: Every proposal the other seat has made (what it would take), in order.
        my_offers: Every proposal this seat has made, in order.
    """

    counts: tuple[int, ...]
    values: tuple[int, ...]
    move: int
    max_moves: int
    offer: tuple[int, ...] | None
    their_offers: tuple[tuple[int, ...], ...]
    my_offers: tuple[tuple[int, ...], ...]


def points(values: tuple[int, ...] | list[int], share: tuple[int, ...] | list[int]) -> int:
    """The value of ``share`` (items per type) under ``values``."""
    return sum(v * s for v, s in zip(values, share, strict=True))


@functools.lru_cache(maxsize=256)
def splits(counts: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Every possible share of the pool (what one player takes), in lexicographic order."""
    return tuple(itertools.product(*(range(c + 1) for c in counts)))


@functools.lru_cache(maxsize=256)
def value_vectors(counts: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Every value vector (non-negative integers) under which the pool is worth 10."""
    ranges = [range(TOTAL_VALUE // c + 1) for c in counts]
    return tuple(v for v in itertools.product(*ranges) if points(v, counts) == TOTAL_VALUE)


def admissible(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Lewis et al.'s constraints: every type worth something to someone, one type to both."""
    return all(x or y for x, y in zip(a, b, strict=True)) and any(
        x and y for x, y in zip(a, b, strict=True)
    )


def draw_pool(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Draw ``(counts, values_0, values_1)``: 1-4 items per type, 5-7 in all, admissible values."""
    while True:
        counts = tuple(int(c) for c in rng.integers(_COUNT_RANGE[0], _COUNT_RANGE[1] + 1, 3))
        if _TOTAL_ITEMS[0] <= sum(counts) <= _TOTAL_ITEMS[1]:
            break
    vectors = value_vectors(counts)
    while True:
        a, b = (vectors[int(i)] for i in rng.integers(len(vectors), size=2))
        if admissible(a, b):
            return counts, a, b


def format_take(take: tuple[int, ...] | list[int]) -> str:
    """``book=1 hat=0 ball=2``: the proposal grammar."""
    return " ".join(f"{item}={n}" for item, n in zip(ITEMS, take, strict=True))


def describe(share: tuple[int, ...] | list[int]) -> str:
    """``1 book and 2 balls`` (``nothing`` for an empty share)."""
    pairs = zip(ITEMS, share, strict=True)
    parts = [f"{n} {item}{'s' if n != 1 else ''}" for item, n in pairs if n]
    if not parts:
        return "nothing"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def parse_command(
    command: str, counts: tuple[int, ...]
) -> tuple[str, tuple[int, ...] | None, str]:
    """Parse ``propose book=1 hat=0 ball=2``, ``accept`` or ``walk away``.

    Item names may be plural, items left out count 0, case and spacing do not matter.

    Returns:
        ``(kind, take, error)``: kind is ``"propose"`` (with ``take``, what the proposer
        keeps), ``"accept"``, ``"walk"``, or ``"error"`` with the reason in ``error``.
    """
    text = " ".join(command.lower().split())
    if text in {"accept", "accept offer", "deal"}:
        return "accept", None, ""
    if text in {"walk", "walk away", "no deal"}:
        return "walk", None, ""
    if not text.startswith("propose"):
        return "error", None, f"{command.strip()[:40]!r} is not propose, accept or walk away"
    take = [0] * len(ITEMS)
    rest = text[len("propose") :]
    found = list(_PROPOSE.finditer(rest))
    if not found or _PROPOSE.sub("", rest).strip(" ,;"):
        return "error", None, "write a proposal as propose book=1 hat=0 ball=2"
    for match in found:
        item = match["item"] if match["item"] in ITEMS else match["item"].removesuffix("s")
        if item not in ITEMS:
            return "error", None, f"unknown item {match['item'][:20]!r} (items: book, hat, ball)"
        take[ITEMS.index(item)] = int(match["count"])
    if any(not 0 <= n <= c for n, c in zip(take, counts, strict=True)):
        return "error", None, f"a proposal takes at most the pool: {describe(counts)}"
    return "propose", tuple(take), ""


def pareto_optimal(take: tuple[int, ...], counts: tuple[int, ...], va: tuple[int, ...],
                   vb: tuple[int, ...]) -> bool:  # fmt: skip
    """Whether no other split gives both players at least as much and one of them more."""
    mine = points(va, take)
    theirs = points(vb, tuple(c - t for c, t in zip(counts, take, strict=True)))
    for other in splits(counts):
        a = points(va, other)
        b = points(vb, tuple(c - t for c, t in zip(counts, other, strict=True)))
        if a >= mine and b >= theirs and (a > mine or b > theirs):
            return False
    return True


def _their_wants(view: BargainView) -> list[float]:
    """Per type, the share of the pool the opponent has asked for on average (prior 0.5)."""
    if not view.their_offers:
        return [0.5] * len(view.counts)
    return [
        sum(offer[i] for offer in view.their_offers) / (len(view.their_offers) * c)
        for i, c in enumerate(view.counts)
    ]


def negotiate(view: BargainView, rng: random.Random | None = None) -> str:
    """The negotiator's action (tagged) for ``view``.

    Its aspiration falls from 10 points to ``_RESERVE * 10`` as ``1 - (1 - r) t^(1/beta)``
    with ``t`` the share of moves used (Faratin et al., 1998). It accepts a standing offer
    worth its aspiration, or anything worth more than nothing on the last move; otherwise it
    proposes, among the shares worth its aspiration, the one that leaves the opponent most of
    what the opponent has asked for (ties: fewest points for itself, then ``rng`` or the first).
    """
    moves_left = view.max_moves - view.move
    progress = view.move / max(1, view.max_moves - 1)
    aspiration = TOTAL_VALUE * (1 - (1 - _RESERVE) * min(1.0, progress) ** (1 / _BETA))
    if view.offer is not None:
        mine = tuple(c - t for c, t in zip(view.counts, view.offer, strict=True))
        value = points(view.values, mine)
        if value >= aspiration or (moves_left <= 1 and value > 0):
            return "<action>accept</action>"
    wants = _their_wants(view)
    scored = []
    for take in splits(view.counts):
        worth = points(view.values, take)
        if worth + 1e-9 < aspiration:
            continue
        left = sum(w * (c - t) for w, c, t in zip(wants, view.counts, take, strict=True))
        scored.append((-round(left, 9), worth, take))
    if not scored:  # aspiration above what the pool can give: ask for everything it values
        take = tuple(c if v else 0 for c, v in zip(view.counts, view.values, strict=True))
        return f"<action>propose {format_take(take)}</action>"
    scored.sort()
    best = [take for key0, key1, take in scored if (key0, key1) == scored[0][:2]]
    take = best[0] if rng is None else rng.choice(best)
    return f"<action>propose {format_take(take)}</action>"
