"""IGPO: Information Gain-based Policy Optimization (arXiv 2510.14967; docs/methods.md#igpo)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import choose, credit_metrics, episode_scores
from turngym.trainers.credit._probe_common import (
    discounted_sums,
    info_gain,
    last_turn_mask,
    pooled_normalise,
)
from turngym.trainers.credit.probe_values import ProbeNeeds, gold_targets, probe_values
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["igpo", "gold_probe_needs", "igpo_turn_rewards"]


def gold_probe_needs(options: Mapping[str, Any]) -> ProbeNeeds:
    """The gold answer scored at every turn's prompt (IGPO, A²TGPO)."""
    return ProbeNeeds(targets=gold_targets, points=frozenset({"before"}), gold=True)


def igpo_turn_rewards(
    batch: TurnBatch, logprob: np.ndarray, scores: np.ndarray, kind: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IGPO's turn rewards: information gain on non-final turns, the episode score on the last.

    Args:
        batch: The turns.
        logprob: Mean log-probability of the gold answer at each turn's prompt (NaN: none).
        scores: Per-episode score given to the last turn (IGPO: the answer's F1).
        kind: ``"prob_diff"`` or ``"log_prob_diff"``.

    Returns:
        ``(reward, is_ig, is_last)``: per-turn reward (0 where there is none) and which
        turns carry an information-gain or a final reward. An episode without probes (no
        gold answer) has only its final reward, as the reference code's F1-only fallback.
    """
    last = last_turn_mask(batch)
    gain = info_gain(batch, logprob, kind)
    is_ig = ~last & np.isfinite(gain)
    reward = np.where(last, scores[batch.episode], np.where(is_ig, gain, 0.0))
    return reward, is_ig, last


@register_estimator("igpo", probes=gold_probe_needs)
def igpo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    info_gain: Literal["log_prob_diff", "prob_diff"] = "log_prob_diff",
    norm: Literal["separate", "joint"] = "separate",
    gamma: float = 1.0,
    norm_by_std: bool = True,
    eps: float = 1e-6,
    ig_weight: float = 1.0,
    outcome_weight: float = 1.0,
    score: Literal["outcome", "return"] = "outcome",
) -> Credit:
    """Information Gain-based Policy Optimization (Wang et al., arXiv 2510.14967, ICLR 2026).

    Turn ``t`` of an episode earns the information gain of the policy's belief in the gold
    answer ``a*``: ``IG_t = p_{t+1} - p_t`` (``prob_diff``, the paper's Eq. for the IG reward)
    or ``lp_{t+1} - lp_t`` (``log_prob_diff``), where ``lp_t`` is the mean token
    log-probability of ``a*`` written as the answer at turn ``t``'s prompt (the rollout
    policy, teacher-forced) and ``p_t = exp(lp_t)``; the last turn earns the episode score
    (the answer's F1). Rewards are normalised within the task's group over the reward
    positions, ``rhat = (r - mean) / (std + eps)`` with ``std = sqrt(pop. var + 1e-8)``
    (``std := 1`` for a single value), and accumulated ``A_t = rhat_t + gamma * A_{t+1}``.
    Status: VERIFIED-CODE (the Feb-2026 update of the authors' code:
    ``compute_grpo_outcome_advantage`` with the turn-level accumulation; ``train.sh``
    defaults ``log_prob_diff`` and separate normalisation).

    Turn boundaries come from the episode's turns, not from which rewards are non-zero (the
    reference code's boundary detection merges turns whose normalised reward is exactly 0).

    Args:
        batch: The turns; outcomes (or returns) and groups are used.
        ctx: ``ctx.probe`` holds :class:`~turngym.trainers.credit.probe_values.ProbeValues`
            with the gold answer probed before every turn.
        info_gain: ``"log_prob_diff"`` (train.sh since Feb 2026) or ``"prob_diff"`` (paper).
        norm: ``"separate"`` normalises final rewards among final rewards and IG among IG
            (train.sh); ``"joint"`` pools both (paper, function default; with it, equal
            outcomes need not give zero advantages).
        gamma: Discount of the turn accumulation.
        norm_by_std: Divide by the std (``norm_adv_by_std_in_grpo``).
        eps: Added to the std.
        ig_weight: Multiplies IG rewards before normalisation (curriculum weight ``w_ig``).
        outcome_weight: Multiplies the final rewards (``w_f1``).
        score: Final reward: ``"outcome"`` (``Episode.outcome``) or ``"return"``.

    Returns:
        Advantages, the turn rewards as ``returns``, standard metrics, ``ig_mean`` and
        ``ig_turn_frac`` (share of turns that carry an IG reward).

    Degenerate cases: a group of one, or a reward type with one value in its group, gives 0
    for it; an episode without a gold answer has only its final reward; single-turn episodes
    are outcome-only; truncated episodes are treated as finished.
    """
    mode = choose("norm", norm, ("separate", "joint"))
    probes = probe_values(ctx, batch, "igpo")
    scores = episode_scores(batch, score)
    lp = probes.before[:, 0] if probes.before.shape[1] else np.full(batch.n_turns, np.nan)
    reward, is_ig, last = igpo_turn_rewards(batch, lp, scores, info_gain)
    reward = np.where(is_ig, ig_weight * reward, outcome_weight * reward)
    position = is_ig | last
    seg, n_seg = batch.group, batch.n_groups
    if mode == "separate":
        seg, n_seg = 2 * batch.group + last, 2 * batch.n_groups
    rhat = pooled_normalise(reward, position, seg, n_seg, ddof=0, eps=eps, by_std=norm_by_std,
                            var_floor=1e-8)  # fmt: skip
    advantages = discounted_sums(batch, rhat, gamma)
    metrics = credit_metrics(batch, advantages, scores)
    metrics["ig_mean"] = float(reward[is_ig].mean()) if is_ig.any() else 0.0
    metrics["ig_turn_frac"] = float(is_ig.mean()) if batch.n_turns else 0.0
    return Credit(advantages, returns=reward, metrics=metrics)
