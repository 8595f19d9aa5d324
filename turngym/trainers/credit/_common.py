"""Vectorised building blocks shared by the credit estimators.

Segment statistics (means, stds, centred values over arbitrary integer segment ids, e.g. the
group of each episode or the anchor state of each turn) use ``np.bincount``; discounted
returns run one vectorised step per turn *depth*; the diagnostics every estimator reports are
computed here so they mean the same thing everywhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import numpy as np

from turngym.trainers.credit.types import TurnBatch

__all__ = [
    "ZERO_TOL",
    "choose",
    "centre",
    "segment_std",
    "normalise",
    "episode_scores",
    "outcome_advantage",
    "discounted_returns",
    "discounted_sums",
    "credit_metrics",
]

ZERO_TOL = 1e-12
"""Advantages with a smaller magnitude count as zero in the diagnostics."""


def choose(param: str, value: object, options: Sequence[str]) -> str:
    """Validate a string option; the error names the options and the closest one.

    Raises:
        ValueError: ``value`` is not one of ``options``.
    """
    if value not in options:
        close = difflib.get_close_matches(str(value), list(options), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{param}={value!r} is not one of {list(options)}.{hint}")
    return str(value)


def centre(
    values: np.ndarray, seg: np.ndarray, n_seg: int, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Subtract each segment's (weighted) mean from its values.

    A segment whose values are all equal centres to exactly 0: the mean of n equal floats
    computed as sum/n need not give the float back, and divided by a tiny std that rounding
    error would become a visible non-zero advantage.

    Args:
        values: One value per item.
        seg: Segment id (0 .. ``n_seg`` - 1) of each item.
        n_seg: Number of segments.
        weights: Non-negative weight per item (``None``: all 1). Zero-weight items do not
            count towards the mean but are still centred.

    Returns:
        ``(total_weight_per_segment, centred_values)``.
    """
    w = np.ones(values.size) if weights is None else weights
    total = np.bincount(seg, weights=w, minlength=n_seg)
    sums = np.bincount(seg, weights=w * values, minlength=n_seg)
    mean = np.divide(sums, total, out=np.zeros(n_seg), where=total > 0)
    active = w > 0
    lo = np.full(n_seg, np.inf)
    hi = np.full(n_seg, -np.inf)
    np.minimum.at(lo, seg[active], values[active])
    np.maximum.at(hi, seg[active], values[active])
    constant = lo == hi
    mean[constant] = lo[constant]
    return total, values - mean[seg]


def segment_std(
    centred: np.ndarray,
    seg: np.ndarray,
    n_seg: int,
    total: np.ndarray,
    ddof: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Per-segment (weighted) standard deviation from centred values; 0 where undefined."""
    w = np.ones(centred.size) if weights is None else weights
    squares = np.bincount(seg, weights=w * centred * centred, minlength=n_seg)
    dof = total - ddof
    std: np.ndarray = np.sqrt(np.divide(squares, dof, out=np.zeros(n_seg), where=dof > 0))
    return std


def normalise(
    values: np.ndarray,
    seg: np.ndarray,
    n_seg: int,
    *,
    weights: np.ndarray | None = None,
    ddof: int = 1,
    eps: float = 1e-6,
    by_std: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(v - mean_seg) / (std_seg + eps)`` (or just ``v - mean_seg`` when not ``by_std``).

    Returns:
        ``(advantages, total_weight_per_segment, std_per_segment)``.
    """
    total, centred = centre(values, seg, n_seg, weights)
    std = segment_std(centred, seg, n_seg, total, ddof, weights)
    if not by_std:
        return centred, total, std
    # A constant segment centres to exactly 0; keep it 0 even when std + eps is 0 (eps=0).
    denominator = std[seg] + eps
    out = np.zeros_like(centred)
    np.divide(centred, denominator, out=out, where=denominator > 0)
    return out, total, std


def episode_scores(batch: TurnBatch, score: str) -> np.ndarray:
    """Per-episode score: ``"outcome"`` (``Episode.outcome``) or ``"return"`` (sum of rewards)."""
    choose("score", score, ("outcome", "return"))
    if score == "outcome":
        outcomes: np.ndarray = batch.episode_outcome.copy()
        return outcomes
    returns: np.ndarray = np.bincount(batch.episode, weights=batch.reward,
                                      minlength=batch.n_episodes)  # fmt: skip
    return returns


def outcome_advantage(
    batch: TurnBatch,
    scores: np.ndarray,
    *,
    ddof: int,
    eps: float,
    by_std: bool,
    cross_steps: bool,
    singleton: str,
) -> np.ndarray:
    """Group-relative advantage of each episode (GRPO family, docs/methods.md#grpo).

    With ``cross_steps`` the group statistics weight each episode by its number of turns
    (verl-agent ``compute_mean_std_cross_steps``). A group with a single episode follows the
    ``singleton`` policy: ``"raw"`` keeps its score (verl: mean 0, std 1), ``"zero"`` gives 0.
    A group of one counts episodes, in both modes: verl-agent counts rows under cross-steps,
    so there a lone episode with several turns centres to 0 whatever the policy says.
    """
    choose("singleton", singleton, ("raw", "zero"))
    weights = batch.episode_length.astype(np.float64) if cross_steps else None
    adv, _, _ = normalise(
        scores, batch.episode_group, batch.n_groups, weights=weights, ddof=ddof, eps=eps,
        by_std=by_std,
    )  # fmt: skip
    sizes = np.bincount(batch.episode_group, minlength=batch.n_groups)
    alone = sizes[batch.episode_group] == 1
    adv[alone] = scores[alone] if singleton == "raw" else 0.0
    return adv


def discounted_returns(batch: TurnBatch, gamma: float) -> np.ndarray:
    """Reward-to-go ``G_t = r_t + gamma * G_{t+1}`` within each episode (no bootstrap)."""
    return discounted_sums(batch, batch.reward, gamma)


def discounted_sums(batch: TurnBatch, values: np.ndarray, gamma: float) -> np.ndarray:
    """``S_t = values_t + gamma * S_{t+1}`` within each episode (``S_{T+1} = 0``).

    The loop runs over turn *depth* counted from each episode's end (the longest episode's
    length), each step vectorised over every episode still that long, so the work is one
    operation per turn and the arithmetic is the reference recursion's: equal value
    sequences give bit-identical sums (a global reversed cumsum would not).
    """
    out = np.zeros(batch.n_turns)
    if batch.n_turns == 0:
        return out
    order = np.argsort(-batch.episode_length, kind="stable")
    ends = (batch.episode_start + batch.episode_length)[order]
    longest_first = batch.episode_length[order]
    depth = np.arange(int(longest_first[0]))
    active = np.searchsorted(-longest_first, -depth, side="left")  # episodes longer than d
    rows = ends[: active[0]] - 1
    out[rows] = values[rows]
    for d in depth[1:]:
        rows = ends[: active[d]] - 1 - d
        out[rows] = values[rows] + gamma * out[rows + 1]
    return out


def credit_metrics(
    batch: TurnBatch, advantages: np.ndarray, scores: np.ndarray
) -> dict[str, float]:
    """Diagnostics every estimator reports.

    ``zero_adv_group_frac``: share of groups (with at least one turn) whose advantages are
    all 0 — they give no gradient. ``sign_flips_vs_mean``: share of turns whose advantage
    sign differs from that of the plain mean-baseline advantage ``score_i - mean_g(score)``
    of their episode. ``adv_mean``/``adv_std``/``adv_abs_max`` summarise the advantages.
    """
    if batch.n_turns == 0:
        return {"zero_adv_group_frac": 0.0, "sign_flips_vs_mean": 0.0}
    nonzero = np.abs(advantages) > ZERO_TOL
    turns = np.bincount(batch.group, minlength=batch.n_groups)
    live = np.bincount(batch.group, weights=nonzero, minlength=batch.n_groups)
    _, baseline = centre(scores, batch.episode_group, batch.n_groups)
    base_sign = np.where(np.abs(baseline) > ZERO_TOL, np.sign(baseline), 0.0)[batch.episode]
    sign = np.where(nonzero, np.sign(advantages), 0.0)
    return {
        "zero_adv_group_frac": float(np.mean(live[turns > 0] == 0)),
        "sign_flips_vs_mean": float(np.mean(sign != base_sign)),
        "adv_mean": float(np.mean(advantages)),
        "adv_std": float(np.std(advantages)),
        "adv_abs_max": float(np.max(np.abs(advantages))),
    }
