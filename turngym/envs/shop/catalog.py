"""The synthetic Shop catalogue and goal generation (WebShop-like; Yao et al., 2022).

A catalogue is a pure function of ``(size, seed, near_miss_rate)``: products get a type from
:data:`~turngym.envs.shop.vocab.PRODUCT_TYPES`, an invented brand, 2-4 attributes of their
category, 2-5 values per option dimension and a price. With probability ``near_miss_rate`` a
product is followed by a confusable twin (same brand and type, one attribute swapped, fewer
option values, a higher price; docs/environments.md#shop). Catalogues and their BM25
indexes are built once per process (and the index cached on disk), never per env instance.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from turngym._shared_cache import shared_lru
from turngym.envs.shop.vocab import ATTRIBUTES, OPTION_VALUES, PRODUCT_TYPES, SYLLABLES
from turngym.retrieval.bm25 import BM25Index, load_or_build

__all__ = ["Catalog", "get_catalog", "make_goal", "goal_instruction", "price_upper_bound"]

_ID_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Catalog:
    """Products (plain dicts) plus lookups; shared between envs, so never mutate it."""

    size: int
    seed: int
    near_miss_rate: float
    products: tuple[dict[str, Any], ...]
    by_id: Mapping[str, int]

    @functools.cached_property
    def index(self) -> BM25Index:
        """The BM25 index over title, category, attributes and bullet points (disk-cached)."""
        docs = [
            " ".join([p["title"], p["category"], *p["attributes"], *p["bullets"]])
            for p in self.products
        ]
        return load_or_build(docs)


def _brands(rng: np.random.Generator, n: int) -> list[str]:
    names: set[str] = set()
    while len(names) < n:
        a, b = rng.choice(len(SYLLABLES), size=2, replace=False)
        names.add((SYLLABLES[a] + SYLLABLES[b]).capitalize())
    return sorted(names)


def _product_id(rng: np.random.Generator, taken: set[str]) -> str:
    while True:
        pid = "b0" + "".join(_ID_CHARS[i] for i in rng.integers(len(_ID_CHARS), size=8))
        if pid not in taken:
            taken.add(pid)
            return pid


def _describe(product: dict[str, Any]) -> None:
    """Fill in title, bullets and description from the structured fields."""
    attrs = product["attributes"]
    title_attrs = " ".join(a.title() for a in attrs[:2])
    product["title"] = f"{product['brand']} {title_attrs} {product['type'].title()}"
    product["bullets"] = [f"{a.capitalize()} for everyday use" for a in attrs] + [
        f"Available in {len(vals)} {dim} choices" for dim, vals in product["options"].items()
    ]
    product["description"] = (
        f"The {product['brand']} {product['type']} is {', '.join(attrs[:-1])}"
        f"{' and ' if len(attrs) > 1 else ''}{attrs[-1]}."
    )


def _new_product(rng: np.random.Generator, brands: list[str], taken: set[str]) -> dict[str, Any]:
    kind = PRODUCT_TYPES[int(rng.integers(len(PRODUCT_TYPES)))]
    pool = ATTRIBUTES[kind.category.split(" › ")[0]]
    n_attrs = int(rng.integers(2, 5))
    attrs = [pool[i] for i in sorted(rng.choice(len(pool), size=n_attrs, replace=False))]
    options = {}
    for dim in kind.options:
        values = OPTION_VALUES[dim]
        count = int(rng.integers(2, min(5, len(values)) + 1))
        options[dim] = [values[i] for i in sorted(rng.choice(len(values), count, replace=False))]
    low, high = kind.price_range
    brand = brands[int(rng.integers(len(brands)))]
    product = {
        "id": _product_id(rng, taken),
        "brand": brand,
        "type": kind.name,
        "query": kind.name,
        "category": kind.category,
        "nouns": [brand.lower(), *kind.nouns],
        "attributes": attrs,
        "options": options,
        "price": round(float(rng.uniform(low, high)), 2),
    }
    _describe(product)
    return product


def _near_miss(rng: np.random.Generator, base: dict[str, Any], taken: set[str]) -> dict[str, Any]:
    """A twin of ``base`` with one attribute swapped, fewer option values and a higher price."""
    pool = [a for a in ATTRIBUTES[base["category"].split(" › ")[0]] if a not in base["attributes"]]
    attrs = list(base["attributes"])
    attrs[int(rng.integers(len(attrs)))] = pool[int(rng.integers(len(pool)))]
    options = {
        dim: vals[: max(1, len(vals) - 1)] if rng.random() < 0.5 else list(vals)
        for dim, vals in base["options"].items()
    }
    twin = {**base, "id": _product_id(rng, taken), "attributes": attrs, "options": options}
    twin["price"] = round(base["price"] * float(rng.uniform(1.15, 1.6)), 2)
    _describe(twin)
    return twin


@shared_lru(maxsize=4)  # concurrent builds of one new catalogue build it once
def get_catalog(size: int = 5000, seed: int = 0, near_miss_rate: float = 0.3) -> Catalog:
    """Return the catalogue of ``(size, seed, near_miss_rate)`` (built once per process).

    Example:
        >>> cat = get_catalog(200, seed=1)
        >>> len(cat.products), cat.products[0]["id"] == get_catalog(200, seed=1).products[0]["id"]
        (200, True)
    """
    rng = np.random.default_rng(np.random.SeedSequence([0x5409, int(seed), int(size)]))
    brands = _brands(rng, max(8, min(200, size // 25)))
    taken: set[str] = set()
    products: list[dict[str, Any]] = []
    while len(products) < size:
        products.append(_new_product(rng, brands, taken))
        if len(products) < size and rng.random() < near_miss_rate:
            products.append(_near_miss(rng, products[-1], taken))
    by_id = {p["id"]: i for i, p in enumerate(products)}
    return Catalog(int(size), int(seed), float(near_miss_rate), tuple(products), by_id)


def price_upper_bound(price: float, rng: np.random.Generator, buckets: int = 4) -> float:
    """WebShop's goal price: the larger of two of the next ``buckets`` multiples of 10.

    Fewer buckets make the bound tighter (2 buckets: always the second multiple of 10).
    """
    first = (math.floor(price / 10) + 1) * 10
    options = [float(first + 10 * k) for k in range(buckets)]
    picked = rng.choice(len(options), size=2, replace=False)
    return max(options[int(i)] for i in picked)


def make_goal(
    product: Mapping[str, Any],
    rng: np.random.Generator,
    *,
    n_attributes: int,
    n_options: int,
    price_buckets: int,
) -> dict[str, Any]:
    """Draw a goal that ``product`` satisfies: attributes, one value per option, a price bound."""
    attrs = list(product["attributes"])
    take = min(n_attributes, len(attrs))
    chosen = sorted(int(i) for i in rng.choice(len(attrs), size=take, replace=False))
    dims = sorted(product["options"])
    dim_pick = sorted(int(i) for i in rng.choice(len(dims), size=min(n_options, len(dims)),
                                                  replace=False))  # fmt: skip
    options = {}
    for i in dim_pick:
        values = product["options"][dims[i]]
        options[dims[i]] = values[int(rng.integers(len(values)))]
    return {
        "target_id": product["id"],
        "attributes": [attrs[i] for i in chosen],
        "options": options,
        "price_upper": price_upper_bound(float(product["price"]), rng, price_buckets),
    }


def goal_instruction(product_type: str, goal: Mapping[str, Any]) -> str:
    """Render the goal as a WebShop-style request (never names the brand or the id).

    Example:
        >>> goal_instruction("yoga mat", {"attributes": ["non slip"], "options":
        ...     {"color": "teal"}, "price_upper": 40.0})
        'Find me a yoga mat that is non slip, with color: teal, and price lower than 40.00 dollars'
    """
    article = "" if product_type.endswith("s") else "a "  # "Find me running shoes"
    text = f"Find me {article}{product_type}"
    if goal["attributes"]:
        text += " that is " + " and ".join(goal["attributes"])
    parts = []
    if goal["options"]:
        parts.append(
            "with " + ", and ".join(f"{d}: {v}" for d, v in sorted(goal["options"].items()))
        )
    if goal.get("price_upper") is not None:
        parts.append(f"price lower than {float(goal['price_upper']):.2f} dollars")
    return text + "".join(f", and {p}" if i else f", {p}" for i, p in enumerate(parts))
