"""Shop: a WebShop-like shopping env (docs/environments.md#shop).

After WebShop (Yao et al., 2022, "WebShop: Towards Scalable Real-World Web Interaction with
Grounded Language Agents").

The agent reads a request generated from a target product, searches a synthetic catalogue
with BM25, pages through results, opens items, picks options and buys; buying ends the
episode with WebShop's reward (:mod:`turngym.envs.shop.reward`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from turngym.core import TextEnv, Transition
from turngym.envs.shop.catalog import Catalog, get_catalog, goal_instruction, make_goal
from turngym.envs.shop.pages import (
    SUBPAGES,
    PageState,
    clickables,
    render_page,
)
from turngym.envs.shop.reward import RewardBreakdown, get_reward
from turngym.envs.shop.vocab import PRODUCT_TYPES
from turngym.retrieval.bm25 import tokenize
from turngym.text_actions import parse_fields

__all__ = ["Shop"]

_COMMAND = re.compile(r"^\s*(search|click)\s*\[(.*)\]\s*$", re.IGNORECASE | re.DOTALL)
_ALIASES = {"next": "next >", "prev": "< prev", "back": "back to search", "buy": "buy now"}
_MAX_QUERY = 200
# Integer knobs: (lowest, highest, meaning).
_INT_KNOBS: Mapping[str, tuple[int, int, str]] = {
    "catalog_size": (100, 50_000, "products in the catalogue"),
    "catalog_seed": (0, 2**31 - 1, "the seed the catalogue is generated from"),
    "goal_attributes": (0, 4, "attributes the request names"),
    "goal_options": (0, 2, "option choices (size/color/...) the request names"),
    "price_buckets": (2, 8, "multiples of 10 the price bound is drawn from (fewer: tighter)"),
    "results_per_page": (3, 20, "results shown per page"),
    "max_results": (10, 200, "results a search returns"),
}
_BOOL_KNOBS = ("show_actions", "binary_reward")


class Shop(TextEnv):
    """WebShop-like shopping over a synthetic catalogue with BM25 search.

    Actions are WebShop's, inside the usual action tag: ``<action>search[QUERY]</action>``
    (only on the search page) and ``<action>click[TARGET]</action>`` where TARGET is any
    clickable of the page, case-insensitive: ``back to search``, ``next >``, ``< prev``, a
    product id on the current results page, an option value, ``description``, ``features``,
    ``reviews``, ``buy now``. ``click[buy now]`` ends the episode with the WebShop reward
    ``R = r_type * (attr hits + option hits + price ok) / (n attrs + n opts + 1)``; success
    is ``R == 1``. With ``binary_reward`` the step reward is verl-agent's 10 for a perfect
    purchase, else 0 (``score`` stays ``R``). Invalid actions change nothing and say why.

    Difficulty knobs: ``catalog_size`` (100-50,000, default 5,000), ``catalog_seed``,
    ``near_miss_rate`` (0-1, twins with one attribute swapped and a higher price),
    ``goal_attributes`` (0-4), ``goal_options`` (0-2), ``price_buckets`` (2-8),
    ``results_per_page`` (3-20), ``max_results`` (10-200), ``show_actions`` (list the
    clickables under each page) and ``binary_reward``. Levels: 0 = 1,000 products, one
    attribute and option; 1 = the defaults; 2 = three attributes, tighter prices, more
    near misses; 3 = 20,000 products, four attributes, tightest prices, 5 results per page.

    The state key is ``page|q=QUERY|p=PAGE|i=ITEM|o=OPTIONS`` (never the turn count), so
    episodes of a group that visit the same page share a key. ``privileged()`` holds the
    target product id, the goal spec, the oracle's queries and the target's rank in the
    current result list.

    Example:
        >>> env = Shop(catalog_size=300)
        >>> obs, info = env.reset(seed=0, options={"split": "test"})
        >>> obs.startswith("WebShop [SEP] Instruction:")
        True
        >>> env.step("<action>click[buy now]</action>")[4]["action_valid"]
        False
    """

    family = "shop"
    action_tag = "action"
    example_actions = (
        "<action>search[dress shirt slim fit]</action>",
        "<action>search[yoga mat non slip]</action>",
        "<action>search[wireless headphones]</action>",
        "<action>click[next >]</action>",
        "<action>click[< prev]</action>",
        "<action>click[back to search]</action>",
        "<action>click[description]</action>",
        "<action>click[buy now]</action>",
    )
    # each value builds a catalogue
    costly_knobs: ClassVar[frozenset[str]] = frozenset({"catalog_size", "catalog_seed",
                                                        "near_miss_rate"})  # fmt: skip
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "catalog_size": 5000,
        "catalog_seed": 0,
        "near_miss_rate": 0.3,
        "goal_attributes": 2,
        "goal_options": 2,
        "price_buckets": 4,
        "results_per_page": 10,
        "max_results": 50,
        "show_actions": True,
        "binary_reward": False,
    }
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"catalog_size": 1000, "goal_attributes": 1, "goal_options": 1, "near_miss_rate": 0.1},
        1: {},
        2: {"goal_attributes": 3, "price_buckets": 3, "near_miss_rate": 0.5},
        3: {
            "catalog_size": 20_000,
            "goal_attributes": 4,
            "price_buckets": 2,
            "near_miss_rate": 0.5,
            "results_per_page": 5,
        },
    }

    def __init__(self, **kwargs: Any) -> None:
        """Create the env; keyword arguments are those of :class:`~turngym.core.TextEnv`."""
        super().__init__(**kwargs)
        self._catalog_key: tuple[int, int, float] = (0, 0, 0.0)
        self.goal: dict[str, Any] = {}
        self.goal_text = ""
        self.target = -1
        self.state = PageState()
        self.purchase: RewardBreakdown | None = None
        self.purchased_options: tuple[tuple[str, str], ...] = ()
        self.searches = 0

    @property
    def catalog(self) -> Catalog:
        """The episode's catalogue (shared per process; not part of snapshots or pickles)."""
        return get_catalog(*self._catalog_key)

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and its allowed values."""
        for name, (low, high, meaning) in _INT_KNOBS.items():
            value = difficulty[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or not (low <= value <= high)
            ):
                raise ValueError(
                    f"{name}={value!r} is invalid; use an integer from {low} to {high} ({meaning})."
                )
        rate = difficulty["near_miss_rate"]
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError(f"near_miss_rate={rate!r} is invalid; use a number from 0.0 to 1.0.")
        for name in _BOOL_KNOBS:
            if not isinstance(difficulty[name], bool):
                raise ValueError(f"{name}={difficulty[name]!r} is invalid; use True or False.")

    # --- Tasks --------------------------------------------------------------------------------
    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Pick a target product and draw a goal it satisfies (WebShop's goal sampling)."""
        spec: dict[str, Any] = {
            "size": int(difficulty["catalog_size"]),
            "seed": int(difficulty["catalog_seed"]),
            "near_miss_rate": float(difficulty["near_miss_rate"]),
        }
        catalog = get_catalog(spec["size"], spec["seed"], spec["near_miss_rate"])
        product = catalog.products[int(rng.integers(len(catalog.products)))]
        goal = make_goal(
            product,
            rng,
            n_attributes=int(difficulty["goal_attributes"]),
            n_options=int(difficulty["goal_options"]),
            price_buckets=int(difficulty["price_buckets"]),
        )
        return {"catalog": spec, **goal}

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Check the task against its catalogue and set up the search page."""
        spec = task.get("catalog")
        if not isinstance(spec, Mapping) or not {"size", "seed", "near_miss_rate"} <= set(spec):
            raise ValueError("A Shop task needs 'catalog': {'size', 'seed', 'near_miss_rate'}.")
        self._catalog_key = (int(spec["size"]), int(spec["seed"]), float(spec["near_miss_rate"]))
        catalog = self.catalog
        if task.get("target_id") not in catalog.by_id:
            raise ValueError(f"target_id {task.get('target_id')!r} is not in the catalogue {spec}.")
        attrs, options = task.get("attributes"), task.get("options")
        if not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs):
            raise ValueError("A Shop task's 'attributes' must be a list of strings.")
        if not isinstance(options, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in options.items()
        ):
            raise ValueError("A Shop task's 'options' must map dimension names to values.")
        upper = task.get("price_upper")
        if upper is not None and (isinstance(upper, bool) or not isinstance(upper, (int, float))):
            raise ValueError("A Shop task's 'price_upper' must be a number or null.")
        self.target = catalog.by_id[task["target_id"]]
        _ = catalog.index  # build (or load) it now, in reset, rather than in the first search
        product = catalog.products[self.target]
        self.goal = {
            "target_id": product["id"],
            "attributes": list(attrs),
            "options": dict(sorted(options.items())),
            "price_upper": None if upper is None else float(upper),
            "query": product["query"],
            "category": product["category"],
            "nouns": list(product["nouns"]),
            "type": product["type"],
        }
        self.goal_text = goal_instruction(product["type"], self.goal)
        self.state = PageState()
        self.purchase, self.purchased_options, self.searches = None, (), 0

    # --- Play ---------------------------------------------------------------------------------
    def apply(self, command: str) -> Transition:
        """Run one ``search[...]`` or ``click[...]`` command (never raises)."""
        if self.state.page == "done":
            return self._invalid("the purchase is complete; the episode is over")
        match = _COMMAND.match(command)
        if match is None:
            shown = command if len(command) <= 40 else command[:40] + "..."
            return self._invalid(f"{shown!r} is neither search[...] nor click[...]")
        verb, arg = match.group(1).lower(), " ".join(match.group(2).split())
        if verb == "search":
            return self._search(arg)
        return self._click(_ALIASES.get(arg.lower(), arg.lower()))

    @classmethod
    def before_steps(cls, envs: Sequence[TextEnv], actions: Sequence[str]) -> None:
        """Run the tick's ``search[...]`` actions in one BM25 batch per catalogue."""
        batches: dict[tuple[int, int], tuple[Any, list[str]]] = {}
        for env, action in zip(envs, actions, strict=True):
            content, _ = parse_fields(action, cls.action_tag, env.action_space.max_chars)
            match = _COMMAND.match(content) if content is not None else None
            if match is None or match.group(1).lower() != "search":
                continue
            query = " ".join(tokenize(" ".join(match.group(2).split())))
            if query and env.state.page == "search":  # type: ignore[attr-defined]
                index = env.catalog.index  # type: ignore[attr-defined]
                k = int(env.episode_difficulty["max_results"])
                batches.setdefault((id(index), k), (index, []))[1].append(query)
        for (_, k), (index, queries) in batches.items():
            index.prefetch(queries, k)

    def _invalid(self, reason: str) -> Transition:
        return Transition(valid=False, effective=False, message=f"Invalid action: {reason}.")

    def _search(self, query: str) -> Transition:
        if self.state.page != "search":
            return self._invalid("search[...] works only on the search page; click[back to search]")
        if not query or len(query) > _MAX_QUERY:
            return self._invalid(f"the query must have 1 to {_MAX_QUERY} characters")
        normalised = " ".join(tokenize(query))
        limit = int(self.episode_difficulty["max_results"])
        results = tuple(self.catalog.index.search(normalised, k=limit)) if normalised else ()
        self.state = PageState(page="results", query=normalised, results=results)
        self.searches += 1
        return Transition()

    def _click(self, target: str) -> Transition:
        state, per_page = self.state, int(self.episode_difficulty["results_per_page"])
        products = self.catalog.products
        if target not in clickables(state, products, per_page):
            where = "see the page for what can be clicked"
            if state.page == "search":
                where = "the search page has only search[...]"
            return self._invalid(f"click[{target[:40]}] is not on this page ({where})")
        if target == "back to search":
            self.state = PageState()
        elif target == "next >":
            self.state = replace(state, page_no=state.page_no + 1)
        elif target == "< prev":
            self.state = self._previous(state)
        elif state.page == "results":  # a product id
            item = self.catalog.by_id[target]
            self.state = replace(state, page="item", item=item, chosen=())
        elif target in SUBPAGES:
            self.state = replace(state, page=target)
        elif target == "buy now":
            return self._buy()
        else:  # an option value (values never repeat across one product's dimensions)
            options = products[state.item]["options"]
            dim = next(d for d in sorted(options) if target in options[d])
            self.state = state.choose(dim, target)
        return Transition()

    @staticmethod
    def _previous(state: PageState) -> PageState:
        if state.page == "results":
            return replace(state, page_no=state.page_no - 1)
        if state.page == "item":
            return replace(state, page="results", item=-1, chosen=())
        return replace(state, page="item")  # a sub-page goes back to its item

    def _buy(self) -> Transition:
        product = self.catalog.products[self.state.item]
        chosen = [value for _, value in self.state.chosen]
        self.purchase = get_reward(product, self.goal, chosen)
        self.purchased_options = self.state.chosen
        self.state = replace(self.state, page="done")
        reward = self.purchase.reward
        if self.episode_difficulty["binary_reward"]:
            reward = 10.0 if reward >= 1.0 else 0.0
        message = f"You bought {product['id']}. Your score: {self.purchase.reward:.3f}."
        return Transition(
            reward=reward, terminated=True, message=message, reward_components={"purchase": reward}
        )

    # --- Views --------------------------------------------------------------------------------
    def instructions(self) -> str:
        """The request, the action grammar and one example; never the target's id or brand."""
        return "\n".join(
            [
                "You are shopping in a web store. Find and buy the product the request "
                "describes, choosing the requested options before you buy.",
                f"Request: {self.goal_text}",
                "Actions (one per turn, inside <action></action>): search[QUERY] on the "
                "search page; click[X] where X is a button, a product id, an option value, "
                "description, features, reviews or buy now, as shown on the page "
                "(e.g. click[back to search], click[next >], click[< prev]).",
                "Buying ends the episode. You score by how well the product matches the "
                "request's type, attributes, options and price (1.0 = perfect).",
                "Example: <action>search[yoga mat non slip]</action>",
            ]
        )

    def render_text(self) -> str:
        """The current page as WebShop's ``[SEP]``-joined text."""
        return render_page(
            self.state,
            self.catalog.products,
            self.goal_text,
            per_page=int(self.episode_difficulty["results_per_page"]),
            show_actions=bool(self.episode_difficulty["show_actions"]),
        )

    def admissible_actions(self) -> list[str]:
        """Tagged actions valid on the current page (``search[...]`` shows the goal's type).

        The search example uses a random product type's name, not the goal's, so a random
        admissible agent gets no hint; this is the list verl-agent shows its policies.
        """
        products, per_page = self.catalog.products, int(self.episode_difficulty["results_per_page"])
        if self.state.page == "search":
            return [f"<action>search[{t.name}]</action>" for t in PRODUCT_TYPES]
        return [f"<action>click[{c}]</action>" for c in clickables(self.state, products, per_page)]

    def state_key(self) -> str:
        """``page|q=QUERY|p=PAGE|i=ITEM|o=DIM=VALUE;...`` (``"search"`` on the search page)."""
        return self.state.key(self.catalog.products)

    def score(self) -> float:
        """The WebShop reward of the purchase, 0.0 before buying."""
        return 0.0 if self.purchase is None else float(self.purchase.reward)

    def _target_rank(self) -> int | None:
        results = self.state.results
        return results.index(self.target) + 1 if self.target in results else None

    def privileged(self) -> dict[str, Any]:
        """Target id, goal spec, the oracle's queries and the target's rank in the results."""
        return {
            "target_id": self.goal.get("target_id"),
            "goal": {
                "attributes": list(self.goal["attributes"]),
                "options": dict(self.goal["options"]),
                "price_upper": self.goal["price_upper"],
                "type": self.goal["type"],
            },
            "oracle_queries": self._oracle_queries(),
            "target_rank": self._target_rank(),
            "best_reward": 1.0,
        }

    def metrics(self) -> dict[str, Any]:
        """The page, searches so far, the target's rank and the purchase's reward parts."""
        out: dict[str, Any] = {
            "page": self.state.page,
            "searches": self.searches,
            "target_rank": self._target_rank(),
        }
        if self.purchase is not None:
            out.update(self.purchase.as_dict())
            out["bought_target"] = self.state.item == self.target
        return out

    # --- Oracle and leak check ----------------------------------------------------------------
    def _oracle_queries(self) -> list[str]:
        if not self.goal:
            return []
        product = self.catalog.products[self.target]
        return [" ".join([self.goal["type"], *self.goal["attributes"]]), product["title"]]

    def _best_options(self, index: int) -> dict[str, str]:
        """The goal's option values that product ``index`` offers."""
        options = self.catalog.products[index]["options"]
        return {d: v for d, v in self.goal["options"].items() if v in options.get(d, ())}

    def _oracle_pick(self) -> int | None:
        """The result to buy: the target if listed, else the first perfect match, else None."""
        if self.target in self.state.results:
            return self.target
        products = self.catalog.products
        for index in self.state.results:
            chosen = list(self._best_options(index).values())
            if get_reward(products[index], self.goal, chosen).reward >= 1.0:
                return index
        return None

    def oracle_action(self) -> str:
        """Search with the goal's words, page to a perfect match, pick its options and buy.

        If no result is a perfect match it searches again with the target's title.
        """
        state, per_page = self.state, int(self.episode_difficulty["results_per_page"])
        queries = self._oracle_queries()
        if state.page == "search":
            command = f"search[{queries[min(self.searches, len(queries) - 1)]}]"
        elif state.page == "results":
            command = self._oracle_on_results(per_page, last_try=self.searches >= len(queries))
        elif state.page == "item":
            chosen = dict(state.chosen)
            missing = [v for d, v in self._best_options(state.item).items() if chosen.get(d) != v]
            command = f"click[{missing[0]}]" if missing else "click[buy now]"
            pick = self._oracle_pick()
            if pick is not None and state.item != pick:
                command = "click[< prev]"
        elif state.page in SUBPAGES:
            command = "click[< prev]"
        else:
            command = "click[buy now]"
        return f"<{self.action_tag}>{command}</{self.action_tag}>"

    def _oracle_on_results(self, per_page: int, *, last_try: bool) -> str:
        pick = self._oracle_pick()
        if pick is None:
            if not last_try or not self.state.results:
                return "click[back to search]"
            pick = self.state.results[0]  # nothing perfect anywhere: buy the top result
        position = self.state.results.index(pick) // per_page + 1
        if position > self.state.page_no:
            return "click[next >]"
        if position < self.state.page_no:
            return "click[< prev]"
        return f"click[{self.catalog.products[pick]['id']}]"

    def leak_check(self, text: str) -> list[str]:
        """Flag the target id outside a results or item page, and the brand in the request.

        The id legitimately appears in search results and on its item page (that is how the
        agent finds it); anywhere else (instructions, error messages) it would be a leak.
        The request sentence must never name the target's brand.
        """
        if not self.goal:
            return []
        problems = []
        listing = "Total results:" in text or "Buy Now" in text
        if self.goal["target_id"] in text and not listing:
            problems.append("the target product id appears outside the store's pages")
        brand = self.catalog.products[self.target]["brand"].lower()
        if brand in self.goal_text.lower():
            problems.append("the request names the target's brand")
        return problems

    def __repr__(self) -> str:
        return f"<Shop catalog={self._catalog_key} page={self.state.page!r}>"
