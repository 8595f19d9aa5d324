"""turngym: multi-turn text environments, turn-level credit assignment and a benchmark harness.

Importing turngym registers the built-in envs (cheaply: entry points are strings) and never
needs an optional extra.

Example:
    >>> import turngym
    >>> env = turngym.make("turngym/Sokoban-v0")
    >>> obs, info = env.reset(seed=0, options={"split": "test"})
    >>> print(obs.splitlines()[0])
    ######
"""

from __future__ import annotations

import gymnasium

import turngym.envs  # noqa: F401  (registers the built-in envs)
from turngym.core import InvalidActionPenalty, TextEnv, TextSpace, Transition, parse_action
from turngym.envs.multiagent.registry import make_multiagent
from turngym.registry import env_registry, make
from turngym.types import Conversation, Episode, Group, SeatOutcome, TokenTrace, Turn

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "make",
    "make_multiagent",
    "register",
    "env_registry",
    "TextEnv",
    "TextSpace",
    "Transition",
    "InvalidActionPenalty",
    "parse_action",
    "Turn",
    "Episode",
    "Group",
    "Conversation",
    "SeatOutcome",
    "TokenTrace",
]

register = gymnasium.register
"""Register an env id: ``gymnasium.register`` itself (turngym never forks Gymnasium)."""
