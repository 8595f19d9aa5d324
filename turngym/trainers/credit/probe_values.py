"""Probe values: what probe-based estimators read, precomputed by the trainer as plain arrays.

A *probe* is a teacher-forced score under a language model: the mean token log-probability of
a text (the gold answer, a peer's answer) after a turn's prompt, or the log-probability of an
action's own tokens under another context (answer-conditioned, observation masked). The
trainer computes them for the whole batch before credit assignment
(:mod:`turngym.trainers.probes`), so each probe-based estimator stays a pure numpy function of
``(TurnBatch, ProbeValues)`` and is tested without a model.

An estimator says what it needs with a :class:`ProbeNeeds` (built from its options, at config
time); the trainer returns a :class:`ProbeValues` in ``CreditContext.probe``.

Example:
    >>> from turngym.types import Episode, Group, Turn
    >>> turns = tuple(Turn(t, "agent", "obs", "act", 0.0, t == 1, False, None, True)
    ...               for t in range(2))
    >>> ep = Episode("e", "toy-v0", "task", 0, "train", turns, 1.0, True)
    >>> batch = TurnBatch.from_groups([Group("task@0", "task", (ep,))])
    >>> probes = synthetic_probes(batch, seed=0, constant=-1.5)
    >>> probes.before[:, 0].tolist(), probes.teacher.lengths().tolist()
    ([-1.5, -1.5], [2, 2])
"""

from __future__ import annotations

import difflib
import functools
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np

from turngym.trainers.credit.types import CreditContext, TurnBatch

__all__ = [
    "POINTS",
    "ProbeOptions",
    "ProbeNeeds",
    "ProbeValues",
    "TokenValues",
    "TargetFn",
    "gold_targets",
    "normalise_answer",
    "answer_from_action",
    "probe_values",
    "synthetic_probes",
]

POINTS = ("first", "before", "after")
"""Where answer targets are scored: ``first`` = before the first action only (the prompt);
``before`` = before every turn's action (its prompt); ``after`` = after every turn's action."""

TargetFn = Callable[[TurnBatch, Sequence[tuple[str, ...]], Sequence[str | None]], Sequence[Any]]
"""``(batch, golds per episode, answers per episode) -> texts to probe per episode``."""


def gold_targets(
    batch: TurnBatch, golds: Sequence[tuple[str, ...]], answers: Sequence[str | None]
) -> list[tuple[str, ...]]:
    """Probe the canonical gold answer (the first accepted one), as IGPO does with aliases."""
    return [g[:1] for g in golds]


@dataclass(frozen=True, kw_only=True)
class ProbeOptions:
    """How the trainer computes probes (``TrainConfig.probe_options``).

    What to probe is each method's choice, made by its estimator parameters.
    """

    share_prefix: bool = True
    """Encode the prefix the probe rows of a task share once (Prefix Grouper); ``False`` runs
    every row in full (only to measure what sharing saves)."""
    batch_rows: int = 64
    """Probe rows per forward call (memory knob)."""
    answer_lead: str | None = None
    """Text written before a probed answer (conditioned on, not scored). Default: the env's
    ``answer_template`` up to ``{answer}``, minus the response prefix the prompt ends with."""
    teacher_hint: str = "(Privileged note: the correct final answer is {answer}.)\n"
    """Put in front of the current observation to make the answer-conditioned teacher."""
    placeholder: str = "No information found."
    """Replaces an observation in the counterfactual pass (InfoPO's default)."""

    def __post_init__(self) -> None:
        if self.batch_rows < 1:
            raise ValueError(f"probe_options: batch_rows must be >= 1, got {self.batch_rows}")
        if "{answer}" not in self.teacher_hint:
            raise ValueError("probe_options: teacher_hint needs an {answer} slot")

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> ProbeOptions:
        """Build from a dict; an unknown key or a wrongly typed value is a one-line error."""
        names = [f.name for f in fields(cls)]
        for key, value in options.items():
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"probe_options has no key {key!r}.{hint} Keys: {', '.join(names)}."
                )
            want = {"share_prefix": bool, "batch_rows": int}.get(key, str)
            if not isinstance(value, want) or (want is int and isinstance(value, bool)):
                if not (key == "answer_lead" and value is None):
                    raise ValueError(f"probe_options: {key} must be {want.__name__}, got {value!r}")
        return cls(**options)


@dataclass(frozen=True)
class ProbeNeeds:
    """What an estimator needs probed; built from its options before any rollout.

    Attributes:
        targets: Which texts to score at ``points`` for each episode (``None``: no answer
            probes).
        points: A subset of :data:`POINTS`.
        teacher: Score every action token under the answer-conditioned context (the same
            model with the gold answer in its prompt) and under the policy's own prompt.
        counterfactual: Score each turn's next action with the observation before it
            replaced by a placeholder, and as it was.
        scorer: ``"policy"`` (the rollout policy) or ``"initial"`` (a frozen copy of the
            initial policy, e.g. SIOP's separate scorer LM).
        gold: The probes need the env's gold answers (``privileged["gold_answers"]``).
    """

    targets: TargetFn | None = None
    points: frozenset[str] = frozenset()
    teacher: bool = False
    counterfactual: bool = False
    scorer: Literal["policy", "initial"] = "policy"
    gold: bool = False

    def __post_init__(self) -> None:
        bad = sorted(set(self.points) - set(POINTS))
        if bad:
            raise ValueError(f"ProbeNeeds.points {bad} are not in {list(POINTS)}")
        if bool(self.points) != (self.targets is not None):
            raise ValueError("ProbeNeeds needs both targets and points, or neither")
        if self.scorer not in ("policy", "initial"):
            raise ValueError(f"ProbeNeeds.scorer must be policy or initial, not {self.scorer!r}")


@dataclass(frozen=True, eq=False)
class TokenValues:
    """Ragged per-token values over turn rows: turn ``i`` owns ``values[offsets[i]:offsets[i+1]]``.

    Attributes:
        values: float64, all tokens of all turns, in turn-row order.
        offsets: int64 of length ``n_turns + 1``, starting at 0, non-decreasing.
    """

    values: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        values = np.array(self.values, dtype=np.float64)
        offsets = np.array(self.offsets, dtype=np.int64)
        if offsets.ndim != 1 or offsets.size == 0 or offsets[0] != 0 or offsets[-1] != values.size:
            raise ValueError("TokenValues.offsets must start at 0 and end at len(values)")
        if np.any(np.diff(offsets) < 0):
            raise ValueError("TokenValues.offsets must be non-decreasing")
        values.flags.writeable = offsets.flags.writeable = False
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "offsets", offsets)

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[float] | np.ndarray]) -> TokenValues:
        """Build from one sequence of values per turn."""
        lengths = np.fromiter((len(r) for r in rows), np.int64, len(rows))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate([np.asarray(r, np.float64) for r in rows]) if rows else np.zeros(0)
        return cls(flat, offsets)

    @property
    def n_turns(self) -> int:
        """Number of turn rows."""
        return int(self.offsets.size - 1)

    def lengths(self) -> np.ndarray:
        """Tokens per turn."""
        return np.diff(self.offsets)

    def owner(self) -> np.ndarray:
        """Turn row of every token."""
        return np.repeat(np.arange(self.n_turns), self.lengths())

    def sums(self) -> np.ndarray:
        """Sum per turn (0 for a turn without tokens)."""
        return np.bincount(self.owner(), weights=self.values, minlength=self.n_turns)

    def split(self, values: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """``values`` (default: :attr:`values`), one array per turn (views)."""
        values = self.values if values is None else values
        bounds = self.offsets.tolist()
        return tuple(values[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True))


@dataclass(frozen=True, eq=False)
class ProbeValues:
    """Probe results for one batch; every array is read-only. Rows follow the batch's turns.

    Attributes:
        golds: Accepted gold answers per episode (empty when the env gives none).
        answers: The final answer each episode gave (from its last action, via the env's
            answer template), or ``None``.
        targets: The texts scored per episode (target ``k`` is column ``k`` below).
        before: ``(n_turns, K)`` mean token log-probability of each target as the answer
            written right at the turn's prompt; NaN where not probed.
        after: ``(n_turns, K)`` the same after the turn's action; NaN where not probed.
        action_tokens: Action tokens per turn (0 for a turn without a token trace).
        teacher: Log-probability of every action token with the gold answer in the context,
            or ``None``.
        student: Log-probability of every action token under the policy's own context.
        next_factual: Mean log-probability of the next turn's action tokens given this
            turn's outcome (observation) as it was; NaN for a last turn.
        next_counterfactual: The same with that observation replaced by a placeholder.
        cost: Probe cost figures (seconds, rows, tokens) for the metrics.
    """

    golds: tuple[tuple[str, ...], ...]
    answers: tuple[str | None, ...]
    targets: tuple[tuple[str, ...], ...]
    before: np.ndarray
    after: np.ndarray
    action_tokens: np.ndarray
    teacher: TokenValues | None = None
    student: TokenValues | None = None
    next_factual: np.ndarray | None = None
    next_counterfactual: np.ndarray | None = None
    cost: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.action_tokens)
        k = max((len(t) for t in self.targets), default=0)
        for name in ("before", "after"):
            array = np.array(getattr(self, name), dtype=np.float64)
            array = array.reshape(n, array.size // n if n else max(k, array.shape[-1]))
            if array.shape[1] < k:
                raise ValueError(f"ProbeValues.{name} has {array.shape[1]} columns for {k} targets")
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        for name in ("action_tokens", "next_factual", "next_counterfactual"):
            value = getattr(self, name)
            if value is not None:
                dtype = np.int64 if name == "action_tokens" else np.float64
                array = np.array(value, dtype=dtype)
                if array.shape != (n,):
                    raise ValueError(f"ProbeValues.{name} must have one value per turn ({n})")
                array.flags.writeable = False
                object.__setattr__(self, name, array)
        if not len(self.golds) == len(self.answers) == len(self.targets):
            raise ValueError("ProbeValues.golds, answers and targets need one entry per episode")
        for name in ("teacher", "student"):
            tokens = getattr(self, name)
            if tokens is not None and not np.array_equal(tokens.lengths(), self.action_tokens):
                raise ValueError(f"ProbeValues.{name} must have action_tokens values per turn")

    def check(self, batch: TurnBatch) -> ProbeValues:
        """Return self after checking it was computed for ``batch``.

        Raises:
            ValueError: Turn or episode counts differ.
        """
        if self.action_tokens.size != batch.n_turns or len(self.golds) != batch.n_episodes:
            raise ValueError(
                f"the probe values cover {self.action_tokens.size} turns and {len(self.golds)} "
                f"episodes, the batch has {batch.n_turns} and {batch.n_episodes}; compute them "
                "for this batch (turngym.trainers.probes)."
            )
        return self


def probe_values(ctx: CreditContext, batch: TurnBatch, method: str) -> ProbeValues:
    """The batch's :class:`ProbeValues` from ``ctx.probe``, or a one-line error naming ``method``.

    Raises:
        TypeError: ``ctx.probe`` holds no probe values.
        ValueError: They were computed for another batch.
    """
    if not isinstance(ctx.probe, ProbeValues):
        raise TypeError(
            f"estimator {method!r} reads precomputed probes from ctx.probe (ProbeValues), got "
            f"{type(ctx.probe).__name__}; the Trainer fills it, tests can use synthetic_probes."
        )
    return ctx.probe.check(batch)


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


@functools.lru_cache(maxsize=1 << 16)  # observations and answers repeat across a group
def normalise_answer(text: str) -> str:
    """SQuAD-style answer normalisation: lowercase, no punctuation or articles, single spaces.

    Example:
        >>> normalise_answer("  The Velmora   Institute. ")
        'velmora institute'
    """
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def answer_from_action(action: str, template: str) -> str | None:
    """The answer in ``action`` written as ``template`` (``"<answer>{answer}</answer>"``).

    The text between the template's last-found opening part and its closing part, stripped
    (whitespace inside the parts and letter case are not significant); ``None`` when the
    opening part is absent or the answer is empty.

    Example:
        >>> answer_from_action("<search> x </search><answer> Paris </answer>",
        ...                    "<answer> {answer} </answer>")
        'Paris'
    """
    head, _, tail = template.partition("{answer}")
    opening, closing = _loose(head), _loose(tail)
    if opening is None:
        return None
    starts = list(opening.finditer(action))
    if not starts:
        return None
    body = action[starts[-1].end() :]
    end = closing.search(body) if closing is not None else None
    return (body[: end.start()] if end else body).strip() or None


def _loose(part: str) -> re.Pattern[str] | None:
    """A pattern for ``part`` that tolerates any whitespace between its characters and case."""
    chars = [re.escape(c) for c in part if not c.isspace()]
    return re.compile(r"\s*".join(chars), re.IGNORECASE) if chars else None


def synthetic_probes(
    batch: TurnBatch,
    seed: int,
    *,
    constant: float | None = None,
    targets: int = 1,
    answers: Sequence[str | None] | None = None,
) -> ProbeValues:
    """Random (or constant) probe values for ``batch``, e.g. to test estimators without a model.

    Every episode gets the gold ``"gold"``; ``targets`` texts are scored everywhere; each turn
    has 1 to 4 action tokens. With ``constant``, every log-probability equals it and the
    teacher and student agree.

    Args:
        batch: The batch.
        seed: Seed of the local generator.
        constant: Use this value everywhere instead of random log-probabilities.
        targets: Texts probed per episode.
        answers: Final answers per episode (default: ``"gold"``, ``"other"`` or ``None`` at
            random; all ``"gold"`` with ``constant``).
    """
    rng = np.random.default_rng(seed)
    n, n_eps = batch.n_turns, batch.n_episodes

    def draw(*shape: int) -> np.ndarray:
        if constant is not None:
            return np.full(shape, float(constant))
        return -rng.gamma(2.0, 1.0, size=shape)

    tokens = rng.integers(1, 5, size=n) if constant is None else np.full(n, 2)
    offsets = np.concatenate([[0], np.cumsum(tokens)])
    student = draw(int(offsets[-1]))
    teacher = student if constant is not None else student + rng.normal(0, 0.5, student.size)
    if answers is None:
        pool = ["gold", "other", None] if constant is None else ["gold"]
        answers = [pool[int(i)] for i in rng.integers(0, len(pool), size=n_eps)]
    last = np.zeros(n, bool)
    last[(batch.episode_start + batch.episode_length - 1)[batch.episode_length > 0]] = True
    factual, counterfactual = draw(n), draw(n)
    factual[last] = counterfactual[last] = np.nan
    names = tuple(["gold", "other", "third"][:targets])
    return ProbeValues(
        golds=(("gold",),) * n_eps, answers=tuple(answers), targets=(names,) * n_eps,
        before=draw(n, targets), after=draw(n, targets), action_tokens=tokens,
        teacher=TokenValues(teacher, offsets), student=TokenValues(student, offsets),
        next_factual=factual, next_counterfactual=counterfactual,
    )  # fmt: skip
