"""GRPO-VPS: GRPO with Verifiable Process Supervision (docs/methods.md#grpo-vps)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import choose, credit_metrics, episode_scores
from turngym.trainers.credit._common import outcome_advantage as group_advantage
from turngym.trainers.credit._probe_common import last_turn_mask, next_values, zscore
from turngym.trainers.credit.probe_values import ProbeNeeds, ProbeValues, gold_targets
from turngym.trainers.credit.probe_values import probe_values as read_probes
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["grpo_vps", "step_progress", "step_probe_needs"]


def step_probe_needs(options: Mapping[str, Any]) -> ProbeNeeds:
    """The gold answer scored before and after every turn's action (GRPO-VPS, SWAP)."""
    return ProbeNeeds(targets=gold_targets, points=frozenset({"before", "after"}), gold=True)


def step_progress(batch: TurnBatch, probes: ProbeValues, kind: str, span: str) -> np.ndarray:
    """Change of the belief in the gold answer across each turn (NaN where unprobed).

    Args:
        batch: The turns.
        probes: Gold answer probed before and after every action (column 0).
        kind: ``"log_prob_diff"`` (mean log-probability) or ``"prob_diff"`` (its exp).
        span: ``"action"``: from the turn's prompt to right after its action (the step
            alone); ``"turn"``: to the next turn's prompt (action and observation; the last
            turn ends after its action).
    """
    choose("span", span, ("action", "turn"))
    choose("progress", kind, ("log_prob_diff", "prob_diff"))
    if probes.before.shape[1] == 0:
        return np.full(batch.n_turns, np.nan)
    lift = np.exp if kind == "prob_diff" else np.asarray
    before, after = lift(probes.before[:, 0]), lift(probes.after[:, 0])
    end = after
    if span == "turn":
        end = np.where(last_turn_mask(batch), after, next_values(batch, before))
    progress: np.ndarray = end - before
    return progress


@register_estimator("grpo_vps", probes=step_probe_needs, unverified=("alpha", "span", "progress"))
def grpo_vps(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    alpha: float = 0.5,
    progress: Literal["log_prob_diff", "prob_diff"] = "log_prob_diff",
    span: Literal["action", "turn"] = "action",
    eps: float = 1e-6,
    singleton: Literal["raw", "zero"] = "raw",
    score: Literal["outcome", "return"] = "outcome",
) -> Credit:
    """GRPO with Verifiable Process Supervision (arXiv 2604.20659, ICLR 2026).

    At every step boundary the correct answer is appended and the policy's probability of it
    measured (the IGPO-style probe, within a trajectory); the change across a step is its
    progress ``d_k``, which refines GRPO's trajectory advantage:
    ``A_{i,k} = A_i^GRPO + alpha * z_g(d_{i,k})`` (``z_g``: unbiased z-score over the task's
    steps). Steps are turns here. Status: PAPER (abstract); the combination, the progress
    measure and ``alpha`` are UNVERIFIED reconstructions.

    Args:
        batch: The turns; outcomes and groups are used.
        ctx: ``ctx.probe``: the gold answer probed before and after every action.
        alpha: Weight of the process term.
        progress: ``"log_prob_diff"`` or ``"prob_diff"``.
        span: What a step covers (see :func:`step_progress`).
        eps: Added to the stds.
        singleton: GRPO part for a group of one.
        score: ``"outcome"`` or ``"return"``.

    Returns:
        Advantages, progress as ``returns`` (0 where unprobed), standard metrics and
        ``progress_mean``.

    Degenerate cases: equal progress in a task (or a single probed step) adds 0; episodes
    without a gold answer get the GRPO advantage only.
    """
    probes = read_probes(ctx, batch, "grpo_vps")
    scores = episode_scores(batch, score)
    base = group_advantage(batch, scores, ddof=1, eps=eps, by_std=True, cross_steps=False,
                           singleton=singleton)[batch.episode]  # fmt: skip
    d = step_progress(batch, probes, progress, span)
    probed = np.isfinite(d)
    advantages = base + alpha * zscore(d, probed, batch.group, batch.n_groups, eps)
    metrics = credit_metrics(batch, advantages, scores)
    metrics["progress_mean"] = float(d[probed].mean()) if probed.any() else 0.0
    return Credit(advantages, returns=np.where(probed, d, 0.0), metrics=metrics)
