"""The multi-agent env registry: ids like ``turngym/TicTacToe-v0`` mapped to PettingZoo envs.

PettingZoo ``AECEnv`` s are not ``gymnasium.Env`` s, so they cannot live in Gymnasium's
registry: ``gymnasium.make`` would wrap them in checkers that call the single-agent API. This
is the same pattern on a :class:`turngym.registry.Registry` (lazy ``"module:Class"`` entry
points, a collision guard, did-you-mean), kept free of PettingZoo imports so that
``import turngym`` registers the ids without the ``multiagent`` extra.

``turngym.make`` stays a Gymnasium factory (its return type never depends on the id); for a
multi-agent id it fails with a message pointing here. :func:`turngym.rollout.collect` routes
multi-agent ids to the seat-aware engine.

Example:
    >>> import turngym
    >>> is_multiagent("turngym/TicTacToe-v0"), is_multiagent("turngym/Sokoban-v0")
    (True, False)
    >>> env = make_multiagent("turngym/TicTacToe-v0")
    >>> env.reset(seed=0, options={"split": "test"})
    >>> env.agent_selection, env.possible_agents
    ('player_0', ['player_0', 'player_1'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from turngym.registry import Registry, env_registry, import_string

__all__ = [
    "MultiAgentSpec",
    "multiagent_registry",
    "register_multiagent",
    "make_multiagent",
    "is_multiagent",
    "multiagent_ids",
]


@dataclass(frozen=True, slots=True)
class MultiAgentSpec:
    """How to build one multi-agent env id.

    Attributes:
        id: ``namespace/Name-vN``; bump ``vN`` whenever a change could move a score.
        entry_point: ``"package.module:Class"``, imported on the first ``make``.
        max_turns: Turn cap (all seats together) passed to the env; past it the game is
            truncated for every seat at once.
        kwargs: Default constructor keyword arguments (difficulty knobs).
    """

    id: str
    entry_point: str
    max_turns: int | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def module(self) -> str:
        """The module part of the entry point (``turngym list`` derives the family from it)."""
        return self.entry_point.partition(":")[0]


multiagent_registry: Registry[MultiAgentSpec] = Registry("multi-agent env id")
"""Every registered multi-agent env, by id."""

env_registry.add_sibling(
    multiagent_registry,
    "{name!r} is a multi-agent (PettingZoo AEC) env, not a Gymnasium env: build it with "
    "turngym.make_multiagent({name!r}), play it with `turngym rollout` or "
    "turngym.rollout.collect, check it with `turngym check` or "
    "turngym.envs.multiagent.testing.check_multiagent_env.",
)


def register_multiagent(
    id: str,
    entry_point: str,
    *,
    max_turns: int | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> None:
    """Register a multi-agent env id (re-registering the identical spec is a no-op).

    Args:
        id: The env id, e.g. ``"turngym/TicTacToe-v0"``.
        entry_point: ``"package.module:Class"`` of a PettingZoo ``AECEnv`` subclass.
        max_turns: Turn cap for the whole game (every seat's turns count).
        kwargs: Default constructor keyword arguments.

    Raises:
        ValueError: ``id`` is already registered to a different spec.
    """
    spec = MultiAgentSpec(id, entry_point, max_turns, dict(kwargs or {}))
    multiagent_registry.register(id, spec)


def is_multiagent(env_id: str) -> bool:
    """Whether ``env_id`` names a registered multi-agent env."""
    return env_id in multiagent_registry


def multiagent_ids() -> list[str]:
    """Every registered multi-agent env id, sorted."""
    return multiagent_registry.names()


def make_multiagent(env_id: str, **kwargs: Any) -> Any:
    """Build the PettingZoo ``AECEnv`` registered as ``env_id``.

    Args:
        env_id: A registered multi-agent id.
        **kwargs: Override the spec's keyword arguments (difficulty knobs, ``render_mode``,
            ``max_turns``).

    Returns:
        A fresh, un-reset env (call ``reset(seed=..., options=...)`` first, as in PettingZoo).

    Raises:
        turngym.registry.UnknownNameError: No multi-agent env has this id (with suggestions).
        ImportError: PettingZoo is missing (install the ``multiagent`` extra).
    """
    spec = multiagent_registry.get(env_id)
    cls = import_string(spec.entry_point)
    options = dict(spec.kwargs)
    if spec.max_turns is not None:
        options.setdefault("max_turns", spec.max_turns)
    options.update(kwargs)
    env = cls(**options)
    env.spec_id = spec.id  # the versioned id, recorded on every Episode
    return env
