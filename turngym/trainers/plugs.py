"""A method's parts for one training run: critic, rollout strategy, update schedule.

:func:`check_method` validates, before any model is built, that the estimator's declared
parts exist and that the run's ``critic_params`` / ``strategy_params`` / ``schedule_params``
name real options (did-you-mean on a typo). :func:`build_parts` then builds them. The trainer
uses the result through fixed hooks and never branches on the method's name.

The switch/subgoal output format (HiPER's, ``TrainConfig.output_format="switch_subgoal"``)
lives here too: :func:`format_env` adds its instructions to the env's, and
:func:`tiny_source` adds its tags to a tiny model's vocabulary.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium

from turngym.core import INSTRUCTIONS
from turngym.registry import Registry, make
from turngym.trainers.config import TrainConfig
from turngym.trainers.credit import Method, Plug, UnknownParameterError, method_of
from turngym.trainers.credit.hiper import FORMAT_INSTRUCTIONS, FORMAT_WORDS
from turngym.trainers.critic import critic_registry
from turngym.trainers.schedules import schedule_registry
from turngym.trainers.strategies import strategy_registry

__all__ = ["MethodParts", "check_method", "build_parts", "critic_heads", "format_env",
           "tiny_source", "SwitchSubgoalFormat"]  # fmt: skip

# Arguments the trainer supplies itself; a config cannot set them.
_INJECTED = {
    "critic": {"policy", "tokenizer", "seed", "device", "small"},
    "strategy": {"seed", "critic"},
    "schedule": set(),
}
_REGISTRIES: dict[str, Registry[type]] = {
    "critic": critic_registry, "strategy": strategy_registry, "schedule": schedule_registry,
}  # fmt: skip
_DEFAULTS = {"strategy": Plug("groups"), "schedule": Plug("joint")}


@dataclass
class MethodParts:
    """The built parts: ``critic`` may be ``None``; strategy and schedule always exist."""

    method: Method
    critic: Any
    strategy: Any
    schedule: Any


def _params(config: TrainConfig, what: str) -> dict[str, Any]:
    return dict(getattr(config, f"{what}_params"))


def _bind(what: str, plug: Plug, overrides: Mapping[str, Any]) -> tuple[type, dict[str, Any]]:
    """The class of ``plug`` and its merged, checked keyword arguments."""
    cls: type[Any] = _REGISTRIES[what].get(plug.name)  # any class: its __init__ is read below
    params = {**plug.params, **overrides}
    accepted = [p.name for p in inspect.signature(cls.__init__).parameters.values()
                if p.kind is p.KEYWORD_ONLY and p.name not in _INJECTED[what]]  # fmt: skip
    for key in params:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownParameterError(
                f"{what} {plug.name!r} has no option {key!r}.{hint} Its options: "
                f"{', '.join(accepted) or '(none)'} (set them in {what}_params)."
            )
    return cls, params


def critic_heads(plug: Plug) -> tuple[str, ...]:
    """The value heads a declared critic has (for fixed critics in tests and benchmarks).

    Example:
        >>> critic_heads(Plug("twin_q")), critic_heads(Plug("value"))
        (('q1', 'q2', 'v1', 'v2'), ('value',))
    """
    cls: type[Any] = critic_registry.get(plug.name)
    if "heads" in plug.params:
        return tuple(plug.params["heads"])
    fixed = getattr(cls, "HEADS", None)
    if fixed is not None:
        return tuple(fixed)
    return tuple(inspect.signature(cls.__init__).parameters["heads"].default)


def check_method(config: TrainConfig) -> Method:
    """Validate the method's parts and the config's options for them (no model needed).

    Raises:
        turngym.registry.UnknownNameError: The estimator or a declared part is unknown.
        UnknownParameterError: A ``*_params`` key is not an option of the part.
        ValueError: Options for a part the method does not have, or a schedule that needs
            one sequence per turn with ``sequence_mode="episode"``.
    """
    method = method_of(config.estimator)
    if method.critic is None and config.critic_params:
        raise ValueError(f"critic_params are set but estimator {config.estimator!r} has no "
                         "critic; remove them or pick a critic method.")  # fmt: skip
    for what in ("critic", "strategy", "schedule"):
        plug = getattr(method, what) or _DEFAULTS.get(what)
        if plug is not None:
            _bind(what, plug, _params(config, what))
    schedule = _REGISTRIES["schedule"].get((method.schedule or _DEFAULTS["schedule"]).name)
    if getattr(schedule, "needs_turn_sequences", False) and config.sequence_mode != "turn":
        raise ValueError(f"estimator {config.estimator!r} updates turn by turn; set "
                         "sequence_mode='turn'.")  # fmt: skip
    return method


def build_parts(config: TrainConfig, policy: Any, tokenizer: Any, device: Any) -> MethodParts:
    """Build the critic (if the method has one), the strategy and the schedule."""
    method = check_method(config)
    critic = None
    if method.critic is not None:
        cls, params = _bind("critic", method.critic, _params(config, "critic"))
        critic = cls(policy, tokenizer, seed=config.seed, device=device,
                     small=config.model == "tiny", **params)  # fmt: skip
    cls, params = _bind("strategy", method.strategy or _DEFAULTS["strategy"],
                        _params(config, "strategy"))  # fmt: skip
    strategy = cls(seed=config.seed, critic=critic, **params)
    cls, params = _bind("schedule", method.schedule or _DEFAULTS["schedule"],
                        _params(config, "schedule"))  # fmt: skip
    return MethodParts(method, critic, strategy, cls(**params))


class SwitchSubgoalFormat(gymnasium.Wrapper[str, str, str, str]):
    """Append the switch/subgoal output format to the env's instructions (HiPER's template).

    The env still parses the last ``<action>`` tag; ``<switch>`` and ``<subgoal>`` are read by
    the ``hiper`` estimator from ``Turn.action``.
    """

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        """Reset the env and extend ``info["instructions"]``."""
        obs, info = self.env.reset(seed=seed, options=options)
        info = dict(info)
        info[INSTRUCTIONS] = f"{info.get(INSTRUCTIONS, '')}\n{FORMAT_INSTRUCTIONS}".strip()
        return obs, info


def format_env(env: Any, config: TrainConfig) -> Any:
    """``env`` (an id or a factory) in the config's output format."""
    if config.output_format == "action":
        return env
    factory = env if callable(env) else (lambda: make(env))
    return lambda: SwitchSubgoalFormat(factory())


def tiny_source(config: TrainConfig) -> Any:
    """What ``build_tiny`` builds the tiny model from: the env, plus the format's tags."""
    if config.output_format == "action":
        return config.env
    from turngym.agents.tiny import env_vocabulary, resolve_env_id

    words = env_vocabulary(resolve_env_id(config.env), seed=config.seed)
    return [*words, *(w for w in FORMAT_WORDS if w not in words)]
