"""PIPO: verify the previous update against a sliding window and replay it with that verdict."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import choose, credit_metrics, episode_scores
from turngym.trainers.credit._common import outcome_advantage as group_advantage
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch
from turngym.trainers.hooks import RolloutHooks, with_hooks
from turngym.types import Group

__all__ = ["pipo", "PIPOHooks", "REPLAY_PREFIX"]

REPLAY_PREFIX = "pipo-replay:"
"""Group-id prefix of the previous iteration's groups when they are re-added."""
_KEY = "pipo"


class PIPOHooks(RolloutHooks):
    """Re-add last iteration's groups so their update can be reinforced or suppressed."""

    def __init__(self, replay: bool = True, **_: Any) -> None:
        """``replay``: re-add the previous groups (PIPO's verification stage)."""
        self.replay = replay

    def after_collect(self, groups: list[Group], ctx: CreditContext) -> list[Group]:
        """Append the previous iteration's groups (renamed), remember the current ones."""
        state = ctx.state.setdefault(_KEY, {})
        previous = state.get("previous", []) if self.replay else []
        state["previous"] = list(groups)
        replayed = [Group(REPLAY_PREFIX + g.group_id, g.task_id, g.episodes) for g in previous]
        return list(groups) + replayed


@with_hooks(PIPOHooks)
@register_estimator("pipo", unverified=("beta", "min_scale", "clip"))
def pipo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    window: int = 5,
    beta: float = 1.0,
    min_scale: float = 0.05,
    clip: float = 3.0,
    replay: bool = True,
    score: Literal["outcome", "return"] = "outcome",
    eps: float = 1e-6,
) -> Credit:
    """Policy Improvement Policy Optimization (Wang et al., 2026, arXiv 2604.00860).

    From "Policy Improvement Reinforcement Learning" (project page jacckma.github.io/pirl).

    GRPO on the fresh groups, plus a retrospective verification of the previous update: the
    batch mean ``mu_t`` against the mean ``mu_his`` of the last ``window`` iterations' means
    gives ``xi_t = clip((mu_t - mu_his) / max(std_his, min_scale), -clip, clip)``; the previous
    iteration's samples, re-added by the hooks, get the policy-improvement reward
    ``A = beta * xi_t * A_{t-1}``, so an update that helped is pushed further and one that hurt
    is undone. ``ctx.state["pipo"]`` keeps the window and last iteration's advantages. Status:
    PAPER (project page: sliding-window baseline ``mu_his``, standardised signal ``xi_t``, PI
    reward on the previous samples); the normaliser, the clip and ``beta`` are UNVERIFIED.

    Args:
        batch: The fresh groups and (with ``replay``) the previous iteration's, whose ids
            start with :data:`REPLAY_PREFIX`.
        ctx: ``state`` persists across iterations.
        window: ``K``, past iteration means in the historical baseline.
        beta: Scale of the replayed advantage (UNVERIFIED).
        min_scale: Floor of the window's std in ``xi_t`` (UNVERIFIED; the window of two
            equal means would divide by 0).
        clip: Bound on ``|xi_t|`` (UNVERIFIED).
        replay: Re-add and re-credit the previous iteration's samples (the hooks read it).
        score: Episode score: ``"outcome"`` or ``"return"``.
        eps: Added to the GRPO std.

    Returns:
        Advantages, metrics ``pipo_xi``, ``pipo_mu`` and ``replayed_turn_frac``.

    Degenerate cases: no history yet (or no replayed groups): plain GRPO; a replayed episode
    whose previous advantage is unknown gets 0.
    """
    choose("score", score, ("outcome", "return"))
    state = ctx.state.setdefault(_KEY, {})
    scores = episode_scores(batch, score)
    replayed = np.array([g.group_id.startswith(REPLAY_PREFIX) for g in batch.groups], bool)
    replayed_ep = replayed[batch.episode_group] if batch.n_groups else np.zeros(0, bool)
    adv = group_advantage(batch, scores, ddof=1, eps=eps, by_std=True, cross_steps=False,
                          singleton="raw")  # fmt: skip
    fresh = ~replayed_ep
    mu = float(scores[fresh].mean()) if fresh.any() else 0.0
    history = list(state.get("history", []))[-window:]
    xi = 0.0
    if history:
        spread = max(float(np.std(history)), min_scale)
        xi = float(np.clip((mu - float(np.mean(history))) / spread, -clip, clip))
    previous = state.get("advantages", {})
    ids = [ep.episode_id for g in batch.groups for ep in g.episodes]
    old = np.array([previous.get(i, 0.0) for i in ids], np.float64)
    adv[replayed_ep] = beta * xi * old[replayed_ep]
    state["history"] = [*history, mu][-window:]
    state["advantages"] = {i: float(a) for i, a, f in zip(ids, adv, fresh, strict=True) if f}
    advantages = adv[batch.episode]
    metrics = credit_metrics(batch, advantages, scores)
    metrics.update(pipo_xi=xi, pipo_mu=mu)
    replayed_turns = replayed_ep[batch.episode]
    metrics["replayed_turn_frac"] = float(replayed_turns.mean()) if batch.n_turns else 0.0
    return Credit(advantages, metrics=metrics)
