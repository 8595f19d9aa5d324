"""Judges of EmotionalSupport turns: the rule judge (default) and an LLM judge.

A judge scores one supporter turn with the change it caused in the help-seeker's state (MAPO's
dense per-turn process feedback, arXiv 2603.06194). :class:`RuleJudge` reads it off the
simulated state: ``wellbeing(after) - wellbeing(before)``. :class:`LLMJudge` asks any
OpenAI-compatible model (spec ``openai:<model>@<base url>``, as for agents) to rate the turn
from the visible dialogue; its prompt is fixed (:data:`JUDGE_PROMPT`), each request carries a
seed derived from the prompt, and scores are cached by prompt, so a repeated turn costs nothing
and scores the same. A reply with no rating in range falls back to the rule judge's score and
is counted.

Example:
    >>> make_judge("rule").score(JudgeInput("hi", "hello", "...", 0.2, 0.25))
    0.05
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["JudgeInput", "RuleJudge", "LLMJudge", "make_judge", "JUDGE_PROMPT"]

JUDGE_PROMPT = (
    "You judge emotional-support conversations. A help-seeker talks to a supporter. Rate how "
    "the supporter's LAST reply changed the help-seeker's emotional state, judging by the "
    "seeker's reaction and by good support practice (asking open questions, reflecting "
    "feelings, validating, suggesting only once the seeker feels understood; never "
    "minimising, judging, repeating or giving unsafe advice). Answer with one integer from -3 "
    "(much worse) to 3 (much better) and nothing else."
)
"""The LLM judge's system prompt (fixed: it is part of what a cached score means)."""
_RATING = re.compile(r"[-+]?\d+")


@dataclass(frozen=True)
class JudgeInput:
    """What a judge sees of one turn.

    Attributes:
        transcript: The visible dialogue before the reply (seeker and supporter lines).
        reply: The supporter's reply.
        reaction: The seeker's answer to it.
        before: The rule model's wellbeing before the reply (for the rule judge/fallback).
        after: The rule model's wellbeing after it.
    """

    transcript: str
    reply: str
    reaction: str
    before: float
    after: float


class RuleJudge:
    """Score = change in the simulated seeker's wellbeing (exact, free, deterministic)."""

    spec = "rule"

    def score(self, turn: JudgeInput) -> float:
        """``after - before``, rounded to 6 decimals."""
        return round(turn.after - turn.before, 6)

    def __repr__(self) -> str:
        return "RuleJudge()"


class LLMJudge:
    """Rate a turn with an OpenAI-compatible model; cached, seeded, with a rule fallback.

    Args:
        spec: The part after ``openai:``: ``<model>@<base url>[?options]``
            (:func:`turngym.agents.openai.parse_spec`); ``temperature`` defaults to 0.
        scale: A rating ``r`` in [-3, 3] becomes the score ``scale * r / 3``.
        seed: Mixed into each request's seed.

    Attributes:
        calls: Requests sent (cache misses).
        fallbacks: Replies without a usable rating (scored by the rule judge instead).
    """

    def __init__(self, spec: str, scale: float = 0.15, seed: int = 0) -> None:
        """Keep the settings; the HTTP client is created on first use (and never pickled)."""
        from turngym.agents.openai import parse_spec

        self.spec = f"openai:{spec}"
        self.options = {"temperature": 0.0, "max_tokens": 8, **parse_spec(spec)}
        self.scale, self.seed = float(scale), int(seed)
        self.cache: dict[str, float | None] = {}
        self.calls = self.fallbacks = 0
        self._agent: Any = None
        self._lock = threading.Lock()

    def prompt(self, turn: JudgeInput) -> str:
        """The user message sent for ``turn`` (the system message is :data:`JUDGE_PROMPT`)."""
        return (f"Conversation so far:\n{turn.transcript}\n\nSupporter's last reply:\n"
                f"{turn.reply}\n\nHelp-seeker's reaction:\n{turn.reaction}\n\nRating:")  # fmt: skip

    def rate(self, turn: JudgeInput) -> float | None:
        """The model's rating in [-3, 3] (cached by prompt), or ``None`` if unusable."""
        from turngym.types import Conversation

        text = self.prompt(turn)
        key = hashlib.sha256(f"{self.spec}\0{self.seed}\0{text}".encode()).hexdigest()
        with self._lock:
            if key in self.cache:
                return self.cache[key]
            if self._agent is None:
                from turngym.agents.openai import OpenAIAgent

                self._agent = OpenAIAgent(**{**self.options, "seed": self.seed})
        # The request seed derives from the episode id, so equal prompts send equal seeds.
        conversation = Conversation(JUDGE_PROMPT, (), text, episode_id=key)
        reply = self._agent.act_batch([conversation])[0].text
        found = [int(m) for m in _RATING.findall(reply) if -3 <= int(m) <= 3]
        rating = float(found[0]) if found else None
        with self._lock:
            self.calls += 1
            self.cache[key] = rating
        return rating

    def score(self, turn: JudgeInput) -> float:
        """``scale * rating / 3``; the rule judge's score when the reply has no rating."""
        rating = self.rate(turn)
        if rating is None:
            self.fallbacks += 1
            return RuleJudge().score(turn)
        return round(self.scale * rating / 3.0, 6)

    def close(self) -> None:
        """Release the HTTP client."""
        if self._agent is not None:
            self._agent.close()
            self._agent = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_agent"], state["_lock"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LLMJudge({self.spec!r})"


def make_judge(spec: str | None) -> RuleJudge | LLMJudge:
    """``"rule"`` (or ``None``) or ``"openai:<model>@<base url>[?options]"``.

    Raises:
        ValueError: Any other spec (with the accepted forms).
    """
    if spec in (None, "", "rule"):
        return RuleJudge()
    if isinstance(spec, str) and spec.startswith("openai:"):
        return LLMJudge(spec[len("openai:") :])
    raise ValueError(f"judge={spec!r} is not a judge; use 'rule' or "
                     "'openai:<model>@<base url>' (an OpenAI-compatible server).")  # fmt: skip
