"""A-GRAE: asymmetric group-relative advantage estimation (docs/methods.md#a-grae)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import centre, credit_metrics, outcome_advantage
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["a_grae"]

HISTORY_KEY = "a_grae.batch_accuracy"
"""Key of the list of past batch accuracies in ``CreditContext.state``."""


def _reshape(adv: np.ndarray, p: np.ndarray, p_bar: float, alpha: float, eps: float) -> np.ndarray:
    root = np.sqrt(p)
    with np.errstate(divide="ignore", invalid="ignore"):  # p in {0, 1} has A = 0 anyway
        hard = 0.5 * adv / (root + eps)  # large for low-accuracy (hard) tasks
        easy = 0.5 * adv / (1 - root + eps)  # large for high-accuracy (easy) tasks
    shaped = np.where((p > 0) & (p < 1), (1 - p_bar) * easy + p_bar * hard, 0.0)
    return np.where(shaped > 0, shaped * min(1.0, p_bar / alpha), shaped)


@register_estimator("a_grae", unverified=("accuracy_window",))
def a_grae(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    enabled: bool = True,
    alpha: float = 1.0,
    eps: float = 1e-6,
    singleton: Literal["raw", "zero"] = "raw",
    accuracy_window: int = 1,
) -> Credit:
    """Asymmetric GRAE (arXiv 2602.05548; Yu7-code/A-GRAE ``compute_grpo_outcome_advantage``).

    GRPO advantage ``A`` (unbiased std, ``eps``), then with group accuracy ``p_g`` and batch
    accuracy ``p_bar``: ``A' = (1-p_bar) * 0.5A/(1-sqrt(p_g)+eps) + p_bar * 0.5A/(sqrt(p_g)
    +eps)``, and positive ``A'`` are scaled by ``min(1, p_bar/alpha)``: weak models explore,
    and the focus moves from easy to hard tasks as accuracy rises. Status: VERIFIED-CODE for
    the formula. The release switches it on through a ``grpo_weight == 2.0`` schedule that
    effectively never fires; here ``enabled`` is explicit instead.

    Args:
        batch: The turns; outcomes (accuracies in [0, 1]) and groups are used.
        ctx: ``ctx.state[HISTORY_KEY]`` gets this batch's accuracy appended.
        enabled: Apply the asymmetric reshaping (``False``: plain GRPO).
        alpha: Accuracy at which positives stop being damped (1 math, 0.5 geo3k/medical).
        eps: GRPO std epsilon, also used in the two sqrt denominators (as the code does).
        singleton: A group of one keeps the GRPO rule (``"raw"``: ``A = R``) un-reshaped.
        accuracy_window: UNVERIFIED option: ``p_bar`` is the mean of the last
            ``accuracy_window`` batch accuracies kept in ``ctx.state``. The default 1 uses
            the current batch only, as the code does.

    Returns:
        Per-turn advantages, the standard metrics, ``batch_accuracy`` and ``p_bar``.

    Raises:
        ValueError: ``enabled`` and an outcome lies outside [0, 1].

    Degenerate cases: ``p_g`` in {0, 1} gives 0. ``p_bar`` is the mean of the actual group
    means over non-empty groups (the code counts a group of one as mean 0).
    """
    scores, seg = batch.episode_outcome, batch.episode_group
    if enabled and np.any((scores < 0) | (scores > 1)):
        raise ValueError("a_grae needs outcomes in [0, 1] (accuracies); rescale them first.")
    adv = outcome_advantage(
        batch, scores, ddof=1, eps=eps, by_std=True, cross_steps=False, singleton=singleton
    )
    size, centred = centre(scores, seg, batch.n_groups)
    p = np.clip(scores - centred, 0.0, 1.0)  # group mean of each episode's group
    group_p = np.bincount(seg, weights=p, minlength=batch.n_groups) / np.maximum(size, 1)
    accuracy = float(np.mean(group_p[size > 0])) if batch.n_episodes else 0.0
    history = ctx.state.setdefault(HISTORY_KEY, [])
    history.append(accuracy)
    p_bar = float(np.mean(history[-max(accuracy_window, 1) :]))
    if enabled:
        adv = np.where(size[seg] > 1, _reshape(adv, p, p_bar, alpha, eps), adv)
    advantages = adv[batch.episode]
    metrics = credit_metrics(batch, advantages, scores)
    metrics.update(batch_accuracy=accuracy, p_bar=p_bar)
    return Credit(advantages, metrics=metrics)
