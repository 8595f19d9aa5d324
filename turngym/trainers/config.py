"""The trainer's configuration: one frozen dataclass, validated before any work starts.

Help text is the docstring under each field (docs/design.md#principles):
:func:`add_config_arguments` turns the fields into ``--kebab-case`` flags with that help;
:meth:`TrainConfig.from_file` reads YAML or JSON into the same class. Unknown keys are errors,
never silently ignored.
"""

from __future__ import annotations

import argparse
import ast
import collections.abc
import dataclasses
import difflib
import inspect
import json
import re
import sys
import textwrap
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turngym._cliargs import mapping_arg
from turngym._fieldtypes import check_field_types

__all__ = ["AGGREGATIONS", "EPO_OPTIONS", "check_epo_options", "TrainConfig",
           "add_config_arguments", "config_from_args", "field_docs"]  # fmt: skip

AGGREGATIONS: tuple[str, ...] = (
    "token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum-norm",
)
"""The loss aggregation modes of docs/methods.md#loss-aggregation (verl ``agg_loss``)."""


EPO_OPTIONS: dict[str, Any] = {
    "smooth_coef": 1.0,  # EPO's entropy_smooth_coeff
    "kappa_low": 0.5,
    "kappa_high": 1.5,
    "penalty": 0.1,  # p, the out-of-band value
    "differentiable": False,  # UNVERIFIED: the paper's intent, not the released code
    "schedule_epochs": 0,  # E of EPO's phase weights (0: weight 1 throughout)
}
"""``TrainConfig.epo`` keys and their defaults (the released script's values)."""


def check_epo_options(options: collections.abc.Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``options`` into :data:`EPO_OPTIONS`, rejecting unknown keys and bad values.

    Raises:
        ValueError: An unknown key (with a suggestion) or a value of the wrong type/range.
    """
    unknown = sorted(set(options) - set(EPO_OPTIONS))
    if unknown:
        hints = {k: difflib.get_close_matches(k, list(EPO_OPTIONS), n=1) for k in unknown}
        said = ", ".join(f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "")
                         for k, h in hints.items())  # fmt: skip
        raise ValueError(f"Unknown epo option(s) {said}; known: {', '.join(EPO_OPTIONS)}.")
    merged = {**EPO_OPTIONS, **options}
    for key, default in EPO_OPTIONS.items():
        value = merged[key]
        kind = type(default)
        ok = isinstance(value, bool) if kind is bool else (
            isinstance(value, (int, float)) and not isinstance(value, bool))  # fmt: skip
        if not ok:
            raise ValueError(f"epo option {key}={value!r} must be a {kind.__name__}")
    if not 0 <= merged["kappa_low"] < merged["kappa_high"]:
        raise ValueError("epo options need 0 <= kappa_low < kappa_high")
    if merged["smooth_coef"] < 0 or merged["penalty"] < 0 or merged["schedule_epochs"] < 0:
        raise ValueError("epo options smooth_coef, penalty and schedule_epochs must be >= 0")
    return merged



@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything a training run depends on (written next to its results)."""

    # --- What to train on ---
    env: str = "turngym/FrozenLake-v0"
    """Registered env id to train on."""
    env_options: dict[str, Any] = field(default_factory=dict)
    """Reset options for training and eval (e.g. ``{"level": 1}``)."""
    model: str = "tiny"
    """``tiny`` (a small model built offline from the env's vocabulary) or a local HF path."""
    tiny_d_model: int = 64
    """Hidden size of the tiny model."""
    tiny_layers: int = 2
    """Transformer layers of the tiny model."""
    seed: int = 0
    """Seeds the model init, task sampling, generation and minibatch order."""

    # --- Multi-agent games ---
    opponent: str | None = None
    """Multi-agent envs: agent spec in every seat but the policy's (``random``, ``minimax``,
    ``minimax:2``, ``negotiator``, ``hf:PATH``). ``None``: self-play, the policy plays every
    seat."""
    train_seat: str | None = None
    """Multi-agent envs: the seat whose turns are trained (default: the first seat against an
    opponent; every seat in self-play, each seat's groups baselined apart)."""
    eval_opponent: str | None = None
    """Multi-agent envs: the opponent in evaluations, where the policy plays ``train_seat`` (or
    the first seat). Default: ``opponent``, or ``random`` in self-play."""

    # --- Credit assignment ---
    estimator: str = "grpo"
    """Registered credit estimator (``turngym list estimators``)."""
    estimator_params: dict[str, Any] = field(default_factory=dict)
    """Keyword parameters of the estimator; misspelt names fail before any rollout."""
    critic_params: dict[str, Any] = field(default_factory=dict)
    """Options of the method's critic (e.g. ``{"lr": 1e-3, "model": "shared"}``)."""
    strategy_params: dict[str, Any] = field(default_factory=dict)
    """Options of the method's rollout strategy (e.g. ``{"branches": 4}`` for trees)."""
    schedule_params: dict[str, Any] = field(default_factory=dict)
    """Options of the method's update schedule (e.g. SeeUPO's ``{"eps_high": 0.2}``)."""
    output_format: str = "action"
    """``action``, or ``switch_subgoal`` (HiPER's ``<switch>``/``<subgoal>`` before the action,
    added to the instructions and to a tiny model's vocabulary)."""
    probe_options: dict[str, Any] = field(default_factory=dict)
    """How probes are computed for probe-based estimators (igpo, siop, ...): ``share_prefix``,
    ``batch_rows``, ``answer_lead``, ``teacher_hint``, ``placeholder``."""

    # --- Rollouts ---
    iterations: int = 100
    """Training iterations (collect → credit → update)."""
    tasks_per_iteration: int = 16
    """Train-split tasks sampled per iteration."""
    task_pool: int | None = None
    """Draw train tasks from seeds ``0..N-1`` only (a fixed set of N tasks seen again and
    again, as in epochs over a dataset; methods that remember tasks need them to recur).
    ``None``: a fresh seed each time."""
    group_size: int = 8
    """Episodes per task (G)."""
    max_turns: int | None = None
    """Turn cap per episode (default: the env's ``max_episode_steps``)."""
    invalid_action_penalty: float = 0.0
    """Added to the reward of invalid actions (e.g. -0.1)."""
    temperature: float = 1.0
    """Sampling temperature during training rollouts."""
    top_p: float = 1.0
    """Nucleus sampling threshold during training rollouts."""
    max_new_tokens: int = 8
    """Generation budget per action."""
    response_prefix: str = "<action>"
    """Text appended to every prompt; the model continues it (part of the action)."""
    response_suffix: str = ""
    """Text appended to every generated action (e.g. ``</action>`` with ``max_new_tokens=1``)."""
    stop: tuple[str, ...] = ("</action>",)
    """Stop strings for generation."""
    history: int | None = 0
    """Past turns shown in the prompt (``None``: all)."""
    include_instructions: bool = True
    """Whether prompts start with the env's instructions."""
    decoding: str = "free"
    """``free`` samples from the whole vocabulary; ``actions`` restricts every generated token
    to the tokens of the env's action vocabulary (``TextEnv.action_vocabulary()``, e.g.
    FrozenLake's four moves) and scores them under the same restriction. For tiny models
    trained from scratch: the budget then goes on the task, not on learning the grammar."""

    # --- Optimisation ---
    learning_rate: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    ppo_epochs: int = 1
    """Passes over each iteration's data."""
    minibatch_size: int = 256
    """Sequences per optimiser step."""
    grad_accumulation: int = 1
    """Micro-batches per minibatch (memory knob; same gradient)."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm (0: off)."""
    clip_low: float = 0.2
    """Lower clip range of the ratio (1 - clip_low)."""
    clip_high: float = 0.2
    """Upper clip range of the ratio (1 + clip_high); DAPO uses 0.28."""
    dual_clip: float | None = 3.0
    """Dual-clip constant for negative advantages (``None``: off)."""
    aggregation: str = "token-mean"
    """Loss aggregation, one of :data:`AGGREGATIONS` (docs/methods.md#loss-aggregation)."""
    kl_coef: float = 0.0
    """Weight of the KL penalty to the frozen initial policy (0: no reference model)."""
    kl_estimator: str = "k3"
    """KL estimator: k1 or k3."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus."""
    epo: dict[str, Any] | None = None
    """EPO's entropy smoothing (arXiv 2509.22576), scaled by ``entropy_coef``: ``{}`` for the
    released defaults, or options ``smooth_coef``, ``kappa_low``, ``kappa_high``, ``penalty``,
    ``differentiable`` (UNVERIFIED: the paper's intent; the released term has no gradient),
    ``schedule_epochs``. ``None``: off."""
    skip_without_signal: bool = True
    """Skip a minibatch whose advantages are all zero. Otherwise only the regularisers act, and
    Adam rescales their tiny gradients into full-size steps (seen as a late collapse)."""
    sequence_mode: str = "turn"
    """One training sequence per ``turn``, or per ``episode`` when prompts are prefix-consistent."""

    # --- Evaluation, logging, checkpoints ---
    eval_every: int = 10
    """Evaluate on the eval split every N iterations (0: only at the end)."""
    eval_tasks: int = 50
    """Tasks in each evaluation."""
    eval_split: str = "test"
    """Split used for evaluation."""
    eval_temperature: float = 0.0
    """Sampling temperature for evaluation (0: greedy)."""
    checkpoint_every: int = 10
    """Save a checkpoint every N iterations (0: only at the end)."""
    out_dir: str = "runs/train"
    """Run directory: config.json, metrics.jsonl, checkpoint/."""
    resume: bool = True
    """Continue from ``out_dir/checkpoint`` when it exists."""
    time_budget_s: float | None = None
    """Stop after the iteration that crosses this wall-clock budget."""
    max_env_steps: int | None = None
    """Stop after the iteration that crosses this many env steps (a budget in samples, the
    fair unit for comparing estimators: ``turngym bench`` uses it)."""
    progress: str = "auto"
    """``bar`` (live), ``lines`` (one line per eval point), ``off``, or ``auto``: a bar on a
    terminal, lines otherwise."""
    device: str = "cpu"
    """Torch device (``cpu``, ``cuda``, ``cuda:1``)."""

    def __post_init__(self) -> None:
        check_field_types(self)  # first: the checks below compare numbers and names
        if isinstance(self.stop, list):  # from JSON/YAML (or TrainConfig(**to_dict()))
            object.__setattr__(self, "stop", tuple(self.stop))
        positive = ("iterations", "tasks_per_iteration", "group_size", "max_new_tokens",
                    "ppo_epochs", "minibatch_size", "grad_accumulation", "eval_tasks",
                    "tiny_d_model", "tiny_layers")  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.minibatch_size % self.grad_accumulation:
            raise ValueError(
                f"minibatch_size ({self.minibatch_size}) must be a multiple of "
                f"grad_accumulation ({self.grad_accumulation})"
            )
        for name in ("learning_rate", "temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(
                f"aggregation must be one of {list(AGGREGATIONS)}, got {self.aggregation!r}"
            )
        if self.kl_estimator not in ("k1", "k3"):
            raise ValueError(f"kl_estimator must be 'k1' or 'k3', got {self.kl_estimator!r}")
        if self.output_format not in ("action", "switch_subgoal"):
            raise ValueError(
                f"output_format must be 'action' or 'switch_subgoal', got {self.output_format!r}"
            )
        if self.sequence_mode not in ("turn", "episode"):
            raise ValueError(
                f"sequence_mode must be 'turn' or 'episode', got {self.sequence_mode!r}"
            )
        if self.epo is not None:
            check_epo_options(self.epo)
            if self.entropy_coef <= 0:
                raise ValueError("epo scales with entropy_coef: set entropy_coef > 0 to use it")
        if self.decoding not in ("free", "actions"):
            raise ValueError(f"decoding must be 'free' or 'actions', got {self.decoding!r}")
        if self.progress not in ("auto", "bar", "lines", "off"):
            raise ValueError(
                f"progress must be auto, bar, lines or off, got {self.progress!r}"
            )
        if self.eval_split not in ("train", "validation", "test"):
            raise ValueError(
                f"eval_split must be train, validation or test, got {self.eval_split!r}"
            )
        if self.task_pool is not None and self.task_pool < 1:
            raise ValueError(f"task_pool must be >= 1 or None, got {self.task_pool}")
        if self.max_env_steps is not None and self.max_env_steps < 1:
            raise ValueError(f"max_env_steps must be >= 1 or None, got {self.max_env_steps}")
        if self.dual_clip is not None and self.dual_clip <= 1:
            raise ValueError(f"dual_clip must be > 1 or None, got {self.dual_clip}")
        from turngym.trainers.credit.probe_values import ProbeOptions

        ProbeOptions.from_dict(self.probe_options)  # a misspelt option fails here

    # --- Serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-serialisable dict."""
        data = dataclasses.asdict(self)
        data["stop"] = list(self.stop)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> TrainConfig:
        """Build a config from a dict, rejecting unknown keys with a suggestion."""
        merged = {**data, **overrides}
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(merged) - set(names))
        if unknown:
            hints = {k: difflib.get_close_matches(k, names, n=1) for k in unknown}
            said = ", ".join(
                f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for k, h in hints.items()
            )
            raise ValueError(f"Unknown config key(s) {said}.")
        if isinstance(merged.get("stop"), list):  # YAML/JSON lists; anything else is type-checked
            merged["stop"] = tuple(merged["stop"])
        return cls(**merged)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Load YAML (``.yaml``/``.yml``) or JSON, then apply ``overrides``.

        Raises:
            ValueError: A missing or unreadable file, malformed YAML or JSON, unknown keys or
                a wrong-typed or invalid value: one line that starts with the file's path.
        """
        data = _read_mapping(Path(path))
        try:
            return cls.from_dict(data, **overrides)
        except ValueError as err:
            raise type(err)(f"{path}: {err}") from err


def _read_mapping(path: Path) -> dict[str, Any]:
    """The mapping a YAML or JSON config file holds, or a one-line ``ValueError``."""
    try:
        text = path.read_text()
    except OSError as err:
        raise ValueError(f"cannot read config file {path}: {err.strerror or err}") from err
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml  # only needed for YAML configs
        except ImportError as err:
            raise ValueError(f"{path}: YAML configs need PyYAML (pip install pyyaml), or "
                             "write the config as JSON") from err  # fmt: skip
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ValueError(f"{path}: not valid YAML ({problem}{where}); check the "
                             "indentation, colons and quotes there") from err  # fmt: skip
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column "
                             f"{err.colno}); .yaml/.yml files are read as YAML") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must hold a mapping of option: value, got "
                         f"{type(data).__name__}")  # fmt: skip
    return data


def field_docs(cls: type) -> dict[str, str]:
    """Return ``{field name: docstring under it}`` by reading the class source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    class_def = tree.body[0]
    assert isinstance(class_def, ast.ClassDef)  # the source of a class parses to its ClassDef
    body = class_def.body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                docs[node.target.id] = " ".join(str(after.value.value).split())
    return docs


def add_config_arguments(
    parser: argparse.ArgumentParser, cls: type[TrainConfig] = TrainConfig
) -> None:
    """Add one ``--kebab-case`` flag per config field, with the field's docstring as help.

    An absent flag leaves no attribute on the namespace (``argparse.SUPPRESS``), so a flag
    overrides ``--config`` only when given, and ``--history none`` can still set ``None``.
    """
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default_factory() if callable(f.default_factory) else f.default
        kind = _arg_type(default, hints[f.name])
        doc, choices = _named_choices(docs.get(f.name, ""), cls)
        help_text = f"{doc} (default: {default!r})".replace("%", "%%")
        if choices:
            parser.add_argument(flag, choices=choices, metavar=f.name.upper(),
                                default=argparse.SUPPRESS, help=help_text)  # fmt: skip
        elif isinstance(default, bool):
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        elif isinstance(default, tuple):
            parser.add_argument(flag, nargs="*", default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=help_text)


_DATA_ROLE = re.compile(r":data:`(\w+)`")


def _named_choices(doc: str, cls: type) -> tuple[str, tuple[str, ...] | None]:
    """A field documented as "one of :data:`NAME`" takes the strings of that module tuple.

    Returns the help with the reference spelled out, and the choices (``None``: free text).
    """
    module = vars(sys.modules[cls.__module__])
    for name in _DATA_ROLE.findall(doc):
        values = module.get(name)
        if isinstance(values, tuple) and values and all(isinstance(v, str) for v in values):
            return doc.replace(f":data:`{name}`", ", ".join(values)), values
    return doc, None


def _arg_type(default: Any, hint: Any) -> Any:
    if isinstance(default, dict):
        return mapping_arg
    kinds = [k for k in typing.get_args(hint) or (hint,) if k is not type(None)]
    if len(kinds) == 1 and kinds[0] in (int, float):
        parse = kinds[0]
        if type(None) in typing.get_args(hint):  # "none" unsets an optional number
            return lambda text: None if text.lower() == "none" else parse(text)
        return parse
    return str


def config_from_args(
    args: argparse.Namespace, cls: type[TrainConfig] = TrainConfig
) -> TrainConfig:
    """Build the config: ``--config`` file (if any), then every flag that was given."""
    overrides = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)
    }
    if "stop" in overrides:
        overrides["stop"] = tuple(overrides["stop"])
    path = getattr(args, "config", None)
    return cls.from_file(path, **overrides) if path else cls.from_dict({}, **overrides)
