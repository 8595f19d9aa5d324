"""What credit estimators read and return: TurnBatch, CreditContext and Credit.

See docs/design.md#credit-assignment-and-training.

:class:`TurnBatch` keeps the :class:`~turngym.types.Group` records and adds a columnar numpy
view over every turn, in episode-major order (group by group, episode by episode, turn by
turn), so estimators are vectorised array code instead of loops over Python records.
:class:`CreditContext` carries what some methods need beyond the batch (a probe, a critic, a
judge, state kept across iterations). :class:`Credit` is what an estimator returns: one
advantage per turn row, plus optional per-token advantages, clip ranges, loss weights,
returns and diagnostics.

Example:
    >>> from turngym.types import Episode, Group, Turn
    >>> def ep(i, rewards, outcome):
    ...     turns = tuple(Turn(t, "agent", "obs", "act", r, False, False, None, True)
    ...                   for t, r in enumerate(rewards))
    ...     return Episode(f"e{i}", "toy-v0", "task", 0, "train", turns, outcome, outcome > 0)
    >>> batch = TurnBatch.from_groups([Group("task@0", "task", (ep(0, [0, 1], 1.0),
    ...                                                         ep(1, [0], 0.0)))])
    >>> batch.n_turns, batch.n_episodes, batch.n_groups
    (3, 2, 1)
    >>> batch.episode.tolist(), batch.turn.tolist(), batch.outcome.tolist()
    ([0, 0, 1], [0, 1, 0], [1.0, 1.0, 0.0])
    >>> [a.tolist() for a in batch.split_by_episode(batch.reward)]
    [[0.0, 1.0], [0.0]]
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np

from turngym.types import Episode, Group

__all__ = ["TurnBatch", "CreditContext", "Credit"]

# Column name -> dtype. Per-turn columns first, then per-episode columns.
_TURN_COLUMNS: dict[str, type] = {
    "group": np.int64,
    "episode": np.int64,
    "turn": np.int64,
    "reward": np.float64,
    "outcome": np.float64,
    "state": np.int64,
    "terminated": np.bool_,
    "truncated": np.bool_,
    "agent": np.int64,
}
_EPISODE_COLUMNS: dict[str, type] = {
    "episode_group": np.int64,
    "episode_outcome": np.float64,
    "episode_length": np.int64,
    "episode_start": np.int64,
}


def _read_only(value: Any, dtype: type) -> np.ndarray:
    # A copy, so later edits to the caller's array cannot change a frozen record, and
    # read-only, so an estimator that writes into its input fails loudly instead of silently.
    array: np.ndarray = np.array(value, dtype=dtype, copy=True)
    array.flags.writeable = False
    return array


def _codes(values: Iterator[Hashable | None], n: int) -> tuple[np.ndarray, tuple[Any, ...]]:
    """Integer codes in order of first appearance; ``None`` becomes -1."""
    lookup: dict[Hashable, int] = {}
    codes = np.fromiter(
        (-1 if v is None else lookup.setdefault(v, len(lookup)) for v in values), np.int64, n
    )
    return codes, tuple(lookup)


def _require_finite(
    episodes: list[Episode], values: np.ndarray, owner: np.ndarray, what: str
) -> None:
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        episode_id = episodes[int(owner[bad[0]])].episode_id
        raise ValueError(f"Episode {episode_id!r} has a non-finite {what}; fix the env first.")


@dataclass(frozen=True, eq=False)
class TurnBatch:
    """The groups of one training step plus a columnar view over all their turns.

    Rows are turns in episode-major order. Arrays are read-only copies; build a batch with
    :meth:`from_groups` rather than by hand.

    Attributes:
        groups: The groups, in order; ``group`` codes index into it.
        group: Group index of each turn.
        episode: Global episode index of each turn (0 .. ``n_episodes`` - 1).
        turn: Position of the turn inside its episode, from 0.
        reward: Immediate reward of the turn (float64).
        outcome: The outcome of the turn's episode, repeated on each of its turns.
        state: Code of ``Turn.state_key``: equal keys give equal codes within the batch,
            ``None`` gives -1. Codes are not scoped to a group; estimators that group by
            state combine them with ``group``.
        terminated: ``Turn.terminated``.
        truncated: ``Turn.truncated``.
        agent: Code of ``Turn.agent_id`` (index into ``agent_ids``).
        episode_group: Group index of each episode.
        episode_outcome: ``Episode.outcome`` of each episode.
        episode_length: Number of turns of each episode (0 is allowed).
        episode_start: Row of each episode's first turn.
        agent_ids: The agent id behind each ``agent`` code.
        state_keys: The state key behind each ``state`` code.
    """

    groups: tuple[Group, ...]
    group: np.ndarray
    episode: np.ndarray
    turn: np.ndarray
    reward: np.ndarray
    outcome: np.ndarray
    state: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    agent: np.ndarray
    episode_group: np.ndarray
    episode_outcome: np.ndarray
    episode_length: np.ndarray
    episode_start: np.ndarray
    agent_ids: tuple[str, ...] = ()
    state_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        for columns in (_TURN_COLUMNS, _EPISODE_COLUMNS):
            for name, dtype in columns.items():
                object.__setattr__(self, name, _read_only(getattr(self, name), dtype))
        bad = [name for name in _TURN_COLUMNS if getattr(self, name).shape != self.reward.shape]
        bad += [
            name
            for name in _EPISODE_COLUMNS
            if getattr(self, name).shape != self.episode_group.shape
        ]
        if bad or self.reward.ndim != 1 or int(self.episode_length.sum()) != self.reward.size:
            raise ValueError(
                f"TurnBatch columns disagree in length ({', '.join(bad) or 'episode_length'}); "
                "build batches with TurnBatch.from_groups(groups)."
            )

    @classmethod
    def from_groups(cls, groups: Iterable[Group]) -> TurnBatch:
        """Build the columnar view of ``groups``.

        One pass over the turns reads their attributes; everything else (indices, offsets,
        repeats) is vectorised, so 100,000 turns take well under a second.

        Args:
            groups: The groups of one step; episodes may have any number of turns.

        Returns:
            The batch.

        Raises:
            TypeError: An item is not a :class:`~turngym.types.Group`.
            ValueError: A turn reward or an episode outcome is not finite.
        """
        groups = tuple(groups)
        for g in groups:
            if not isinstance(g, Group):
                raise TypeError(
                    f"TurnBatch.from_groups expects Group records, got {type(g).__name__}; "
                    "wrap episodes of one task in Group(group_id, task_id, episodes)."
                )
        episodes = [ep for g in groups for ep in g.episodes]
        turns = [t for ep in episodes for t in ep.turns]
        n_eps, n = len(episodes), len(turns)
        sizes = np.fromiter((len(g.episodes) for g in groups), np.int64, len(groups))
        length = np.fromiter((len(ep.turns) for ep in episodes), np.int64, n_eps)
        start = np.zeros(n_eps, np.int64)
        np.cumsum(length[:-1], out=start[1:])
        episode_group = np.repeat(np.arange(len(groups), dtype=np.int64), sizes)
        episode = np.repeat(np.arange(n_eps, dtype=np.int64), length)
        episode_outcome = np.fromiter(map(attrgetter("outcome"), episodes), np.float64, n_eps)
        reward = np.fromiter(map(attrgetter("reward"), turns), np.float64, n)
        state, state_keys = _codes(map(attrgetter("state_key"), turns), n)
        agent, agent_ids = _codes(map(attrgetter("agent_id"), turns), n)
        _require_finite(episodes, reward, episode, "reward")
        _require_finite(episodes, episode_outcome, np.arange(n_eps), "outcome")
        return cls(
            groups=groups,
            group=episode_group[episode],
            episode=episode,
            turn=np.arange(n, dtype=np.int64) - start[episode],
            reward=reward,
            outcome=episode_outcome[episode],
            state=state,
            terminated=np.fromiter(map(attrgetter("terminated"), turns), np.bool_, n),
            truncated=np.fromiter(map(attrgetter("truncated"), turns), np.bool_, n),
            agent=agent,
            episode_group=episode_group,
            episode_outcome=episode_outcome,
            episode_length=length,
            episode_start=start,
            agent_ids=agent_ids,
            state_keys=state_keys,
        )

    @property
    def n_turns(self) -> int:
        """Number of turn rows."""
        return int(self.reward.size)

    @property
    def n_episodes(self) -> int:
        """Number of episodes (including any with no turns)."""
        return int(self.episode_group.size)

    @property
    def n_groups(self) -> int:
        """Number of groups."""
        return len(self.groups)

    def split_by_episode(self, values: np.ndarray) -> list[np.ndarray]:
        """Split a per-turn array into one array per episode (views, not copies).

        Args:
            values: An array whose first axis has one entry per turn row.

        Returns:
            ``n_episodes`` arrays; an episode without turns gets an empty array.

        Raises:
            ValueError: ``values`` does not have one entry per turn.
        """
        values = np.asarray(values)
        if values.ndim == 0 or values.shape[0] != self.n_turns:
            raise ValueError(
                f"expected one value per turn ({self.n_turns}), got shape {values.shape}"
            )
        return np.split(values, self.episode_start[1:]) if self.n_episodes else []


@dataclass
class CreditContext:
    """What an estimator may need beyond the batch. Declares nothing else.

    Attributes:
        probe: The policy's log-probability of a text given a conversation prefix (IGPO,
            A²TGPO, SIOP, PBSD, GRPO-VPS, InfoPO), or ``None``.
        critic: A turn-level value model (turn-PPO, ArCHer, HiPER), or ``None``.
        judge: A per-turn scorer (MAPO): ``judge(batch) -> one score per turn row``, or
            ``None`` (:mod:`turngym.trainers.hooks` builds one from an env's judge score).
        state: Kept by the trainer across iterations; estimators that need history (EPO,
            A-GRAE, PIPO) keep it under keys named after themselves.
        step: The training iteration, from 0.
        tokenizer: Decodes completion token ids (``decode(ids) -> str``), for methods whose
            unit is a span of an action (Rank-GRPO items, SCRL answers, F-GRPO phases); without
            it they fall back to one advantage per turn.
    """

    probe: Any = None
    critic: Any = None
    judge: Any = None
    state: dict[str, Any] = field(default_factory=dict)
    step: int = 0
    tokenizer: Any = None

    def available(self) -> frozenset[str]:
        """Names of the capabilities that are set, for ``resolve_estimator(available=...)``."""
        present = {"probe": self.probe, "critic": self.critic, "judge": self.judge}
        return frozenset(name for name, value in present.items() if value is not None)


def _per_turn(name: str, value: Any, n: int) -> np.ndarray | None:
    if value is None:
        return None
    array = _read_only(value, np.float64)
    if array.shape != (n,):
        raise ValueError(f"Credit.{name} must have one value per turn ({n}), got {array.shape}")
    return array


def _token_rows(rows: Any, n: int) -> tuple[np.ndarray | None, ...]:
    """Read-only float64 copies of per-turn token arrays (``None`` entries kept).

    One copy of all rows, split into views: copying the rows one by one costs microseconds
    each, which adds up on 100,000 turns.
    """
    rows = [None if r is None else np.asarray(r) for r in rows]
    if len(rows) != n or any(r is not None and r.ndim != 1 for r in rows):
        raise ValueError(f"Credit.token_advantages must be {n} 1-D arrays (or None), one per turn")
    present = [r for r in rows if r is not None]
    flat = _read_only(np.concatenate(present) if present else np.zeros(0), np.float64)
    out: list[np.ndarray | None] = []
    start = 0
    for r in rows:
        if r is None:
            out.append(None)
            continue
        out.append(flat[start : start + r.size])
        start += r.size
    return tuple(out)


@dataclass(frozen=True, eq=False)
class Credit:
    """An estimator's output: one advantage per turn row of the batch, and optional extras.

    Attributes:
        advantages: float64, one per turn row (episode-major, as in the batch).
        token_advantages: One array per turn for methods whose unit is finer than a turn
            (e.g. Rank-GRPO), or ``None``; ``trainers/tokens.py`` maps them onto tokens. A
            ``None`` entry means "broadcast the turn's advantage" for that turn.
        clip_ranges: ``(n_turns, 2)`` per-turn ``(eps_low, eps_high)`` (A²TGPO), or ``None``.
        weights: Per-turn loss weights (0 drops a turn from the loss), or ``None``.
        returns: Per-turn returns the advantages were built from, or ``None``.
        metrics: Diagnostics, e.g. ``zero_adv_group_frac`` and ``sign_flips_vs_mean``.
        value_targets: Critic methods only: head name ->
            :class:`~turngym.trainers.credit.values.ValueTargets`, what the trainer fits the
            critic to after this step; ``None`` for methods without a critic.
    """

    advantages: np.ndarray
    token_advantages: tuple[np.ndarray | None, ...] | None = None
    clip_ranges: np.ndarray | None = None
    weights: np.ndarray | None = None
    returns: np.ndarray | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    value_targets: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        advantages = _read_only(self.advantages, np.float64)
        if advantages.ndim != 1:
            raise ValueError(f"Credit.advantages must be 1-D, got shape {advantages.shape}")
        n = advantages.size
        object.__setattr__(self, "advantages", advantages)
        for name in ("weights", "returns"):
            object.__setattr__(self, name, _per_turn(name, getattr(self, name), n))
        if self.clip_ranges is not None:
            clip = _read_only(self.clip_ranges, np.float64)
            if clip.shape != (n, 2):
                raise ValueError(f"Credit.clip_ranges must have shape ({n}, 2), got {clip.shape}")
            object.__setattr__(self, "clip_ranges", clip)
        if self.token_advantages is not None:
            object.__setattr__(self, "token_advantages", _token_rows(self.token_advantages, n))
        object.__setattr__(self, "metrics", {str(k): float(v) for k, v in self.metrics.items()})

    def per_episode(self, batch: TurnBatch) -> list[np.ndarray]:
        """The advantages split into one array per episode of ``batch``.

        Raises:
            ValueError: This credit was computed for a batch with a different turn count.
        """
        return batch.split_by_episode(self.advantages)
