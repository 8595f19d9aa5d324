"""Skill-R1: a per-task skill text revised over generations, bi-level group advantage."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import choose, credit_metrics, outcome_advantage
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch
from turngym.trainers.hooks import RolloutHooks, add_instructions, with_hooks
from turngym.types import Conversation, Episode, Group

__all__ = ["skill_r1", "SkillHooks", "revise_skill"]

_KEY = "skill_r1"


def revise_skill(episodes: tuple[Episode, ...], generation: int, max_chars: int) -> str:
    """The next skill text for a task from one generation's verified rollouts (UNVERIFIED).

    A rule-based stand-in for Skill-R1's skill generator: the steps of the best-scoring
    rollout (as a procedure to follow when it succeeded, or to improve on when it did not)
    and the distinct final answers of failed rollouts (to avoid), cut to ``max_chars``.

    Example:
        >>> from turngym.types import Turn
        >>> def ep(actions, ok):
        ...     turns = tuple(Turn(i, "a", "o", a, 0.0, False, False, None, True)
        ...                   for i, a in enumerate(actions))
        ...     return Episode("e", "x", "t", 0, "train", turns, float(ok), ok)
        >>> print(revise_skill((ep(["look", "take key"], True), ep(["wait"], False)), 1, 200))
        Skill (generation 2): follow the steps that worked.
        1. look
        2. take key
        Avoid ending with: wait
    """
    ranked = sorted(episodes, key=lambda ep: -ep.outcome)
    best = ranked[0] if ranked else None
    lines = [f"Skill (generation {generation + 1}): "
             + ("follow the steps that worked." if best is not None and best.success
                else "these steps scored best so far; improve on them.")]  # fmt: skip
    if best is not None:
        lines += [f"{i}. {t.action.strip()[:120]}" for i, t in enumerate(best.turns, 1)]
    failed = {ep.turns[-1].action.strip()[:80]: None for ep in episodes
              if not ep.success and ep.turns}  # fmt: skip
    if failed:
        lines.append("Avoid ending with: " + " | ".join(failed))
    return "\n".join(lines)[:max_chars]


class SkillHooks(RolloutHooks):
    """Condition each task's rollouts on its current skill; revise it after each generation.

    ``ctx.state["skill_r1"]`` holds per task id the skill ``text``, its ``generation`` and the
    previous generation's mean outcome, and per collected group the ``(generation,
    previous mean)`` it ran under (``used``), which the estimator reads.
    """

    def __init__(self, max_chars: int = 600, **_: Any) -> None:
        """``max_chars``: longest skill text."""
        self.max_chars = max_chars

    def augment(self, conversation: Conversation, ctx: CreditContext) -> Conversation:
        """Put the task's current skill (if any) after the instructions."""
        skill = ctx.state.get(_KEY, {}).get("skills", {}).get(conversation.task_id)
        return add_instructions(conversation, skill["text"]) if skill else conversation

    def after_collect(self, groups: list[Group], ctx: CreditContext) -> list[Group]:
        """Record what each group ran under, then revise every task's skill."""
        state = ctx.state.setdefault(_KEY, {})
        skills: dict[str, dict[str, Any]] = state.setdefault("skills", {})
        used: dict[str, tuple[int, float | None]] = {}
        for group in groups:
            skill = skills.get(group.task_id)
            generation = skill["generation"] if skill else 0
            used[group.group_id] = (generation, skill["mean"] if skill else None)
            mean = float(np.mean([ep.outcome for ep in group.episodes])) if group.episodes else 0.0
            skills[group.task_id] = {
                "text": revise_skill(group.episodes, generation, self.max_chars),
                "generation": generation + 1,
                "mean": mean,
            }
        state["used"] = used
        return groups


@with_hooks(SkillHooks)
@register_estimator("skill_r1", unverified=("inter_weight",))
def skill_r1(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    inter_weight: float = 1.0,
    max_chars: int = 600,
    eps: float = 1e-6,
    singleton: Literal["raw", "zero"] = "raw",
) -> Credit:
    """Skill-R1 (Vishe et al., 2026, arXiv 2605.09359) adapted to training the policy itself.

    Each task has a skill text that conditions its rollouts (put in the prompt by the hooks)
    and is revised from every generation's verified outcomes. The bi-level advantage adds to
    the intra-generation GRPO term (rollouts under the same skill) an inter-generation term
    for the revision: ``A = A_intra + inter_weight * (mu_g - mu_{g-1})``, with ``mu_g`` the
    group's mean outcome under skill generation ``g`` and ``mu_{g-1}`` the previous
    generation's (0 at the first). Status: PAPER (abstract: intra-generation advantage over
    rollouts under a shared skill, inter-generation advantage for improvement across
    generations). The paper trains a separate skill generator for a frozen task model; here
    the skill is revised by a rule (:func:`revise_skill`) and the policy is trained, and the
    inter term's form is UNVERIFIED. Tasks must recur (``TrainConfig.task_pool``).

    Args:
        batch: The turns.
        ctx: ``state`` holds the skills (see :class:`SkillHooks`).
        inter_weight: Weight of the inter-generation term (UNVERIFIED).
        max_chars: Longest skill text (read by the hooks).
        eps: Added to the std.
        singleton: A group of one: ``"raw"`` or ``"zero"``.

    Returns:
        Advantages and metrics ``skill_generation_mean`` and ``inter_gain_mean``.

    Degenerate cases: a task's first generation has no inter term; equal outcomes within a
    group give ``A_intra = 0`` but the inter term still rewards a better generation.
    """
    choose("singleton", singleton, ("raw", "zero"))
    scores = batch.episode_outcome
    intra = outcome_advantage(batch, scores, ddof=1, eps=eps, by_std=True, cross_steps=False,
                              singleton=singleton)  # fmt: skip
    used = ctx.state.get(_KEY, {}).get("used", {})
    sums = np.bincount(batch.episode_group, weights=scores, minlength=batch.n_groups)
    sizes = np.bincount(batch.episode_group, minlength=batch.n_groups)
    mean = np.divide(sums, sizes, out=np.zeros(batch.n_groups), where=sizes > 0)
    gain = np.zeros(batch.n_groups)
    generation = np.zeros(batch.n_groups)
    for k, group in enumerate(batch.groups):
        gen, before = used.get(group.group_id, (0, None))
        generation[k] = gen
        if before is not None:
            gain[k] = mean[k] - before
    adv = intra + inter_weight * gain[batch.episode_group]
    advantages = adv[batch.episode]
    metrics = credit_metrics(batch, advantages, scores)
    metrics["skill_generation_mean"] = float(generation.mean()) if batch.n_groups else 0.0
    metrics["inter_gain_mean"] = float(gain.mean()) if batch.n_groups else 0.0
    return Credit(advantages, metrics=metrics)
