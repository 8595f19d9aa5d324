"""WebShop's purchase reward (Yao et al., 2022), re-implemented without spaCy or rapidfuzz.

The formula follows ``get_reward`` in WebShop's ``web_agent_site/engine/goal.py``
(docs/environments.md#shop)::

    R = r_type * (#attribute hits + #option hits + r_price) / (|goal attrs| + |goal opts| + 1)

* ``r_type`` (``get_type_reward``): ``title_score`` = share of the goal title's nouns found
  among the purchased title's nouns; ``r_type`` = 1.0, but 0.5 when neither the listing
  query, nor >= 2 shared category levels, nor ``title_score > 0.2`` match; 0.1 when
  ``title_score < 0.1``; 0.0 when ``title_score == 0``. WebShop tags nouns with spaCy; our
  catalogue stores each title's nouns (brand + type nouns) at generation time, so this is exact.
* attribute hit (``get_attribute_reward``): some product attribute has a token-set ratio
  > 85 with the goal attribute, else the goal attribute is a substring of the title, bullet
  points or description.
* option hit (``get_option_reward``): some chosen option has a token-set ratio > 85 with the
  goal option, after colour normalisation.
* ``r_price``: the price is at most the goal's upper bound (no bound counts as met, as
  WebShop's 1,000,000 default does).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from turngym.envs.shop.vocab import COLORS

__all__ = ["indel_ratio", "token_set_ratio", "normalize_color", "RewardBreakdown", "get_reward"]

FUZZY_THRESHOLD = 85.0
"""WebShop's fuzzy-match threshold (a match needs a ratio strictly above it)."""


def indel_ratio(a: str, b: str) -> float:
    """Return ``100 * 2 * LCS(a, b) / (len(a) + len(b))`` (the normalised Indel similarity).

    This is what ``rapidfuzz.fuzz.ratio`` computes; two empty strings give 100.

    Example:
        >>> round(indel_ratio("machine wash", "machine washable"), 1)
        85.7
    """
    if not a and not b:
        return 100.0
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for ca in a:  # longest common subsequence, one row at a time
        current = [0]
        for j, cb in enumerate(b):
            current.append(previous[j] + 1 if ca == cb else max(previous[j + 1], current[j]))
        previous = current
    return 200.0 * previous[-1] / (len(a) + len(b))


@functools.lru_cache(maxsize=65_536)
def token_set_ratio(a: str, b: str) -> float:
    """Return the token-set ratio of ``a`` and ``b`` in [0, 100], as ``fuzz.token_set_ratio``.

    Words are split on whitespace. With ``common`` = sorted shared words and ``rest_a``,
    ``rest_b`` the sorted words only one side has: 100 if the shared words are non-empty and
    one side has no other word; else the best Indel ratio among (common, common + rest_a),
    (common, common + rest_b) and (common + rest_a, common + rest_b). No shared word and
    nothing else gives 0.

    Example:
        >>> token_set_ratio("non slip", "non slip sole"), token_set_ratio("rose", "mint")
        (100.0, 0.0)
    """
    words_a, words_b = set(a.split()), set(b.split())
    if not words_a or not words_b:
        return 0.0
    common = " ".join(sorted(words_a & words_b))
    rest_a = " ".join(sorted(words_a - words_b))
    rest_b = " ".join(sorted(words_b - words_a))
    if common and (not rest_a or not rest_b):
        return 100.0
    full_a = f"{common} {rest_a}".strip()
    full_b = f"{common} {rest_b}".strip()
    best = indel_ratio(full_a, full_b)
    if common:
        best = max(best, indel_ratio(common, full_a), indel_ratio(common, full_b))
    return best


def normalize_color(value: str) -> str:
    """Map an option value containing a base colour to that colour (WebShop's step)."""
    lowered = value.lower()
    for color in COLORS:
        if color in lowered:
            return color
    return lowered


def _fuzzy_hit(goal: str, candidates: Iterable[str]) -> bool:
    return any(c == goal or token_set_ratio(c, goal) > FUZZY_THRESHOLD for c in candidates)


@dataclass(frozen=True, slots=True)
class RewardBreakdown:
    """The parts of one purchase's reward.

    Attributes:
        reward: The total ``R`` in [0, 1].
        r_type: Type factor (0, 0.1, 0.5 or 1).
        title_score: Share of goal-title nouns in the purchased title's nouns.
        attribute_hits: Goal attributes matched.
        option_hits: Goal options matched.
        price_ok: Price within the bound.
        n_attributes: Goal attributes.
        n_options: Goal options.
    """

    reward: float
    r_type: float
    title_score: float
    attribute_hits: int
    option_hits: int
    price_ok: bool
    n_attributes: int
    n_options: int

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for ``info``)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def type_reward(product: Mapping[str, Any], goal: Mapping[str, Any]) -> tuple[float, float]:
    """Return ``(r_type, title_score)`` of buying ``product`` for ``goal`` (see module doc)."""
    query_match = product["query"] == goal["query"]
    levels_p = {x.strip() for x in product["category"].split("›")}
    levels_g = {x.strip() for x in goal["category"].split("›")}
    category_match = len(levels_p & levels_g) >= 2
    desired = set(goal["nouns"])
    shared = len(set(product["nouns"]) & desired)
    title_score = shared / len(desired) if desired else 0.2
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return r_type, title_score


def get_reward(
    product: Mapping[str, Any],
    goal: Mapping[str, Any],
    chosen_options: Sequence[str],
) -> RewardBreakdown:
    """Score buying ``product`` with ``chosen_options`` for ``goal`` (WebShop's formula).

    Args:
        product: A catalogue product: ``query``, ``category``, ``nouns``, ``attributes``,
            ``title``, ``bullets``, ``description``, ``price``.
        goal: ``query``, ``category``, ``nouns`` (of the target), ``attributes`` (list),
            ``options`` (``{dimension: value}``) and ``price_upper`` (``None``: no bound).
        chosen_options: The option values selected on the item page.

    Returns:
        The reward and its parts.

    Example:
        >>> p = {"query": "mug", "category": "Home › Kitchen › Mugs", "nouns": ["mug"],
        ...      "attributes": ["dishwasher safe"], "title": "Acme Mug", "bullets": [],
        ...      "description": "", "price": 9.0}
        >>> g = {**p, "options": {"color": "navy"}, "price_upper": 10.0}
        >>> get_reward(p, g, ["navy"]).reward, get_reward(p, g, ["teal"]).reward
        (1.0, 0.6666666666666666)
    """
    r_type, title_score = type_reward(product, goal)
    attrs = list(goal["attributes"])
    text = " ".join([product["title"], *product["bullets"], product["description"]]).lower()
    attribute_hits = sum(_fuzzy_hit(g, product["attributes"]) or g.lower() in text for g in attrs)
    chosen = [normalize_color(o) for o in chosen_options]
    goal_options = [normalize_color(str(v)) for _, v in sorted(goal["options"].items())]
    option_hits = sum(_fuzzy_hit(g, chosen) for g in goal_options)
    upper = goal.get("price_upper")
    price_ok = upper is None or float(product["price"]) <= float(upper)
    total = (attribute_hits + option_hits + int(price_ok)) / (len(attrs) + len(goal_options) + 1)
    return RewardBreakdown(
        reward=r_type * total,
        r_type=r_type,
        title_score=title_score,
        attribute_hits=attribute_hits,
        option_hits=option_hits,
        price_ok=price_ok,
        n_attributes=len(attrs),
        n_options=len(goal_options),
    )
