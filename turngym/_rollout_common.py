"""What the single-agent and the seat-aware rollout engines share.

:mod:`turngym.rollout` dispatches to :mod:`turngym.rollout_single` or
:mod:`turngym.rollout_multiagent`; both engines import their common defaults and helpers from
here, so neither depends on the other or on the dispatcher above them.
"""

from __future__ import annotations

import traceback
from typing import Any

from turngym.core import INSTRUCTIONS, PRIVILEGED

__all__ = [
    "DEFAULT_MAX_TURNS",
    "DEFAULT_MAX_CONCURRENT",
    "public_info",
    "describe_error",
    "close_quietly",
]

DEFAULT_MAX_TURNS = 100
"""Turn cap for envs whose spec sets no ``max_episode_steps``."""

DEFAULT_MAX_CONCURRENT = 512
"""Live episodes (and env instances) at once unless ``max_concurrent`` says otherwise: a
batch this large already saturates a local model, and finished episodes hand their env to
queued ones instead of every episode building its own."""


def public_info(info: dict[str, Any]) -> dict[str, Any]:
    """Drop what the agent must not see (privileged) and what is stored elsewhere.

    Example:
        >>> public_info({"privileged": {"plan": "up"}, "instructions": "go", "state_key": "s"})
        {'state_key': 's'}
    """
    public = info.copy()  # a C-level copy, then two pops: cheaper than a filtering comprehension
    public.pop(PRIVILEGED, None)
    public.pop(INSTRUCTIONS, None)
    return public


def describe_error(err: BaseException) -> str:
    """``Type: message (at file:line)`` of an exception, for ``Episode.error``."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(err).__name__}: {err}{where}"


def close_quietly(env: Any) -> None:
    """Close an env, ignoring its errors (closing a broken env must not hide its episode's)."""
    try:
        env.close()
    except Exception:
        pass
