"""Small, general hooks for methods that need more than an advantage.

Some credit methods also change what the policy sees or what it is trained on:

* **a judge** in :class:`~turngym.trainers.credit.types.CreditContext` (MAPO, PRE-GRPO):
  :func:`env_judge` builds one from the per-turn judge score an env reports
  (``judge_key`` on the env class, e.g. EmotionalSupport's ``info["judge_score"]``);
* **prompt augmentation** (SLEA-RL's experience library, Skill-R1's skill text, R³'s
  reflection prompt): :meth:`RolloutHooks.augment` rewrites each
  :class:`~turngym.types.Conversation` before the agent sees it, through
  :class:`AugmentingAgent`;
* **group post-processing** (R³ replays a past success into an all-failed group, PIPO
  re-adds the previous iteration's samples): :meth:`RolloutHooks.after_collect` runs on the
  collected groups before credit is assigned.

A method attaches its hooks to its estimator with :func:`with_hooks`; the trainer asks
:func:`hooks_for` and never looks at the method's name. Hooks keep what they remember in
``ctx.state`` under the method's name, which the trainer checkpoints.

Example:
    >>> from turngym.trainers.credit import resolve_estimator
    >>> type(hooks_for(resolve_estimator("grpo"))).__name__
    'RolloutHooks'
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from turngym.agents.base import ActionResult
from turngym.trainers.credit.types import CreditContext, TurnBatch
from turngym.types import Conversation, Group

__all__ = [
    "RolloutHooks",
    "with_hooks",
    "hooks_for",
    "AugmentingAgent",
    "rollout_agent",
    "InfoJudge",
    "env_judge",
    "add_instructions",
]


class RolloutHooks:
    """What a method adds to the training loop; the base class adds nothing."""

    def augment(self, conversation: Conversation, ctx: CreditContext) -> Conversation:
        """Return the conversation the agent should see (default: unchanged)."""
        return conversation

    def after_collect(self, groups: list[Group], ctx: CreditContext) -> list[Group]:
        """Return the groups credit is assigned to (default: the collected ones)."""
        return groups

    @property
    def augments(self) -> bool:
        """Whether :meth:`augment` is overridden (otherwise the agent is used as is)."""
        return type(self).augment is not RolloutHooks.augment


def with_hooks(factory: Callable[..., RolloutHooks]) -> Callable[[Any], Any]:
    """Decorator: attach ``factory(**estimator_params) -> RolloutHooks`` to an estimator.

    The factory receives every keyword parameter the estimator was resolved with and should
    accept (and may ignore) any of them.
    """

    def attach(fn: Any) -> Any:
        fn.hooks = factory
        return fn

    return attach


def hooks_for(estimate: Callable[..., Any]) -> RolloutHooks:
    """The hooks of a resolved estimator (``functools.partial`` from ``resolve_estimator``)."""
    fn, params = estimate, {}
    if isinstance(estimate, functools.partial):
        fn, params = estimate.func, dict(estimate.keywords)
    factory = getattr(fn, "hooks", None)  # plugins without hooks simply have none
    return RolloutHooks() if factory is None else factory(**params)


class AugmentingAgent:
    """An agent that shows the wrapped agent conversations rewritten by ``hooks.augment``.

    Everything else (``reseed``, attributes) is delegated to the wrapped agent.
    """

    def __init__(self, agent: Any, hooks: RolloutHooks, ctx: CreditContext) -> None:
        """Wrap ``agent``; ``ctx`` is read when each batch is augmented."""
        self.agent, self.hooks, self.ctx = agent, hooks, ctx

    def _augment(self, conversations: Sequence[Conversation]) -> list[Conversation]:
        return [self.hooks.augment(c, self.ctx) for c in conversations]

    def act_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        """Act on the augmented conversations."""
        return self.agent.act_batch(self._augment(conversations))

    async def aact_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        """Async twin of :meth:`act_batch`."""
        return await self.agent.aact_batch(self._augment(conversations))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.agent, name)


def rollout_agent(agent: Any, hooks: RolloutHooks, ctx: CreditContext) -> Any:
    """``agent`` itself, or an :class:`AugmentingAgent` when the hooks rewrite prompts."""
    return AugmentingAgent(agent, hooks, ctx) if hooks.augments else agent


def add_instructions(conversation: Conversation, text: str) -> Conversation:
    """The conversation with ``text`` appended to its instructions (a new paragraph)."""
    if not text:
        return conversation
    instructions = f"{conversation.instructions}\n\n{text}" if conversation.instructions else text
    return Conversation(instructions, conversation.turns, conversation.observation,
                        conversation.episode_id, conversation.task_id,
                        conversation.agent_id)  # fmt: skip


class InfoJudge:
    """A per-turn judge that reads the score the env already put in ``turn.info[key]``.

    Example:
        >>> from turngym.types import Episode, Turn
        >>> turn = Turn(0, "agent", "o", "a", 0.0, True, False, None, True,
        ...             info={"judge_score": 0.25})
        >>> episode = Episode("e", "x", "t", 0, "train", (turn,), 0.0, False)
        >>> InfoJudge("judge_score")(TurnBatch.from_groups([Group("g", "t", (episode,))]))
        array([0.25])
    """

    def __init__(self, key: str) -> None:
        """Read ``info[key]``."""
        self.key = key

    def __call__(self, batch: TurnBatch) -> np.ndarray:
        """One score per turn row.

        Raises:
            ValueError: A turn has no such info (the env did not judge it).
        """
        scores = []
        for g in batch.groups:
            for ep in g.episodes:
                for turn in ep.turns:
                    if self.key not in turn.info:
                        raise ValueError(f"turn {turn.index} of {ep.episode_id!r} has no "
                                         f"info[{self.key!r}] to judge it by")  # fmt: skip
                    scores.append(float(turn.info[self.key]))
        return np.asarray(scores, np.float64)

    def __repr__(self) -> str:
        return f"InfoJudge({self.key!r})"


def env_judge(env: Any) -> InfoJudge | None:
    """The judge an env offers: an :class:`InfoJudge` on its ``judge_key``, or ``None``.

    Args:
        env: An env (wrappers are looked through).
    """
    key = getattr(type(getattr(env, "unwrapped", env)), "judge_key", None)
    return None if key is None else InfoJudge(str(key))
