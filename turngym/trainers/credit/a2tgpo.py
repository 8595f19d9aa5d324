"""A²TGPO: turn-group policy optimization, adaptive turn clipping (docs/methods.md#a2tgpo)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import choose, credit_metrics, episode_scores
from turngym.trainers.credit._probe_common import discounted_sums, zscore
from turngym.trainers.credit.igpo import gold_probe_needs, igpo_turn_rewards
from turngym.trainers.credit.probe_values import ProbeNeeds, ProbeValues, gold_targets, probe_values
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["a2tgpo", "clip_scale"]


def clip_scale(normalised: np.ndarray, beta: float) -> np.ndarray:
    """Adaptive clip factor ``c = 1 + beta * (2 * sigmoid(nIG) - 1)``, in ``(1 - beta, 1 + beta)``.

    Example:
        >>> [round(float(c), 4) for c in clip_scale(np.array([-2.0, 0.0, 1.0, 3.0]), 0.3)]
        [0.7715, 1.0, 1.1386, 1.2715]
    """
    return 1.0 + beta * np.tanh(np.asarray(normalised, np.float64) / 2.0)  # 2σ(x) - 1 = tanh(x/2)


def _divisor(batch: TurnBatch, rescale: str, gamma: float) -> np.ndarray:
    """How many (discounted) terms each turn's accumulated advantage sums, square-rooted."""
    terms = (batch.episode_length[batch.episode] - batch.turn).astype(np.float64)
    if rescale == "none":
        return np.ones(batch.n_turns)
    if rescale == "sqrt_terms" or gamma == 1.0:
        root: np.ndarray = np.sqrt(terms)
        return root
    g2 = gamma * gamma  # sum_{k<n} gamma^(2k)
    divisor: np.ndarray = np.sqrt((1.0 - g2**terms) / (1.0 - g2))
    return divisor


def _needs(options: Mapping[str, Any]) -> ProbeNeeds:
    if choose("final_reward", options["final_reward"], ("outcome", "info_gain")) == "outcome":
        return gold_probe_needs(options)
    return ProbeNeeds(targets=gold_targets, points=frozenset({"before", "after"}), gold=True)


def _turn_rewards(
    batch: TurnBatch, probes: ProbeValues, scores: np.ndarray, kind: str, final: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn rewards, which turns carry one, and the normalisation segment of each turn.

    IG turns are grouped by (task, depth); with ``final="outcome"`` the final rewards form one
    group per task of their own (as IGPO's separate normalisation), with ``"info_gain"`` the
    last turn earns the gain from its prompt to right after its action, at its depth.
    """
    lp = probes.before[:, 0] if probes.before.shape[1] else np.full(batch.n_turns, np.nan)
    reward, is_ig, last = igpo_turn_rewards(batch, lp, scores, kind)
    depth = np.where(last, -1, batch.turn) if final == "outcome" else batch.turn
    if final == "info_gain":
        after = probes.after[:, 0] if probes.after.shape[1] else np.full(batch.n_turns, np.nan)
        gain = after - lp if kind == "log_prob_diff" else np.exp(after) - np.exp(lp)
        reward = np.where(last, gain, reward)
        last = last & np.isfinite(gain)
    width = int(batch.episode_length.max(initial=0)) + 1
    _, seg = np.unique(batch.group * width + depth + 1, return_inverse=True)
    return reward, is_ig | last, seg.reshape(-1)


@register_estimator(
    "a2tgpo", probes=_needs, unverified=("rescale", "adaptive_clip", "beta", "final_reward")
)
def a2tgpo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    info_gain: Literal["log_prob_diff", "prob_diff"] = "log_prob_diff",
    gamma: float = 1.0,
    eps: float = 1e-6,
    rescale: Literal["sqrt_terms", "sqrt_discounted", "none"] = "sqrt_terms",
    adaptive_clip: bool = True,
    beta: float = 0.3,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    final_reward: Literal["outcome", "info_gain"] = "outcome",
    score: Literal["outcome", "return"] = "outcome",
) -> Credit:
    """Agentic Turn-Group Policy Optimization (arXiv 2605.06200).

    IGPO's turn rewards (information gain of the gold answer on non-final turns, the episode
    score on the last) are (i) normalised among the group's turns at the same depth,
    ``nIG_{i,t} = (r_{i,t} - mean_{j,t}) / (std_u + eps)``; (ii) accumulated and rescaled,
    ``A_{i,t} = sum_{k>=t} gamma^(k-t) nIG_{i,k} / sqrt(T_i - t + 1)``, so the magnitude does
    not grow with the number of terms; (iii) each turn gets its own PPO clip range
    ``eps * (1 + beta * (2 sigmoid(nIG) - 1))``, wider for informative turns, carried in
    ``Credit.clip_ranges`` and applied per token by the loss. Status: PAPER (abstract) and a
    secondary description of the released code; the turn-depth groups are the abstract's.
    UNVERIFIED: the rescaling's exact form (``rescale``), how the outcome enters
    (``final_reward``: by default the last turn's reward, normalised among the task's final
    rewards as in IGPO's separate mode, so equal outcomes give no signal; ``"info_gain"``: no
    outcome, the last turn's gain up to right after its action), and the clip formula
    (``adaptive_clip``, ``beta``).

    Args:
        batch: The turns; outcomes, groups and turn indices are used.
        ctx: ``ctx.probe``: the gold answer probed before every turn.
        info_gain: ``"log_prob_diff"`` or ``"prob_diff"`` (as IGPO).
        gamma: Discount of the accumulation.
        eps: Added to the std.
        rescale: Divide by ``sqrt(number of terms)`` (``"sqrt_terms"``), by
            ``sqrt(sum gamma^(2k))`` (``"sqrt_discounted"``), or not (``"none"``).
        adaptive_clip: Emit per-turn clip ranges; ``False`` leaves the trainer's.
        beta: Width of the clip adaptation (secondary source: 0.3).
        clip_low: Base lower clip epsilon scaled per turn (replaces the trainer's).
        clip_high: Base upper clip epsilon scaled per turn.
        final_reward: ``"outcome"`` or ``"info_gain"`` (see above).
        score: Final reward: ``"outcome"`` or ``"return"``.

    Returns:
        Advantages, per-turn clip ranges, turn rewards as ``returns``, standard metrics and
        ``clip_scale_mean``.

    Degenerate cases: a (task, depth) group with one member gives ``nIG = 0`` (library
    choice), as does an equal-valued group; a turn without an IG value (no gold answer) gets
    ``nIG = 0`` and clip scale 1.
    """
    choose("rescale", rescale, ("sqrt_terms", "sqrt_discounted", "none"))
    final = choose("final_reward", final_reward, ("outcome", "info_gain"))
    probes = probe_values(ctx, batch, "a2tgpo")
    scores = episode_scores(batch, score)
    reward, member, seg = _turn_rewards(batch, probes, scores, info_gain, final)
    normalised = zscore(reward, member, seg, int(seg.max(initial=-1)) + 1, eps)  # (i)
    advantages = discounted_sums(batch, normalised, gamma) / _divisor(batch, rescale, gamma)
    clip_ranges = None
    metrics = credit_metrics(batch, advantages, scores)
    if adaptive_clip:  # (iii)
        scale = clip_scale(normalised, beta)
        clip_ranges = np.column_stack([clip_low * scale, clip_high * scale])
        metrics["clip_scale_mean"] = float(scale.mean()) if batch.n_turns else 1.0
    return Credit(advantages, clip_ranges=clip_ranges, returns=reward, metrics=metrics)
