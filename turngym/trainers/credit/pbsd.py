"""PBSD: Privileged Bayesian Self-Distillation (arXiv 2606.09348; docs/methods.md#pbsd)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import choose, credit_metrics, episode_scores
from turngym.trainers.credit._common import outcome_advantage as group_advantage
from turngym.trainers.credit._probe_common import last_turn_mask, zscore
from turngym.trainers.credit.probe_values import ProbeNeeds, ProbeValues, probe_values
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["pbsd", "turn_evidence"]


def turn_evidence(batch: TurnBatch, probes: ProbeValues) -> tuple[np.ndarray, np.ndarray]:
    """PBSD's turn credits and trajectory evidence (the Bayes identity of the paper).

    ``c_{i,t} = sum_{u in a_{i,t}} log pi(u | h, y*) - log pi(u | h)`` (teacher minus student)
    and ``E_i = sum_t c_{i,t} = log p(y* | q, tau_i) - log p(y* | q)``.

    Returns:
        ``(c per turn, E per episode)``; 0 where the probes are missing.
    """
    if probes.teacher is None or probes.student is None:
        raise ValueError("pbsd needs teacher and student log-probabilities in ctx.probe")
    gap = np.nan_to_num(probes.teacher.values - probes.student.values)
    c = np.bincount(probes.teacher.owner(), weights=gap, minlength=batch.n_turns)
    return c, np.bincount(batch.episode, weights=c, minlength=batch.n_episodes)


def _needs(options: Mapping[str, Any]) -> ProbeNeeds:
    return ProbeNeeds(teacher=True, gold=True)


@register_estimator("pbsd", probes=_needs, unverified=("combine", "unit", "alpha"))
def pbsd(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    unit: Literal["token", "turn"] = "token",
    reduce: Literal["mean", "sum"] = "mean",
    combine: Literal["add", "scale"] = "add",
    alpha: float = 0.5,
    weight_min: float = 0.5,
    weight_max: float = 2.0,
    exclude_final_turn: bool = True,
    eps: float = 1e-6,
    singleton: Literal["raw", "zero"] = "raw",
    score: Literal["outcome", "return"] = "outcome",
) -> Credit:
    """Privileged Bayesian Self-Distillation (arXiv 2606.09348).

    By Bayes' rule the posterior-to-prior ratio of the verified answer ``y*`` equals the
    likelihood ratio of the trajectory under an answer-conditioned teacher (the same model with
    ``y*`` in its context) and the student policy; its log decomposes over tokens,
    ``g_u = log pi(u | h, y*) - log pi(u | h)``, and turns, ``c_t = sum_{u in a_t} g_u``
    (:func:`turn_evidence`). Status: PAPER (abstract); the identity follows from it, how the
    credits enter the RL objective is UNVERIFIED. Here (``combine="add"``, default) each action
    token gets ``A = A_GRPO + alpha * z(g)``, the gap z-scored over the task's tokens
    (``unit="token"``), or over its turns' per-turn credits (``unit="turn"``, ``reduce``
    mean or sum: per-token means remove the length bias); ``combine="scale"`` uses
    ``A = A_GRPO * clip(exp(g), weight_min, weight_max)`` instead.

    Args:
        batch: The turns; outcomes and groups are used.
        ctx: ``ctx.probe``: teacher and student log-probability of every action token.
        unit: Normalise per ``"token"`` (per-token advantages) or per ``"turn"``.
        reduce: Turn credit from its tokens' gaps (``unit="turn"``).
        combine: ``"add"`` or ``"scale"`` (both UNVERIFIED, as the paper's "reweighting").
        alpha: Weight of the credit term with ``combine="add"``.
        weight_min: Lower clip of the weight with ``combine="scale"``.
        weight_max: Upper clip of the weight with ``combine="scale"``.
        exclude_final_turn: Give the last turn no credit: a teacher that knows ``y*`` simply
            copies it into the answer (common practice excludes the answer turn).
        eps: Added to the stds.
        singleton: GRPO part for a group of one: ``"raw"`` or ``"zero"``.
        score: ``"outcome"`` or ``"return"`` for the GRPO part.

    Returns:
        Per-turn advantages (mean of the turn's token advantages), per-token advantages,
        standard metrics, ``evidence_mean`` and ``credit_flip_frac`` (share of credited
        turns whose credit sign differs from their episode's GRPO advantage).

    Degenerate cases: teacher equal to the student gives the GRPO advantages; an episode
    without a gold answer (teacher not scored) gets no credit term; a lone token or turn in
    its group z-scores to 0; the credit term is 0 for turns without tokens.
    """
    choose("unit", unit, ("token", "turn"))
    mode = choose("combine", combine, ("add", "scale"))
    probes = probe_values(ctx, batch, "pbsd")
    scores = episode_scores(batch, score)
    base = group_advantage(batch, scores, ddof=1, eps=eps, by_std=True, cross_steps=False,
                           singleton=singleton)[batch.episode]  # fmt: skip
    c, evidence = turn_evidence(batch, probes)
    assert probes.teacher is not None and probes.student is not None
    owner = probes.teacher.owner()
    gap = probes.teacher.values - probes.student.values
    credited = np.isfinite(gap) & ~(exclude_final_turn & last_turn_mask(batch))[owner]
    gap = np.where(credited, gap, 0.0)
    if mode == "scale":
        weight = np.where(credited, np.clip(np.exp(gap), weight_min, weight_max), 1.0)
        token_adv = base[owner] * weight
    elif unit == "token":
        z = zscore(gap, credited, batch.group[owner], batch.n_groups, eps)
        token_adv = base[owner] + alpha * z
    else:
        n_tok = np.maximum(probes.action_tokens, 1)
        turn_credit = c / n_tok if choose("reduce", reduce, ("mean", "sum")) == "mean" else c
        has = np.bincount(owner, weights=credited, minlength=batch.n_turns) > 0
        z = zscore(turn_credit, has, batch.group, batch.n_groups, eps)
        token_adv = base[owner] + alpha * z[owner]
    sums = np.bincount(owner, weights=token_adv, minlength=batch.n_turns)
    n = probes.action_tokens
    advantages = np.where(n > 0, sums / np.maximum(n, 1), base)
    metrics = credit_metrics(batch, advantages, scores)
    metrics["evidence_mean"] = float(evidence.mean()) if evidence.size else 0.0
    credited_turn = np.bincount(owner, weights=credited, minlength=batch.n_turns) > 0
    signed = credited_turn & (np.abs(base) > 1e-12) & (np.abs(c) > 1e-12)
    flips = signed & (np.sign(c) != np.sign(base))
    metrics["credit_flip_frac"] = float(flips.sum() / max(int(signed.sum()), 1))
    return Credit(advantages, token_advantages=probes.teacher.split(token_adv), metrics=metrics)
