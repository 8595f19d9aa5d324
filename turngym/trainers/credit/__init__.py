"""The credit-estimator registry and config-time resolution.

See docs/design.md#credit-assignment-and-training and docs/methods.md.

Every estimator has one signature::

    fn(batch: TurnBatch, ctx: CreditContext, /, *, **params) -> Credit

Estimators register by lowercase snake name with :func:`register_estimator`; third-party
packages add theirs through the ``turngym.estimators`` entry-point group (``name =
"package.module:function"``), loaded lazily on the first unknown name. Built-ins are
registered here as ``"module:function"`` strings, so importing this package imports no
estimator module.

:func:`resolve_estimator` turns a config (name, params, what the context provides) into a
``(batch, ctx) -> Credit`` callable, failing before any rollout on an unknown name, a
misspelt or mistyped parameter, or a missing requirement. The caller never branches on the
name.

A *method* is an estimator plus what it needs beyond an advantage function: an optional
critic (a learned turn-level value model), an optional rollout strategy (e.g. trees branched
from env snapshots) and an optional update schedule (e.g. per-turn updates in reverse turn
order). All of it is declared once, where the
estimator is registered::

    @register_estimator("ppo_gae", requires={"critic"}, critic="value")

:func:`method_of` returns the :class:`Method` record a trainer builds its parts from.

Example:
    >>> estimate = resolve_estimator("rloo", {})
    >>> try:
    ...     resolve_estimator("grpo", {"singletn": "zero"})
    ... except UnknownParameterError as err:
    ...     print(err)  # doctest: +ELLIPSIS
    estimator 'grpo' has no parameter 'singletn'. Did you mean 'singleton'? ...
"""

from __future__ import annotations

import difflib
import functools
import inspect
import numbers
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from turngym.registry import Registry
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = [
    "estimator_registry",
    "register_estimator",
    "resolve_estimator",
    "method_of",
    "Method",
    "Plug",
    "UnknownParameterError",
    "MissingRequirementError",
    "TurnBatch",
    "CreditContext",
    "Credit",
]

estimator_registry: Registry[Callable[..., Any]] = Registry("estimator", group="turngym.estimators")
"""Credit estimators by name."""

_BUILTINS = {
    name: f"turngym.trainers.credit.{name}:{name}"
    for name in ("grpo", "drgrpo", "rloo", "trloo", "mc_grpo", "gigpo", "a_grae",
                 # structured rewards, judges and memory across iterations (issue 16)
                 "rank_grpo", "f_grpo", "matchtir", "mapo", "scrl", "pre_grpo", "slea_rl",
                 "pipo", "r3", "skill_r1", "ufo")
}
# Modules that register more than one estimator.
_BUILTINS.update({
    "ppo_gae": "turngym.trainers.credit.gae:ppo_gae",
    "bilevel_gae": "turngym.trainers.credit.gae:bilevel_gae",
    "odysseus": "turngym.trainers.credit.gae:odysseus",
    "hiper": "turngym.trainers.credit.hiper:hiper",
    "archer": "turngym.trainers.credit.archer:archer",
    "seeupo": "turngym.trainers.credit.seeupo:seeupo",
    "tree_grpo": "turngym.trainers.credit.tree_grpo:tree_grpo",
})  # fmt: skip
# Probe-based estimators (they read precomputed ProbeValues from ctx.probe).
_BUILTINS.update(
    {
        name: f"turngym.trainers.credit.{name}:{name}"
        for name in ("igpo", "a2tgpo", "siop", "pbsd", "grpo_vps", "swap", "infopo")
    }
)
for _name, _target in _BUILTINS.items():
    estimator_registry.register(_name, _target)


class UnknownParameterError(TypeError, ValueError):
    """An estimator parameter that does not exist, is missing, or has a bad value."""


class MissingRequirementError(ValueError):
    """The estimator needs a context capability (probe, critic, judge) that is not set."""


@dataclass(frozen=True)
class Plug:
    """One part of a method beyond its estimator: a registered name plus default options.

    Attributes:
        name: The registered critic, rollout strategy or update schedule (e.g. ``"value"``,
            ``"tree"``, ``"reverse_turn"``).
        params: Options the method fixes; the run's config can override them.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "params": dict(self.params)}


def _plug(value: Plug | str | None, what: str) -> Plug | None:
    if value is None or isinstance(value, Plug):
        return value
    if isinstance(value, str) and value:
        return Plug(value)
    raise TypeError(f"{what} must be a name, a Plug or None, got {value!r}")


@dataclass(frozen=True)
class Method:
    """What a training method is made of; every part but the estimator is optional.

    Attributes:
        estimator: The registered estimator name.
        requires: Context capabilities the estimator reads (``probe``, ``critic``, ...).
        critic: The critic the trainer builds and trains, or ``None``. An estimator that
            requires ``"critic"`` without naming one gets the turn-level ``"value"`` critic.
        strategy: How episodes are collected (``None``: plain groups of G episodes).
        schedule: How the policy is updated (``None``: all sequences together).
    """

    estimator: str
    requires: frozenset[str] = frozenset()
    critic: Plug | None = None
    strategy: Plug | None = None
    schedule: Plug | None = None

    def describe(self) -> str:
        """One line for ``turngym list estimators``: the non-default parts."""
        parts = [f"requires {', '.join(sorted(self.requires))}"] if self.requires else []
        for what in ("critic", "strategy", "schedule"):
            plug = getattr(self, what)
            if plug is not None:
                parts.append(f"{what} {plug.name}")
        return "; ".join(parts)


def register_estimator(
    name: str,
    *,
    requires: Iterable[str] = frozenset(),
    critic: Plug | str | None = None,
    strategy: Plug | str | None = None,
    schedule: Plug | str | None = None,
    probes: Callable[[Mapping[str, Any]], Any] | None = None,
    unverified: Iterable[str] = (),
    requires_if: Mapping[str, tuple[str, Any]] | None = None,
) -> Callable[[Callable[..., Credit]], Callable[..., Credit]]:
    """Decorator: register an estimator under ``name`` and record what its method needs.

    Args:
        name: Lowercase snake name, e.g. ``"trloo"``.
        requires: Context capabilities the estimator uses (``"probe"``, ``"critic"``,
            ``"judge"``); stored on the function as ``requires``.
        critic: The critic the trainer must build (a name of
            :data:`turngym.trainers.critic.critic_registry`, or a :class:`Plug` with options).
        strategy: The rollout strategy (:data:`turngym.trainers.strategies.strategy_registry`).
        schedule: The update schedule (:data:`turngym.trainers.schedules.schedule_registry`).
        probes: For probe-based estimators: ``options -> ProbeNeeds``
            (:mod:`turngym.trainers.credit.probe_values`), called with every option's value
            at config time; implies ``requires={"probe"}``. Stored as ``probes``.
        unverified: Options (``"name"`` or ``"name=value"``) whose formula is an UNVERIFIED
            reconstruction; stored as ``unverified`` and shown by ``turngym list estimators``.
        requires_if: Capabilities needed only under one option value, as
            ``{capability: (option, value)}`` (e.g. MAPO's ``{"judge": ("source", "judge")}``);
            checked by :func:`resolve_estimator` with the bound or default option value, so
            the run fails at config time, not at the first credit assignment.

    Raises:
        ValueError: ``name`` already holds a different function.
    """
    plugs = {"critic": _plug(critic, "critic"), "strategy": _plug(strategy, "strategy"),
             "schedule": _plug(schedule, "schedule")}  # fmt: skip

    def wrap(fn: Callable[..., Credit]) -> Callable[..., Credit]:
        # Attributes on a function object: a Callable type cannot declare them, so setattr.
        marks: dict[str, object] = {
            "requires": frozenset(requires) | ({"probe"} if probes else set()),
            "probes": probes,
            "unverified": tuple(unverified),
            "requires_if": dict(requires_if or {}),
            **plugs,
        }
        for what, value in marks.items():
            setattr(fn, what, value)
        # A built-in's lazy "module:function" entry already resolves to this function;
        # registering the object while its module is still importing would look like a clash.
        if _BUILTINS.get(name) != f"{fn.__module__}:{fn.__qualname__}":
            estimator_registry.register(name, fn)
        return fn

    return wrap


def _options(name: str, fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The keyword-only parameters of ``fn``, after checking its positional shape."""
    params = list(inspect.signature(fn).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) != 2:
        raise TypeError(
            f"estimator {name!r} must have the signature (batch, ctx, /, *, **params) -> "
            f"Credit; it takes {len(positional)} positional parameters."
        )
    return {p.name: p for p in params if p.kind is p.KEYWORD_ONLY}


def _describe(options: Mapping[str, inspect.Parameter]) -> str:
    shown = [f"{n}={p.default!r}" if p.default is not p.empty else n for n, p in options.items()]
    return f"Its parameters: {', '.join(shown) or '(none)'}."


def _check_value(name: str, key: str, value: Any, hint: Any) -> None:
    """Check ``value`` against a ``Literal[...]``, ``bool``, ``int`` or ``float`` annotation."""
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            maybe = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownParameterError(
                f"estimator {name!r}: {key}={value!r} is not one of {list(choices)}.{maybe}"
            )
        return
    kinds = {bool: (bool,), int: (numbers.Integral,), float: (numbers.Real,)}.get(hint)
    if kinds and (not isinstance(value, kinds) or (hint is not bool and isinstance(value, bool))):
        raise UnknownParameterError(
            f"estimator {name!r}: {key} must be {hint.__name__}, got {value!r}."
        )


def _check_params(name: str, fn: Callable[..., Any], params: Mapping[str, Any]) -> None:
    options = _options(name, fn)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    for key in params:
        if key not in options and not takes_any:
            close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.5)
            maybe = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownParameterError(
                f"estimator {name!r} has no parameter {key!r}.{maybe} {_describe(options)}"
            )
    inspect.signature(fn).bind_partial(None, None, **params)
    missing = [k for k, p in options.items() if p.default is p.empty and k not in params]
    if missing:
        raise UnknownParameterError(
            f"estimator {name!r} needs a value for {', '.join(missing)}. {_describe(options)}"
        )
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # a plugin's unresolvable annotation must not block resolving it
        hints = {}
    for key, value in params.items():
        _check_value(name, key, value, hints.get(key))


def resolve_estimator(
    name: str, params: Mapping[str, Any] | None = None, available: Iterable[str] = frozenset()
) -> Callable[[TurnBatch, CreditContext], Credit]:
    """Look up an estimator, bind its parameters and check its requirements, at config time.

    Args:
        name: Registered estimator name (plugins are loaded on the first unknown name).
        params: Keyword parameters for the estimator; checked against its signature and
            its ``Literal``/``bool``/``int``/``float`` annotations.
        available: Context capabilities that will be set (see
            :meth:`CreditContext.available`).

    Returns:
        ``estimate(batch, ctx) -> Credit`` with the parameters bound.

    Raises:
        turngym.registry.UnknownNameError: No estimator has this name (with suggestions).
        UnknownParameterError: A parameter is unknown, missing, or has a bad value.
        MissingRequirementError: The estimator needs a capability not in ``available``.
    """
    fn = estimator_registry.get(name)
    params = dict(params or {})
    _check_params(name, fn, params)
    requires = frozenset(getattr(fn, "requires", frozenset()))  # plugins may not declare it
    requires |= _conditional_requirements(fn, params)
    missing = sorted(requires - frozenset(available))
    if missing:
        have = ", ".join(sorted(available)) or "none of them"
        raise MissingRequirementError(
            f"estimator {name!r} requires {', '.join(missing)} in the CreditContext, but only "
            f"{have} will be set. Configure CreditContext({missing[0]}=...) or pick another "
            "estimator."
        )
    return functools.partial(fn, **params)


def _conditional_requirements(fn: Callable[..., Any], params: Mapping[str, Any]) -> set[str]:
    """The ``requires_if`` capabilities whose option has the triggering value."""
    conditions = getattr(fn, "requires_if", None) or {}
    if not conditions:
        return set()
    defaults = {k: p.default for k, p in inspect.signature(fn).parameters.items()}
    return {cap for cap, (option, value) in conditions.items()
            if params.get(option, defaults.get(option)) == value}  # fmt: skip


def method_of(name: str) -> Method:
    """The :class:`Method` registered under an estimator name.

    Plugins registered without :func:`register_estimator` (a bare function) have no critic,
    strategy or schedule; one that requires ``"critic"`` gets the default ``"value"`` critic.

    Raises:
        turngym.registry.UnknownNameError: No estimator has this name (with suggestions).

    Example:
        >>> method_of("ppo_gae").critic.name, method_of("grpo").critic is None
        ('value', True)
    """
    fn = estimator_registry.get(name)
    requires = frozenset(getattr(fn, "requires", frozenset()))
    critic = getattr(fn, "critic", None)
    if critic is None and "critic" in requires:
        critic = Plug("value")
    return Method(name, requires, critic, getattr(fn, "strategy", None),
                  getattr(fn, "schedule", None))  # fmt: skip
