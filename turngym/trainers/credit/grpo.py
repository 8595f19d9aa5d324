"""GRPO: group mean/std normalised outcome advantage (docs/methods.md#grpo)."""

from __future__ import annotations

from typing import Literal

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import (
    choose,
    credit_metrics,
    episode_scores,
    outcome_advantage,
)
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["grpo"]


@register_estimator("grpo")
def grpo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    std: Literal["unbiased", "population"] = "unbiased",
    eps: float = 1e-6,
    singleton: Literal["raw", "zero"] = "raw",
    norm_by_std: bool = True,
    cross_steps: bool = False,
    score: Literal["outcome", "return"] = "outcome",
) -> Credit:
    """Group Relative Policy Optimization advantage (DeepSeekMath, arXiv 2402.03300, Sec. 4.1.2).

    ``A_i = (R_i - mean_g(R)) / (std_g(R) + eps)`` for every turn of episode ``i`` of group
    ``g``. Status: VERIFIED-CODE (verl ``compute_grpo_outcome_advantage``; the cross-step
    variant from verl-agent).

    Args:
        batch: The turns; only the episode scores and group membership are used.
        ctx: Unused.
        std: ``"unbiased"`` (N-1, verl/torch default) or ``"population"`` (N).
        eps: Added to the std (verl 1e-6; TRL uses 1e-4).
        singleton: A group with one episode: ``"raw"`` keeps ``A = R`` (verl: mean 0,
            std 1) or ``"zero"`` gives 0.
        norm_by_std: Divide by the std (``False`` is Dr.GRPO's advantage).
        cross_steps: Weight each episode by its turn count in the group statistics
            (verl-agent ``compute_mean_std_cross_steps`` with one row per turn). Default
            ``False``: one score per episode, the paper's GRPO, so a long episode does not
            pull the baseline towards itself.
        score: ``"outcome"`` (``Episode.outcome``) or ``"return"`` (sum of turn rewards).

    Returns:
        One advantage per turn (the episode's, broadcast); metrics
        ``zero_adv_group_frac`` and ``sign_flips_vs_mean``.

    Degenerate cases: equal scores in a group give 0 (exactly); a group of one follows
    ``singleton``; episodes without turns count in the statistics but get no row.
    """
    ddof = 1 if choose("std", std, ("unbiased", "population")) == "unbiased" else 0
    scores = episode_scores(batch, score)
    adv = outcome_advantage(
        batch, scores, ddof=ddof, eps=eps, by_std=norm_by_std, cross_steps=cross_steps,
        singleton=singleton,
    )  # fmt: skip
    advantages = adv[batch.episode]
    return Credit(advantages, metrics=credit_metrics(batch, advantages, scores))
