"""The agent protocol: batched, with an async twin (docs/design.md#agents).

The rollout engine hands an agent the :class:`~turngym.types.Conversation` of every live
episode at once, so a local model can generate for the whole batch in one call. Agents own
history handling (full, last-k or summary), prompts, chat templates and tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import gymnasium

from turngym.types import Conversation, TokenTrace

__all__ = ["ActionResult", "Agent", "EnvAwareAgent", "BaseAgent", "prompt_messages"]


@dataclass(frozen=True, slots=True)
class ActionResult:
    """One action: the raw text the env receives, and the tokens behind it if known."""

    text: str
    trace: TokenTrace | None = None

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        # One per live episode per tick crosses processes on Ray (see Conversation.__reduce__).
        return (ActionResult, (self.text, self.trace))


@runtime_checkable
class Agent(Protocol):
    """Anything that answers a batch of conversations with one action each, in order."""

    def act_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        """Return one action per conversation, in the same order."""
        ...

    async def aact_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        """Async twin of :meth:`act_batch` (network agents implement this natively)."""
        ...


@runtime_checkable
class EnvAwareAgent(Protocol):
    """An agent that acts from the env objects themselves rather than from text.

    Only reference agents are of this kind: the oracle (it queries the env's exact solver)
    and the random agent (it samples each env's action space). A learning agent never is,
    which is what keeps privileged data out of its reach.
    """

    def act_batch_with_envs(
        self, conversations: Sequence[Conversation], envs: Sequence[gymnasium.Env]
    ) -> list[ActionResult]:
        """Return one action per (conversation, env) pair, in order."""
        ...


class BaseAgent:
    """Convenience base: implement :meth:`act_batch`; the async twin runs it in a thread."""

    def act_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        """Return one action per conversation."""
        raise NotImplementedError

    async def aact_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        """Run :meth:`act_batch` in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.act_batch, conversations)


def prompt_messages(
    conversation: Conversation, history: int | None, include_instructions: bool
) -> list[dict[str, str]]:
    """Chat messages for a model agent: a history window, and the system turn only if wanted.

    Args:
        conversation: What the agent sees.
        history: Past turns to keep (``None``: all).
        include_instructions: Keep the system message (dropped anyway when it is empty).
    """
    if history is not None:
        conversation = conversation.last(history)
    messages = conversation.messages()
    if not include_instructions or not conversation.instructions:
        messages = messages[1:]
    return messages
