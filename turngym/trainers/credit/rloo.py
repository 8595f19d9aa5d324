"""RLOO: REINFORCE with a leave-one-out baseline (docs/methods.md#rloo)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import centre, choose, credit_metrics, episode_scores
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["rloo"]


@register_estimator("rloo")
def rloo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    singleton: Literal["raw", "zero"] = "raw",
    score: Literal["outcome", "return"] = "outcome",
) -> Credit:
    """REINFORCE leave-one-out (Back to Basics, arXiv 2402.14740; docs/methods.md#rloo).

    ``A_i = R_i - mean_{j != i}(R_j) = G/(G-1) * (R_i - mean_g(R))`` for every turn of
    episode ``i`` in a group of ``G`` episodes. Unbiased: the baseline excludes the sample.
    No std normalisation. Status: VERIFIED-CODE (verl ``compute_rloo_outcome_advantage``).

    Args:
        batch: The turns; only the episode scores and group membership are used.
        ctx: Unused.
        singleton: A group with one episode has no "others": ``"raw"`` keeps ``A = R``
            (verl leaves the score unchanged) or ``"zero"``.
        score: ``"outcome"`` (``Episode.outcome``) or ``"return"`` (sum of turn rewards).

    Returns:
        One advantage per turn (the episode's, broadcast) and the standard metrics.

    Degenerate cases: equal scores give exactly 0; the episode advantages of a group of two
    or more sum to 0; a group of one follows ``singleton``.
    """
    choose("singleton", singleton, ("raw", "zero"))
    scores = episode_scores(batch, score)
    size, centred = centre(scores, batch.episode_group, batch.n_groups)
    g = size[batch.episode_group]
    lonely = scores if singleton == "raw" else np.zeros_like(scores)
    adv = np.where(g > 1, centred * g / np.maximum(g - 1, 1), lonely)
    advantages = adv[batch.episode]
    return Credit(advantages, metrics=credit_metrics(batch, advantages, scores))
