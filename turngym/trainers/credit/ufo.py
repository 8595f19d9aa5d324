"""UFO: the unary-feedback multi-attempt return as a reward transform, then GRPO."""

from __future__ import annotations

from typing import Literal

import numpy as np

from turngym.envs.unary import normalise_answer, ufo_return
from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import choose, credit_metrics, outcome_advantage
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["ufo"]


def _ufo_returns(batch: TurnBatch, gamma: float, lam: float, tag: str) -> np.ndarray:
    """Recompute each episode's UFO return from its turns' verdicts and answers.

    Attempts are the turns graded as one (a ``"correct"`` reward component: TryAgain and the
    ``UnaryFeedback`` wrapper), or, in envs that grade no attempt, the last valid turn (the
    episode is one attempt); the first with ``info["success"]`` is ``correct_at``.
    """
    out = np.zeros(batch.n_episodes)
    e = 0
    for group in batch.groups:
        for episode in group.episodes:
            graded = [t for t in episode.turns
                      if "correct" in t.info.get("reward_components", {})]  # fmt: skip
            valid = [t for t in episode.turns if t.action_valid]
            attempts = graded or valid[-1:]
            answers: list[str] = []
            correct_at = None
            for turn in attempts:
                answers.append(normalise_answer(turn.action, tag))
                if turn.info.get("success", False):
                    correct_at = len(answers) - 1
                    break
            out[e] = ufo_return(correct_at, answers, gamma, lam)
            e += 1
    return out


@register_estimator("ufo")
def ufo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    gamma: float = 0.5,
    lam: float = 0.5,
    tag: str = "answer",
    eps: float = 1e-6,
    singleton: Literal["raw", "zero"] = "raw",
) -> Credit:
    """Unary Feedback as Observation (Liu et al., 2025, arXiv 2507.14295).

    Code ``lichengliu03/unary-feedback``.

    Each graded turn (or, where the env grades none, the episode's last valid turn) is an
    answer attempt;
    a correct one at attempt ``t`` (``info["success"]``)
    earns ``gamma ** t`` and the episode pays ``lam * (1 - E / T)`` for repeated answers
    (:func:`turngym.envs.unary.ufo_return`, shared with the TryAgain env and the
    :class:`~turngym.envs.unary.UnaryFeedback` wrapper); GRPO over these returns gives the
    advantage of every turn. On TryAgain this is the env's own return (up to how repeats
    are recognised: the env compares canonical numbers, this the normalised answer text); on
    an env wrapped
    in ``UnaryFeedback`` each inner episode is an attempt. Status: VERIFIED-CODE for the
    reward (the paper trains it with PPO, GAE ``gamma = lambda = 1``); the group-relative
    baseline is this library's choice.

    Args:
        batch: The turns: actions, validity and ``info["success"]``.
        ctx: Unused.
        gamma: Attempt discount (UFO: 0.5).
        lam: Repetition-penalty weight (UFO: 0.5).
        tag: The answer tag whose content is compared for repeats.
        eps: Added to the std.
        singleton: A group of one: ``"raw"`` or ``"zero"``.

    Returns:
        Advantages and metrics ``ufo_return_mean`` and ``first_try_frac``.

    Degenerate cases: an episode with no valid answer returns 0; equal returns give 0.
    """
    choose("singleton", singleton, ("raw", "zero"))
    returns = _ufo_returns(batch, gamma, lam, tag)
    adv = outcome_advantage(batch, returns, ddof=1, eps=eps, by_std=True, cross_steps=False,
                            singleton=singleton)  # fmt: skip
    advantages = adv[batch.episode]
    metrics = credit_metrics(batch, advantages, returns)
    metrics["ufo_return_mean"] = float(returns.mean()) if returns.size else 0.0
    metrics["first_try_frac"] = float(np.mean(np.isclose(returns, 1.0))) if returns.size else 0.0
    return Credit(advantages, metrics=metrics)
