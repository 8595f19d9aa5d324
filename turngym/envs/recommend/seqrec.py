"""SeqRec: rank K items for a user from their viewing history (sequential recommendation).

The single-turn recommendation setting of Rank-GRPO / ConvRec-R1 (Zhu et al.), F-GRPO
(arXiv 2605.12995) and LASAR (docs/environments.md#seqrec), on a procedural catalogue with a
latent-factor user model (:mod:`turngym.envs.recommend.catalog`) or on MovieLens-format files
the user already has (:mod:`turngym.envs.recommend.movielens`).

**Episode.** The observation lists the user's history (oldest first, titles with genres) and a
candidate pool (sorted by title, so its order says nothing about relevance). The agent answers
once with a ranked list; the episode ends on the first well-formed answer. A malformed answer
(no tag, or no item with a letter or digit in it) is an invalid action and may be retried
until the turn limit (3 for the registered id).

**Action grammar.** ``<action>1. Glass Harbor (1987); 2. Iron Tide (1990); ...</action>``:
items separated by ``;`` or new lines, enumeration (``1.``, ``2)``, ``-``) optional, titles
matched ignoring case, accents, punctuation and spacing (see
:class:`~turngym.envs.recommend.catalog.TitleIndex`; the ``(Year)`` is optional when the bare
title is unique), or ``i<number>`` for the candidate with that display number. Only the first
``k`` items count. Items outside the pool, already-watched items and repeats earn nothing.

**Relevance and reward.** Synthetic tasks: the relevant set is the pool's top ``n_relevant``
items by true utility ``<u, v_i>`` (plus ``relevance_noise`` times the utilities' standard
deviation of Gaussian noise; 0 by default, so a perfect ranking exists and the oracle reaches
NDCG 1, the ceiling). MovieLens tasks: the user's later highly rated items. The reward and the
score are NDCG@k (binary gains, Järvelin & Kekäläinen, 2002).

**Info for credit methods.** After the answer ``info["rank_hits"]`` holds one 0/1 hit per rank
(Rank-GRPO's per-rank rewards; its ``log_decay`` variant is a suffix sum of
``info["rank_gains"]`` = ``hit_i / log2(i + 1)``); ``info["metrics"]`` holds Recall@k/NDCG@k for
k in {5, 10, K} and ``coverage`` (F-GRPO's order-invariant ``R_gen = |S ∩ G| / |G|``);
``info["privileged"]`` holds the candidate pool, the relevant set (ranked) and the seen items,
what F-GRPO's generate-then-rank phases need. Leak check: no text lists the relevant items in
relevance order ahead of the rest of the pool, and no true utility value is shown.

Example:
    >>> env = SeqRec()
    >>> obs, info = env.reset(seed=0, options={"split": "test"})
    >>> _, reward, terminated, _, info = env.step(env.oracle_action())
    >>> reward, terminated, info["rank_hits"][:5]
    (1.0, True, [1, 1, 1, 1, 1])
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any, ClassVar, SupportsFloat

import numpy as np

from turngym.core import TextEnv, Transition, check_int_knobs
from turngym.envs.recommend.catalog import (
    TitleIndex,
    draw_user,
    make_catalogue,
    ndcg_at_k,
    normalize_title,
    rank_gains,
    rank_hits,
    recall_at_k,
    split_ranked_list,
)
from turngym.tasks import SPLITS, split_of, task_fingerprint

__all__ = ["SeqRec", "RANK_HITS", "RANK_GAINS", "PHASE_REWARDS"]

RANK_HITS = "rank_hits"
"""Info key: per-rank 0/1 hit indicators of the answer (empty before it)."""
RANK_GAINS = "rank_gains"
"""Info key: per-rank discounted gains ``hit_i / log2(i + 1)`` (empty before it)."""

PHASE_REWARDS = "phase_rewards"
"""Info key (``select > 0``, after the answer): F-GRPO's ``{"generation": coverage of the
selected candidates, "ranking": NDCG@k of the ranking}``."""

_N_EXAMPLES = 6
_RANKING = "ranking:"
_CANDIDATES = re.compile(r"^\s*candidates\s*:", re.IGNORECASE)


def _item(title: str, genres: list[str] | tuple[str, ...], **extra: Any) -> dict[str, Any]:
    return {"title": title, "genres": list(genres), **extra}


def _check_items(task: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    items = task.get(key)
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("title"), str) and i["title"].strip()
        for i in items
    ):
        raise ValueError(f'SeqRec task[{key!r}] must be a list of {{"title": str, ...}} dicts.')
    return items


class SeqRec(TextEnv):
    """Recommend ``k`` items, best first, from a candidate pool given the user's history.

    Difficulty knobs (:attr:`difficulty_defaults`):

    * ``n_items`` (50-4000): size of the synthetic catalogue; ``catalog_seed`` picks it.
    * ``history_len`` (1-50): items shown from the user's history.
    * ``pool_size`` (``n_relevant + 1``-200): candidates shown.
    * ``n_relevant`` (1-50): size of the relevant set; ``k`` (1-50): list length scored.
    * ``temperature`` (> 0): softmax temperature of history sampling (lower = history closer
      to the user's taste).
    * ``relevance_noise`` (>= 0): noise on the utilities that define the relevant set, in
      units of their standard deviation (0 = the oracle is perfect).
    * ``show_genres``: list genres next to titles.
    * ``select`` (0 or ``k``-200): 0 answers one ranked list; ``n`` asks first for ``n``
      candidates and then a ranking of ``k`` of them (F-GRPO's generate-then-rank), with
      ``info["phase_rewards"]`` holding the selection's coverage and the ranking's NDCG.

    Levels: 0 = small pool (20), long history; 1 = default (pool 40); 2 = pool 100, history 5;
    3 = default with relevance noise 0.5 (the oracle falls below the ceiling of 1);
    4 = pool 100, no genres shown.
    """

    family: ClassVar[str] = "seqrec"
    example_actions: ClassVar[tuple[str, ...]] = (
        "<action>1. i1; 2. i2; 3. i3; 4. i4; 5. i5; 6. i6; 7. i7; 8. i8; 9. i9; 10. i10</action>",
    )
    # Each (n_items, catalog_seed) builds its own catalogue (seconds at 4,000 items).
    costly_knobs: ClassVar[frozenset[str]] = frozenset({"n_items", "catalog_seed"})
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "n_items": 500,
        "catalog_seed": 0,
        "history_len": 8,
        "pool_size": 40,
        "n_relevant": 5,
        "k": 10,
        "temperature": 0.3,
        "relevance_noise": 0.0,
        "show_genres": True,
        "select": 0,
    }
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"pool_size": 20, "history_len": 12},
        1: {},
        2: {"pool_size": 100, "history_len": 5},
        3: {"relevance_noise": 0.5},
        4: {"pool_size": 100, "show_genres": False},
    }

    def __init__(self, *, movielens: str | Path | None = None, **kwargs: Any) -> None:
        """Create the env.

        Args:
            movielens: A MovieLens folder (``ratings.csv`` + ``movies.csv``, or ``u.data`` +
                ``u.item``): tasks come from it, with the loader's defaults (see
                :func:`~turngym.envs.recommend.movielens.movielens_tasks`; for other settings
                write them with ``write_tasks`` and pass ``tasks_file=``).
            **kwargs: Those of :class:`~turngym.core.TextEnv` (``level``, ``tasks_file``,
                knobs).
        """
        super().__init__(**kwargs)
        if movielens is not None:
            from turngym.envs.recommend.movielens import movielens_tasks

            pools: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
            for task in movielens_tasks(movielens):
                pools[split_of(task)].append(task)
            self._tasks_file = pools
        self.history: list[dict[str, Any]] = []
        self.pool: list[dict[str, Any]] = []
        self.relevant: list[int] = []
        self.answer: list[int | None] | None = None
        self.hits: list[int] = []
        self.k = 10

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and its valid range."""
        ranges = {"n_items": (50, 4000), "catalog_seed": (0, 2**31), "history_len": (1, 50),
                  "pool_size": (2, 200), "n_relevant": (1, 50), "k": (1, 50),
                  "select": (0, 200)}  # fmt: skip
        check_int_knobs("SeqRec", difficulty, ranges)
        if difficulty["pool_size"] <= difficulty["n_relevant"]:
            raise ValueError("SeqRec: pool_size must exceed n_relevant.")
        if difficulty["history_len"] + difficulty["pool_size"] > difficulty["n_items"]:
            raise ValueError("SeqRec: history_len + pool_size must not exceed n_items.")
        for name, low in (("temperature", 1e-3), ("relevance_noise", 0.0)):
            value = difficulty[name]
            if isinstance(value, bool) or not isinstance(value, Real) or not float(value) >= low:
                raise ValueError(f"SeqRec: {name}={value!r} is invalid; use a number >= {low}.")
        if not isinstance(difficulty["show_genres"], bool):
            raise ValueError("SeqRec: show_genres must be True or False.")
        if 0 < difficulty["select"] < difficulty["k"]:
            raise ValueError("SeqRec: select must be 0 (off) or at least k (the ranking is "
                             "drawn from the selected candidates).")  # fmt: skip

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw a user, their history (softmax sampling) and a pool with its relevant set."""
        cat = make_catalogue(int(difficulty["catalog_seed"]), int(difficulty["n_items"]))
        scores = cat.vectors @ draw_user(rng, cat)
        gumbel = rng.gumbel(size=scores.shape)  # Gumbel top-k = sampling without replacement
        order = np.argsort(-(scores / float(difficulty["temperature"]) + gumbel), kind="stable")
        history = rng.permutation(order[: int(difficulty["history_len"])])
        rest = np.setdiff1d(np.arange(len(scores)), history)
        pool = rng.choice(rest, size=int(difficulty["pool_size"]), replace=False)
        noise = rng.normal(size=len(pool)) * float(difficulty["relevance_noise"])
        future = scores[pool] + noise * (float(scores.std()) or 1.0)
        relevant_ids = pool[np.argsort(-future, kind="stable")[: int(difficulty["n_relevant"])]]
        # By title; equal titles keep the order of their item ids.
        shown = sorted(sorted(int(i) for i in pool), key=lambda i: cat.titles[i])
        position = {item: p for p, item in enumerate(shown)}
        return {
            "history": [_item(cat.titles[i], cat.genres[i]) for i in history],
            "pool": [
                _item(cat.titles[i], cat.genres[i], score=round(float(scores[i]), 4)) for i in shown
            ],
            "relevant": [position[int(i)] for i in relevant_ids],
        }

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Check the task (``history``, ``pool``, ``relevant`` positions) and start."""
        if not {"history", "pool", "relevant"} <= set(task):
            raise ValueError(
                'A SeqRec task needs "history", "pool" (lists of {"title", "genres"}) and '
                f'"relevant" (pool positions, best first); got keys {sorted(task)}.'
            )
        self.history = _check_items(task, "history")
        self.pool = _check_items(task, "pool")
        relevant = task["relevant"]
        if (
            not isinstance(relevant, list)
            or not relevant
            or len(set(relevant)) != len(relevant)
            or not all(isinstance(r, int) and 0 <= r < len(self.pool) for r in relevant)
        ):
            raise ValueError("SeqRec task['relevant'] must list distinct pool positions.")
        self.relevant = list(relevant)
        self._relevant_set = frozenset(relevant)
        self._index = TitleIndex([item["title"] for item in self.pool])
        history_keys = {normalize_title(item["title"]) for item in self.history}
        self._seen = frozenset(
            p for p, item in enumerate(self.pool) if normalize_title(item["title"]) in history_keys
        )
        self.k = int(self.episode_difficulty["k"])
        self.select = int(self.episode_difficulty["select"])
        self.show_genres = bool(self.episode_difficulty["show_genres"])
        self.answer, self.hits, self._extra = None, [], 0
        self.selected: set[int] | None = None
        self._privileged = self._make_privileged()
        self._use_examples()

    def _make_privileged(self) -> dict[str, Any]:
        privileged: dict[str, Any] = {
            "pool": [item["title"] for item in self.pool],
            "relevant": [self.pool[r]["title"] for r in self.relevant],
            "seen": [item["title"] for item in self.history],
        }
        if all("score" in item for item in self.pool):
            privileged["scores"] = [float(item["score"]) for item in self.pool]
        return privileged

    def _use_examples(self) -> None:
        """Random agents answer with random lists of ``k`` candidates (seeded by the task)."""
        rng = np.random.default_rng(int(task_fingerprint(self.task)[:12], 16))
        size = min(self.k, len(self.pool))
        lists = [rng.choice(len(self.pool), size=size, replace=False) for _ in range(_N_EXAMPLES)]
        def listed(items: Any) -> str:
            return "; ".join(f"{r}. {self.pool[i]['title']}" for r, i in enumerate(items, 1))

        if self.select:  # generate-then-rank: candidates, then a ranking of some of them
            picks = [rng.choice(len(self.pool), size=min(self.select, len(self.pool)),
                                replace=False) for _ in range(_N_EXAMPLES)]  # fmt: skip
            examples = tuple(f"<action>candidates: {listed(one)}\nranking: "
                             f"{listed(one[:size])}</action>" for one in picks)  # fmt: skip
        else:
            examples = tuple(f"<action>{listed(one)}</action>" for one in lists)
        self.action_space = type(self.action_space)(examples=examples)

    # --- Dynamics -----------------------------------------------------------------------------
    def apply(self, command: str) -> Transition:
        """Score the ranked list (first ``k`` items) and end the episode."""
        if self.answer is not None:
            return Transition(terminated=True, effective=False, message="The episode is over.")
        ranking_text = command
        if self.select:
            lowered = command.lower()
            if _RANKING not in lowered:
                why = "Invalid answer: write 'candidates: ...' and then 'ranking: ...'."
                return Transition(valid=False, effective=False, message=why)
            at = lowered.index(_RANKING)
            head, ranking_text = command[:at], command[at + len(_RANKING) :]
            chosen = split_ranked_list(_CANDIDATES.sub("", head, count=1))[: self.select]
            self.selected = {p for p in map(self._index.find, chosen) if p is not None}
        items = [i for i in split_ranked_list(ranking_text) if normalize_title(i)]
        if not items:
            return Transition(
                valid=False,
                effective=False,
                message="Invalid answer: no item found. Write titles (or i<number>) separated "
                "by ';' or new lines.",
            )
        self._extra = max(0, len(items) - self.k)
        self.answer = [self._index.find(i) for i in items[: self.k]]
        if self.selected is not None:  # the ranking orders the selected subset only
            self.answer = [a if a in self.selected else None for a in self.answer]
        self.hits = rank_hits(self.answer, self._relevant_set, self._seen)
        ndcg = self.score()
        return Transition(reward=ndcg, terminated=True, reward_components={"ndcg": ndcg})

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """One turn (see :meth:`TextEnv.step`), plus ``rank_hits`` and ``rank_gains`` in info."""
        obs, reward, terminated, truncated, info = super().step(action)
        info[RANK_HITS] = list(self.hits)
        info[RANK_GAINS] = rank_gains(self.hits)
        if self.select and self.answer is not None:
            info[PHASE_REWARDS] = {"generation": self.coverage(), "ranking": self.score()}
        return obs, reward, terminated, truncated, info

    def coverage(self) -> float:
        """``|S ∩ G| / |G|``: the relevant items' share of the selection (or of the answer).

        ``S`` is the selected candidates when ``select > 0``, else the answer list; 0 before
        the answer.
        """
        if self.answer is None:
            return 0.0
        chosen = self.selected if self.selected is not None else set(self.answer)
        return len(self._relevant_set & (chosen - self._seen)) / len(self.relevant)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start an episode (see :meth:`TextEnv.reset`); ``rank_hits`` is empty until the answer."""
        obs, info = super().reset(seed=seed, options=options)
        info[RANK_HITS], info[RANK_GAINS] = [], []
        return obs, info

    # --- Views --------------------------------------------------------------------------------
    def _line(self, item: Mapping[str, Any]) -> str:
        genres = item.get("genres") or []
        if self.show_genres and genres:
            return f"{item['title']} [{', '.join(genres)}]"
        return str(item["title"])

    def instructions(self) -> str:
        """The task, the answer grammar and one example (placeholder titles)."""
        return "\n".join(
            [
                "You are a movie recommender. You see what a user watched (oldest first) and a "
                "list of candidate movies.",
                f"Recommend the {self.k} candidates the user is most likely to enjoy next, best "
                "first. Only candidates count; movies the user already watched and repeats earn "
                "nothing.",
                f"The reward is NDCG@{self.k}: relevant movies near the top of your list earn "
                "most.",
                *self._grammar(),
            ]
        )

    def _grammar(self) -> list[str]:
        if not self.select:
            return ["Answer with one list in action tags, items separated by ';' or new lines, "
                    "each a candidate title (the year is optional) or its number like i7, for "
                    "example: <action>1. First Title (1999); 2. i7; 3. Third Title</action>"]
        return [f"First select {self.select} candidates worth ranking (any order), then rank "
                f"{self.k} of them, best first; only selected movies count in the ranking.",
                "Answer in action tags with 'candidates:' then 'ranking:', items separated by "
                "';', each a title or its number like i7, for example: <action>candidates: i3; "
                "i7; i9; i12 ranking: i7; i3</action>"]  # fmt: skip

    def render_text(self) -> str:
        """History and numbered candidates; after the answer, a summary and NDCG."""
        if self.answer is not None:
            return self._summary()
        lines = [f"The user watched ({len(self.history)}, oldest first):"]
        lines += [f"{n}. {self._line(item)}" for n, item in enumerate(self.history, 1)]
        lines.append(f"Candidates ({len(self.pool)}):")
        lines += [f"i{n} {self._line(item)}" for n, item in enumerate(self.pool, 1)]
        lines.append(f"Recommend {self.k} candidates, best first.")
        return "\n".join(lines)

    def _summary(self) -> str:
        answer = self.answer or []
        missing = sum(a is None for a in answer)
        seen = sum(a in self._seen for a in answer if a is not None)
        repeats = len(answer) - missing - len({a for a in answer if a is not None})
        return (
            f"Your list of {len(answer)} items was scored ({missing} not among the candidates, "
            f"{repeats} repeated, {seen} already watched, {self._extra} beyond the first "
            f"{self.k} ignored). NDCG@{self.k} = {self.score():.3f}. The episode is over."
        )

    def state_key(self) -> str:
        """``"pending"`` before the answer, else the scored positions (``-`` = no match)."""
        if self.answer is None:
            return "pending"
        return "ranked=" + ",".join("-" if a is None else str(a) for a in self.answer)

    def score(self) -> float:
        """NDCG@k of the answer (0 before it)."""
        return ndcg_at_k(self.hits, len(self.relevant), self.k) if self.answer is not None else 0.0

    def privileged(self) -> dict[str, Any]:
        """Candidate pool, relevant titles (best first), seen titles and true utilities."""
        return {key: list(value) for key, value in self._privileged.items()}  # fresh per call

    def metrics(self) -> dict[str, Any]:
        """Recall@k and NDCG@k for k in {5, 10, K}, coverage, and the answer's faults."""
        out: dict[str, Any] = {"n_relevant": len(self.relevant), "pool_size": len(self.pool)}
        if self.answer is None:
            return out
        n, hits = len(self.relevant), self.hits
        for k in sorted({5, 10, self.k}):
            out[f"recall@{k}"] = recall_at_k(hits, n, k)
            out[f"ndcg@{k}"] = ndcg_at_k(hits, n, k)
        out["coverage"] = self.coverage() if self.select else recall_at_k(hits, n, self.k)
        out["n_out_of_catalogue"] = sum(a is None for a in self.answer)
        out["n_extra"] = self._extra
        return out

    def oracle_action(self) -> str:
        """Rank the pool by true utility (synthetic) or relevant items first (MovieLens)."""
        scores = self._privileged.get("scores")
        candidates = [p for p in range(len(self.pool)) if p not in self._seen]
        if scores is not None:  # ties (4 decimals) go to the relevant item
            ranked = sorted(candidates, key=lambda p: (-scores[p], p not in self._relevant_set))
        else:
            ranked = self.relevant + [p for p in candidates if p not in self._relevant_set]
        listed = "\n".join(self.pool[p]["title"] for p in ranked[: self.k])
        if not self.select:
            return f"<action>{listed}</action>"
        chosen = "; ".join(self.pool[p]["title"] for p in ranked[: self.select])
        return f"<action>candidates: {chosen}\nranking: {listed}</action>"

    def leak_check(self, text: str) -> list[str]:
        """Flag a text that lists the relevant titles, in order, before the other candidates.

        Also flags any true utility value written with four decimals.
        """
        problems = []
        order = []
        for p, item in enumerate(self.pool):
            at = text.find(item["title"])
            if at >= 0:
                order.append((at, p))
        shown = [p for _, p in sorted(order)]
        n = len(self.relevant)
        if len(shown) > 2 * n and shown[:n] == self.relevant:
            problems.append("the relevant items are listed first, in relevance order")
        for value in self._privileged.get("scores", []):
            if f"{value:.4f}" in text and abs(value) >= 0.001:
                problems.append("a true utility value appears in the text")
                break
        return problems
