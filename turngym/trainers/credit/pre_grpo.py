"""PRE-GRPO: Peak, Retention and Efficiency trajectory reward from per-turn quality."""

from __future__ import annotations

from typing import Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import choose, credit_metrics, outcome_advantage
from turngym.trainers.credit._structure import judge_scores
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["pre_grpo", "peak_retention_efficiency"]


def peak_retention_efficiency(batch: TurnBatch, quality: np.ndarray, *, w_peak: float,
                              w_retention: float, w_efficiency: float,
                              max_turns: int) -> np.ndarray:  # fmt: skip
    """``R = w_p max_t q_t - w_r (max_t q_t - q_T) - w_e (T - t*) / T_max`` per episode.

    ``t*`` is the first turn reaching the peak (1-based), ``T`` the episode length, ``T_max``
    ``max_turns`` or, when 0, the longest episode of the group; the efficiency term counts
    only when the peak is positive. Episodes without turns get 0.

    Example:
        >>> from turngym.types import Episode, Group, Turn
        >>> turns = tuple(Turn(t, "a", "o", "x", 0.0, t == 2, False, None, True) for t in range(3))
        >>> b = TurnBatch.from_groups([Group("g", "t", (Episode("e", "x", "t", 0, "train",
        ...                                                    turns, 0.0, False),))])
        >>> peak_retention_efficiency(b, np.array([0.2, 0.9, 0.5]), w_peak=1, w_retention=1,
        ...                           w_efficiency=0.3, max_turns=4).round(4).tolist()
        [0.425]
    """
    n = batch.n_episodes
    peak = np.full(n, -np.inf)
    np.maximum.at(peak, batch.episode, quality)
    has = batch.episode_length > 0
    peak = np.where(has, peak, 0.0)
    ends = batch.episode_start + batch.episode_length - 1
    final = np.where(has, quality[np.maximum(ends, 0)] if quality.size else 0.0, 0.0)
    at_peak = np.where(quality >= peak[batch.episode], batch.turn, np.iinfo(np.int64).max)
    first_peak = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_peak, batch.episode, at_peak)
    t_star = np.where(has, first_peak + 1, 0)
    if max_turns > 0:
        t_max = np.full(n, float(max_turns))
    else:
        longest = np.zeros(batch.n_groups, np.int64)
        np.maximum.at(longest, batch.episode_group, batch.episode_length)
        t_max = np.maximum(longest[batch.episode_group], 1).astype(np.float64)
    # Turns after the peak are "wasted" only once something was found (UNVERIFIED choice:
    # with nothing found, a long search is not penalised against a short one).
    wasted = np.where(peak > 0, (batch.episode_length - t_star) / t_max, 0.0)
    reward = w_peak * peak - w_retention * (peak - final) - w_efficiency * wasted
    return np.where(has, reward, 0.0)


@register_estimator(
    "pre_grpo",
    requires_if={"judge": ("source", "judge")},
    unverified=("w_peak", "w_retention", "w_efficiency"),
)
def pre_grpo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    source: Literal["reward", "info", "judge"] = "reward",
    info_key: str = "score",
    w_peak: float = 1.0,
    w_retention: float = 0.5,
    w_efficiency: float = 0.1,
    max_turns: int = 0,
    eps: float = 1e-6,
    singleton: Literal["raw", "zero"] = "raw",
) -> Credit:
    """PRE-GRPO (Generation Navigator, arXiv 2605.17969, abstract).

    Per-turn quality ``q_t`` (KernelGen: each submission's reward, the default; its task
    score ``info["score"]`` with ``source="info"``; a judge's score with ``source="judge"``)
    becomes one trajectory reward
    for discovering a good result (Peak), not losing it afterwards (Retention) and not wasting
    turns after it (Efficiency), see :func:`peak_retention_efficiency`; then GRPO over the
    group. Status: PAPER (abstract); the reward's form and weights are UNVERIFIED.

    Args:
        batch: The turns.
        ctx: ``judge`` when ``source="judge"``.
        source: Where ``q_t`` comes from: ``"reward"`` (the turn rewards), ``"info"``
            (``turn.info[info_key]``) or ``"judge"`` (``ctx.judge``).
        info_key: Per-turn info number for ``source="info"`` (``"score"`` is reported by
            every env: its task score after the turn).
        w_peak: Weight of the best quality reached (UNVERIFIED).
        w_retention: Weight of the drop from the peak to the last turn (UNVERIFIED; at
            ``w_retention = w_peak`` the peak cancels and only the final quality counts, so
            the default keeps half of a lost peak's credit).
        w_efficiency: Weight of the share of turns spent after the peak (UNVERIFIED).
        max_turns: ``T_max`` of the efficiency term; 0 uses the group's longest episode.
        eps: Added to the std.
        singleton: A group of one: ``"raw"`` (verl GRPO) or ``"zero"``.

    Returns:
        Advantages (the episode's, on every turn), metrics ``pre_reward_mean`` and
        ``peak_before_end_frac`` (episodes whose last turn is below their peak).

    Degenerate cases: equal rewards in a group give 0; an episode without turns gets 0.
    """
    choose("source", source, ("info", "judge", "reward"))
    quality = judge_scores(batch, ctx, source, info_key)
    rewards = peak_retention_efficiency(
        batch, quality, w_peak=w_peak, w_retention=w_retention, w_efficiency=w_efficiency,
        max_turns=max_turns,
    )  # fmt: skip
    adv = outcome_advantage(batch, rewards, ddof=1, eps=eps, by_std=True, cross_steps=False,
                            singleton=singleton)  # fmt: skip
    advantages = adv[batch.episode]
    metrics = credit_metrics(batch, advantages, rewards)
    metrics["pre_reward_mean"] = float(rewards.mean()) if rewards.size else 0.0
    ends = batch.episode_start + batch.episode_length - 1
    has = batch.episode_length > 0
    if has.any():
        peak = np.full(batch.n_episodes, -np.inf)
        np.maximum.at(peak, batch.episode, quality)
        metrics["peak_before_end_frac"] = float(np.mean(quality[ends[has]] < peak[has]))
    return Credit(advantages, metrics=metrics)
