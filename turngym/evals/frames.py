"""Results as tidy pandas DataFrames: episodes, turns, aggregates (and bench curves).

``turngym.evals.load(source)`` reads an eval run directory, a bench directory, a
``results.json`` file or a leaderboard (a SQLite file, a SQLAlchemy URL or an open
:class:`~turngym.leaderboard.store.LeaderboardStore`) into a :class:`RunFrames` of tidy frames,
one observation per row, so runs are analysed with the tools people already use::

    a, b = load("runs/eval/grpo"), load("runs/eval/gigpo")
    both = pd.concat([a.aggregates, b.aggregates])
    both.query("metric == 'success'").pivot_table(index="env", columns="agent", values="mean")

* ``episodes``: one row per episode: run, env_id, env (the short label of tables), env_key,
  agent, run_seed, seed, task_id, episode_id, split, seat, opponent, the metrics of
  :data:`~turngym.evals.results.EPISODE_METRICS` (``turns`` is the number of actions), win,
  draw and loss (:data:`~turngym.evals.results.SEAT_METRICS`; NaN outside multi-agent
  games), error and wall_time_s.
* ``turns``: one row per turn: the episode's identifiers, turn (index), agent_id, state_key,
  action, observation, reward, action_valid, terminated, truncated, and ``advantage`` when
  the records carry one (``info["advantage"]``) or when :func:`turns_frame` is given the
  :class:`~turngym.trainers.credit.types.Credit` of the same groups.
* ``aggregates``: one row per (run, env entry, agent, metric), with the seat and opponent of
  a multi-agent game's entry (``None`` otherwise): mean, std, n, ``ci_low`` and
  ``ci_high`` (the 95% interval), the interval's method and the metric's direction.
* ``curves`` (bench runs): the learning curve of every trained agent, one row per point.

A leaderboard keeps per-episode metrics but not turns: its ``turns`` frame is empty. pandas
comes with the ``harness`` (and ``bench``) extra; this module imports it only when called.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from turngym.evals.results import (
    EPISODE_METRICS,
    HIGHER_IS_BETTER,
    SEAT_METRICS,
    RunResults,
    episode_metrics,
    load_results,
    read_jsonl,
)
from turngym.evals.tables import short_label
from turngym.types import Episode, Group

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RunFrames", "load", "episodes_frame", "turns_frame", "aggregates_frame"]

EPISODE_COLUMNS = ("run", "env_id", "env", "env_key", "agent", "run_seed", "seed", "task_id",
                   "episode_id", "split", "seat", "opponent", *EPISODE_METRICS,
                   *SEAT_METRICS, "error", "wall_time_s")  # fmt: skip
"""Columns of the ``episodes`` frame, in order."""

TURN_COLUMNS = ("run", "env_id", "env_key", "agent", "run_seed", "episode_id", "task_id",
                "turn", "agent_id", "state_key", "action", "observation", "reward",
                "action_valid", "terminated", "truncated")  # fmt: skip
"""Columns of the ``turns`` frame (``advantage`` is added when there are advantages)."""

AGGREGATE_COLUMNS = ("run", "kind", "env_id", "env_version", "env", "env_key", "options",
                     "split", "seat", "opponent", "agent", "metric", "mean", "std", "n",
                     "ci_low", "ci_high", "method", "higher_is_better")  # fmt: skip
"""Columns of the ``aggregates`` frame, in order."""

CURVE_COLUMNS = ("run", "env_id", "env", "env_key", "agent", "env_steps", "metric", "value")
"""Columns of the ``curves`` frame."""


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as err:  # pragma: no cover - the harness extra is installed in CI
        raise ImportError(
            "results as DataFrames need pandas: pip install 'turngym[harness]'"
        ) from err
    return pandas


@dataclass(frozen=True)
class RunFrames:
    """The tidy frames of one source (see the module docstring for their columns).

    Attributes:
        source: What was loaded (a path or a database URL).
        kind: ``"eval"``, ``"bench"`` or ``"leaderboard"``.
        episodes: One row per episode.
        turns: One row per turn (empty for a leaderboard).
        aggregates: One row per (run, env entry, agent, metric).
        curves: Learning-curve points (bench runs; empty otherwise).
        provenance: The results' provenance (per submission for a leaderboard).
    """

    source: str
    kind: str
    episodes: pd.DataFrame
    turns: pd.DataFrame
    aggregates: pd.DataFrame
    curves: pd.DataFrame
    provenance: dict[str, Any]


def load(source: str | Path | Any, *, run: str | None = None) -> RunFrames:
    """Load an eval or bench run, a ``results.json``, or a leaderboard as tidy DataFrames.

    Args:
        source: A run or bench directory, its ``results.json``, a leaderboard SQLite file
            (``*.db``/``*.sqlite``), a SQLAlchemy URL (``postgresql+psycopg://...``), or a
            :class:`~turngym.leaderboard.store.LeaderboardStore`.
        run: The value of the ``run`` column (default: the run directory's name; for a
            leaderboard, each submission's name).

    Returns:
        The frames.

    Raises:
        turngym.evals.results.ResultsError: A run without a valid ``results.json``.
        ImportError: pandas is missing (``pip install 'turngym[harness]'``).
    """
    if _is_leaderboard(source):
        return _load_leaderboard(source)
    path = Path(source)
    run_dir = path if path.is_dir() else path.parent
    results = load_results(path)
    name = run or run_dir.name
    records = list(_records(run_dir / "episodes.jsonl"))
    labels = {e.key: short_label(e) for e in results.entries}
    return RunFrames(
        source=str(path),
        kind=results.kind,
        episodes=episodes_frame(records, run=name, labels=labels),
        turns=turns_frame(records, run=name),
        aggregates=aggregates_frame(results, run=name),
        curves=_curves_frame(results, name),
        provenance=dict(results.provenance),
    )


def _is_leaderboard(source: Any) -> bool:
    if not isinstance(source, str | Path):
        return hasattr(source, "entries") and hasattr(source, "episodes")
    text = str(source)
    return "://" in text or Path(text).suffix in (".db", ".sqlite", ".sqlite3")


def _records(path: Path) -> Iterable[dict[str, Any]]:
    return (record for _, record in read_jsonl(path)) if path.exists() else ()


# --- Frames from records ------------------------------------------------------------------------
def _flatten(items: Iterable[Any]) -> list[Mapping[str, Any]]:
    """Episode dicts from Episode objects, Groups of them, or ``episodes.jsonl`` records."""
    out: list[Mapping[str, Any]] = []
    for item in items:
        if isinstance(item, Group):
            out += [ep.to_dict() for ep in item.episodes]
        elif isinstance(item, Episode):
            out.append(item.to_dict())
        else:
            out.append(item)
    return out


def _entry_key(record: Mapping[str, Any]) -> str | None:
    return record.get("entry")


def episodes_frame(
    episodes: Iterable[Episode | Group | Mapping[str, Any]],
    *,
    run: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """One row per episode (columns :data:`EPISODE_COLUMNS`).

    Args:
        episodes: Episodes, Groups (from :func:`turngym.rollout.collect`) or the records of an
            ``episodes.jsonl``.
        run: Value of the ``run`` column.
        labels: Env entry key -> short env label (the ``env`` column; default: the env id).

    Example:
        >>> from turngym.agents import OracleAgent
        >>> from turngym.rollout import collect
        >>> groups = collect("turngym/FrozenLake-v0", OracleAgent(), tasks=2)
        >>> episodes_frame(groups)[["env_id", "success", "turns"]].shape
        (2, 3)
    """
    rows = []
    for record in _flatten(episodes):
        key = _entry_key(record)
        metrics = episode_metrics(record)
        rows.append({
            "run": run, "env_id": record.get("env_id"),
            "env": (labels or {}).get(key or "", record.get("env_id")), "env_key": key,
            "agent": record.get("agent"), "run_seed": record.get("run_seed"),
            "seed": record.get("seed"), "task_id": record.get("task_id"),
            "episode_id": record.get("episode_id"), "split": record.get("split"),
            "seat": record.get("seat"), "opponent": record.get("opponent"), **metrics,
            "success": bool(metrics["success"]),
            "error": record.get("error"),
            "wall_time_s": (record.get("metrics") or {}).get("wall_time_s"),
        })  # fmt: skip
    return _pandas().DataFrame(rows, columns=list(EPISODE_COLUMNS))


def turns_frame(
    episodes: Iterable[Episode | Group | Mapping[str, Any]],
    *,
    run: str | None = None,
    credit: Any | None = None,
) -> pd.DataFrame:
    """One row per turn (columns :data:`TURN_COLUMNS`, plus ``advantage`` when known).

    Args:
        episodes: As for :func:`episodes_frame`.
        run: Value of the ``run`` column.
        credit: The :class:`~turngym.trainers.credit.types.Credit` an estimator returned for
            these same groups (in the same order): its per-turn advantages become the
            ``advantage`` column.

    Raises:
        ValueError: ``credit`` has a different number of turns than the episodes.

    Example:
        >>> from turngym.agents import RandomAgent
        >>> from turngym.rollout import collect
        >>> from turngym.trainers.credit import resolve_estimator
        >>> from turngym.trainers.credit.types import CreditContext, TurnBatch
        >>> groups = collect("turngym/FrozenLake-v0", RandomAgent(seed=0), tasks=2, group_size=4)
        >>> credit = resolve_estimator("grpo", {})(TurnBatch.from_groups(groups), CreditContext())
        >>> frame = turns_frame(groups, credit=credit)
        >>> len(frame) == sum(len(ep.turns) for g in groups for ep in g.episodes)
        True
        >>> "advantage" in frame.columns
        True
    """
    rows = []
    for record in _flatten(episodes):
        base = {"run": run, "env_id": record.get("env_id"), "env_key": _entry_key(record),
                "agent": record.get("agent"), "run_seed": record.get("run_seed"),
                "episode_id": record.get("episode_id"),
                "task_id": record.get("task_id")}  # fmt: skip
        for turn in record.get("turns", ()):
            info = turn.get("info") or {}
            row = {**base, "turn": turn.get("index"), "agent_id": turn.get("agent_id"),
                   "state_key": turn.get("state_key"), "action": turn.get("action"),
                   "observation": turn.get("observation"), "reward": float(turn["reward"]),
                   "action_valid": bool(turn.get("action_valid", True)),
                   "terminated": bool(turn.get("terminated")),
                   "truncated": bool(turn.get("truncated"))}  # fmt: skip
            if "advantage" in info:
                row["advantage"] = float(info["advantage"])
            rows.append(row)
    extra = ["advantage"] if any("advantage" in r for r in rows) else []
    frame = _pandas().DataFrame(rows, columns=[*TURN_COLUMNS, *extra])
    if credit is not None:
        advantages = list(credit.advantages)
        if len(advantages) != len(frame):
            raise ValueError(f"the credit has {len(advantages)} advantages for {len(frame)} "
                             "turns: pass the groups the estimator was run on")  # fmt: skip
        frame["advantage"] = advantages
    return frame


def aggregates_frame(results: RunResults, *, run: str | None = None) -> pd.DataFrame:
    """One row per (env entry, agent, metric) of a results file (:data:`AGGREGATE_COLUMNS`)."""
    rows = []
    for entry in results.entries:
        options = json.dumps({**entry.env_kwargs, **entry.options}, sort_keys=True)
        for metric, s in entry.metrics.items():
            rows.append({
                "run": run, "kind": results.kind, "env_id": entry.env_id,
                "env_version": entry.env_version, "env": short_label(entry),
                "env_key": entry.key, "options": options, "split": entry.split,
                "seat": entry.seat, "opponent": entry.opponent, "agent": entry.agent,
                "metric": metric, "mean": s.mean, "std": s.std,
                "n": s.n, "ci_low": s.ci95[0], "ci_high": s.ci95[1], "method": s.method,
                "higher_is_better": HIGHER_IS_BETTER.get(metric),
            })  # fmt: skip
    return _pandas().DataFrame(rows, columns=list(AGGREGATE_COLUMNS))


def _curves_frame(results: RunResults, run: str) -> pd.DataFrame:
    rows = []
    for entry in results.entries:
        for point in entry.curve or ():
            for metric, value in point.items():
                if metric != "env_steps":
                    rows.append({"run": run, "env_id": entry.env_id, "env": short_label(entry),
                                 "env_key": entry.key, "agent": entry.agent,
                                 "env_steps": int(point["env_steps"]), "metric": metric,
                                 "value": float(value)})  # fmt: skip
    return _pandas().DataFrame(rows, columns=list(CURVE_COLUMNS))


# --- A leaderboard ------------------------------------------------------------------------------
def _load_leaderboard(source: Any) -> RunFrames:
    from turngym.evals.results import EntryResult
    from turngym.leaderboard.store import LeaderboardStore

    store = source if not isinstance(source, str | Path) else LeaderboardStore(source)
    try:
        submissions = {s["name"]: s for s in store.submissions()}
        by_run: dict[str, list[EntryResult]] = {}
        for row in store.entries():
            by_run.setdefault(row["run"], []).append(EntryResult.from_dict({
                **row, "metrics": {k: v.to_dict() for k, v in row["metrics"].items()}}))
        aggregates, curves, episodes = [], [], []
        for name, entries in by_run.items():
            results = RunResults(submissions[name]["kind"], {}, entries)
            aggregates.append(aggregates_frame(results, run=name))
            curves.append(_curves_frame(results, name))
            episodes.append(_leaderboard_episodes(store, name, entries))
        url = str(store.url)
    finally:
        if store is not source:
            store.close()
    pandas = _pandas()

    def concat(frames: Sequence[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
        return pandas.concat(frames, ignore_index=True) if frames else \
            pandas.DataFrame(columns=list(columns))  # fmt: skip

    return RunFrames(
        source=url, kind="leaderboard", episodes=concat(episodes, EPISODE_COLUMNS),
        turns=pandas.DataFrame(columns=list(TURN_COLUMNS)),
        aggregates=concat(aggregates, AGGREGATE_COLUMNS), curves=concat(curves, CURVE_COLUMNS),
        provenance={name: s["provenance"] for name, s in submissions.items()},
    )  # fmt: skip


def _leaderboard_episodes(store: Any, name: str, entries: Sequence[Any]) -> pd.DataFrame:
    env_of = {e.key: e for e in entries}
    rows = []
    for key, agent, record in store.episodes(name):
        entry = env_of.get(key)
        rows.append({
            "run": name, "env_id": entry.env_id if entry else key.split("#")[0],
            "env": short_label(entry) if entry else key, "env_key": key, "agent": agent,
            "run_seed": record.run_seed, "seed": record.seed, "task_id": record.task_id,
            "episode_id": record.key, "split": entry.split if entry else None,
            "seat": entry.seat if entry else None, "opponent": entry.opponent if entry else None,
            **{m: record.metrics.get(m) for m in (*EPISODE_METRICS, *SEAT_METRICS)},
            "error": None, "wall_time_s": None,
        })  # fmt: skip
    frame = _pandas().DataFrame(rows, columns=list(EPISODE_COLUMNS))
    frame["success"] = frame["success"].astype(bool)
    return frame
