"""GiGPO: Group-in-Group Policy Optimization (docs/methods.md#gigpo)."""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import (
    choose,
    credit_metrics,
    discounted_returns,
    episode_scores,
    normalise,
    outcome_advantage,
)
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["gigpo"]


def _exact_anchors(batch: TurnBatch) -> np.ndarray:
    """Anchor-group id per turn: equal ``state_key`` within a group (Eq. 6).

    A turn without a state key is its own anchor group, so it gets no step advantage.
    """
    n_codes = int(batch.state.max()) + 1 if batch.n_turns else 1
    alone = -1 - np.arange(batch.n_turns)
    key = np.where(batch.state >= 0, batch.group * n_codes + batch.state, alone)
    return np.unique(key, return_inverse=True)[1].reshape(-1)


def _similar_anchors(batch: TurnBatch, threshold: float) -> np.ndarray:
    """Greedy clustering of observation texts within each group (similarity GiGPO).

    A turn joins the first cluster whose representative (its first text) has
    ``SequenceMatcher(None, text, rep).ratio() >= threshold``, else starts a new one, in
    batch row order. Identical texts always land in the same cluster, so each distinct text
    is compared once per group; ``real_quick_ratio``/``quick_ratio`` are upper bounds of
    ``ratio`` and skip hopeless pairs.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"similarity_threshold must be in (0, 1), got {threshold}")
    anchor = np.empty(batch.n_turns, np.int64)
    row, clusters = 0, 0
    for group in batch.groups:
        reps: list[SequenceMatcher[str]] = []  # one matcher per cluster, rep cached as seq2
        seen: dict[str, int] = {}
        for episode in group.episodes:
            for turn in episode.turns:
                text = turn.observation
                if text not in seen:
                    seen[text] = next(
                        (clusters + k for k, m in enumerate(reps) if _similar(m, text, threshold)),
                        clusters + len(reps),
                    )
                    if seen[text] == clusters + len(reps):
                        reps.append(SequenceMatcher(None, "", text))
                anchor[row] = seen[text]
                row += 1
        clusters += len(reps)
    return anchor


def _similar(matcher: SequenceMatcher[str], text: str, threshold: float) -> bool:
    matcher.set_seq1(text)
    return (
        matcher.real_quick_ratio() >= threshold
        and matcher.quick_ratio() >= threshold
        and matcher.ratio() >= threshold
    )


@register_estimator("gigpo")
def gigpo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    gamma: float = 0.95,
    omega: float = 1.0,
    mode: Literal["mean_std_norm", "mean_norm"] = "mean_std_norm",
    cross_steps: bool = True,
    similarity: bool = False,
    similarity_threshold: float = 0.95,
    eps: float = 1e-6,
    singleton: Literal["raw", "zero"] = "raw",
    score: Literal["return", "outcome"] = "return",
) -> Credit:
    """Group-in-Group Policy Optimization (arXiv 2505.10978, Eq. 3, 5-8; verl-agent code).

    ``A = A_E + omega * A_S`` (Eq. 8): ``A_E`` is GRPO over a group's episode scores (Eq. 3),
    ``A_S`` compares the discounted returns (Eq. 5) of the group's turns taken from the same
    anchor state (Eq. 6, 7). Status: VERIFIED-CODE (``gigpo/core_gigpo.py``).

    Args:
        batch: The turns; rewards, state keys (or observations) and groups are used.
        ctx: Unused.
        gamma: Discount of the step returns (0.95 in all GiGPO scripts).
        omega: Weight of the step advantage (``step_advantage_w``).
        mode: ``"mean_std_norm"`` divides both levels by ``std_u + eps`` (all example
            scripts); ``"mean_norm"`` only centres (config default).
        cross_steps: Episode statistics over turn rows, weighting an episode by its length
            (code default, "more stable"); ``False`` uses one score per episode.
        similarity: Cluster ``Turn.observation`` texts by ``difflib`` ratio instead of
            matching ``Turn.state_key`` (run_search.sh; a Python loop, slower).
        similarity_threshold: In (0, 1); code default 0.95, run_search.sh 0.9.
        eps: Added to the stds.
        singleton: Episode level, group of one: ``"raw"`` keeps ``A_E = R`` or ``"zero"``.
        score: ``"return"`` (sum of turn rewards, as verl-agent) or ``"outcome"``.

    Returns:
        Advantages, step returns, standard metrics, ``anchor_turn_frac`` (share of turns in
        an anchor group of two or more).

    Degenerate cases: a turn alone in its anchor group (or without a state key) gets
    ``A_S = 0``; equal returns give 0; truncation counts as termination; invalid-action
    penalties are the env's (``InvalidActionPenalty``).
    """
    by_std = choose("mode", mode, ("mean_std_norm", "mean_norm")) == "mean_std_norm"
    scores = episode_scores(batch, score)
    episode_adv = outcome_advantage(  # (Eq. 3)
        batch, scores, ddof=1, eps=eps, by_std=by_std, cross_steps=cross_steps,
        singleton=singleton,
    )  # fmt: skip
    returns = discounted_returns(batch, gamma)  # (Eq. 5)
    anchor = _similar_anchors(batch, similarity_threshold) if similarity else _exact_anchors(batch)
    n_anchor = int(anchor.max(initial=-1)) + 1  # (Eq. 6) anchor groups, then (Eq. 7)
    step_adv, size, _ = normalise(returns, anchor, n_anchor, ddof=1, eps=eps, by_std=by_std)
    advantages = episode_adv[batch.episode] + omega * step_adv  # (Eq. 8); lone turns: A_S = 0
    metrics = credit_metrics(batch, advantages, scores)
    metrics["anchor_turn_frac"] = float(np.mean(size[anchor] > 1)) if batch.n_turns else 0.0
    return Credit(advantages, returns=returns, metrics=metrics)
