"""R³: replay past successes into collapsed groups, reflect on failures, rank by entropy."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import choose, credit_metrics, outcome_advantage
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch
from turngym.trainers.hooks import RolloutHooks, add_instructions, with_hooks
from turngym.types import Conversation, Episode, Group

__all__ = ["r3", "R3Hooks", "structural_entropy_score"]

_KEY = "r3"


class R3Hooks(RolloutHooks):
    """Cross-context replay (group post-processing) and self-reflection (prompt).

    ``ctx.state["r3"]`` keeps, per task id, the best successful episode seen (``buffer``),
    the failed answers of the task's last all-failed visit (``failures``) and the episode ids
    replayed this iteration (``replayed``).
    """

    def __init__(self, replay: bool = True, reflection: bool = True, max_reflections: int = 3,
                 **_: Any) -> None:  # fmt: skip
        """Switch the two mechanisms; ``max_reflections`` past answers go into the prompt."""
        self.replay, self.reflection, self.max_reflections = replay, reflection, max_reflections

    def augment(self, conversation: Conversation, ctx: CreditContext) -> Conversation:
        """Add a reflection prompt when every attempt at this task failed last time."""
        if not self.reflection:
            return conversation
        failed = ctx.state.get(_KEY, {}).get("failures", {}).get(conversation.task_id)
        if not failed:
            return conversation
        shown = "\n".join(f"- {a}" for a in failed[: self.max_reflections])
        return add_instructions(conversation, "Earlier attempts at this task failed. They "
                                f"answered:\n{shown}\nWork out what went wrong and try a "
                                "different approach.")  # fmt: skip

    def after_collect(self, groups: list[Group], ctx: CreditContext) -> list[Group]:
        """Replay a stored success into all-failed groups; update the buffer and failures."""
        state = ctx.state.setdefault(_KEY, {})
        buffer: dict[str, Episode] = state.setdefault("buffer", {})
        failures: dict[str, list[str]] = state.setdefault("failures", {})
        out, replayed = [], []
        for group in groups:
            episodes = list(group.episodes)
            if episodes and not any(ep.success for ep in episodes):
                failures[group.task_id] = _last_actions(episodes)
                stored = buffer.get(group.task_id)
                if self.replay and stored is not None and len(episodes) > 1:
                    episodes[-1] = stored  # keeps G; the stored success restores a gap
                    replayed.append(stored.episode_id)
            else:
                failures.pop(group.task_id, None)
            for ep in group.episodes:
                best = buffer.get(group.task_id)
                if ep.success and (best is None or ep.outcome >= best.outcome):
                    buffer[group.task_id] = ep
            out.append(Group(group.group_id, group.task_id, tuple(episodes)))
        state["replayed"] = replayed
        return out


def _last_actions(episodes: list[Episode]) -> list[str]:
    """The distinct final actions of the episodes, in order (what to reflect on)."""
    seen: dict[str, None] = {}
    for ep in episodes:
        if ep.turns:
            seen.setdefault(ep.turns[-1].action.strip()[:200], None)
    return list(seen)


def structural_entropy_score(surprisal: np.ndarray, top: float, stability: float) -> float:
    """Local exploration minus instability of a response's token surprisals (UNVERIFIED).

    ``mean(top-q surprisals) - stability * std(surprisals)``: high-entropy forks are
    exploration, a jumpy profile is instability. Surprisal ``-log p`` of the sampled token
    stands in for the token entropy (no extra forward pass).

    Example:
        >>> round(structural_entropy_score(np.array([0.1, 0.2, 2.0, 0.1]), 0.25, 0.5), 4)
        1.5953
    """
    if surprisal.size == 0:
        return 0.0
    k = max(1, int(np.ceil(top * surprisal.size)))
    local = float(np.sort(surprisal)[-k:].mean())
    return local - stability * float(surprisal.std())


def _rank_rewards(batch: TurnBatch, delta: float, top: float, stability: float) -> np.ndarray:
    """``delta * rank / (n_failed - 1)`` for the failed traced episodes of each group."""
    bonus = np.zeros(batch.n_episodes)
    e = 0
    for group in batch.groups:
        failed: list[tuple[float, int]] = []
        for ep in group.episodes:
            logps = [lp for t in ep.turns if t.trace and t.trace.logprobs
                     for lp in t.trace.logprobs]  # fmt: skip
            if not ep.success and logps:
                score = structural_entropy_score(-np.asarray(logps), top, stability)
                failed.append((score, e))
            e += 1
        if len(failed) > 1:
            for rank, (_, idx) in enumerate(sorted(failed)):
                bonus[idx] = delta * rank / (len(failed) - 1)
    return bonus


@with_hooks(R3Hooks)
@register_estimator("r3", unverified=("replay", "reflection", "rank_reward", "top", "stability"))
def r3(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    replay: bool = True,
    reflection: bool = True,
    max_reflections: int = 3,
    rank_reward: float = 0.1,
    top: float = 0.2,
    stability: float = 0.5,
    eps: float = 1e-6,
    singleton: Literal["raw", "zero"] = "raw",
) -> Credit:
    """R³: Replay, Reflection and Ranking rewards (Jiang et al., 2026, arXiv 2601.19620).

    Three mechanisms against collapsed groups (all rollouts of a query failing, so GRPO's
    advantages vanish). Replay: a group where every episode failed has its last episode
    replaced by the best past success of the same task (``ctx.state["r3"]``), restoring the
    advantage gap. Reflection: the next rollouts of a task whose group all failed see those
    failed answers and are asked to reflect on them. Ranking reward: failed episodes earn
    ``rank_reward * rank / (n_failed - 1)`` by their structural-entropy score
    (:func:`structural_entropy_score`), so failures are still ordered. Then GRPO on
    ``outcome + ranking reward``. Status: PAPER (abstract); the replay trigger, the reflection
    wording, the entropy score and the reward scale are UNVERIFIED. Tasks must recur for
    replay and reflection to act (``TrainConfig.task_pool``).

    Args:
        batch: The groups after the hooks (replayed episodes included).
        ctx: ``state`` persists the buffer; hooks read ``replay``/``reflection``.
        replay: Cross-context replay into all-failed groups.
        reflection: Reflection prompt after an all-failed visit.
        max_reflections: Failed answers shown in the reflection prompt.
        rank_reward: Largest ranking reward of a failure (0 turns ranking off; UNVERIFIED).
        top: Share of the highest surprisals in the local-exploration term (UNVERIFIED).
        stability: Weight of the surprisal std (UNVERIFIED).
        eps: Added to the GRPO std.
        singleton: A group of one: ``"raw"`` or ``"zero"``.

    Returns:
        Advantages and metrics ``replayed_episodes`` and ``rank_reward_mean``.

    Degenerate cases: untraced episodes get no ranking reward; a group with one failure
    ranks nothing.
    """
    choose("singleton", singleton, ("raw", "zero"))
    bonus = _rank_rewards(batch, rank_reward, top, stability) if rank_reward else 0.0
    scores = batch.episode_outcome + bonus
    adv = outcome_advantage(batch, scores, ddof=1, eps=eps, by_std=True, cross_steps=False,
                            singleton=singleton)  # fmt: skip
    advantages = adv[batch.episode]
    metrics = credit_metrics(batch, advantages, scores)
    metrics["replayed_episodes"] = float(len(ctx.state.get(_KEY, {}).get("replayed", [])))
    metrics["rank_reward_mean"] = float(np.mean(bonus)) if batch.n_episodes else 0.0
    return Credit(advantages, metrics=metrics)
