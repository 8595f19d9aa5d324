"""MatchTIR: matched tool-call turn rewards and a dual-level advantage."""

from __future__ import annotations

from dataclasses import replace
from itertools import chain
from typing import Literal, cast

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import choose, credit_metrics, discounted_returns, normalise
from turngym.trainers.credit._structure import turns_of
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["matchtir", "greedy_match", "sinkhorn_match", "greedy_match_batch",
           "sinkhorn_match_batch"]


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
    reward: np.ndarray = (plan * similarity).sum(axis=1)
    return reward


def _similarity_tensor(batch: TurnBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every episode's call-by-gold similarity matrix, zero-padded into one array.

    Returns:
        ``(S, rows, valid)``: ``S[e, p, g]`` is call ``p``'s similarity to gold call ``g``
        in episode ``e``; ``rows[e, p]`` the turn row of call ``p`` (-1 for padding);
        ``valid[e, p, g]`` marks real entries.
    """
    # Comprehensions, not one loop with appends: this is the hot path on 100,000 turns.
    matches = [t.info.get("call_match") for t in turns_of(batch)]
    calls = [m.get("call") if m else None for m in matches]
    all_sims = [c.get("similarities") if c else None for c in calls]
    call_rows = [row for row, s in enumerate(all_sims) if s is not None]
    sims = [s for s in all_sims if s is not None]
    lengths = [len(s) for s in sims]
    values = list(chain.from_iterable(sims))
    rows = np.asarray(call_rows, np.int64)
    episode = batch.episode[rows]
    n_gold = np.asarray(lengths, np.int64)
    n_calls = np.bincount(episode, minlength=batch.n_episodes)
    first = np.zeros(batch.n_episodes + 1, np.int64)
    np.cumsum(n_calls, out=first[1:])
    slot = np.arange(rows.size) - first[episode]
    width_p, width_g = int(n_calls.max(initial=0)), int(n_gold.max(initial=0))
    tensor = np.zeros((batch.n_episodes, width_p, width_g))
    valid = np.zeros(tensor.shape, bool)
    flat = np.asarray(values, np.float64)
    e_of, p_of = np.repeat(episode, n_gold), np.repeat(slot, n_gold)
    g_of = np.arange(flat.size) - np.repeat(np.cumsum(n_gold) - n_gold, n_gold)
    tensor[e_of, p_of, g_of] = flat
    valid[e_of, p_of, g_of] = True
    row_of = np.full((batch.n_episodes, width_p), -1, np.int64)
    row_of[episode, slot] = rows
    return tensor, row_of, valid


def greedy_match_batch(similarity: np.ndarray) -> np.ndarray:
    """:func:`greedy_match` on every episode of a padded ``(E, P, G)`` array at once.

    Taking pairs in descending order and skipping used calls and golds is the same as
    repeatedly taking the best pair among free calls and golds (ties: lowest flat index), so
    each round assigns one pair per episode, vectorised over episodes.
    """
    n, width_p, width_g = similarity.shape
    reward = np.zeros((n, width_p))
    if not similarity.size:
        return reward
    free = similarity.copy()
    episodes = np.arange(n)
    for _ in range(min(width_p, width_g)):
        flat = free.reshape(n, -1)
        best = flat.argmax(axis=1)
        score = flat[episodes, best]
        live = score > 0.0
        if not live.any():
            break
        i, j = np.divmod(best[live], width_g)
        reward[episodes[live], i] = score[live]
        free[episodes[live], i, :] = 0.0
        free[episodes[live], :, j] = 0.0
    return reward


def sinkhorn_match_batch(similarity: np.ndarray, valid: np.ndarray, reg: float = 0.1,
                         iterations: int = 200) -> np.ndarray:  # fmt: skip
    """:func:`sinkhorn_match` on every episode of a padded ``(E, P, G)`` array at once."""
    # Reducing one axis of a 3-D array leaves an array; the stubs also allow a scalar.
    calls = cast(np.ndarray, valid.any(axis=2))
    golds = cast(np.ndarray, valid.any(axis=1))
    n_calls = np.maximum(calls.sum(axis=1), 1)[:, None]
    n_gold = np.maximum(golds.sum(axis=1), 1)[:, None]
    shift = np.where(valid, similarity, -np.inf).max(axis=(1, 2), initial=0.0)
    kernel = np.where(valid, np.exp((similarity - shift[:, None, None]) / reg), 0.0)
    a, b = calls / n_calls, golds / n_gold
    u, v = calls.astype(np.float64), golds.astype(np.float64)
    for _ in range(iterations):
        u = np.divide(a, np.einsum("epg,eg->ep", kernel, v), out=np.zeros_like(a),
                      where=calls)  # fmt: skip
        v = np.divide(b, np.einsum("epg,ep->eg", kernel, u), out=np.zeros_like(b),
                      where=golds)  # fmt: skip
    plan = u[:, :, None] * kernel * v[:, None, :]
    reward: np.ndarray = (plan * similarity).sum(axis=2)
    return reward


def _turn_rewards(batch: TurnBatch, matching: str, answer: str) -> np.ndarray:
    """Per-turn reward: the turn's matched call score; the answer turn's env reward."""
    tensor, row_of, valid = _similarity_tensor(batch)
    if matching == "km":
        matched = greedy_match_batch(tensor)
    else:
        matched = sinkhorn_match_batch(tensor, valid)
    rewards = np.zeros(batch.n_turns)
    has_call = np.zeros(batch.n_turns, bool)
    real = row_of >= 0
    rewards[row_of[real]] = matched[real]
    has_call[row_of[real]] = True
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
