"""SCRL: progress-aware sub-problem rewards normalised per sub-problem."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import choose, credit_metrics, episode_scores
from turngym.trainers.credit._spans import item_of_tokens
from turngym.trainers.credit._structure import normalise_units, token_credit, turn_info, unit_table
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch
from turngym.types import Turn

__all__ = ["scrl", "SUBPROBLEM_CORRECT"]

SUBPROBLEM_CORRECT = "subproblem_correct"
"""Info key: one 0/1 verdict per sub-problem answered in the turn (the last is the problem)."""


def _prefix_products(units: Any) -> np.ndarray:
    """``r_k = prod_{j<=k} c_j`` within each turn's list (units sorted by row, then index)."""
    wrong = (units.value <= 0).astype(np.int64)
    running = np.cumsum(wrong)
    first = np.searchsorted(units.row, units.row, side="left")
    wrong_so_far = running - running[first] + wrong[first]
    products: np.ndarray = (wrong_so_far == 0).astype(np.float64)
    return products


@register_estimator("scrl", unverified=("progress", "overflow"))
def scrl(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    progress: bool = True,
    eps: float = 1e-6,
    singleton: Literal["zero", "raw"] = "zero",
    overflow: float = 0.0,
) -> Credit:
    """Subproblem Curriculum RL's sub-problem-level normalisation (arXiv 2605.22074, abstract).

    A turn answers several sub-problems at once, the last being the original problem; the env
    reports one verdict ``c_k`` per sub-answer in ``info["subproblem_correct"]`` (TryAgain with
    ``subproblems=True``). Sub-problem ``k`` is rewarded only if sub-problems ``1..k`` are all
    right, ``r_k = prod_{j<=k} c_j``, and ``A_{i,k} = (r_{i,k} - mean_i) / (std_u + eps)`` over
    the group's episodes at the same turn and sub-problem. With a tokenizer the tokens of
    sub-answer ``k`` (``;``-separated) get ``A_{i,k}``; without one a turn gets the mean of its
    sub-problems' advantages. Status: PAPER (abstract + secondary summary); UNVERIFIED, in
    particular the contiguous-prefix reward and the credit of tokens outside the spans.

    Args:
        batch: The turns; ``info["subproblem_correct"]`` lists are read.
        ctx: ``tokenizer`` (optional) maps sub-answers onto tokens.
        progress: Contiguous-prefix reward (``True``) or each verdict alone.
        eps: Added to the std.
        singleton: A (turn, sub-problem) answered by one episode of its group: ``"zero"``
            (lib default) or ``"raw"``.
        overflow: Advantage of tokens after the last expected sub-answer (UNVERIFIED).

    Returns:
        Turn advantages, per-token advantages with a tokenizer, metrics ``subproblem_acc``
        and ``prefix_acc``.

    Degenerate cases: turns without verdicts get 0 (they are not compared); equal rewards at
    a position give 0.
    """
    choose("singleton", singleton, ("zero", "raw"))
    verdicts = turn_info(batch, SUBPROBLEM_CORRECT)
    units = unit_table(batch, verdicts, per_turn=True, pad=False)
    rewards = _prefix_products(units) if progress else (units.value > 0).astype(np.float64)
    unit_adv = normalise_units(batch, replace(units, value=rewards), ddof=1, eps=eps,
                               singleton=singleton)  # fmt: skip
    counts = np.bincount(units.row, minlength=batch.n_turns)
    sums = np.bincount(units.row, weights=unit_adv, minlength=batch.n_turns)
    advantages = np.divide(sums, counts, out=np.zeros(batch.n_turns), where=counts > 0)
    first = np.full(batch.n_turns, -1, np.int64)
    first[units.row[::-1]] = np.arange(units.row.size)[::-1]

    def per_token(row: int, turn: Turn, tokenizer: Any) -> np.ndarray | None:
        if counts[row] == 0:
            return None
        assert turn.trace is not None  # token_credit only calls back on traced turns
        span = item_of_tokens(tokenizer, turn.trace.completion_ids)
        inside = span < counts[row]
        out = np.full(span.size, overflow)
        out[inside] = unit_adv[first[row] + span[inside]]
        return out

    tokens = token_credit(batch, ctx, advantages, per_token)
    metrics = credit_metrics(batch, advantages, episode_scores(batch, "outcome"))
    metrics["subproblem_acc"] = float(np.mean(units.value > 0)) if units.value.size else 0.0
    metrics["prefix_acc"] = float(np.mean(rewards)) if rewards.size else 0.0
    return Credit(advantages, token_advantages=tokens, metrics=metrics)
