"""SWAP: Step-wise Adaptive Penalization of length (arXiv 2603.00296; docs/methods.md#swap)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import credit_metrics, episode_scores
from turngym.trainers.credit._common import outcome_advantage as group_advantage
from turngym.trainers.credit.grpo_vps import step_probe_needs, step_progress
from turngym.trainers.credit.probe_values import probe_values
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["swap", "length_penalties"]


def length_penalties(
    batch: TurnBatch,
    importance: np.ndarray,
    lengths: np.ndarray,
    correct: np.ndarray,
    temperature: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Spread each correct-but-long episode's excess length over its steps, low importance first.

    ``E_i = max(0, len_i - len_target)`` with ``len_target`` the shortest correct episode of
    the task (lengths in action tokens); ``w_k ∝ softmax_k(-I_k / temperature) * len_k``;
    ``penalty_k = E_i * w_k / sum_k w_k``.

    Returns:
        ``(penalty per turn, len_target per turn)``; incorrect episodes get 0.
    """
    total = np.bincount(batch.episode, weights=lengths, minlength=batch.n_episodes)
    target = np.full(batch.n_groups, np.inf)
    np.minimum.at(target, batch.episode_group[correct], total[correct])
    excess = np.where(correct, np.maximum(0.0, total - target[batch.episode_group]), 0.0)
    logits = -np.nan_to_num(importance) / temperature
    top = np.full(batch.n_episodes, -np.inf)
    np.maximum.at(top, batch.episode, logits)
    w = np.exp(logits - top[batch.episode]) * lengths
    norm = np.bincount(batch.episode, weights=w, minlength=batch.n_episodes)
    share = np.divide(w, norm[batch.episode], out=np.zeros_like(w), where=norm[batch.episode] > 0)
    return excess[batch.episode] * share, target[batch.group]


@register_estimator(
    "swap", probes=step_probe_needs, unverified=("alpha", "temperature", "correct_threshold")
)
def swap(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    alpha: float = 1.0,
    temperature: float = 1.0,
    correct_threshold: float = 1.0,
    eps: float = 1e-6,
    singleton: Literal["raw", "zero"] = "raw",
    score: Literal["outcome", "return"] = "outcome",
) -> Credit:
    """Step-wise Adaptive Penalization (arXiv 2603.00296).

    Length efficiency at step level: a correct episode longer than the task's shortest
    correct one has an excess ``E_i`` (action tokens) that becomes a penalty spread over its
    steps inversely to their importance ``I_k`` (the on-policy log-probability improvement
    of the correct answer across the step, the GRPO-VPS probe), so low-importance steps pay
    most: ``A_{i,k} = A_i^GRPO - alpha * penalty_k / len_target`` (:func:`length_penalties`).
    Steps are turns. Status: PAPER (abstract); the penalty distribution, its normalisation by
    the target length and ``alpha`` are UNVERIFIED reconstructions.

    Args:
        batch: The turns; outcomes and groups are used.
        ctx: ``ctx.probe``: gold answer before and after each action, action token counts.
        alpha: Weight of the penalty.
        temperature: Softmax temperature over ``-I_k``.
        correct_threshold: An episode is correct when its score reaches this.
        eps: Added to the std of the GRPO part.
        singleton: GRPO part for a group of one.
        score: ``"outcome"`` or ``"return"``.

    Returns:
        Advantages, penalties as ``returns``, standard metrics and ``penalised_turn_frac``.

    Degenerate cases: a task with no correct episode, or whose correct episodes are equally
    long, gets plain GRPO; a step without a probe counts as importance 0.
    """
    probes = probe_values(ctx, batch, "swap")
    scores = episode_scores(batch, score)
    base = group_advantage(batch, scores, ddof=1, eps=eps, by_std=True, cross_steps=False,
                           singleton=singleton)[batch.episode]  # fmt: skip
    importance = step_progress(batch, probes, "log_prob_diff", "action")
    lengths = probes.action_tokens.astype(np.float64)
    penalty, target = length_penalties(batch, importance, lengths, scores >= correct_threshold,
                                       temperature)  # fmt: skip
    share = (penalty > 0) & (target > 0)
    relative = np.divide(penalty, target, out=np.zeros_like(penalty), where=share)
    advantages = base - alpha * relative
    metrics = credit_metrics(batch, advantages, scores)
    metrics["penalised_turn_frac"] = float((penalty > 0).mean()) if batch.n_turns else 0.0
    return Credit(advantages, returns=penalty, metrics=metrics)
