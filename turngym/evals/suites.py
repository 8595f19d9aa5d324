"""Named eval suites: lists of (env id, kwargs, reset options, episodes), defined in Python.

The built-in suites are computed from the envs that ship with turngym, so a new family is in
every suite the moment it is registered (a test checks this):

* ``smoke`` — every built-in env at its default difficulty, 5 episodes per seed: a
  seconds-long check that agents and envs talk to each other.
* ``quick`` — every built-in env at its default difficulty, 50 episodes per seed.
* ``full`` — every built-in env at every ``level`` preset it defines, 200 episodes per seed.
* ``multiagent`` — every built-in multi-agent game (``turngym/TicTacToe-v0``...), the agent
  in every seat in turn, against ``random`` and against the game's reference opponent
  (``minimax``, ``negotiator``), 50 episodes per seed and seat.

``smoke``, ``quick`` and ``full`` hold the single-agent envs only: a multi-agent game needs an
opponent, and its results are per seat and opponent (:mod:`turngym.evals.seats`), never part
of the single-agent envs' macro means. A suite entry of a game names the opponent and,
optionally, the seats: ``EvalEntry("turngym/TicTacToe-v0", opponent="minimax",
seats=("player_0",))`` (JSON form in ``run.json``: ``{"env_id": ..., "opponent": "minimax",
"seats": ["player_0"], ...}``; no seats: every seat).

Users add their own with ``suite_registry.register("mine", [EvalEntry(...), ...])`` or a
zero-argument function returning entries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium

from turngym.envs.multiagent.registry import is_multiagent, multiagent_ids, multiagent_registry
from turngym.evals.seats import reference_opponent
from turngym.registry import Registry, env_registry

__all__ = ["EvalEntry", "suite_registry", "resolve_entries", "builtin_env_ids",
           "builtin_multiagent_ids"]  # fmt: skip


@dataclass(frozen=True)
class EvalEntry:
    """One env configuration of an eval.

    Attributes:
        env_id: Registered env id.
        env_kwargs: Constructor keyword arguments.
        options: Reset options (``level``, ``difficulty``) for every episode.
        episodes: Episodes per run seed (multi-agent games: per seat).
        max_turns: Turn cap (default: the env's ``max_episode_steps``).
        opponent: Multi-agent games only (and required there): the agent spec playing every
            seat but the evaluated agent's (``random``, ``minimax``, ``minimax:2``,
            ``negotiator``, ``hf:PATH``, ...).
        seats: Multi-agent games: the seats the evaluated agent plays, one after the other
            (empty: every seat).
    """

    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    episodes: int = 50
    max_turns: int | None = None
    opponent: str | None = None
    seats: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"{self.env_id}: episodes must be >= 1, got {self.episodes}")
        if self.seats and self.opponent is None:
            raise ValueError(f"{self.env_id}: seats need an opponent for the other seats")

    @property
    def label(self) -> str:
        """Human-readable name: the id plus non-default options, e.g. ``X-v0 (level=2)``."""
        extras = [f"{k}={v}" for k, v in sorted({**self.env_kwargs, **self.options}.items())]
        label = f"{self.env_id} ({', '.join(extras)})" if extras else self.env_id
        return label if self.opponent is None else f"{label} vs {self.opponent}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (written to ``run.json``; the seat keys only for multi-agent games)."""
        data = {"env_id": self.env_id, "env_kwargs": self.env_kwargs, "options": self.options,
                "episodes": self.episodes, "max_turns": self.max_turns}  # fmt: skip
        if self.opponent is not None:
            data.update(opponent=self.opponent, seats=list(self.seats))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalEntry:
        """Inverse of :meth:`to_dict`."""
        return cls(data["env_id"], dict(data.get("env_kwargs", {})),
                   dict(data.get("options", {})), int(data.get("episodes", 50)),
                   data.get("max_turns"), data.get("opponent"),
                   tuple(data.get("seats", ())))  # fmt: skip


SuiteSource = Sequence[EvalEntry] | Callable[[], Sequence[EvalEntry]]

suite_registry: Registry[SuiteSource] = Registry("suite", group="turngym.suites")
"""Suites by name: a list of entries or a function returning one (plugins: the
``turngym.suites`` entry-point group)."""


def builtin_env_ids() -> list[str]:
    """Ids of the envs that ship with turngym (namespace ``turngym``, module ``turngym.envs``)."""
    ids = []
    for name in env_registry.names():
        spec = gymnasium.spec(name)
        # Adapted suites (textarena/..., textworld/...) live in turngym.envs.adapters but are
        # not turngym's own envs: the namespace tells them apart.
        entry = spec.entry_point
        if name.startswith("turngym/") and isinstance(entry, str) and entry.startswith(
            "turngym.envs."
        ):
            ids.append(name)
    return sorted(ids)


def builtin_multiagent_ids() -> list[str]:
    """Ids of the multi-agent games that ship with turngym (not the ``textarena/`` adapters)."""
    return [env_id for env_id in multiagent_ids() if env_id.startswith("turngym/")
            and multiagent_registry.get(env_id).module.startswith("turngym.envs.multiagent.")]


def _levels(env_id: str) -> list[int]:
    entry = gymnasium.spec(env_id).entry_point
    registration = gymnasium.envs.registration
    creator = registration.load_env_creator(entry) if isinstance(entry, str) else entry
    return sorted(getattr(creator, "levels", {}) or {})


def _games(episodes: int, opponent: str | None) -> list[EvalEntry]:
    """Every built-in game in every seat vs ``opponent`` (``None``: the game's reference)."""
    return [EvalEntry(env_id, episodes=episodes, opponent=opponent or reference_opponent(env_id))
            for env_id in builtin_multiagent_ids()]  # fmt: skip


def _default_suite(episodes: int) -> Callable[[], list[EvalEntry]]:
    return lambda: [EvalEntry(env_id, episodes=episodes) for env_id in builtin_env_ids()]


def _full() -> list[EvalEntry]:
    entries = []
    for env_id in builtin_env_ids():
        levels = _levels(env_id)
        if not levels:
            entries.append(EvalEntry(env_id, episodes=200))
        entries += [EvalEntry(env_id, options={"level": lv}, episodes=200) for lv in levels]
    return entries


def _multiagent() -> list[EvalEntry]:
    # Against the floor (random) and the reference opponent, once when they are the same.
    entries: list[EvalEntry] = []
    for entry in _games(50, "random") + _games(50, None):
        if entry not in entries:
            entries.append(entry)
    return entries


suite_registry.register("smoke", _default_suite(5))
suite_registry.register("quick", _default_suite(50))
suite_registry.register("full", _full)
suite_registry.register("multiagent", _multiagent)


def resolve_entries(names: Sequence[str], episodes: int | None = None) -> list[EvalEntry]:
    """Expand suite names and env ids into entries (in order, without duplicates).

    A multi-agent env id becomes an entry against the game's reference opponent, in every
    seat (the caller may replace both).

    Args:
        names: Suite names (``smoke``) or registered env ids (``turngym/Sokoban-v0``).
        episodes: Override every entry's episodes per seed.

    Raises:
        turngym.registry.UnknownNameError: A name is neither a suite nor an env (with
            suggestions from both).
    """
    entries: list[EvalEntry] = []
    for name in names:
        if name in suite_registry:
            source = suite_registry.get(name)
            found = list(source() if callable(source) else source)
        elif is_multiagent(name):
            found = [EvalEntry(name, opponent=reference_opponent(name))]
        else:
            if "/" not in name and name not in env_registry:
                suite_registry.get(name)  # raises with did-you-mean over suite names
            env_registry.get(name)  # raises with did-you-mean over env ids
            found = [EvalEntry(name)]
        for entry in found:
            if episodes is not None:
                entry = replace(entry, episodes=episodes)
            if entry not in entries:
                entries.append(entry)
    return entries
