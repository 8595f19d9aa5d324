"""SearchQA: Search-R1-style multi-hop question answering over a BM25-searched corpus.

After Search-R1 (Jin et al., 2025, "Search-R1: Training LLMs to Reason and Leverage Search
Engines with Reinforcement Learning") on HotpotQA-style multi-hop questions (Yang et al.,
2018). The agent searches with ``<search>query</search>``, reads the top-k passages shown in
``<information>...</information>``, and ends the episode with ``<answer>...</answer>``; the
reward is SQuAD exact match (Search-R1's outcome reward) or token F1 (IGPO's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, SupportsFloat

import numpy as np

from turngym.core import (
    ACTION_VALID,
    GOLD_ANSWERS,
    METRICS,
    REWARD_COMPONENTS,
    TextEnv,
    check_int_knobs,
)
from turngym.envs.search.corpus import Corpus, get_corpus, load_qa_file
from turngym.envs.search.questions import (
    _answer_in,
    exact_match,
    f1_score,
    make_question,
    sub_exact_match,
)
from turngym.envs.search.world import RELATIONS, extract_fact, get_world

__all__ = ["SearchQA", "parse_search_r1_action", "SEARCH_R1_PROMPT", "INVALID_MESSAGE",
           "PHASE_REWARDS", "evidence_rewards"]

SEARCH_R1_PROMPT = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first "
    "every time you get new information. After reasoning, if you find you lack some knowledge, "
    "you can call a search engine by <search> query </search> and it will return the top "
    "searched results between <information> and </information>. You can search as many times "
    "as your want. If you find no further external knowledge needed, you can directly provide "
    "the answer inside <answer> and </answer>, without detailed illustrations. For example, "
    "<answer> Beijing </answer>. Question: {question}"
)
"""Search-R1's prompt (``scripts/data_process/nq_search.py``), verbatim."""
INVALID_MESSAGE = (
    "\nMy previous action is invalid. If I want to search, I should put the query between "
    "<search> and </search>. If I want to give the final answer, I should put the answer "
    "between <answer> and </answer>. Let me try again.\n"
)
"""Search-R1's reply to an action with neither tag."""
_ACTION = re.compile(r"<(search|answer)>((?:(?!<\1>).)*?)</\1>", re.IGNORECASE | re.DOTALL)
_THINK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_INFO = re.compile(r"<information>.*?</information>", re.DOTALL)
_REWARDS = {"em": exact_match, "f1": f1_score, "subem": sub_exact_match}
_EVIDENCE = re.compile(r"<evidence>(.*?)</evidence>", re.IGNORECASE | re.DOTALL)
_TITLE_SPLIT = re.compile(r"[;\n]")
PHASE_REWARDS = "phase_rewards"
"""Info key (``evidence > 0``, after the answer): F-GRPO's ``{"generation": share of the
supporting passages among the selected ones, "ranking": NDCG of the evidence ranking}``."""
_INT_KNOBS = {"corpus_size": (500, 1_000_000, "passages in the generated corpus"),
              "corpus_seed": (0, 2**31 - 1, "seed of the generated world"),
              "max_hops": (2, 4, "longest bridge/composition chain"),
              "topk": (1, 10, "passages returned per search"),
              "evidence": (0, 20, "ranked evidence passages asked with the answer")}  # fmt: skip


def parse_search_r1_action(text: str, max_chars: int = 32_768) -> tuple[str, str] | None:
    """Return ``(tag, content)`` of the last well-formed ``<search>``/``<answer>`` tag.

    ``<think>`` blocks are ignored; an empty tag or an over-long action is no action.

    Example:
        >>> parse_search_r1_action("<think>hm</think><search> Orvel mayor </search>")
        ('search', 'Orvel mayor')
        >>> parse_search_r1_action("I think it is Orvel") is None
        True
    """
    if not isinstance(text, str) or len(text) > max_chars:
        return None
    matches = _ACTION.findall(_THINK.sub(" ", text))
    if not matches or not matches[-1][1].strip():
        return None
    return matches[-1][0].lower(), matches[-1][1].strip()


def _titles(text: str) -> list[str]:
    return [" ".join(t.lower().split()) for t in _TITLE_SPLIT.split(text) if t.strip()]


def evidence_rewards(text: str, titles: list[str], retrieved: set[int],
                     supporting: set[int], k: int) -> dict[str, float]:  # fmt: skip
    """F-GRPO's two rewards for ``<evidence>candidates: ... ranking: ...</evidence>``.

    Candidates and ranked items are passage titles (``;`` or new lines between them); only
    retrieved passages count. ``generation`` = share of the supporting passages among the
    selected ones (order-invariant); ``ranking`` = NDCG@k of the ranking (binary gains, a
    ranked passage counts only if it was selected and only once). No evidence block: 0, 0.

    Example:
        >>> evidence_rewards("<evidence>candidates: A; B; C ranking: B; A</evidence>",
        ...                  ["a", "b", "c"], {0, 1, 2}, {1}, 2)
        {'generation': 1.0, 'ranking': 1.0}
    """
    found = _EVIDENCE.findall(text)
    if not found or not supporting:
        return {"generation": 0.0, "ranking": 0.0}
    body = found[-1]
    head, _, tail = body.lower().partition("ranking:")
    head = head.replace("candidates:", "", 1)
    by_title: dict[str, set[int]] = {}
    for p in retrieved:
        by_title.setdefault(" ".join(titles[p].lower().split()), set()).add(p)
    selected = set().union(*(by_title.get(t, set()) for t in _titles(head)))
    gains: list[float] = []
    credited: set[int] = set()
    for title in _titles(tail)[:k]:
        hit = (by_title.get(title, set()) & selected & supporting) - credited
        credited |= set(sorted(hit)[:1])
        gains.append(1.0 if hit else 0.0)
    dcg = sum(g / np.log2(i + 2) for i, g in enumerate(gains))
    ideal = sum(1 / np.log2(i + 2) for i in range(min(len(supporting), k)))
    return {"generation": len(selected & supporting) / len(supporting),
            "ranking": round(float(dcg / ideal), 6) if ideal else 0.0}  # fmt: skip


class SearchQA(TextEnv):
    r"""Multi-hop QA over fictional entities with a BM25 search tool (Search-R1's format).

    The first observation is Search-R1's prompt with the question. ``<search>q</search>``
    returns ``\n\n<information>Doc 1(Title: T) text\n...</information>\n\n`` with the
    ``topk`` best BM25 passages; ``<answer>a</answer>`` ends the episode with reward
    ``reward`` in ``{"em", "f1", "subem"}`` of ``a`` against the gold aliases (info metrics
    carry all three). Any other action gets Search-R1's "My previous action is invalid"
    message, reward 0, and counts as a turn. Register a turn limit (8 for ``-v0``).

    Difficulty knobs: ``corpus_size`` (passages, default 5,000), ``corpus_seed``,
    ``max_hops`` (2-4), ``comparison_rate`` (0-1), ``topk`` (1-10, default 3), ``reward``,
    ``evidence`` (0-20, default 0: off; ``k`` asks for a ranked evidence list with the answer,
    ``<evidence>candidates: ... ranking: ...</evidence>``, scored into ``info["phase_rewards"]``
    for F-GRPO: coverage of the supporting passages and NDCG@k of the ranking).
    Levels: 0 = 2-hop bridges only; 1 = defaults; 2 = up to 4 hops, 20,000 passages, top-2.

    Users can bring their own data: ``corpus_file`` (JSONL ``{"id", "title", "text"}`` or
    Search-R1's ``{"id", "contents"}``) with ``qa_file`` (HotpotQA-style JSONL, see
    :func:`~turngym.envs.search.corpus.load_qa_file`).

    Privileged: ``golds`` (aliases; also as ``gold_answers``), ``supporting_doc_ids``,
    ``decomposition`` (per path the anchor and each hop's sub-question, answer and gold
    passage) and ``min_searches``. The
    leak check: no gold alias occurs in any text outside ``<information>`` blocks.

    Example:
        >>> env = SearchQA(corpus_size=800)
        >>> obs, info = env.reset(seed=0, options={"split": "test"})
        >>> obs.startswith("Answer the given question.")
        True
        >>> env.step("<search> film directed by </search>")[0].startswith("\n\n<information>Doc 1")
        True
    """

    family = "searchqa"
    action_tag = "answer"
    privileged_keys = frozenset({GOLD_ANSWERS})
    answer_template = "<answer> {answer} </answer>"
    example_actions = ("<search> film director born city </search>",
                       "<search> organisation founded year </search>",
                       "<search> people from </search>",
                       "<answer> Velmora Institute </answer>",
                       "<answer> 1921 </answer>")  # fmt: skip
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {"corpus_size": 5000, "corpus_seed": 0,
                                              "max_hops": 3, "comparison_rate": 0.25,
                                              "topk": 3, "reward": "em",
                                              "evidence": 0}  # fmt: skip
    # each (size, seed) pair builds a corpus and its BM25 index
    costly_knobs: ClassVar[frozenset[str]] = frozenset({"corpus_size", "corpus_seed"})
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"max_hops": 2, "comparison_rate": 0.0},
        1: {},
        2: {"max_hops": 4, "corpus_size": 20_000, "topk": 2},
    }

    def __init__(
        self,
        *,
        corpus_file: str | Path | None = None,
        qa_file: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        """Create the env.

        Args:
            corpus_file: Your passages (JSONL); needs ``qa_file``.
            qa_file: Your questions (HotpotQA-style JSONL); needs ``corpus_file``.
            **kwargs: Those of :class:`~turngym.core.TextEnv` (knobs, ``level``...).

        Raises:
            ValueError: Only one of the two files, a malformed file, or a bad knob.
        """
        super().__init__(**kwargs)
        if (corpus_file is None) != (qa_file is None):
            raise ValueError("SearchQA: pass corpus_file and qa_file together (your questions "
                             "must be answerable from your passages).")  # fmt: skip
        self._corpus_file = None if corpus_file is None else str(corpus_file)
        if qa_file is not None:
            self._tasks_file = load_qa_file(qa_file, self.corpus)
        self.queries: list[str] = []
        self.retrieved: list[list[int]] = []
        self.answer: str | None = None

    @property
    def corpus(self) -> Corpus:
        """The passages and their index (shared per process; never pickled)."""
        d = self.episode_difficulty
        return get_corpus(self._corpus_file, d["corpus_seed"], d["corpus_size"])

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and its allowed values."""
        check_int_knobs("SearchQA", difficulty, _INT_KNOBS)
        rate = difficulty["comparison_rate"]
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError(f"SearchQA: comparison_rate={rate!r}; use a number in [0, 1].")
        if difficulty["reward"] not in _REWARDS:
            raise ValueError(f"SearchQA: reward={difficulty['reward']!r}; use one of "
                             f"{sorted(_REWARDS)}.")  # fmt: skip

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """A question over the world ``(corpus_seed, corpus_size)`` (see :func:`make_question`)."""
        world = get_world(difficulty["corpus_seed"], difficulty["corpus_size"])
        task = make_question(world, rng, max_hops=difficulty["max_hops"],
                             comparison_rate=difficulty["comparison_rate"])  # fmt: skip
        task["supporting"] = sorted({s["doc"] for p in task["paths"] for s in p["steps"]})
        return task

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Start an episode on ``task`` (generated, or a line of the QA file)."""
        if not isinstance(task.get("question"), str) or not task.get("answers"):
            raise ValueError("A SearchQA task needs 'question' and a non-empty 'answers'.")
        self.queries, self.retrieved, self.answer = [], [], None
        self.evidence_text = ""
        _ = self.corpus.index  # build (or load) it now, in reset, rather than in the first step

    # --- Text -----------------------------------------------------------------------------------
    def instructions(self) -> str:
        """Search-R1's action grammar with its example (the question is in the observation)."""
        grammar = SEARCH_R1_PROMPT.split(" Question:")[0]
        k = self.episode_difficulty["evidence"]
        if not k:
            return grammar
        return (f"{grammar} With the answer, list the passages that support it: "
                "<evidence>candidates: title; title; ... ranking: title; title</evidence>, "
                f"first the retrieved passages you select, then up to {k} of them ranked by how "
                "much the answer rests on them.")  # fmt: skip

    def render_text(self) -> str:
        """Search-R1's prompt with the question."""
        return SEARCH_R1_PROMPT.format(question=self.task["question"])

    # --- Dynamics -------------------------------------------------------------------------------
    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """One Search-R1 turn: search, answer, or an invalid action (never raises)."""
        self.turn += 1
        parsed = parse_search_r1_action(action, self.action_space.max_chars)
        reward, terminated, valid, parts = 0.0, False, parsed is not None, {}
        if self.answer is not None:
            obs, valid, terminated = "The episode is over.", False, True
        elif parsed is None:
            obs = INVALID_MESSAGE
        elif parsed[0] == "search":
            obs = self._search(parsed[1])
        else:
            self.answer, terminated = parsed[1], True
            self.evidence_text = action
            reward = self.score()
            parts = {self.episode_difficulty["reward"]: reward}
            obs = (f"Answer received. Exact match {exact_match(self.answer, self.golds):.0f}, "
                   f"F1 {f1_score(self.answer, self.golds):.2f}.")  # fmt: skip
        self._last_obs = obs
        info = self._info()
        info[ACTION_VALID], info[REWARD_COMPONENTS] = valid, parts
        info[METRICS] = {**info[METRICS], "action_effective": valid}
        if self.episode_difficulty["evidence"] and self.answer is not None:
            info[PHASE_REWARDS] = self.phase_rewards()
        return obs, float(reward), terminated, False, info

    def phase_rewards(self) -> dict[str, float]:
        """The evidence block's coverage and ranking rewards (see :func:`evidence_rewards`)."""
        retrieved = {p for hits in self.retrieved for p in hits}
        return evidence_rewards(self.evidence_text, self.corpus.titles, retrieved,
                                set(self.task.get("supporting", [])),
                                int(self.episode_difficulty["evidence"]))  # fmt: skip

    def _search(self, query: str) -> str:
        hits = self.corpus.search(query, self.episode_difficulty["topk"])
        positions = [p for p, _ in hits]
        self.queries.append(query)
        self.retrieved.append(positions)
        return f"\n\n<information>{self.corpus.render(positions)}</information>\n\n"

    # --- Bookkeeping ----------------------------------------------------------------------------
    @property
    def golds(self) -> list[str]:
        """The gold answer and its aliases."""
        return [str(a) for a in self.task.get("answers", [])]

    def score(self) -> float:
        """The chosen metric of the answer (0 before answering)."""
        if self.answer is None:
            return 0.0
        return float(_REWARDS[self.episode_difficulty["reward"]](self.answer, self.golds))

    def state_key(self) -> str:
        """Task, the set of retrieved passages, and whether it was answered (an info state)."""
        seen = sorted({p for hits in self.retrieved for p in hits})
        done = "-" if self.answer is None else f"a={self.answer.lower()}"
        return f"{self.task_id}|{','.join(map(str, seen))}|{done}"

    def privileged(self) -> dict[str, Any]:
        """Golds, supporting passages, the hop chain(s) and the fewest searches needed."""
        ids = self.corpus.ids
        paths = self.task.get("paths", [])
        return {"golds": self.golds, GOLD_ANSWERS: self.golds,
                "supporting_doc_ids": [ids[p] for p in self.task.get("supporting", [])],
                "decomposition": paths, "question_type": self.task.get("type", ""),
                "min_searches": sum(len(p["steps"]) for p in paths) or 1}  # fmt: skip

    def metrics(self) -> dict[str, Any]:
        """Searches so far, evidence recall, and every answer metric."""
        gold = set(self.task.get("supporting", []))
        seen = {p for hits in self.retrieved for p in hits}
        answer = self.answer or ""
        return {"searches": len(self.queries),
                "evidence_recall": len(gold & seen) / len(gold) if gold else 0.0,
                "em": exact_match(answer, self.golds) if self.answer is not None else 0.0,
                "f1": f1_score(answer, self.golds) if self.answer is not None else 0.0}  # fmt: skip

    def leak_check(self, text: str) -> list[str]:
        """Flag any gold alias in ``text`` outside retrieved ``<information>`` blocks."""
        if _answer_in(self.golds, _INFO.sub(" ", text)):
            return ["a gold answer appears outside the retrieved passages"]
        return []

    # --- Oracle ---------------------------------------------------------------------------------
    def oracle_action(self) -> str:
        """Follow the hop chain THROUGH THE RETRIEVER: search, read the passage, go on.

        Bridge entities are read from retrieved passages with the fact templates
        (:func:`~turngym.envs.search.world.extract_fact`), never from the privileged chain;
        only the relation to follow comes from it. User tasks (no chain) search the question
        once, then answer the gold.
        """
        paths = self.task.get("paths") or []
        if not paths:
            if not self.queries:
                return f"<search> {self.task['question']} </search>"
            return f"<answer> {self.golds[0]} </answer>"
        finals = []
        for path in paths:
            title, subject, kind = path["anchor_title"], path["anchor"], path["kind"]
            chain = []
            for step in path["steps"]:
                value = self._read(title, subject, step["relation"], kind)
                if value is None:
                    return self._oracle_search(subject, step["relation"], kind)
                chain.append(value)
                title = subject = value
                kind = ""
            finals.append(chain)
        if self.task.get("compare"):
            pick = min if self.task["compare"] == "min" else max
            return f"<answer> {pick(finals, key=lambda c: int(c[-1]))[0]} </answer>{self._cite()}"
        return f"<answer> {finals[0][-1]} </answer>{self._cite()}"

    def _cite(self) -> str:
        """The oracle's evidence block: the retrieved supporting passages, in hop order."""
        k = self.episode_difficulty["evidence"]
        if not k:
            return ""
        seen = {p for hits in self.retrieved for p in hits}
        gold = [p for p in self.task.get("supporting", []) if p in seen]
        titles = "; ".join(dict.fromkeys(self.corpus.titles[p] for p in gold))
        return f"<evidence>candidates: {titles} ranking: {titles}</evidence>"

    def _read(self, title: str, subject: str, relation: str, kind: str) -> str | None:
        corpus = self.corpus
        for hits in self.retrieved:
            for position in hits:
                if corpus.titles[position] == title:
                    value = extract_fact(corpus.texts[position], subject, relation, kind)
                    if value is not None:
                        return value
        return None

    def _oracle_search(self, subject: str, relation: str, kind: str) -> str:
        words = RELATIONS[relation].query
        for query in (f"{subject} {kind} {words}".replace("  ", " "), subject,
                      f"{subject} {subject} {kind}".strip()):  # fmt: skip
            if query not in self.queries:
                return f"<search> {query} </search>"
        return "<answer> unknown </answer>"  # the retriever never returned the passage
