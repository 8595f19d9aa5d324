"""F-GRPO: separate group-relative advantages for generation and ranking."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import choose, credit_metrics, normalise
from turngym.trainers.credit._spans import phase_of_tokens
from turngym.trainers.credit._structure import token_credit, turn_info
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch
from turngym.types import Turn

__all__ = ["f_grpo", "PHASE_REWARDS"]

PHASE_REWARDS = "phase_rewards"
"""Info key: ``{"generation": R_gen, "ranking": R_rank}`` on the turn that answers."""


def _group_adv(batch: TurnBatch, scores: np.ndarray, eps: float, singleton: str) -> np.ndarray:
    adv, size, _ = normalise(scores, batch.episode_group, batch.n_groups, ddof=1, eps=eps)
    alone = size[batch.episode_group] == 1
    adv[alone] = scores[alone] if singleton == "raw" else 0.0
    return adv


@register_estimator("f_grpo", unverified=("gen_weight", "rank_weight", "earlier_turns"))
def f_grpo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    marker: str = "ranking:",
    eps: float = 1e-6,
    singleton: Literal["zero", "raw"] = "zero",
    gen_weight: float = 1.0,
    rank_weight: float = 1.0,
    earlier_turns: Literal["generation", "zero"] = "generation",
) -> Credit:
    """Factorized GRPO for generate-then-rank answers (arXiv 2605.12995, abstract).

    One action first generates a candidate subset ``S`` and then orders it; the env reports
    an order-invariant coverage reward ``R_gen`` and a position-aware utility ``R_rank``
    (``info["phase_rewards"]``: SeqRec with ``select > 0``, SearchQA with ``evidence > 0``).
    ``A_gen = (R_gen - mean_g) / (std_g + eps)`` goes to the generation phase (the tokens
    before ``marker``) and ``A_rank`` likewise to the ranking phase, each scaled by its
    weight. Status: PAPER (abstract); the advantage form is the abstract's "separate
    group-relative advantages", the phase weights and everything below are UNVERIFIED.

    Args:
        batch: The turns; ``info["phase_rewards"]`` of each episode's answering turn.
        ctx: ``tokenizer`` (optional) splits the answering turn at ``marker``.
        marker: The text that opens the ranking phase in the action.
        eps: Added to the stds.
        singleton: A group of one episode: ``"zero"`` (lib default) or ``"raw"`` (keep R).
        gen_weight: Scale of the generation-phase advantage (UNVERIFIED, 1 = equal).
        rank_weight: Scale of the ranking-phase advantage (UNVERIFIED).
        earlier_turns: Turns before the answer (SearchQA's searches build the candidate
            pool) take ``A_gen`` (``"generation"``) or 0. UNVERIFIED.

    Returns:
        Turn advantages (the answering turn without a tokenizer: the mean of its two phase
        advantages), per-token advantages with a tokenizer, metrics ``gen_adv_abs_mean``,
        ``rank_adv_abs_mean`` and ``phase_disagreement`` (share of episodes whose two
        advantages have opposite signs: where one outcome reward would mis-credit a phase).

    Degenerate cases: an episode that never answered has ``R_gen = R_rank = 0``; equal
    rewards within a group give 0 for that phase.
    """
    choose("singleton", singleton, ("zero", "raw"))
    choose("earlier_turns", earlier_turns, ("generation", "zero"))
    phases = turn_info(batch, PHASE_REWARDS)
    r_gen = np.zeros(batch.n_episodes)
    r_rank = np.zeros(batch.n_episodes)
    answer_row = np.full(batch.n_episodes, -1, np.int64)
    for row, value in enumerate(phases):
        if value:  # the last answering turn of an episode wins
            ep = int(batch.episode[row])
            r_gen[ep], r_rank[ep] = float(value["generation"]), float(value["ranking"])
            answer_row[ep] = row
    a_gen = gen_weight * _group_adv(batch, r_gen, eps, singleton)
    a_rank = rank_weight * _group_adv(batch, r_rank, eps, singleton)
    e = batch.episode
    answer = answer_row[e]
    advantages = np.zeros(batch.n_turns)
    rows = np.arange(batch.n_turns)
    is_answer = rows == answer
    advantages[is_answer] = (a_gen[e] + a_rank[e])[is_answer] / 2
    before = (answer < 0) | (rows < answer)
    if earlier_turns == "generation":
        advantages[before] = a_gen[e][before]

    def per_token(row: int, turn: Turn, tokenizer: Any) -> np.ndarray | None:
        if not is_answer[row]:
            return None
        assert turn.trace is not None  # token_credit only calls back on traced turns
        phase = phase_of_tokens(tokenizer, turn.trace.completion_ids, marker)
        ep = int(batch.episode[row])
        values: np.ndarray = np.where(phase == 1, a_rank[ep], a_gen[ep])
        return values

    tokens = token_credit(batch, ctx, advantages, per_token)
    metrics = credit_metrics(batch, advantages, r_gen + r_rank)
    answered = answer_row >= 0
    metrics["gen_adv_abs_mean"] = float(np.mean(np.abs(a_gen))) if a_gen.size else 0.0
    metrics["rank_adv_abs_mean"] = float(np.mean(np.abs(a_rank))) if a_rank.size else 0.0
    opposite = np.sign(a_gen) * np.sign(a_rank) < 0
    metrics["phase_disagreement"] = float(np.mean(opposite[answered])) if answered.any() else 0.0
    return Credit(advantages, token_advantages=tokens, metrics=metrics)
