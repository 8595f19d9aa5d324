"""The envs a server offers: validated once at start-up, built per session.

:class:`EnvCatalog` resolves the ids given to ``turngym serve`` (registered ids, or
``module:Name-v0`` to import a module that registers them), checks that each is a text env
that can be built, and records what clients need to know (:class:`~turngym.server.protocol.
EnvInfo`). Sessions get their envs from :meth:`EnvCatalog.build`.

Envs are built **without** Gymnasium's ``TimeLimit`` and ``OrderEnforcing`` wrappers: the
session applies the time limit and the reset-before-step rule itself, so a snapshot can carry
the turn count and a restored session never trips over a wrapper's private flag.

**What untrusted clients may choose.** Only ``level`` and the difficulty knobs of a
:class:`~turngym.core.TextEnv` as constructor kwargs (other kwargs, such as ``tasks_file``,
would let a client make the server read its files). A knob the env lists in
:attr:`~turngym.core.TextEnv.costly_knobs` (a corpus or catalogue size or seed: each value
builds and keeps its own data) takes only the values of the env's presets, in kwargs and in
the ``difficulty`` reset option alike, so the data a server builds is bounded by its presets.
The ``task`` reset option (a task dict of the client's, which skips the generator's bounds) is
refused. A server started with ``privileged=True`` trusts its clients and accepts all of it.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium

from turngym.core import TextEnv, TextSpace
from turngym.registry import env_registry
from turngym.server.protocol import EnvInfo, ErrorCode, ProtocolError

__all__ = ["ServedEnv", "EnvCatalog", "resolve_env_id"]


@dataclass(frozen=True)
class ServedEnv:
    """One env a server offers.

    Attributes:
        env_id: The registered id.
        spec: Its Gymnasium spec, with the time limit and order checks removed.
        max_episode_steps: The time limit the session applies (from the registered spec).
        info: What clients are told about it.
        knobs: Constructor kwargs untrusted clients may set (``None``: none at all).
        slow: Whether to call it in worker threads (``metadata["turngym.slow"]``).
        presets: For each costly knob, the values untrusted clients may choose (canonical
            JSON texts of the defaults' and the levels' values).
    """

    env_id: str
    spec: gymnasium.envs.registration.EnvSpec
    max_episode_steps: int | None
    info: EnvInfo
    knobs: frozenset[str] | None
    slow: bool
    presets: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)


def resolve_env_id(name: str) -> str:
    """Return the registered id for ``name``, importing ``module`` first for ``module:Name-v0``.

    Raises:
        turngym.registry.UnknownNameError: No such env (the message has suggestions).
        ModuleNotFoundError: The module of ``module:Name-v0`` does not exist.
    """
    module, sep, env_id = name.partition(":")
    if sep and "://" not in name:
        importlib.import_module(module)  # registers its envs, as gymnasium.make("m:id") does
        name = env_id
    env_registry.get(name)
    return name


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


def _preset_values(cls: type[TextEnv], registered: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """For each costly knob of ``cls``, the values its defaults, levels and registration give."""
    presets = [cls.difficulty_defaults, *cls.levels.values(), registered]
    return {knob: frozenset(_canonical(p[knob]) for p in presets if knob in p)
            for knob in cls.costly_knobs}  # fmt: skip


def _check_presets(served: ServedEnv, knobs: Mapping[str, Any], where: str) -> None:
    """Refuse a costly knob set to a value none of the env's presets has."""
    for knob, allowed in sorted(served.presets.items()):
        if knob in knobs and _canonical(knobs[knob]) not in allowed:
            raise ProtocolError(
                ErrorCode.VALIDATION_ERROR,
                f"{where}: {knob}={knobs[knob]!r} is not allowed for {served.env_id}: each value "
                f"builds and keeps its own data on the server, so clients may use only the "
                f"values of its presets, {sorted(allowed)} (pick one with 'level'), unless the "
                "server was started with --privileged.",
                knob=knob,
            )


def _space_limit(space: gymnasium.Space) -> int:
    if isinstance(space, TextSpace):
        return space.max_chars
    if isinstance(space, gymnasium.spaces.Text):
        return space.max_length
    raise TypeError(
        f"spaces must be text (turngym.TextSpace or gymnasium.spaces.Text), got {space!r}; "
        "turngym serve only serves text envs."
    )


class EnvCatalog:
    """The envs of one server, in the order given (the first is the default)."""

    def __init__(self, env_ids: Sequence[str], *, privileged: bool = False) -> None:
        """Resolve and probe every env (each is built once and closed).

        Args:
            env_ids: Registered ids, or ``module:Name-v0``.
            privileged: Whether clients are trusted (any constructor kwargs).

        Raises:
            ValueError: No ids, or an env whose spaces are not text.
            turngym.registry.UnknownNameError: An unknown id (with suggestions).
        """
        if not env_ids:
            raise ValueError("name at least one env id to serve, e.g. turngym/Sokoban-v0")
        self.privileged = privileged
        self.envs: dict[str, ServedEnv] = {}
        for name in env_ids:
            served = self._probe(resolve_env_id(name))
            self.envs[served.env_id] = served
        self.default_id = next(iter(self.envs))

    @staticmethod
    def _probe(env_id: str) -> ServedEnv:
        registered = env_registry.get(env_id)
        spec = dataclasses.replace(registered, max_episode_steps=None, order_enforce=False)
        env = gymnasium.make(spec, disable_env_checker=True)
        try:
            base = env.unwrapped
            try:
                max_action = _space_limit(env.action_space)
                max_obs = _space_limit(env.observation_space)
            except TypeError as err:
                raise ValueError(f"{env_id}: {err}") from None
            space = env.action_space
            examples = list(space.examples) if isinstance(space, TextSpace) else []
            knobs, presets = None, {}
            if isinstance(base, TextEnv):
                knobs = frozenset(type(base).difficulty_defaults) | {"level"}
                presets = _preset_values(type(base), registered.kwargs or {})
            slow = bool(base.metadata.get("turngym.slow", False))
        finally:
            env.close()
        info = EnvInfo(
            env_id=env_id,
            max_episode_steps=registered.max_episode_steps,
            action_examples=examples,
            max_action_chars=max_action,
            max_observation_chars=max_obs,
        )
        return ServedEnv(env_id, spec, registered.max_episode_steps, info, knobs, slow, presets)

    def get(self, env_id: str | None) -> ServedEnv:
        """Return a served env (``None``: the default).

        Raises:
            ProtocolError: ``VALIDATION_ERROR`` naming the served ids for an id not served.
        """
        if env_id is None:
            return self.envs[self.default_id]
        served = self.envs.get(env_id)
        if served is None:
            close = difflib.get_close_matches(env_id, list(self.envs), n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ProtocolError(
                ErrorCode.VALIDATION_ERROR,
                f"This server does not serve {env_id!r}.{hint} It serves: {', '.join(self.envs)}.",
            )
        return served

    def check_kwargs(self, served: ServedEnv, kwargs: Mapping[str, Any]) -> None:
        """Refuse constructor kwargs an untrusted client may not set.

        Raises:
            ProtocolError: ``VALIDATION_ERROR`` listing what is allowed.
        """
        if self.privileged or not kwargs:
            return
        allowed = served.knobs or frozenset()
        refused = sorted(set(kwargs) - allowed)
        if refused:
            raise ProtocolError(
                ErrorCode.VALIDATION_ERROR,
                f"env_kwargs {refused} are not allowed for {served.env_id}; clients may set "
                f"{sorted(allowed) or 'none'} (a server started with --privileged accepts any).",
            )
        _check_presets(served, kwargs, "env_kwargs")

    def check_options(self, served: ServedEnv, options: Mapping[str, Any] | None) -> None:
        """Refuse reset options an untrusted client may not use (``task``, costly knob values).

        Raises:
            ProtocolError: ``VALIDATION_ERROR`` saying what is allowed.
        """
        if self.privileged or not options:
            return
        if "task" in options:
            raise ProtocolError(
                ErrorCode.VALIDATION_ERROR,
                "The reset option 'task' (a task dict of your own) is accepted only by a server "
                "started with --privileged; pick tasks with 'seed', 'split' and 'level'.",
            )
        difficulty = options.get("difficulty")
        if isinstance(difficulty, Mapping):
            _check_presets(served, difficulty, "difficulty")

    def build(self, served: ServedEnv, kwargs: Mapping[str, Any]) -> gymnasium.Env:
        """Build a fresh env (no time limit or order wrappers: the session applies them).

        Raises:
            ProtocolError: ``FACTORY_ERROR`` when the constructor fails (bad knob values...).
        """
        try:
            return gymnasium.make(served.spec, disable_env_checker=True, **kwargs)
        except Exception as err:
            raise ProtocolError(
                ErrorCode.FACTORY_ERROR,
                f"could not build {served.env_id} with {dict(kwargs)}: {type(err).__name__}: {err}",
                factory_name=served.env_id,
                exception="ValueError" if isinstance(err, ValueError) else type(err).__name__,
            ) from err

    def describe(self) -> dict[str, Any]:
        """JSON form of every served env, for ``/metadata``."""
        return {env_id: s.info.model_dump() for env_id, s in self.envs.items()}
