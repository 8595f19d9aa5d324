"""TRLOO: turn-level REINFORCE leave-one-out (docs/methods.md#trloo)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import (
    centre,
    choose,
    credit_metrics,
    discounted_returns,
    episode_scores,
)
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["trloo"]


@register_estimator("trloo")
def trloo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    gamma: float = 1.0,
    singleton: Literal["raw", "zero"] = "raw",
) -> Credit:
    """Turn-level REINFORCE leave-one-out (Dr. Kernel, hkust-nlp/KernelGYM).

    Reward-to-go ``G_{i,t} = r_{i,t} + gamma * G_{i,t+1}``; the baseline of turn ``t`` of
    episode ``i`` is the mean return of the OTHER episodes of the same group at the same
    turn index: ``A_{i,t} = N_t/(N_t-1) * (G_{i,t} - mean_t(G))`` where ``N_t`` episodes
    reached turn ``t``. Removes GRPO's self-inclusion bias. No std normalisation. Status:
    VERIFIED-CODE (KernelGYM ``compute_multi_turn_rloo_outcome_advantage``, recipe
    defaults).

    Args:
        batch: The turns; per-turn rewards, turn indices and group membership are used.
        ctx: Unused.
        gamma: Discount over turns (recipe default 1.0).
        singleton: A turn index reached by one episode of the group: ``"raw"`` keeps its
            return (the reference, "not 0!") or ``"zero"``.

    Returns:
        One advantage per turn, the returns ``G_{i,t}``, and the standard metrics (scores:
        undiscounted episode return).

    Degenerate cases: equal returns at a turn index give exactly 0; episodes that stopped
    early drop out of later turn groups; truncated episodes are treated as terminated. With
    one turn per episode this equals :func:`~turngym.trainers.credit.rloo.rloo` on returns.
    """
    choose("singleton", singleton, ("raw", "zero"))
    returns = discounted_returns(batch, gamma)
    depth = int(batch.turn.max()) + 1 if batch.n_turns else 1
    _, key = np.unique(batch.group * depth + batch.turn, return_inverse=True)
    size, centred = centre(returns, key, int(key.max()) + 1 if batch.n_turns else 0)
    n = size[key]
    lonely = returns if singleton == "raw" else np.zeros_like(returns)
    advantages = np.where(n > 1, centred * n / np.maximum(n - 1, 1), lonely)
    scores = episode_scores(batch, "return")
    return Credit(advantages, returns=returns, metrics=credit_metrics(batch, advantages, scores))
