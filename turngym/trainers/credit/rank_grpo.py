"""Rank-GRPO: per-rank rewards and advantages for ranked-list answers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import choose, credit_metrics, episode_scores
from turngym.trainers.credit._spans import item_of_tokens
from turngym.trainers.credit._structure import (
    normalise_units,
    token_credit,
    turn_info,
    unit_table,
)
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch
from turngym.types import Turn

__all__ = ["rank_grpo", "rank_rewards"]


def rank_rewards(hits: np.ndarray, episode: np.ndarray, position: np.ndarray,
                 reward: str) -> np.ndarray:  # fmt: skip
    """Per-rank rewards: ``exp_inf`` ``r_k = h_k``; ``log_decay`` ``r_k = sum_{j>=k} h_j d_j``.

    ``d_1 = 1`` and ``d_j = 1 / log2(j + 1)`` for 1-based ranks ``j >= 2``
    (``libs/reward_funcs.py``); the sum runs over the later ranks of the same episode. Units
    must be sorted by episode, then position.

    Example:
        >>> rank_rewards(np.array([0, 1, 0, 1.]), np.zeros(4, int), np.arange(4), "log_decay")
        array([1.06160631, 1.06160631, 0.43067656, 0.43067656])
    """
    if reward == "exp_inf":
        return hits.astype(np.float64)
    gains = hits / np.log2(position + 2.0)  # 0-based position p is rank p + 1; d_1 = 1
    running = np.cumsum(gains)
    last = np.searchsorted(episode, episode, side="right") - 1  # the episode's last unit
    return running[last] - running + gains  # sum over this unit and the later ones


@register_estimator("rank_grpo", unverified=("between",))
def rank_grpo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    reward: Literal["exp_inf", "log_decay"] = "exp_inf",
    eps: float = 1e-4,
    scale_rewards: bool = True,
    pad: bool = True,
    between: Literal["next", "zero"] = "next",
    extra_token_penalty: float = -0.1,
) -> Credit:
    """Rank-GRPO (Zhu et al., ConvRec-R1, 2025; code ``yaochenzhu/Rank-GRPO``).

    The unit of credit is a rank: the env reports one 0/1 hit per listed item in
    ``info["rank_hits"]`` (SeqRec: one list in one turn; ConvRec: one item per recommending
    turn, so an episode's ranks are its recommendations in order). Rank ``k`` earns
    ``r_k = h_k`` (``exp_inf``) or the discounted hits of ranks ``>= k`` (``log_decay``), and
    ``A_{i,k} = (r_{i,k} - mean_i r_{.,k}) / (std_u r_{.,k} + 1e-4)`` over the group's
    episodes at rank ``k``. With a tokenizer in the context, the tokens of item ``k`` get
    ``A_{i,k}`` and tokens after the last scored item ``extra_token_penalty`` (the code's
    length shaping); otherwise a turn gets the mean of its ranks' advantages. Status:
    VERIFIED-CODE for the rewards and advantages; the item-level importance ratio and the
    end-of-list bonus of the reference trainer are not reproduced (the trainer's ratio is
    per token).

    Args:
        batch: The turns; ``info["rank_hits"]`` lists are read.
        ctx: ``tokenizer`` (optional) maps items onto tokens.
        reward: ``"exp_inf"`` (released default) or ``"log_decay"``.
        eps: Added to the std (TRL's 1e-4).
        scale_rewards: Divide by the std (TRL ``scale_rewards``); ``False`` only centres.
        pad: Episodes with fewer ranks than the longest of their group (a parse failure, a
            shorter list) get 0-valued ranks up to it, as the fixed ``rec_num`` list does.
        between: A turn without ranks (a question in ConvRec, an invalid answer) gets the
            advantage of the episode's next rank (``"next"``) or 0. UNVERIFIED: the reference
            has single-turn episodes only.
        extra_token_penalty: Advantage of tokens after the last scored item (-0.1 in code).

    Returns:
        Turn advantages, per-token advantages when a tokenizer is given, metrics
        ``ranked_turn_frac`` and ``mean_hits``.

    Degenerate cases: a rank held by one episode of its group gets 0 (TRL's NaN std);
    equal rewards at a rank give 0; a batch without ``rank_hits`` gives all zeros.
    """
    choose("reward", reward, ("exp_inf", "log_decay"))
    choose("between", between, ("next", "zero"))
    hits = turn_info(batch, "rank_hits")
    units = unit_table(batch, hits, per_turn=False, pad=pad)
    values = rank_rewards(units.value, units.episode, units.position, reward)
    unit_adv = normalise_units(
        batch, replace(units, value=values), ddof=1, eps=eps, by_std=scale_rewards,
        singleton="zero",
    )  # fmt: skip
    real = units.row >= 0
    counts = np.bincount(units.row[real], minlength=batch.n_turns)
    sums = np.bincount(units.row[real], weights=unit_adv[real], minlength=batch.n_turns)
    advantages = np.divide(sums, counts, out=np.zeros(batch.n_turns), where=counts > 0)
    if between == "next":
        advantages = _fill_from_next(batch, advantages, counts > 0)
    first_unit = np.full(batch.n_turns, -1, np.int64)
    first_unit[units.row[real][::-1]] = np.flatnonzero(real)[::-1]

    def per_token(row: int, turn: Turn, tokenizer: Any) -> np.ndarray | None:
        if counts[row] == 0:
            return None
        assert turn.trace is not None  # token_credit only calls back on traced turns
        item = item_of_tokens(tokenizer, turn.trace.completion_ids)
        scored = item < counts[row]
        out = np.full(item.size, extra_token_penalty)
        out[scored] = unit_adv[first_unit[row] + item[scored]]
        return out

    tokens = token_credit(batch, ctx, advantages, per_token)
    metrics = credit_metrics(batch, advantages, episode_scores(batch, "outcome"))
    metrics["ranked_turn_frac"] = float(np.mean(counts > 0)) if batch.n_turns else 0.0
    metrics["mean_hits"] = float(np.mean(units.value[real])) if real.any() else 0.0
    return Credit(advantages, token_advantages=tokens, metrics=metrics)


def _fill_from_next(batch: TurnBatch, advantages: np.ndarray, has: np.ndarray) -> np.ndarray:
    """Give each turn without units the advantage of the next turn with units (0 if none)."""
    out: np.ndarray = advantages.copy()
    rows = np.arange(batch.n_turns)
    # Index of the next row with units at or after each row, within the same episode.
    marked = np.where(has, rows, batch.n_turns)
    nxt = np.minimum.accumulate(marked[::-1])[::-1] if batch.n_turns else marked
    ok = (nxt < batch.n_turns) & ~has
    same = np.zeros(batch.n_turns, bool)
    same[ok] = batch.episode[nxt[ok]] == batch.episode[ok]
    out[~has] = 0.0
    out[same] = advantages[nxt[same]]
    return out
