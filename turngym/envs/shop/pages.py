"""Page state and text rendering of the Shop env (WebShop's text mode; Yao et al., 2022).

Pages are rendered as WebShop's ``[SEP]``-joined visible text. A :class:`PageState` is
everything the rendering and the future of an episode depend on (the turn count is not part
of it), so :meth:`PageState.key` is the GiGPO state key (docs/methods.md#gigpo).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["PageState", "SEP", "SUBPAGES", "render_page", "clickables"]

SEP = " [SEP] "
SUBPAGES: tuple[str, ...] = ("description", "features", "reviews")
"""Item sub-pages reachable with ``click[description]`` etc."""


@dataclass(frozen=True, slots=True)
class PageState:
    """Where the agent is.

    Attributes:
        page: ``"search"``, ``"results"``, ``"item"``, one of :data:`SUBPAGES`, or ``"done"``.
        query: The normalised query of the current result list (``""`` before a search).
        results: Catalogue indexes of the whole result list (every page).
        page_no: 1-based results page.
        item: Catalogue index of the open item, or -1.
        chosen: Selected option values, ``((dimension, value), ...)`` sorted by dimension.
    """

    page: str = "search"
    query: str = ""
    results: tuple[int, ...] = ()
    page_no: int = 1
    item: int = -1
    chosen: tuple[tuple[str, str], ...] = field(default=())

    def key(self, products: Sequence[Mapping[str, Any]]) -> str:
        """The canonical state key: page, query, page number, item id and chosen options."""
        if self.page == "search":
            return "search"
        where = f"q={self.query}|p={self.page_no}"
        if self.page == "results":
            return f"results|{where}"
        item = products[self.item]["id"] if self.item >= 0 else "-"
        options = ";".join(f"{d}={v}" for d, v in self.chosen)
        return f"{self.page}|{where}|i={item}|o={options}"

    def choose(self, dimension: str, value: str) -> PageState:
        """Return this state with ``dimension`` set to ``value``."""
        chosen = dict(self.chosen)
        chosen[dimension] = value
        return replace(self, chosen=tuple(sorted(chosen.items())))


def page_slice(state: PageState, per_page: int) -> tuple[int, ...]:
    """The catalogue indexes shown on the current results page."""
    start = (state.page_no - 1) * per_page
    return state.results[start : start + per_page]


def n_pages(state: PageState, per_page: int) -> int:
    """Number of results pages (at least 1)."""
    return max(1, -(-len(state.results) // per_page))


def clickables(state: PageState, products: Sequence[Mapping[str, Any]], per_page: int) -> list[str]:
    """Everything ``click[...]`` accepts on the current page, in display order (lower case)."""
    if state.page == "results":
        out = ["back to search"]
        if state.page_no > 1:
            out.append("< prev")
        if state.page_no < n_pages(state, per_page):
            out.append("next >")
        return out + [products[i]["id"] for i in page_slice(state, per_page)]
    if state.page == "item":
        options = products[state.item]["options"]
        values = [v for dim in sorted(options) for v in options[dim]]
        return ["back to search", "< prev", *values, *SUBPAGES, "buy now"]
    if state.page in SUBPAGES:
        return ["back to search", "< prev"]
    return []


def _results_text(state: PageState, products: Sequence[Mapping[str, Any]], per_page: int) -> list:
    parts = ["Back to Search", f"Results for: {state.query}"]
    parts.append(f"Page {state.page_no} (Total results: {len(state.results)})")
    if state.page_no > 1:
        parts.append("< Prev")
    if state.page_no < n_pages(state, per_page):
        parts.append("Next >")
    for index in page_slice(state, per_page):
        product = products[index]
        parts += [product["id"], product["title"], f"${product['price']:.2f}"]
    if not state.results:
        parts.append("No products match your search.")
    return parts


def _item_text(state: PageState, product: Mapping[str, Any]) -> list:
    parts = ["Back to Search", "< Prev"]
    for dim in sorted(product["options"]):
        parts += [dim, *product["options"][dim]]
    if state.chosen:
        parts.append("Selected: " + ", ".join(f"{d}: {v}" for d, v in state.chosen))
    parts += [product["title"], f"Price: ${product['price']:.2f}", "Rating: N.A."]
    return parts + ["Description", "Features", "Reviews", "Buy Now"]


def _subpage_text(state: PageState, product: Mapping[str, Any]) -> list:
    if state.page == "description":
        body = [product["description"]]
    elif state.page == "features":
        body = list(product["bullets"])
    else:
        body = ["No reviews yet."]
    return ["Back to Search", "< Prev", *body]


def render_page(
    state: PageState,
    products: Sequence[Mapping[str, Any]],
    instruction: str,
    *,
    per_page: int,
    show_actions: bool,
) -> str:
    """Render the page as WebShop's ``[SEP]``-joined text, optionally listing the actions."""
    head = ["WebShop", "Instruction:", instruction]
    if state.page == "search":
        body = ["Search"]
    elif state.page == "results":
        body = _results_text(state, products, per_page)
    elif state.page == "item":
        body = _item_text(state, products[state.item])
    elif state.page in SUBPAGES:
        body = _subpage_text(state, products[state.item])
    else:
        body = ["Thank you for shopping with us!"]
    text = SEP.join(head + body)
    if show_actions and state.page != "done":
        actions = ["search[<your query>]"] if state.page == "search" else []
        actions += [f"click[{c}]" for c in clickables(state, products, per_page)]
        text += "\nAvailable actions: " + ", ".join(actions)
    return text
