"""One registry pattern for the three extension points: envs, credit estimators, agents.

:class:`Registry` maps names to objects. Entries may be lazy ``"module:attr"`` strings that are
imported on first use; registering a *different* object under a taken name raises (a silent
overwrite is how lm-eval lost tasks before its PR #3549); unknown names fail with did-you-mean
suggestions. Third-party packages extend a registry through an entry-point group, loaded
lazily on the first miss, one broken plugin only warning (docs/design.md#principles).

Envs live in Gymnasium's own registry; :class:`EnvRegistry` is the same interface over it, so
``turngym.make`` is ``gymnasium.make`` plus the plugin fallback, never a fork of it.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.metadata
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import gymnasium
from gymnasium.envs import registration as _gym_registration

__all__ = [
    "UnknownNameError",
    "PluginStatus",
    "Registry",
    "EnvRegistry",
    "env_registry",
    "env_namespace",
    "is_remote_id",
    "make",
]

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """A name that is not registered. The message carries suggestions and the known names."""

    def __str__(self) -> str:
        # KeyError quotes its argument; show the message as written.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, slots=True)
class PluginStatus:
    """How loading one entry point went: ``ok`` or the error, for ``turngym list plugins``."""

    group: str
    name: str
    value: str
    ok: bool
    error: str = ""


def import_string(target: str) -> Any:
    """Import ``"package.module:attr"`` (attr may be dotted) and return the attribute.

    Raises:
        ValueError: The string has no colon.
        ImportError / AttributeError: The module or attribute does not exist.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"Expected 'package.module:attribute', got {target!r}.")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """Build the 'unknown X' message: did-you-mean suggestions, then every known name."""
    suggestions = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    return f"Unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(sorted(known)) or '(none)'}."


class Registry(Generic[T]):
    """A name → object registry with lazy entries, a collision guard and entry-point plugins.

    Example:
        >>> reg = Registry[int]("number")
        >>> reg.register("one", 1)
        >>> reg.get("one")
        1
        >>> reg.get("onee")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        turngym.registry.UnknownNameError: Unknown number 'onee'. Did you mean 'one'? ...
    """

    def __init__(self, kind: str, group: str | None = None) -> None:
        """Create an empty registry.

        Args:
            kind: What is registered, for messages (``"estimator"``, ``"agent"``).
            group: Entry-point group third-party packages register under, if any.
        """
        self.kind = kind
        self.group = group
        self._entries: dict[str, T | str] = {}
        self._plugins_loaded = False
        self.plugin_status: list[PluginStatus] = []

    def register(self, name: str, target: T | str) -> None:
        """Register ``target`` (an object or a lazy ``"module:attr"`` string) as ``name``.

        Re-registering the same target is a no-op, and so is registering the object a lazy
        entry resolves to (upgrading a placeholder).

        Raises:
            ValueError: ``name`` already holds a different target.
        """
        if name in self._entries:
            current = self._entries[name]
            if current is target or current == target or self._resolves_to(current, target):
                if not isinstance(target, str):
                    self._entries[name] = target
                return
            raise ValueError(
                f"{self.kind} {name!r} is already registered to {current!r}; refusing to "
                f"replace it with {target!r}. Pick another name."
            )
        self._entries[name] = target

    def _resolves_to(self, current: T | str, target: T | str) -> bool:
        if isinstance(current, str) and not isinstance(target, str):
            with contextlib.suppress(Exception):
                return import_string(current) is target
        if isinstance(target, str) and not isinstance(current, str):
            with contextlib.suppress(Exception):
                return import_string(target) is current
        return False

    def get(self, name: str) -> T:
        """Return the object registered as ``name``, loading plugins on the first miss.

        Raises:
            UnknownNameError: ``name`` is not registered (message has suggestions).
        """
        if name not in self._entries:
            self.load_plugins()
        if name not in self._entries:
            failed = self.failed_plugin_message(name)
            raise UnknownNameError(failed or unknown_name_message(self.kind, name, self.names()))
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = import_string(entry)
            self._entries[name] = entry
        return cast(T, entry)  # a resolved entry is the registered object

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def decorator(self, name: str) -> Callable[[T], T]:
        """Return a decorator that registers the decorated object as ``name``."""

        def wrap(obj: T) -> T:
            self.register(name, obj)
            return obj

        return wrap

    # --- Plugins --------------------------------------------------------------------------------
    def load_plugins(self, *, force: bool = False) -> list[PluginStatus]:
        """Load every entry point of :attr:`group` once; a broken one only warns.

        Returns:
            One status per entry point (also kept in :attr:`plugin_status`).
        """
        if self.group is None or (self._plugins_loaded and not force):
            return self.plugin_status
        self._plugins_loaded = True
        self.plugin_status = []
        for ep in sorted(importlib.metadata.entry_points(group=self.group), key=lambda e: e.name):
            try:
                self._install_plugin(ep)
            except Exception as err:  # a plugin's bug must not break turngym or other plugins
                status = PluginStatus(self.group, ep.name, ep.value, False,
                                      f"{type(err).__name__}: {err}")  # fmt: skip
                self.plugin_status.append(status)
                _warn_once(status)
            else:
                self.plugin_status.append(PluginStatus(self.group, ep.name, ep.value, True))
        return self.plugin_status

    def _install_plugin(self, ep: importlib.metadata.EntryPoint) -> None:
        # Estimators and agents: the entry-point name is the registered name, the value the
        # object. Importing eagerly here surfaces a broken plugin as a warning at load time.
        self.register(ep.name, ep.load())

    def failed_plugin_message(self, name: str) -> str | None:
        """Why ``name`` is missing when a plugin that would provide it failed to load.

        Estimators and agents: the entry-point name is the registered name (an agent spec
        ``name:arg`` is looked up by ``name``), so a failed plugin of that name is the cause.
        """
        for status in self.plugin_status:
            if not status.ok and status.name == name:
                return _failed_plugin_text(self.kind, name, status)
        return None


_WARNED: set[tuple[str, str, str]] = set()
"""Plugins already warned about in this process (group, name, value)."""


def _warn_once(status: PluginStatus) -> None:
    """Warn about a broken plugin once per process, however often plugins are (re)loaded."""
    key = (status.group, status.name, status.value)
    if key in _WARNED:
        return
    _WARNED.add(key)
    warnings.warn(f"turngym: skipping {status.group} plugin {status.name!r} ({status.value}): "
                  f"{status.error}", RuntimeWarning, stacklevel=3)  # fmt: skip


def _failed_plugin_text(kind: str, name: str, status: PluginStatus) -> str:
    return (f"Unknown {kind} {name!r}: the {status.group} plugin {status.name!r} "
            f"({status.value}) that would provide it failed to load ({status.error}). Fix or "
            "reinstall the package that declares it; `turngym list plugins` shows every "
            "plugin's status.")  # fmt: skip


@contextlib.contextmanager
def env_namespace(namespace: str) -> Iterator[None]:
    """Register envs inside ``namespace``: ``register(id="Echo-v0")`` lands as ``ns/Echo-v0``.

    Wraps Gymnasium's ``registration.namespace`` (public in 1.x but not in its ``__all__``);
    should it ever disappear, ids registered without a namespace are prefixed by hand.
    """
    gym_namespace = getattr(_gym_registration, "namespace", None)
    if gym_namespace is not None:
        with gym_namespace(namespace):
            yield
        return
    before = set(gymnasium.registry)
    yield
    for env_id in sorted(set(gymnasium.registry) - before):
        spec = gymnasium.registry.pop(env_id)
        if spec.namespace is None:
            gymnasium.register(id=f"{namespace}/{env_id}", **_spec_kwargs(spec))
        else:
            gymnasium.registry[env_id] = spec


def _is_gym_builtin(spec: gymnasium.envs.registration.EnvSpec) -> bool:
    # Gymnasium registers CartPole & co. (and shimmy's compatibility ids) on import; they stay
    # makeable through turngym.make but are not text envs, so listings leave them out.
    entry = spec.entry_point
    module = entry if isinstance(entry, str) else getattr(entry, "__module__", "") or ""
    return module.startswith(("gymnasium.", "shimmy."))


def _spec_kwargs(spec: gymnasium.envs.registration.EnvSpec) -> dict[str, Any]:
    return {
        "entry_point": spec.entry_point,
        "max_episode_steps": spec.max_episode_steps,
        "nondeterministic": spec.nondeterministic,
        "kwargs": spec.kwargs,
    }


class EnvRegistry(Registry[gymnasium.envs.registration.EnvSpec]):
    """The env view of :class:`Registry`, backed by Gymnasium's registry.

    Plugins in the ``turngym.envs`` group name a zero-argument function that registers envs;
    it runs inside the namespace given by the entry-point name.
    """

    def __init__(self) -> None:
        """Create the view (there is one, :data:`env_registry`)."""
        super().__init__("env id", group="turngym.envs")
        self._siblings: list[tuple[Registry[Any], str]] = []

    def register(self, name: str, target: Any) -> None:
        """Register an env: ``target`` is an entry point (``"module:Class"`` or a callable)."""
        if name in gymnasium.registry and gymnasium.registry[name].entry_point != target:
            raise ValueError(
                f"env id {name!r} is already registered to "
                f"{gymnasium.registry[name].entry_point!r}."
            )
        gymnasium.register(id=name, entry_point=target)

    def get(self, name: str) -> gymnasium.envs.registration.EnvSpec:
        """Return the spec of ``name``, loading plugins on the first miss (with suggestions).

        A remote id ``ENV_ID@URL`` (an env served by ``turngym serve``) asks that server for
        the env's spec; see :func:`is_remote_id`.
        """
        if is_remote_id(name):
            return _remote_spec(name)
        if name.startswith("openenv+") and "://" in name:  # any OpenEnv server (issue 20)
            # By string (data, not a code dependency): the registry stays below the adapters.
            openenv_spec = import_string("turngym.envs.adapters.openenv:openenv_spec")
            spec: gymnasium.envs.registration.EnvSpec = openenv_spec(name)
            return spec
        if name not in gymnasium.registry and ":" not in name:
            self.load_plugins()
        if name in gymnasium.registry:
            return gymnasium.registry[name]
        for other, hint in self._siblings:  # e.g. multi-agent ids: known, but not made here
            if name in other:
                raise UnknownNameError(hint.format(name=name))
        failed = self.failed_plugin_message(name)
        if failed is not None:
            raise UnknownNameError(failed)
        known = self.names() + [n for other, _ in self._siblings for n in other.names()]
        raise UnknownNameError(unknown_name_message(self.kind, name, known))

    def add_sibling(self, other: Registry[Any], hint: str) -> None:
        """Name another registry of env ids that :meth:`get` does not build.

        An id found there fails with ``hint`` (formatted with ``name``) instead of "unknown",
        and its ids join the did-you-mean suggestions. The multi-agent registry links itself
        here, so this module never imports it (the dependency points one way).
        """
        if all(o is not other for o, _ in self._siblings):
            self._siblings.append((other, hint))

    def failed_plugin_message(self, name: str) -> str | None:
        """Why ``name`` is missing when the plugin of its namespace failed to load.

        An env plugin's entry-point name is the namespace of the ids it registers.
        """
        namespace = name.partition("/")[0] if "/" in name else None
        for status in self.plugin_status:
            if not status.ok and status.name == namespace:
                return _failed_plugin_text(self.kind, name, status)
        return None

    def names(self) -> list[str]:
        """Return the registered env ids except Gymnasium's own built-ins, sorted."""
        return sorted(k for k, spec in gymnasium.registry.items() if not _is_gym_builtin(spec))

    def __contains__(self, name: object) -> bool:
        return name in gymnasium.registry

    def _install_plugin(self, ep: importlib.metadata.EntryPoint) -> None:
        register_envs = ep.load()
        if not callable(register_envs):
            raise TypeError(
                f"the value must name a zero-argument function that registers envs, "
                f"got {type(register_envs).__name__}"
            )
        with env_namespace(ep.name):
            register_envs()


env_registry = EnvRegistry()
"""The process-wide env registry view."""


def is_remote_id(env_id: str) -> bool:
    """Whether ``env_id`` names an env on a ``turngym serve`` server: ``ENV_ID@URL``.

    ``turngym.make``, ``collect``, ``turngym rollout``/``eval``/``check`` accept such ids and
    build a :class:`turngym.server.client.RemoteEnv` (Gymnasium ids never contain ``@``).

    Example:
        >>> is_remote_id("turngym/Sokoban-v0@http://127.0.0.1:8000"), is_remote_id("Sokoban-v0")
        (True, False)
    """
    _, sep, url = env_id.partition("@")
    return bool(sep) and "://" in url


def _remote_spec(remote_id: str) -> gymnasium.envs.registration.EnvSpec:
    try:
        resolve = import_string("turngym.server.client:remote_spec")
    except ImportError as err:
        raise UnknownNameError(
            f"{remote_id!r} is a remote env id; using it needs the serve extra "
            f"(pip install 'turngym[serve]'): {err}"
        ) from err
    spec: gymnasium.envs.registration.EnvSpec = resolve(remote_id)
    return spec


def make(env_id: str, **kwargs: Any) -> gymnasium.Env:
    """``gymnasium.make`` plus the plugin fallback and did-you-mean for unknown ids.

    ``"module:Name-v0"`` (import-then-make) works as in Gymnasium, and ``"ENV_ID@URL"``
    connects to that env on a ``turngym serve`` server (a ``RemoteEnv``; ``kwargs`` go to the
    served env's constructor).

    Raises:
        UnknownNameError: No env has this id, even after loading plugins.

    Example:
        >>> import turngym
        >>> env = turngym.make("turngym/FrozenLake-v0")
        >>> obs, info = env.reset(seed=0, options={"split": "test"})
        >>> info["task_id"].startswith("frozenlake-")
        True
    """
    if ":" in env_id and not is_remote_id(env_id) and not env_id.startswith("openenv+"):
        return gymnasium.make(env_id, **kwargs)
    return gymnasium.make(env_registry.get(env_id), **kwargs)
