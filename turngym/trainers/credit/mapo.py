"""MAPO: judge-scored turns, Monte Carlo returns, mixed turn/batch normalisation."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import (
    choose,
    credit_metrics,
    discounted_returns,
    normalise,
)
from turngym.trainers.credit._structure import judge_scores
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["mapo"]


@register_estimator("mapo", requires_if={"judge": ("source", "judge")}, unverified=("lam", "mix"))
def mapo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    gamma: float = 1.0,
    lam: float = 0.5,
    mix: Literal["sum", "whiten"] = "whiten",
    outcome_weight: float = 0.0,
    eps: float = 1e-6,
    turn_singleton: Literal["batch", "zero"] = "batch",
    source: Literal["reward", "judge", "info"] = "reward",
    info_key: str = "judge_score",
) -> Credit:
    """Mixed Advantage Policy Optimization (arXiv 2603.06194, abstract only).

    A judge scores every turn (``s_t``: on EmotionalSupport, the change in the seeker's
    state); Monte Carlo returns ``G_t = sum_{k>=t} gamma^(k-t) s_k`` (plus ``outcome_weight``
    times the episode outcome on the last turn) carry later effects back. The advantage mixes
    a turn-level normalisation (``G_t`` against the group's returns at the same turn index)
    with a batch-level one (against every return of the batch):
    ``A = lam * A_turn + (1 - lam) * A_batch`` (``mix="sum"``), or ``A_turn`` re-whitened over
    the batch (``mix="whiten"``). Status: PAPER (abstract); every formula here is UNVERIFIED
    (the mixing form and weight are not published).

    Args:
        batch: The turns.
        ctx: ``judge(batch)`` gives the per-turn scores with ``source="judge"`` (the
            trainer sets it for envs that declare a per-turn judge).
        gamma: Discount of the returns.
        lam: Weight of the turn-level term in ``mix="sum"`` (UNVERIFIED).
        mix: ``"whiten"`` (default: turn-normalise, then batch-whiten) or ``"sum"``. Both
            UNVERIFIED. The default keeps the estimator contract that identical dialogues get
            no advantage; ``"sum"``'s batch term does not (it compares returns across turn
            indices, so early turns of equal dialogues look better than late ones).
        outcome_weight: Added ``outcome_weight * outcome`` to the last turn's score.
        eps: Added to the stds.
        turn_singleton: A turn index reached by one dialogue of its group: its turn term is
            the batch term (``"batch"``, lib default) or 0 (``"zero"``, as in the
            reconstruction's worked example).
        source: ``"reward"`` (the turn rewards: on EmotionalSupport they are the judge's
            scores, whichever judge the env uses), ``"judge"`` (``ctx.judge``, e.g. when a
            wrapper adds penalties to the rewards) or ``"info"`` (``turn.info[info_key]``).
        info_key: The per-turn info key for ``source="info"``.

    Returns:
        Advantages, returns, metrics ``judge_mean`` and ``turn_singleton_frac``.

    Degenerate cases: a turn index reached by one dialogue of its group follows
    ``turn_singleton``; equal returns give 0; variable dialogue lengths are natural.
    """
    choose("mix", mix, ("sum", "whiten"))
    choose("source", source, ("judge", "reward", "info"))
    choose("turn_singleton", turn_singleton, ("batch", "zero"))
    scores = judge_scores(batch, ctx, source, info_key)
    last = batch.turn == batch.episode_length[batch.episode] - 1
    scores = scores + outcome_weight * batch.outcome * last
    returns = discounted_returns(replace(batch, reward=scores), gamma)
    width = int(batch.turn.max(initial=0)) + 1
    seg = np.unique(batch.group * width + batch.turn, return_inverse=True)[1].reshape(-1)
    a_turn, size, _ = normalise(returns, seg, int(seg.max(initial=-1)) + 1, ddof=1, eps=eps)
    a_batch, _, _ = normalise(returns, np.zeros(batch.n_turns, np.int64), 1, ddof=1, eps=eps)
    alone = size[seg] == 1
    a_turn[alone] = a_batch[alone] if turn_singleton == "batch" else 0.0
    if mix == "sum":
        advantages = lam * a_turn + (1 - lam) * a_batch
    else:
        advantages, _, _ = normalise(a_turn, np.zeros(batch.n_turns, np.int64), 1, ddof=1,
                                     eps=eps)  # fmt: skip
    outcomes = np.bincount(batch.episode, weights=scores, minlength=batch.n_episodes)
    metrics = credit_metrics(batch, advantages, outcomes)
    metrics["judge_mean"] = float(scores.mean()) if scores.size else 0.0
    metrics["turn_singleton_frac"] = float(alone.mean()) if alone.size else 0.0
    return Credit(advantages, returns=returns, metrics=metrics)
