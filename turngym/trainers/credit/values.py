"""What a critic gives an estimator, and what an estimator asks the critic to learn.

A critic (``CreditContext.critic``) answers ``critic.values(batch) -> TurnValues``: for every
turn row of the batch, the value of each of its heads at each *position* of the turn. Position
``j`` of turn ``t`` is the state just before the ``j``-th token of the turn's completion is
generated, so position 0 is the state the turn acts from (the whole prompt) and position
``L_t`` (the completion length) is the state after the full action, before the env answers:

    prompt ... | a_0 a_1 ... a_{L-1}
             ^0    ^1  ...        ^L

Methods read the positions they need: turn-level GAE the state (``"start"``) or the turn end
(``"end"`` = position ``L - 1``, RAGEN's value at the end-of-turn token), bi-level GAE every
action position, ArCHer Q after the action (``"after"``) and V at the state, HiPER each head at
a token chosen from the parsed ``<switch>``/``<subgoal>`` spans (``TurnValues.pieces`` holds the
decoded tokens for that). A critic that sees states only (e.g. a separate model on the
observation text, as Odysseus' frame critic) gives one position per turn.

:class:`ValueTargets` is the other direction: the regression targets an estimator returns in
``Credit.value_targets`` (head -> rows, positions, targets); the trainer fits the critic to
them after the update's advantages are fixed.

:class:`FixedCritic` is a critic with given values (tests, worked examples, the credit speed
benchmark where the critic's forward pass is excluded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from turngym.trainers.credit.types import TurnBatch

__all__ = ["TurnValues", "ValueTargets", "FixedCritic", "completion_lengths", "reverse_scan",
           "split_tokens"]  # fmt: skip

_NAMED = ("start", "end", "after")


def completion_lengths(batch: TurnBatch) -> np.ndarray:
    """Completion token count of every turn row (0 for a turn without a TokenTrace)."""
    return np.fromiter(
        (len(t.trace.completion_ids) if t.trace is not None else 0
         for g in batch.groups for ep in g.episodes for t in ep.turns),
        np.int64, batch.n_turns,
    )  # fmt: skip


@dataclass(frozen=True, eq=False)
class TurnValues:
    """Critic values of every turn row, per head and position (see the module docstring).

    Attributes:
        offsets: ``(n_turns + 1,)``; turn ``t`` owns ``[offsets[t], offsets[t + 1])`` of the
            flat head arrays, one entry per position from 0.
        heads: Head name -> flat float64 values.
        lengths: Completion token count of each turn (``L_t``).
        pieces: Per turn, the decoded text of each completion token (``None`` when the critic
            does not decode); span-based methods (HiPER) locate tags in them.
    """

    offsets: np.ndarray
    heads: Mapping[str, np.ndarray]
    lengths: np.ndarray
    pieces: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        offsets = np.asarray(self.offsets, np.int64)
        lengths = np.asarray(self.lengths, np.int64)
        heads = {k: np.asarray(v, np.float64) for k, v in self.heads.items()}
        if offsets.ndim != 1 or offsets.size != lengths.size + 1 or np.any(np.diff(offsets) < 1):
            raise ValueError("TurnValues.offsets must give every turn at least one position")
        for name, values in heads.items():
            if values.shape != (int(offsets[-1]),):
                raise ValueError(f"TurnValues head {name!r} has {values.size} values for "
                                 f"{int(offsets[-1])} positions")  # fmt: skip
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "heads", heads)

    @property
    def positions(self) -> np.ndarray:
        """Number of positions of each turn."""
        return np.diff(self.offsets)

    def head(self, name: str) -> np.ndarray:
        """The flat values of one head; a clear error names the heads there are."""
        if name not in self.heads:
            raise KeyError(f"the critic has no head {name!r}; it has {sorted(self.heads)}. "
                           "Configure the method's critic with that head.")  # fmt: skip
        return self.heads[name]

    def index(self, where: str | np.ndarray) -> np.ndarray:
        """Flat index of one position per turn: ``"start"``, ``"end"``, ``"after"`` or ints."""
        last = self.positions - 1
        if isinstance(where, str):
            if where not in _NAMED:
                raise ValueError(f"position {where!r} is not one of {list(_NAMED)} or an array")
            need = np.maximum(self.lengths - (where == "end"), 0)
            if where != "start" and np.any(last < need):
                raise ValueError(
                    f"position {where!r} needs a critic that scores action tokens; this one "
                    "scores states only (one position per turn)."
                )
            pos = {"start": np.zeros_like(last), "end": np.maximum(self.lengths - 1, 0),
                   "after": self.lengths}[where]  # fmt: skip
        else:
            pos = np.asarray(where, np.int64)
            if pos.shape != last.shape or np.any(pos < 0) or np.any(pos > last):
                raise ValueError("positions must give one in-range position per turn")
        flat: np.ndarray = self.offsets[:-1] + pos
        return flat

    def at(self, head: str, where: str | np.ndarray) -> np.ndarray:
        """One value per turn of ``head`` at ``where`` (see :meth:`index`)."""
        values: np.ndarray = self.head(head)[self.index(where)]
        return values


@dataclass(frozen=True, eq=False)
class ValueTargets:
    """Regression targets for one critic head.

    ``targets[i]`` is the target at position ``positions[i]`` of turn row ``rows[i]``.
    """

    rows: np.ndarray
    positions: np.ndarray
    targets: np.ndarray

    def __post_init__(self) -> None:
        rows = np.asarray(self.rows, np.int64)
        positions = np.asarray(self.positions, np.int64)
        targets = np.asarray(self.targets, np.float64)
        if not rows.shape == positions.shape == targets.shape or rows.ndim != 1:
            raise ValueError("ValueTargets rows, positions and targets must be equal-length 1-D")
        if not np.all(np.isfinite(targets)):
            raise ValueError("ValueTargets.targets contains NaN or inf")
        for name, value in (("rows", rows), ("positions", positions), ("targets", targets)):
            object.__setattr__(self, name, value)

    @classmethod
    def per_turn(cls, targets: np.ndarray, positions: np.ndarray | None = None,
                 rows: np.ndarray | None = None) -> ValueTargets:  # fmt: skip
        """One target per turn row (or per ``rows``), at ``positions`` (default 0)."""
        targets = np.asarray(targets, np.float64)
        rows = np.arange(targets.size) if rows is None else rows
        positions = np.zeros(targets.size, np.int64) if positions is None else positions
        return cls(rows, positions, targets)


@dataclass
class FixedCritic:
    """A critic with given values (tests, worked examples, benchmarks without a model).

    Args:
        heads: Head name -> either one value per turn row (used at every position) or one
            sequence per turn row with that turn's positions.
        pieces: Optional decoded completion tokens per turn row. For a turn without a
            TokenTrace they also set its completion length.

    Example:
        >>> from turngym.types import Episode, Group, Turn
        >>> turns = tuple(Turn(t, "agent", "o", "a", 0.0, t == 1, False, None, True)
        ...               for t in range(2))
        >>> batch = TurnBatch.from_groups([Group("g", "task", (Episode(
        ...     "e", "env-v0", "task", 0, "train", turns, 0.0, False),))])
        >>> FixedCritic({"value": [0.5, 0.25]}).values(batch).at("value", "start").tolist()
        [0.5, 0.25]
    """

    heads: Mapping[str, Any]
    pieces: Sequence[Sequence[str]] | None = None

    def values(self, batch: TurnBatch) -> TurnValues:
        """The given values laid out over ``batch``'s turns and positions."""
        lengths = completion_lengths(batch)
        pieces = None
        if self.pieces is not None:
            pieces = tuple(tuple(p) for p in self.pieces)
            if len(pieces) != batch.n_turns:
                raise ValueError(f"FixedCritic has pieces for {len(pieces)} turns, the batch "
                                 f"{batch.n_turns}")  # fmt: skip
            lengths = np.where(lengths == 0, [len(p) for p in pieces], lengths)
        heads, offsets = {}, None
        for name, given in self.heads.items():
            flat, off = _flatten(name, given, lengths, batch.n_turns)
            if offsets is not None and not np.array_equal(off, offsets):
                raise ValueError("FixedCritic heads disagree on the number of positions per turn")
            heads[name], offsets = flat, off
        if offsets is None:
            offsets = np.concatenate([[0], np.cumsum(lengths + 1)])
        return TurnValues(offsets, heads, lengths, pieces)


def _flatten(name: str, given: Any, lengths: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(given, np.ndarray) and given.ndim == 1 or (
        isinstance(given, Sequence) and all(np.ndim(v) == 0 for v in given)
    ):
        per_turn = np.asarray(given, np.float64)
        if per_turn.shape != (n,):
            raise ValueError(f"FixedCritic head {name!r}: {per_turn.size} values for {n} turns")
        counts = lengths + 1
        return np.repeat(per_turn, counts), np.concatenate([[0], np.cumsum(counts)])
    rows = [np.asarray(v, np.float64).reshape(-1) for v in given]
    if len(rows) != n or any(r.size < 1 for r in rows):
        raise ValueError(f"FixedCritic head {name!r} needs one non-empty sequence per turn ({n})")
    counts = np.array([r.size for r in rows], np.int64)
    return np.concatenate(rows), np.concatenate([[0], np.cumsum(counts)])


def reverse_scan(start: np.ndarray, length: np.ndarray, x: np.ndarray,
                 decay: np.ndarray) -> np.ndarray:  # fmt: skip
    """``y[i] = x[i] + decay[i] * y[i + 1]`` backwards inside each run ``[start, start+length)``.

    The last element of a run is ``x`` alone. The loop runs over depth from each run's end
    (the longest run's length), each step vectorised over every run still that long, so GAE
    over 100,000 turns is one numpy operation per turn of the longest episode.

    Example:
        >>> reverse_scan(np.array([0, 3]), np.array([3, 1]), np.array([1., 1., 1., 5.]),
        ...              np.full(4, 0.5)).tolist()
        [1.75, 1.5, 1.0, 5.0]
    """
    out = np.zeros(x.size)
    keep = length > 0
    start, length = start[keep], length[keep]
    if start.size == 0:
        return out
    order = np.argsort(-length, kind="stable")
    ends = (start + length)[order]
    longest_first = length[order]
    depth = np.arange(int(longest_first[0]))
    active = np.searchsorted(-longest_first, -depth, side="left")  # runs longer than d
    rows = ends[: active[0]] - 1
    out[rows] = x[rows]
    for d in depth[1:]:
        rows = ends[: active[d]] - 1 - d
        out[rows] = x[rows] + decay[rows] * out[rows + 1]
    return out


def split_tokens(flat: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray | None, ...] | None:
    """Per-turn views of a flat per-token array; ``None`` for a turn without tokens.

    Returns ``None`` when no turn has tokens (``Credit.token_advantages=None``: broadcast).

    Example:
        >>> split_tokens(np.arange(3.0), np.array([2, 0, 1]))
        (array([0., 1.]), None, array([2.]))
    """
    if not lengths.any():
        return None
    ends = np.cumsum(lengths)
    out: list[np.ndarray | None] = [None] * lengths.size
    for t in np.flatnonzero(lengths):
        out[t] = flat[ends[t] - lengths[t] : ends[t]]
    return tuple(out)
