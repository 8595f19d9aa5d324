"""Per-episode records of a run, and the names that tie two runs' entries together.

* :class:`EpisodeRecord` is the per-episode metric vector of one episode, as the gate compares
  it and the store (:class:`~turngym.leaderboard.store.LeaderboardStore`) keeps it;
  :func:`read_run_episodes` reads a run's ``episodes.jsonl`` into such records, checked
  against its ``results.json``.
* :func:`match_agents` pairs the agents of one env entry on two sides, and :func:`env_label`
  gives an env configuration its readable name; the gate, the store's comparisons and the
  leaderboard page use both.

Only the results files are read here (no numpy, no SQLAlchemy).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turngym.evals.results import (
    EntryResult,
    ResultsError,
    RunResults,
    episode_metrics,
    load_episodes,
    load_results,
)

__all__ = ["EpisodeRecord", "env_label", "match_agents", "read_run_episodes", "shown_agent"]


# --- Per-episode values -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EpisodeRecord:
    """The per-episode metric vector of one episode, as the gate and the store keep it.

    Attributes:
        key: The episode's key within its run (``episodes.jsonl`` ``key``).
        task_id: Stable task id.
        seed: The env reset seed that selected the task.
        run_seed: The run seed the episode belongs to.
        metrics: :func:`~turngym.evals.results.episode_metrics` of the episode.
    """

    key: str
    task_id: str
    seed: int | None
    run_seed: int | None
    metrics: dict[str, float]


def read_run_episodes(
    run_dir: str | Path, results: RunResults | None = None
) -> dict[tuple[str, str], list[EpisodeRecord]]:
    """Read ``episodes.jsonl`` of a run, grouped by ``(entry key, agent)``.

    The file is checked against ``results.json``: every episode must belong to one of its
    entries, keys must be unique, an entry's episode count must match its summaries, and
    a seat result of a multi-agent game must have its episodes, each played in its seat
    against its opponent (otherwise the two files come from different runs, or one was
    edited). The leaderboard then recomputes every summary from these records
    (:func:`~turngym.leaderboard.validate.check_submission`).

    Args:
        run_dir: The run directory.
        results: Its loaded ``results.json`` (read from ``run_dir`` when omitted).

    Returns:
        ``{(entry_key, agent): [EpisodeRecord, ...]}``; empty when there is no episodes file.

    Raises:
        ResultsError: Corrupt or inconsistent files, naming the file and what to do.
    """
    run_dir = Path(run_dir)
    path = run_dir / "episodes.jsonl"
    results = results if results is not None else load_results(run_dir)
    if not path.exists():
        seated = next((e for e in results.entries if e.seat is not None), None)
        if seated is not None:
            raise ResultsError(f"{run_dir}: {seated.key} / {seated.agent} is a seat result, "
                               "checked against its episodes, but there is no episodes.jsonl; "
                               "submit the whole run directory")  # fmt: skip
        return {}
    expected = {(e.key, e.agent): e for e in results.entries}
    grouped: dict[tuple[str, str], list[EpisodeRecord]] = {}
    seen: set[str] = set()
    for number, record in enumerate(load_episodes(path), start=1):
        try:
            group = (str(record["entry"]), str(record["agent"]))
            episode = EpisodeRecord(
                key=str(record["key"]),
                task_id=str(record["task_id"]),
                seed=_optional_int(record.get("seed")),
                run_seed=_optional_int(record.get("run_seed")),
                metrics=episode_metrics(record),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ResultsError(f"{path}: episode {number} is malformed ({err!r} missing or "
                               "invalid); rerun the eval to rewrite the file") from err  # fmt: skip
        if group not in expected:
            raise ResultsError(f"{path}: episode {episode.key!r} belongs to {group[0]} / "
                               f"{group[1]}, which results.json does not list; the files "
                               "come from different runs")  # fmt: skip
        _check_seat(path, expected[group], record, episode.key)
        if episode.key in seen:
            raise ResultsError(f"{path}: episode key {episode.key!r} appears twice")
        seen.add(episode.key)
        grouped.setdefault(group, []).append(episode)
    for group, entry in expected.items():
        records = grouped.get(group, [])
        if entry.seat is not None and not records:
            raise ResultsError(f"{path}: no episodes for the seat result {group[0]} / "
                               f"{group[1]}; the files come from different runs")  # fmt: skip
        summaries = entry.metrics
        n = next(iter(summaries.values())).n if summaries else len(records)
        if records and n != len(records):
            raise ResultsError(f"{path}: {len(records)} episodes for {group[0]} / {group[1]} "
                               f"but results.json summarises {n}; rerun the same eval command "
                               "to finish the run and rewrite results.json")  # fmt: skip
    return grouped


def _check_seat(path: Path, entry: EntryResult, record: Mapping[str, Any], key: str) -> None:
    """An episode of a seat result was played in that seat against that opponent."""
    played = (record.get("seat"), record.get("opponent"))
    if entry.seat is None or played == (entry.seat, entry.opponent):
        return
    raise ResultsError(f"{path}: episode {key!r} was played as {played[0]} against "
                       f"{played[1]}, but results.json lists it under {entry.seat} against "
                       f"{entry.opponent}; the files do not belong together")  # fmt: skip


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


# --- Matching the two sides -------------------------------------------------------------------
def match_agents(
    a: Iterable[str], b: Iterable[str]
) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Pair the agents of one env entry on two sides.

    Agents pair by name; when each side has exactly one agent and the names differ (a new
    model checkpoint against the old one), those two pair.

    Returns:
        ``(pairs, only_a, only_b)``.

    Example:
        >>> match_agents(["hf:old"], ["hf:new"])
        ([('hf:old', 'hf:new')], [], [])
    """
    a, b = sorted(set(a)), sorted(set(b))
    if len(a) == 1 and len(b) == 1:
        return [(a[0], b[0])], [], []
    common = [x for x in a if x in b]
    return [(x, x) for x in common], [x for x in a if x not in b], [x for x in b if x not in a]


def env_label(env_id: str, env_kwargs: Mapping[str, Any], options: Mapping[str, Any]) -> str:
    """A readable name for one env configuration: the id plus any options and kwargs.

    The label depends only on the entry, never on what else is on a board, so it is stable.

    Example:
        >>> env_label("turngym/Sokoban-v0", {}, {"level": 2})
        'turngym/Sokoban-v0 (level=2)'
    """
    items = [*sorted(options.items()), *sorted(env_kwargs.items())]
    if not items:
        return env_id
    return f"{env_id} ({', '.join(f'{k}={_short(v)}' for k, v in items)})"


def shown_agent(entry: Mapping[str, Any]) -> str:
    """An entry row's agent as the page names it: ``agent vs opponent`` in a multi-agent game.

    Example:
        >>> shown_agent({"agent": "hf:ckpt", "opponent": "minimax"})
        'hf:ckpt vs minimax'
    """
    opponent = entry.get("opponent")
    return str(entry["agent"]) if opponent is None else f"{entry['agent']} vs {opponent}"


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
