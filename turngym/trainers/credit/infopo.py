"""InfoPO: Information-driven Policy Optimization (arXiv 2603.00656; docs/methods.md#infopo)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import (
    centre,
    choose,
    credit_metrics,
    discounted_returns,
    episode_scores,
    outcome_advantage,
    segment_std,
)
from turngym.trainers.credit.probe_values import ProbeNeeds, TokenValues, probe_values
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["infopo"]


def _needs(options: Mapping[str, Any]) -> ProbeNeeds:
    return ProbeNeeds(counterfactual=True)


def _weighted_std(values: np.ndarray, weights: np.ndarray) -> float:
    """Unbiased std of ``values`` repeated ``weights`` times (0 with fewer than two)."""
    total = float(weights.sum())
    if total < 2:
        return 0.0
    mean = float((values * weights).sum() / total)
    return float(np.sqrt((weights * (values - mean) ** 2).sum() / (total - 1)))


def _outcome_tokens(
    batch: TurnBatch, z: np.ndarray, n_tok: np.ndarray, credit: str, gamma: float
) -> np.ndarray:
    """Per-turn token value of the outcome advantage under the turn-credit scheme.

    ``Equalized``: every token of the episode carries ``z_i``. ``R2G``: token value
    ``c_t`` = reward-to-go of its turn, scaled so the row's mean over non-zero tokens is
    ``z_i`` (``factor = z_i * nnz / sum``); rows whose credits sum to 0 get 0.
    """
    if credit == "equalized":
        equalized: np.ndarray = z[batch.episode]
        return equalized
    c = discounted_returns(batch, gamma)
    nonzero = (c != 0) * n_tok
    nnz = np.bincount(batch.episode, weights=nonzero, minlength=batch.n_episodes)
    total = np.bincount(batch.episode, weights=c * n_tok, minlength=batch.n_episodes)
    factor = np.divide(z * nnz, total, out=np.zeros_like(z), where=total != 0)
    scaled: np.ndarray = c * factor[batch.episode]
    return scaled


@register_estimator("infopo", probes=_needs)
def infopo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    intrinsic_weight: float = 0.1,
    decay: float = 0.0,
    gate_temperature: float = 0.05,
    turn_credit: Literal["equalized", "r2g"] = "equalized",
    gamma: float = 0.8,
    eps: float = 1e-6,
    score: Literal["return", "outcome"] = "return",
) -> Credit:
    """Information-driven Policy Optimization (authors' code kfq20/InfoPO).

    A turn is valuable when the feedback it elicited changes what the agent does next. With the
    observation after turn ``t`` replaced by a placeholder, the next action's mean token
    log-likelihood drops by ``IG_t = mean_u [log pi(u | ..., o_t) - log pi(u | ..., ph)]``;
    each token of ``a_t`` gets intrinsic reward ``IG_t / |a_t|``. Intrinsic token rewards are
    z-scored over the task's non-zero ones (``A_int``), the outcome advantage is GRPO's
    (``A_out``), and they are fused with a variance gate and bounded scaling:
    ``A = A_out + beta_t * sigmoid(-sigma_g / T) * k * A_int``, ``beta_t = w * exp(-decay *
    step)``, ``k = min(1, max(std(A_out) + eps, 1) / (std(A_int) + eps))`` over the batch's
    tokens, ``sigma_g`` the std of the task's outcomes. Status: VERIFIED-CODE
    (``compute_info_grpo_advantage``, ``compute_intrinsic_rewards``); the placeholder text is
    rendered in place of the observation rather than padded to its token length.

    Args:
        batch: The turns; scores and groups are used.
        ctx: ``ctx.probe``: factual and counterfactual next-action log-probabilities and
            the action token counts; ``ctx.step`` drives the decay.
        intrinsic_weight: ``beta_0`` (0.1).
        decay: ``intrinsic_decay_rate`` per training step.
        gate_temperature: ``T`` of the variance gate (0.05).
        turn_credit: ``"equalized"`` (default) or ``"r2g"`` (reward-to-go turn credits).
        gamma: Discount of the ``r2g`` credits (0.8).
        eps: Added to stds.
        score: Trajectory score: ``"return"`` (sum of turn rewards, the code's "Sum") or
            ``"outcome"``.

    Returns:
        Per-turn advantages (mean of the turn's tokens), per-token advantages, standard
        metrics, ``gate_mean`` and ``intrinsic_turn_frac``.

    Degenerate cases: the gate is 0.5, not 1, when a task's outcomes are equal; the last turn
    and turns whose next prompt lost no observation get no intrinsic reward; a single non-zero
    intrinsic reward in a task z-scores to 0.
    """
    choose("turn_credit", turn_credit, ("equalized", "r2g"))
    probes = probe_values(ctx, batch, "infopo")
    if probes.next_factual is None or probes.next_counterfactual is None:
        raise ValueError("infopo needs next_factual and next_counterfactual in ctx.probe")
    n_tok = probes.action_tokens.astype(np.float64)
    scores = episode_scores(batch, score)
    z = outcome_advantage(batch, scores, ddof=1, eps=eps, by_std=True, cross_steps=False,
                          singleton="raw")  # fmt: skip
    a_out = _outcome_tokens(batch, z, n_tok, turn_credit, gamma)
    gain = np.nan_to_num(probes.next_factual - probes.next_counterfactual)
    per_token = np.divide(gain, n_tok, out=np.zeros(batch.n_turns), where=n_tok > 0)
    active = (per_token != 0) & (n_tok > 0)
    # Every token of a turn carries the same reward, so the pooled token statistics are the
    # turn statistics weighted by token counts.
    weights = np.where(active, n_tok, 0.0)
    total, centred = centre(per_token, batch.group, batch.n_groups, weights)
    std = segment_std(centred, batch.group, batch.n_groups, total, 1, weights)
    std[total <= 1] = 1.0  # a single value: mean = value, std = 1
    a_int = np.where(active, centred / (std[batch.group] + eps), 0.0)
    k = min(1.0, max(_weighted_std(a_out, n_tok) + eps, 1.0) / (_weighted_std(a_int, n_tok) + eps))
    _, spread = centre(scores, batch.episode_group, batch.n_groups)
    sigma = segment_std(spread, batch.episode_group, batch.n_groups,
                        np.bincount(batch.episode_group, minlength=batch.n_groups), 1)  # fmt: skip
    gate = np.exp(-np.logaddexp(0.0, sigma / gate_temperature))  # sigmoid(-sigma / T)
    beta = intrinsic_weight * np.exp(-decay * ctx.step)
    values = a_out + beta * gate[batch.group] * k * a_int
    tokens = np.repeat(values, probes.action_tokens)
    advantages = np.where(n_tok > 0, values, z[batch.episode])
    metrics = credit_metrics(batch, advantages, scores)
    metrics["gate_mean"] = float(gate.mean()) if gate.size else 0.0
    metrics["intrinsic_turn_frac"] = float(active.mean()) if batch.n_turns else 0.0
    offsets = np.concatenate([[0], np.cumsum(probes.action_tokens)])
    split = TokenValues(tokens, offsets).split()
    return Credit(advantages, token_advantages=split, metrics=metrics)
