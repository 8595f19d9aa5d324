"""MatchTIR: matched tool-call turn rewards and a dual-level advantage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import choose, credit_metrics, discounted_returns, normalise
from turngym.trainers.credit._structure import turn_info
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["matchtir", "greedy_match", "sinkhorn_match"]


def greedy_match(similarity: np.ndarray) -> np.ndarray:
    """MatchTIR's "KM" reward per predicted call: greedy one-to-one by descending similarity.

    Pairs are taken highest score first (ties: lower call, then lower gold index), accepted
    when both sides are free and the score is positive; unmatched calls earn 0 (the caller's
    ``unmatched_penalty = 0``). ``compute_process_KM`` is greedy, not the Hungarian optimum.

    Example:
        >>> greedy_match(np.array([[0.9, 0.8], [0.95, 0.0]])).tolist()
        [0.8, 0.95]
    """
    n_calls, n_gold = similarity.shape
    reward = np.zeros(n_calls)
    if not similarity.size:
        return reward
    order = np.argsort(-similarity, axis=None, kind="stable")  # row-major ties: lower i, j
    call_used = np.zeros(n_calls, bool)
    gold_used = np.zeros(n_gold, bool)
    for flat in order:
        i, j = divmod(int(flat), n_gold)
        score = similarity[i, j]
        if score <= 0.0:
            break
        if not call_used[i] and not gold_used[j]:
            call_used[i] = gold_used[j] = True
            reward[i] = score
    return reward


def sinkhorn_match(similarity: np.ndarray, reg: float = 0.1, iterations: int = 200) -> np.ndarray:
    """MatchTIR's soft "OT" reward: ``sum_g T[p, g] * S[p, g]`` for the Sinkhorn plan ``T``.

    ``T = sinkhorn(uniform calls, uniform gold, cost = -S, reg)`` (``compute_process_ot``); the
    plan's mass sums to 1, so rewards are on a ``1 / #calls`` scale, as in the reference.
    """
    n_calls, n_gold = similarity.shape
    if not similarity.size:
        return np.zeros(n_calls)
    kernel = np.exp((similarity - similarity.max()) / reg)  # cost -S; shifted for stability
    a, b = np.full(n_calls, 1.0 / n_calls), np.full(n_gold, 1.0 / n_gold)
    u, v = np.ones(n_calls), np.ones(n_gold)
    for _ in range(iterations):
        u = a / np.maximum(kernel @ v, 1e-300)
        v = b / np.maximum(kernel.T @ u, 1e-300)
    plan = u[:, None] * kernel * v[None, :]
    return (plan * similarity).sum(axis=1)


def _turn_rewards(batch: TurnBatch, matching: str, answer: str) -> np.ndarray:
    """Per-turn reward: the turn's matched call score; the ending turn's env reward if asked."""
    info = turn_info(batch, "call_match")
    rows: list[list[int]] = [[] for _ in range(batch.n_episodes)]
    sims: list[list[Sequence[float]]] = [[] for _ in range(batch.n_episodes)]
    for row, value in enumerate(info):
        call = value.get("call") if value else None
        if call and call.get("similarities") is not None:
            e = int(batch.episode[row])
            rows[e].append(row)
            sims[e].append(call["similarities"])
    rewards = np.zeros(batch.n_turns)
    has_call = np.zeros(batch.n_turns, bool)
    has_call[[r for e_rows in rows for r in e_rows]] = True
    match = greedy_match if matching == "km" else sinkhorn_match
    for e in range(batch.n_episodes):
        if rows[e]:
            rewards[rows[e]] = match(np.asarray(sims[e], np.float64).reshape(len(rows[e]), -1))
    # The answer turn earns the env's verdict (MatchTIR: answer F1); "env" lets any non-zero env
    # reward stand, "match" only where the turn made no call.
    keep = batch.reward != 0 if answer == "env" else ~has_call
    rewards[keep] = batch.reward[keep]
    return rewards


@register_estimator("matchtir")
def matchtir(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    matching: Literal["km", "ot"] = "km",
    answer: Literal["env", "match"] = "env",
    lam: float = 0.9,
    eps: float = 1e-6,
) -> Credit:
    """MatchTIR (Qu et al., 2025; code ``quchangle1/MatchTIR``, ``core_algos.py``, ``tool.py``).

    Each predicted tool call is matched to the gold trace (ToolUse reports the similarity of
    the turn's call to every gold call in ``info["call_match"]["call"]["similarities"]``);
    the turn reward is its call's matched score, and the answer turn's reward is the env's
    verdict. Advantage ``A = (A_traj + A_turn) / 2`` with ``A_traj`` GRPO over the summed turn
    rewards and ``A_turn = (D_t - mean) / (std_u + eps)`` over the group's turns at the same
    index, ``D_t = r_t + lam * D_{t+1}``. Status: VERIFIED-CODE.

    Args:
        batch: The turns; ``info["call_match"]`` and rewards are read.
        ctx: Unused.
        matching: ``"km"`` (greedy, the default ``compute_process_KM``) or ``"ot"``
            (Sinkhorn, ``compute_process_ot``).
        answer: ``"env"``: a turn with a non-zero env reward earns that reward instead of
            its match (ToolUse rewards only ``finish``: its state-and-answer verdict stands
            in for MatchTIR's answer F1); ``"match"``: calls earn their match, turns without
            a call their env reward.
        lam: Discount of the turn returns (hard-coded 0.9 in the reference).
        eps: Added to the stds.

    Returns:
        Advantages, the discounted turn returns, metrics ``matched_reward_mean``.

    Degenerate cases: trajectory group of one: mean 0, std 1 (``A_traj`` = score); a turn
    index reached by one episode keeps its raw ``D`` (the reference's scale mismatch); turns
    without a call or answer earn 0.
    """
    choose("matching", matching, ("km", "ot"))
    choose("answer", answer, ("env", "match"))
    rewards = _turn_rewards(batch, matching, answer)
    scores = np.bincount(batch.episode, weights=rewards, minlength=batch.n_episodes)
    traj, size, _ = normalise(scores, batch.episode_group, batch.n_groups, ddof=1, eps=eps)
    alone = size[batch.episode_group] == 1
    traj[alone] = scores[alone]
    returns = discounted_returns(replace(batch, reward=rewards), lam)
    width = int(batch.turn.max(initial=0)) + 1
    seg = np.unique(batch.group * width + batch.turn, return_inverse=True)[1].reshape(-1)
    turn_adv, tsize, _ = normalise(returns, seg, int(seg.max(initial=-1)) + 1, ddof=1, eps=eps)
    lone = tsize[seg] == 1
    turn_adv[lone] = returns[lone]
    advantages = (traj[batch.episode] + turn_adv) / 2
    metrics = credit_metrics(batch, advantages, scores)
    metrics["matched_reward_mean"] = float(rewards.mean()) if rewards.size else 0.0
    return Credit(advantages, returns=returns, metrics=metrics)
