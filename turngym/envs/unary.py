"""Unary Feedback as Observation (UFO): the reward and a wrapper that adds it to any env.

"A Simple 'Try Again' Can Elicit Multi-Turn LLM Reasoning" (Liu et al., 2025, arXiv
2507.14295; code ``lichengliu03/unary-feedback``, ``ragen/env/metamathqa/env.py``) turns a
single-answer task into a multi-attempt one: after a wrong answer the agent is told only to
try again. With attempts numbered ``t = 0, 1, ...`` a correct answer at attempt ``t`` earns
``gamma ** t`` (UFO: ``1 / 2**t``) and the step that ends the episode adds the repetition
penalty ``-lambda * (1 - E / T)``, ``E`` the distinct answers among the ``T`` given.

This module is the one place that computes that reward: :class:`UnaryFeedback` wraps any env
whose ``info["success"]`` says whether an episode's answer was right (SearchQA, SeqRec,
Countdown, ...), the TryAgain env uses :func:`ufo_step_reward`, and the ``ufo`` credit
estimator recomputes :func:`ufo_return` from recorded turns.

Example:
    >>> import turngym
    >>> env = UnaryFeedback(turngym.make("turngym/SearchQA-v0", corpus_size=800), attempts=2)
    >>> obs, info = env.reset(seed=0, options={"split": "test"})
    >>> obs2, reward, terminated, truncated, info = env.step("<answer> nobody </answer>")
    >>> obs2.startswith(FEEDBACK), reward, terminated, info["metrics"]["attempt"]
    (True, 0.0, False, 1)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, SupportsFloat

import gymnasium

from turngym.core import METRICS, REWARD_COMPONENTS, SUCCESS, parse_action

__all__ = [
    "FEEDBACK",
    "ufo_return",
    "ufo_step_reward",
    "repetition_penalty",
    "normalise_answer",
    "UnaryFeedback",
]

FEEDBACK = "Let's try again."
"""The unary feedback after a wrong answer (the paper's example wording)."""


def repetition_penalty(answers: Sequence[str], lam: float) -> float:
    """``-lam * (1 - E / T)`` over the canonical answers given (0 when there are none)."""
    return -lam * (1 - len(set(answers)) / len(answers)) if answers else 0.0


def ufo_step_reward(attempt: int, correct: bool, gamma: float) -> float:
    """``gamma ** attempt`` for a correct answer at 0-based ``attempt``, else 0."""
    return gamma**attempt if correct else 0.0


def ufo_return(correct_at: int | None, answers: Sequence[str], gamma: float, lam: float) -> float:
    """The UFO episode return ``gamma**t [solved] - lam * (1 - E / T)``.

    Args:
        correct_at: The 0-based attempt that was correct, or ``None``.
        answers: The canonical keys of every valid answer given (``T = len(answers)``).
        gamma: Attempt discount.
        lam: Repetition-penalty weight.

    Example:
        >>> round(ufo_return(2, ["n:5", "n:5", "n:7"], 0.5, 0.5), 4)  # 0.25 - 0.5 * (1/3)
        0.0833
    """
    solved = 0.0 if correct_at is None else ufo_step_reward(correct_at, True, gamma)
    return solved + repetition_penalty(answers, lam)


def normalise_answer(action: str, tag: str = "answer") -> str:
    """UFO's answer key: the tag content (or the whole text) lower-cased, without whitespace."""
    parsed = parse_action(action, tag)
    text = parsed.content if parsed.ok else action
    return re.sub(r"\s+", "", str(text).lower())


class UnaryFeedback(gymnasium.Wrapper[str, str, str, str]):
    """Give an env ``attempts`` tries per task with only unary feedback and UFO's reward.

    When the inner episode ends without success and attempts remain, the inner env is reset
    to the same task (same seed and options) and the agent sees :data:`FEEDBACK` (followed by
    the restarted observation when it differs from the first one, so multi-turn tasks can be
    replayed); nothing says how the answer was wrong. The wrapper's reward replaces the inner
    one: ``ufo_step_reward`` on the step that succeeds, plus the repetition penalty on the step
    that ends the episode. ``info["reward_components"]`` holds ``correct`` and
    ``repetition_penalty``; ``info["metrics"]`` the ``attempt`` count and ``inner_reward``.

    Args:
        env: Any env that reports ``info["success"]``.
        attempts: Tries per task (UFO trains with 5).
        gamma: Attempt discount (UFO: 0.5).
        repeat_penalty: ``lambda`` of the repetition penalty (UFO: 0.5).
        answer_key: Canonical form of an answer, for counting distinct answers
            (default :func:`normalise_answer`).
    """

    def __init__(self, env: gymnasium.Env[str, str], attempts: int = 5, gamma: float = 0.5,
                 repeat_penalty: float = 0.5,
                 answer_key: Callable[[str], str] = normalise_answer) -> None:  # fmt: skip
        """Wrap ``env`` (see the class docstring)."""
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        if not 0 <= gamma <= 1 or not 0 <= repeat_penalty <= 1:
            raise ValueError("gamma and repeat_penalty must be in [0, 1]")
        super().__init__(env)
        self.attempts, self.gamma, self.lam = int(attempts), float(gamma), float(repeat_penalty)
        self.answer_key = answer_key
        self._reset_args: dict[str, Any] = {}
        self._first_obs = ""
        self.attempt = 0
        self.answers: list[str] = []

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:  # fmt: skip
        """Reset the inner env and the attempt count."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._reset_args = {"seed": seed, "options": options}
        self._first_obs, self.attempt, self.answers = obs, 0, []
        return obs, info

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the inner env; on a failed ending with attempts left, restart the task."""
        obs, inner, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        if not (terminated or truncated):
            info[REWARD_COMPONENTS] = {}
            info[METRICS] = {**info.get(METRICS, {}), "attempt": self.attempt,
                             "inner_reward": float(inner)}  # fmt: skip
            return obs, 0.0, False, False, info
        correct = bool(info.get(SUCCESS, False))
        self.answers.append(self.answer_key(action))
        parts = {"correct": ufo_step_reward(self.attempt, correct, self.gamma)}
        self.attempt += 1
        over = correct or self.attempt >= self.attempts
        if over:
            parts["repetition_penalty"] = repetition_penalty(self.answers, self.lam)
        else:
            restart, _ = self.env.reset(**self._reset_args)
            obs = FEEDBACK if restart == self._first_obs else f"{FEEDBACK}\n\n{restart}"
        info[REWARD_COMPONENTS] = parts
        info[METRICS] = {**info.get(METRICS, {}), "attempt": self.attempt,
                         "inner_reward": float(inner)}  # fmt: skip
        return obs, sum(parts.values()), over and not truncated, over and truncated, info
