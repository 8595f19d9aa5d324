"""SeeUPO: per-turn GRAE advantages for reverse-order sequential updates (arXiv 2602.06554)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from turngym.trainers.credit import Plug, register_estimator
from turngym.trainers.credit._common import centre, credit_metrics, episode_scores
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["seeupo", "special_norm", "mirror_ratio"]


def special_norm(values: np.ndarray, clip: float = 3.0) -> np.ndarray:
    """Batch standardisation with unbiased std (centre only when std <= 1e-6), then clamp.

    Example:
        >>> centred = np.array([0.75, -0.25, -0.25, -0.25, 0.25, 0.25, -0.75, 0.25])
        >>> [round(x, 4) for x in special_norm(centred).tolist()][:3]
        [1.6202, -0.5401, -0.5401]
    """
    if values.size == 0:
        empty: np.ndarray = values.copy()
        return empty
    out = values - values.mean()
    std = float(out.std(ddof=1)) if values.size > 1 else 0.0
    if std > 1e-6:
        out = out / std
    clipped: np.ndarray = np.clip(out, -clip, clip)
    return clipped


def mirror_ratio(previous: np.ndarray | None, mean_log_ratio: np.ndarray, eps_low: float = 0.2,
                 eps_high: float = 0.2) -> np.ndarray:  # fmt: skip
    """SeeUPO's clipped sequence-ratio product after one turn's update (clamped twice).

    ``s = clamp(exp(clamp(mean log-ratio, -10, 10)), 1 - eps_low, 1 + eps_high)`` and
    ``M = clamp(M_prev * s, 1 - eps_low, 1 + eps_high)`` (``M_prev`` = 1 at the first turn).

    Example:
        >>> m = mirror_ratio(None, np.array([0.05, 0.3, -0.4]))
        >>> [round(x, 4) for x in m.tolist()]
        [1.0513, 1.2, 0.8]
        >>> [round(x, 4) for x in mirror_ratio(m, np.full(3, 0.1)).tolist()]
        [1.1618, 1.2, 0.8841]
    """
    low, high = 1.0 - eps_low, 1.0 + eps_high
    s = np.clip(np.exp(np.clip(mean_log_ratio, -10.0, 10.0)), low, high)
    base = np.ones_like(s) if previous is None else previous
    ratio: np.ndarray = np.clip(base * s, low, high)
    return ratio


@register_estimator("seeupo", schedule=Plug("reverse_turn"))
def seeupo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    score: Literal["outcome", "return"] = "outcome",
    norm: bool = True,
    clip: float = 3.0,
) -> Credit:
    """SeeUPO's critic-free per-turn advantage (arXiv 2602.06554; AgentEvolver ``seeupo``).

    Each turn is a "virtual agent" (HAML view): its samples are the turn-``t`` rows of all
    episodes that reached turn ``t``. ``A = R - mean_task(R)`` over the rows of the same task
    and turn (no std: "should not norm, otherwise not converge"), then ``special_norm``
    standardises over the whole turn-``t`` batch with unbiased std and clamps to ``±clip``.
    The method's update schedule (``reverse_turn``, :mod:`turngym.trainers.schedules`)
    updates turn ``T-1`` first and multiplies each earlier turn's advantages by the clipped
    product of the sequence ratios of the turns already updated (:func:`mirror_ratio`).
    Status: VERIFIED-CODE (modelscope/AgentEvolver e59dea41, ``ba_ray_trainer.py``).

    Args:
        batch: The turns.
        ctx: Unused.
        score: Episode score ``R`` (the code uses the outcome reward).
        norm: Apply ``special_norm`` per turn index.
        clip: Clamp of the normalised advantage.

    Returns:
        Advantages and standard metrics.

    Degenerate cases: a task with one episode at turn ``t`` centres to 0; a turn batch with
    std <= 1e-6 is only centred; equal scores give 0.
    """
    scores = episode_scores(batch, score)
    n_turn = int(batch.turn.max()) + 1 if batch.n_turns else 0
    cell = batch.group * max(n_turn, 1) + batch.turn
    cells, code = np.unique(cell, return_inverse=True)
    _, advantages = centre(scores[batch.episode], code.reshape(-1), cells.size)
    if norm:
        for t in range(n_turn):
            rows = batch.turn == t
            advantages[rows] = special_norm(advantages[rows], clip)
    return Credit(advantages, metrics=credit_metrics(batch, advantages, scores))
