"""ArCHer: an off-policy utterance-level critic and a token-level actor (arXiv 2402.19446)."""

from __future__ import annotations

from typing import Any

import numpy as np

from turngym.trainers.credit import Plug, register_estimator
from turngym.trainers.credit._common import credit_metrics, episode_scores
from turngym.trainers.credit.gae import whiten
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["archer", "td_targets"]


def td_targets(reward: Any, done: Any, next_value: Any, gamma: float) -> Any:
    """ArCHer's Q target ``y = r + (1 - done) * gamma * V_targ(s')`` (numpy or torch).

    Example:
        >>> round(float(td_targets(0.0, 0.0, 0.6, 0.95)), 4)
        0.57
    """
    return reward + (1.0 - done) * gamma * next_value


@register_estimator("archer", requires={"critic"}, critic=Plug("twin_q"))
def archer(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    warmup: int = 0,
    whiten_advantages: bool = False,
) -> Credit:
    """ArCHer's actor advantage ``A = min(Q1, Q2)(s, a) - min(V1, V2)(s)`` (no gradient).

    (Zhou et al. 2024, "ArCHer: Training Language Model Agents via Hierarchical Multi-Turn
    RL", arXiv 2402.19446, Sec. 4; code ``archer/algorithms/archer/trainer.py``.) The high
    level is an utterance-level critic trained off-policy from a replay buffer with TD targets
    (:func:`td_targets`), twin Q and V heads and a Polyak-averaged target copy
    (``critic="twin_q"``, :mod:`turngym.trainers.critic`); it is updated before this
    estimator runs. The low level is the token policy, trained with this per-utterance
    advantage on the freshly collected actions (the trainer's surrogate; with one epoch its
    gradient is ArCHer's ``-A * sum log pi``). ``Q`` is read after the full action, ``V`` at
    the state. Status: VERIFIED-CODE (YifeiZhou02/ArCHer 7c771a76); the encoder is a small
    causal LM instead of RoBERTa.

    Args:
        batch: The turns of the fresh rollouts.
        ctx: ``ctx.critic`` with heads ``q1``, ``q2`` (after the action) and ``v1``, ``v2``.
        warmup: Iterations whose advantages are 0, so only the critic learns (the code's
            ``warmup_iter``, 20 there).
        whiten_advantages: Standardise over the batch (RAGEN's ArCHer port does; the
            original does not).

    Returns:
        Advantages, metrics (``q_mean``, ``v_mean``). No value targets: the critic learns
        from its replay buffer, not from this batch's returns.
    """
    tv = ctx.critic.values(batch)
    q = np.minimum(tv.at("q1", "after"), tv.at("q2", "after"))
    v = np.minimum(tv.at("v1", "start"), tv.at("v2", "start"))
    advantages = q - v
    if ctx.step < warmup:
        advantages = np.zeros_like(advantages)
    elif whiten_advantages:
        advantages = whiten(advantages)
    metrics = credit_metrics(batch, advantages, episode_scores(batch, "return"))
    metrics["q_mean"] = float(q.mean()) if q.size else 0.0
    metrics["v_mean"] = float(v.mean()) if v.size else 0.0
    return Credit(advantages, returns=q, metrics=metrics)
