"""Vectorised pieces shared by the probe-based estimators (IGPO family, SIOP, GRPO-VPS, SWAP).

All functions take per-turn arrays in the batch's row order and return new arrays; none
mutates its input. "Turn position" arrays (last turn of each episode, next row) come from the
batch's structure, never from which rewards happen to be non-zero.
"""

from __future__ import annotations

import numpy as np

from turngym.trainers.credit._common import centre, choose, discounted_sums
from turngym.trainers.credit.types import TurnBatch

__all__ = [
    "last_turn_mask",
    "next_values",
    "info_gain",
    "discounted_sums",
    "pooled_normalise",
    "zscore",
]


def last_turn_mask(batch: TurnBatch) -> np.ndarray:
    """True on the last turn row of every episode."""
    last = np.zeros(batch.n_turns, bool)
    ends = batch.episode_start + batch.episode_length - 1
    last[ends[batch.episode_length > 0]] = True
    return last


def next_values(batch: TurnBatch, values: np.ndarray) -> np.ndarray:
    """``values`` of the next turn of the same episode; NaN on last turns."""
    out = np.full(batch.n_turns, np.nan)
    inner = ~last_turn_mask(batch)
    out[inner] = values[np.flatnonzero(inner) + 1]
    return out


def info_gain(batch: TurnBatch, logprob: np.ndarray, kind: str) -> np.ndarray:
    """IGPO's information gain of each non-final turn (arXiv 2510.14967, Sec. 3.2).

    ``logprob[t]`` is the mean token log-probability of the gold answer at turn ``t``'s prompt;
    the gain of turn ``t`` is the change from its prompt to the next turn's prompt (so it
    covers the turn's action and the observation it brought back): ``exp(lp_{t+1}) -
    exp(lp_t)`` for ``"prob_diff"``, ``lp_{t+1} - lp_t`` for ``"log_prob_diff"``. NaN on last
    turns and where a probe is missing.
    """
    choose("info_gain", kind, ("prob_diff", "log_prob_diff"))
    values = np.exp(logprob) if kind == "prob_diff" else np.asarray(logprob, np.float64)
    gain: np.ndarray = next_values(batch, values) - values
    return gain


def pooled_normalise(
    values: np.ndarray,
    member: np.ndarray,
    seg: np.ndarray,
    n_seg: int,
    *,
    ddof: int,
    eps: float,
    by_std: bool = True,
    var_floor: float = 0.0,
    small_std: float = 0.0,
) -> np.ndarray:
    """``(v - mean) / (std + eps)`` over the members of each segment; 0 for non-members.

    Args:
        values: One value per item (non-members may hold anything, NaN included).
        member: Which items enter their segment's statistics and get a value.
        seg: Segment id per item.
        n_seg: Number of segments.
        ddof: 0 for the population std, 1 for the unbiased one.
        eps: Added to the std.
        by_std: Divide by the std (else only centre).
        var_floor: Added to the variance inside the square root (IGPO's 1e-8).
        small_std: A std at or below this becomes 1 (SIOP: ``std < eps -> 1``).

    A segment with at most one member has std 1 and centres its member to 0; a segment whose
    members are all equal gives exactly 0.
    """
    member = np.asarray(member, bool)
    v = np.where(member, values, 0.0)
    w = member.astype(np.float64)
    total, centred = centre(v, seg, n_seg, w)
    if not by_std:
        return np.where(member, centred, 0.0)
    squares = np.bincount(seg, weights=w * centred * centred, minlength=n_seg)
    dof = total - ddof
    var = np.divide(squares, dof, out=np.zeros(n_seg), where=dof > 0)
    std = np.sqrt(var + var_floor)
    std[(total <= 1) | (std <= small_std)] = 1.0
    return np.where(member, centred / (std[seg] + eps), 0.0)


def zscore(
    values: np.ndarray, member: np.ndarray, seg: np.ndarray, n_seg: int, eps: float = 1e-6
) -> np.ndarray:
    """Unbiased z-score of the members of each segment; a lone member (or none) gives 0."""
    return pooled_normalise(values, member, seg, n_seg, ddof=1, eps=eps)
