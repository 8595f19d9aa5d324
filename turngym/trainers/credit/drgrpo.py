"""Dr.GRPO: GRPO without the std division (docs/methods.md#drgrpo)."""

from __future__ import annotations

from typing import Literal

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import credit_metrics, episode_scores, outcome_advantage
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["drgrpo"]


@register_estimator("drgrpo")
def drgrpo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    singleton: Literal["raw", "zero"] = "raw",
    cross_steps: bool = False,
    score: Literal["outcome", "return"] = "outcome",
) -> Credit:
    """GRPO "done right" (Understanding R1-Zero-Like Training, arXiv 2503.20783).

    ``A_i = R_i - mean_g(R)`` for every turn of episode ``i``: no division by the group std,
    which up-weights near-uniform groups. The paper's other fix, dropping the per-sequence
    ``1/|o_i|`` length normalisation (verl ``loss_agg_mode="seq-mean-token-sum-norm"``), is a
    loss-aggregation choice and lives in ``trainers/losses.py``, not here. Status:
    VERIFIED-CODE (verl ``norm_adv_by_std_in_grpo=False``).

    Args:
        batch: The turns; only the episode scores and group membership are used.
        ctx: Unused.
        singleton: A group with one episode: ``"raw"`` keeps ``A = R`` (verl) or ``"zero"``.
        cross_steps: Weight each episode by its turn count in the group mean (verl-agent
            layout); default ``False`` (one score per episode).
        score: ``"outcome"`` (``Episode.outcome``) or ``"return"`` (sum of turn rewards).

    Returns:
        One advantage per turn (the episode's, broadcast) and the standard metrics.

    Degenerate cases: equal scores give exactly 0; a group of one follows ``singleton``.
    """
    scores = episode_scores(batch, score)
    adv = outcome_advantage(
        batch, scores, ddof=1, eps=0.0, by_std=False, cross_steps=cross_steps,
        singleton=singleton,
    )  # fmt: skip
    advantages = adv[batch.episode]
    return Credit(advantages, metrics=credit_metrics(batch, advantages, scores))
