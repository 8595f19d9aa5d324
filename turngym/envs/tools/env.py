"""ToolUse: stateful tool use over SQLite-backed apps (docs/environments.md#tooluse).

The setting follows τ-bench (Yao et al., 2024): apps are a database, tools read and write
it, and the episode succeeds when the final database equals the one the gold trace produces
and the answer contains the gold output. Tools are described as in BFCL (Patil et al., 2024)
and called in the Hermes format MatchTIR (Qu et al., 2025) trains with; each call is scored
against the gold trace MatchTIR-style and reported in ``info["call_match"]``.

Example:
    >>> import gymnasium, turngym.envs
    >>> env = gymnasium.make("turngym/ToolUse-v0")
    >>> obs, info = env.reset(seed=0, options={"split": "test"})
    >>> obs.startswith("User request:")
    True
    >>> gold = info["privileged"]["gold_calls"]
    >>> for call in gold:
    ...     obs, reward, terminated, truncated, info = env.step(env.unwrapped.format_call(call))
    >>> reward, terminated, info["success"]
    (1.0, True, True)
"""

from __future__ import annotations

import json
import pickle
import sqlite3
from collections.abc import Mapping
from typing import Any, ClassVar, SupportsFloat

import numpy as np

from turngym.core import GOLD_ANSWERS, TextEnv, Transition, check_int_knobs, parse_action
from turngym.envs.tools.apps import APPS, DISTRACTOR_TOOLS, TOOLS, dump_rows, open_db, state_hash
from turngym.envs.tools.calls import (
    answer_matches,
    answer_tokens,
    call_similarity,
    match_calls,
    run_call,
)
from turngym.envs.tools.generate import generate_task

__all__ = ["ToolUse", "CALL_MATCH"]

CALL_MATCH = "call_match"
"""Info key (every step): MatchTIR-style matching of the last call and of the episode so far."""

_INT_KNOBS: Mapping[str, tuple[int, int, str]] = {
    "goals": (1, 3, "sub-goals per request"),
    "min_calls": (1, 8, "fewest gold tool calls (finish not counted)"),
    "max_calls": (1, 8, "most gold tool calls (finish not counted)"),
    "records": (4, 60, "rows per app table (the rest are distractor records)"),
    "distractor_tools": (0, len(DISTRACTOR_TOOLS), "near-duplicate tools in the catalogue"),
}
_WAITING = "(No tool response. Make a tool call, or call finish when you are done.)"


class ToolUse(TextEnv):
    """Stateful tool use over bank, calendar and inventory apps on SQLite (τ-bench style).

    **Grammar.** One call per turn: ``<tool_call>{"name": NAME, "arguments": {...}}
    </tool_call>``; the result comes back as ``<tool_response>{json}</tool_response>``. The
    episode ends with the ``finish`` tool (``{"answer": "..."}`` when the request asks a
    question; ToolBench's Finish protocol). ``<answer>X</answer>`` without a tool call is
    accepted as shorthand for ``finish`` with answer X.

    **Errors.** Malformed JSON, an unknown or unlisted tool, unknown or missing arguments
    and values that violate the JSON schema (type, enum, range, pattern) give an
    ``{"error": ...}`` response naming the problem, change nothing and set
    ``info["action_valid"] = False``. A valid call the app refuses (no such account,
    insufficient funds, overlapping events) is a valid action with an ``{"error": ...}``
    response; ``info["metrics"]["tool_error"]`` is True for both kinds.

    **Reward.** 0 per call; ``finish`` gives 1.0 iff the database hash equals the gold final
    state's and, when the request asks a question, the answer contains the gold answer
    (tokens, case-insensitive, ``$`` and commas ignored), else 0. ``info["call_match"]``
    holds, for the last call, MatchTIR's similarity to the gold call at the same position and
    to the best-matching gold call (``name_match``, ``arg_match`` fraction, ``score``) and its
    score against every gold call (``similarities``, for the ``matchtir`` estimator's
    trajectory-level matching), and
    for the episode the greedy one-to-one assignment's mean score (``episode_score``).

    **Knobs.** ``apps`` (subset of bank, calendar, inventory), ``goals`` (1-3),
    ``min_calls``/``max_calls`` (gold trace length without finish, 1-8), ``records`` (rows
    per table, 4-60), ``distractor_tools`` (0-5 near-duplicate tools). Levels: 0 = one
    goal, at most 2 calls, 5 records; 1 = defaults; 2 = 2 goals of 3-5 calls, 20 records, 3
    distractors; 3 = 3 goals of 5-8 calls, 40 records, all distractors.

    **State key** ``db=<hash of the DB contents>|done=<0/1>``; **privileged**: gold calls,
    gold final state hash, gold answer, minimal number of calls. **Leak check**: the gold
    answer's tokens never appear outside ``<tool_response>`` blocks (the generator rejects
    requests and tool lists that contain them; errors never echo database values).
    """

    family = "tools"
    privileged_keys = frozenset({GOLD_ANSWERS})
    answer_template = "<answer>{answer}</answer>"  # shorthand for the finish tool
    action_tag = "tool_call"
    example_actions = (
        '<tool_call>{"name": "bank_find_accounts", "arguments": {"owner": "Ada Abbott"}}'
        "</tool_call>",
        '<tool_call>{"name": "inventory_search", "arguments": {"query": "stapler"}}</tool_call>',
        '<tool_call>{"name": "calendar_find_events", "arguments": {"date": "2025-03-04"}}'
        "</tool_call>",
        '<tool_call>{"name": "bank_get_balance", "arguments": {"account_id": "ACC-1234"}}'
        "</tool_call>",
        '<tool_call>{"name": "inventory_get_item", "arguments": {"sku": 1234}}</tool_call>',
        '<tool_call>{"name": "finish", "arguments": {"answer": "42"}}</tool_call>',
    )
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "apps": list(APPS),
        "goals": 2,
        "min_calls": 1,
        "max_calls": 5,
        "records": 8,
        "distractor_tools": 2,
    }
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"goals": 1, "max_calls": 2, "records": 5, "distractor_tools": 0},
        1: {},
        2: {"goals": 2, "min_calls": 3, "max_calls": 5, "records": 20, "distractor_tools": 3},
        3: {"goals": 3, "min_calls": 5, "max_calls": 8, "records": 40, "distractor_tools": 5},
    }

    def __init__(self, **kwargs: Any) -> None:
        """Create the env; keyword arguments are those of :class:`~turngym.core.TextEnv`."""
        super().__init__(**kwargs)
        self._db: sqlite3.Connection = open_db({})
        self.tools: list[str] = []
        self.gold_calls: list[dict[str, Any]] = []
        self.gold_answer: str | None = None
        self.gold_hash = ""
        self.calls: list[tuple[str | None, dict[str, Any] | None]] = []
        self.finished = False
        self.answer: str | None = None
        self._screen = ""
        self._last_error = False
        self._last_match: dict[str, Any] | None = None

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and its allowed values."""
        check_int_knobs("ToolUse", difficulty, _INT_KNOBS)
        apps = difficulty["apps"]
        if (
            not isinstance(apps, (list, tuple))
            or not apps
            or any(a not in APPS for a in apps)
            or len(set(apps)) != len(apps)
        ):
            raise ValueError(f"ToolUse: apps={apps!r} is invalid; use a non-empty list drawn "
                             f"from {list(APPS)}.")  # fmt: skip
        if difficulty["min_calls"] > difficulty["max_calls"]:
            raise ValueError("ToolUse: min_calls must not exceed max_calls.")

    # --- Tasks --------------------------------------------------------------------------------
    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw a task backwards from a gold trace (:mod:`~turngym.envs.tools.generate`)."""
        return generate_task(rng, difficulty)

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Open the task's database and replay the gold trace on a copy for the gold hash."""
        for key in ("db", "tools", "request", "gold_calls"):
            if key not in task:
                raise ValueError(f"A ToolUse task needs {key!r}.")
        unknown = sorted(set(task["tools"]) - set(TOOLS))
        if unknown or "finish" not in task["tools"]:
            raise ValueError(f"A ToolUse task's tools must be known and include finish: {unknown}")
        self.tools = list(task["tools"])
        self.gold_calls = [dict(c) for c in task["gold_calls"]]
        self.gold_answer = task.get("answer")
        self.gold_hash = self._replay_gold(task["db"])
        self._db.close()
        self._db = open_db(task["db"])
        self.calls, self.finished, self.answer = [], False, None
        self._screen = f"User request: {task['request']}"
        self._last_error, self._last_match = False, None

    def _replay_gold(self, rows: Mapping[str, list]) -> str:
        conn = open_db(rows)
        try:
            for call in self.gold_calls:
                result = run_call(conn, json.dumps(call), self.tools)
                if not result.valid or result.error is not None:
                    raise ValueError(f"gold call {call} fails: {result.error}")
            return state_hash(conn)
        finally:
            conn.close()

    # --- Play ---------------------------------------------------------------------------------
    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """One turn (see :meth:`TextEnv.step`), plus ``info["call_match"]``.

        ``<answer>X</answer>`` with no ``<tool_call>`` is rewritten to a ``finish`` call.
        """
        if isinstance(action, str) and "<tool_call>" not in action.lower():
            parsed = parse_action(action, "answer", max_chars=self.action_space.max_chars)
            if parsed.ok:
                finish = {"name": "finish", "arguments": {"answer": parsed.content}}
                action = self.format_call(finish)
        self._screen, self._last_error, self._last_match = _WAITING, False, None
        obs, reward, terminated, truncated, info = super().step(action)
        info[CALL_MATCH] = {
            "call": self._last_match,
            "episode_score": match_calls(self.calls, self.gold_calls)["mean"],
            "n_calls": len(self.calls),
            "n_gold": len(self.gold_calls),
        }
        return obs, reward, terminated, truncated, info

    def apply(self, command: str) -> Transition:
        """Run one tool call (never raises)."""
        if self.finished:
            return Transition(terminated=True, effective=False, message="The episode is over.")
        before = state_hash(self._db)
        result = run_call(self._db, command, self.tools)
        self._screen = "<tool_response>" + json.dumps(result.output) + "</tool_response>"
        self._last_error = result.error is not None
        if result.name is not None:
            self._score_call(result.name, result.arguments)
        if not result.valid:
            return Transition(valid=False, effective=False)
        if result.name != "finish":
            return Transition(effective=state_hash(self._db) != before)
        self.finished = True
        self.answer = str(result.arguments.get("answer", "")) if result.arguments else ""
        reward = self.score()
        return Transition(reward=reward, terminated=True, reward_components={"outcome": reward})

    def _score_call(self, name: str, arguments: dict[str, Any] | None) -> None:
        position = len(self.calls)
        self.calls.append((name, arguments))
        at = None
        if position < len(self.gold_calls):
            at = call_similarity(name, arguments, self.gold_calls[position])
        scored = [(call_similarity(name, arguments, g), j) for j, g in enumerate(self.gold_calls)]
        best = max(scored, key=lambda pair: (pair[0]["score"], -pair[1]))
        self._last_match = {"position": position, "at_position": at,
                            "best": best[0], "best_index": best[1],
                            "similarities": [sim["score"] for sim, _ in scored]}  # fmt: skip

    def format_call(self, call: Mapping[str, Any]) -> str:
        """Render ``{"name", "arguments"}`` as a tagged action."""
        body = json.dumps({"name": call["name"], "arguments": call.get("arguments", {})})
        return f"<{self.action_tag}>{body}</{self.action_tag}>"

    # --- Views --------------------------------------------------------------------------------
    def instructions(self) -> str:
        """The request, the tool schemas, the call grammar and one example."""
        schemas = [{"type": "function", "function": TOOLS[t].schema()} for t in self.tools]
        return "\n".join([
            "You are an assistant that operates the user's apps through tools. Tool results "
            "are the only source of ids, balances, stock levels and times: look them up.",
            f"User request: {self.task.get('request', '')}",
            "Tools (JSON schema):",
            "<tools>" + json.dumps(schemas) + "</tools>",
            'Make one call per turn: <tool_call>{"name": NAME, "arguments": {...}}</tool_call>. '
            "Each result comes back inside <tool_response></tool_response>.",
            "When the request is done, call finish; if it asks a question, put the answer in "
            "finish's 'answer'. You succeed if the apps end in the requested state and the "
            "answer is right.",
            'Example: <tool_call>{"name": "finish", "arguments": {"answer": "Done."}}</tool_call>',
        ])  # fmt: skip

    def render_text(self) -> str:
        """The request (at reset) or the last tool response."""
        return self._screen

    def state_key(self) -> str:
        """``db=<DB content hash>|done=<0/1>``: equal app states share a key."""
        return f"db={state_hash(self._db)}|done={int(self.finished)}"

    def state_matches(self) -> bool:
        """Whether the database equals the gold final state (τ-bench's hash check)."""
        return state_hash(self._db) == self.gold_hash

    def answer_ok(self) -> bool:
        """Whether the answer contains the gold answer (True when nothing is asked)."""
        if self.gold_answer is None:
            return True
        return self.answer is not None and answer_matches(self.answer, self.gold_answer)

    def score(self) -> float:
        """1.0 after ``finish`` with the gold state and answer, else 0.0."""
        return float(self.finished and self.state_matches() and self.answer_ok())

    def privileged(self) -> dict[str, Any]:
        """Gold calls, final state hash, gold answer (list form too) and the fewest calls."""
        return {
            "gold_calls": [dict(c) for c in self.gold_calls],
            "gold_state_hash": self.gold_hash,
            "gold_answer": self.gold_answer,
            GOLD_ANSWERS: [self.gold_answer] if self.gold_answer else [],
            "min_calls": len(self.gold_calls),
        }

    def metrics(self) -> dict[str, Any]:
        """Calls made, whether the last one failed, and the state and answer checks."""
        return {
            "calls": len(self.calls),
            "tool_error": self._last_error,
            "state_match": self.state_matches(),
            "answer_match": self.answer_ok() if self.finished else False,
        }

    # --- Oracle and leak check ----------------------------------------------------------------
    def oracle_action(self) -> str:
        """Replay the gold trace: the gold call at the current position (finish at the end)."""
        position = min(len(self.calls), len(self.gold_calls) - 1)
        return self.format_call(self.gold_calls[position])

    def leak_check(self, text: str) -> list[str]:
        """Flag the gold answer's tokens anywhere outside ``<tool_response>`` blocks."""
        if not self.gold_answer:
            return []
        outside = text
        while "<tool_response>" in outside and "</tool_response>" in outside:
            head, _, rest = outside.partition("<tool_response>")
            outside = head + " " + rest.partition("</tool_response>")[2]
        want, have = answer_tokens(self.gold_answer), answer_tokens(outside)
        for i in range(len(have) - len(want) + 1):
            if have[i : i + len(want)] == want:
                return ["the gold answer appears outside a tool response"]
        return []

    # --- Snapshots ----------------------------------------------------------------------------
    def get_state(self) -> bytes:
        """Snapshot the episode; the database travels as its rows (:func:`dump_rows`)."""
        db, self._db = self._db, None  # type: ignore[assignment]
        try:
            base = super().get_state()
        finally:
            self._db = db
        return pickle.dumps((base, dump_rows(db)))

    def set_state(self, state: bytes) -> None:
        """Restore a snapshot from :meth:`get_state`."""
        base, rows = pickle.loads(state)
        old = self._db
        super().set_state(base)
        old.close()
        self._db = open_db(rows)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_db"] = dump_rows(self._db)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["_db"] = open_db(state["_db"])
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"<ToolUse tools={len(self.tools)} calls={len(self.calls)}>"
