"""The results files of a run directory: schema, provenance, loading and validation.

A run directory (docs/design.md#eval-runner) holds:

* ``run.json`` — what was asked (entries, agents, seeds), written before the first episode;
  a rerun checks it to resume the same eval and refuses a different one.
* ``episodes.jsonl`` — one line per finished episode, turns included, appended as episodes
  finish. Each line carries a ``key`` that identifies the episode within the run, so a resumed
  run skips what is there and never writes an episode twice.
* ``results.json`` — aggregates per (env entry, agent) with 95% intervals, plus provenance.
  Tables, the leaderboard and the gate read these files and nothing else.

The metrics of one episode are :data:`EPISODE_METRICS`; every aggregate is a
:class:`~turngym.evals.stats.MetricSummary` over episodes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turngym.evals.seats import (
    SEAT_METRICS,
    entry_key,
    multiagent_task_ids,
    seat_label,
    seat_result,
)
from turngym.evals.stats import MetricSummary, summarize_values
from turngym.types import Episode

__all__ = [
    "SCHEMA",
    "EPISODE_METRICS",
    "SEAT_METRICS",
    "HIGHER_IS_BETTER",
    "REQUIRED_PROVENANCE",
    "ResultsError",
    "EntryResult",
    "RunResults",
    "episode_metrics",
    "summarize_episodes",
    "provenance",
    "env_provenance",
    "kwargs_hash",
    "entry_key",
    "seat_label",
    "redact",
    "read_jsonl",
    "load_results",
    "load_episodes",
    "write_json_atomic",
]

SCHEMA = "turngym.results/1"
"""Version tag of ``results.json``; readers refuse other major versions."""

EPISODE_METRICS: dict[str, str] = {
    "success": "fraction of episodes that solved the task",
    "outcome": "final task score in [0, 1]",
    "return": "undiscounted sum of rewards",
    "turns": "actions taken",
    "invalid_rate": "fraction of the episode's actions that were invalid",
    "error_rate": "fraction of episodes that ended with an env error or timeout",
}
"""Metric name -> meaning, for every episode (the columns of tables and the gate)."""

HIGHER_IS_BETTER: dict[str, bool] = {
    "success": True, "outcome": True, "return": True, "turns": False,
    "invalid_rate": False, "error_rate": False, "win": True, "loss": False,
}  # fmt: skip
"""Direction of each metric: a regression is a move against it. ``draw`` has none (more draws
are better against a stronger opponent and worse against a weaker one)."""

_BINARY = ("success", "error_rate", *SEAT_METRICS)


class ResultsError(ValueError):
    """A results file is missing, corrupt, of another schema, or lacks provenance."""


# --- Per-episode metrics and aggregates -------------------------------------------------------
def episode_metrics(episode: Episode | Mapping[str, Any]) -> dict[str, float]:
    """The values of :data:`EPISODE_METRICS` for one episode (an Episode or its dict form).

    A seat view of a multi-agent game (``seat`` set) also gets :data:`SEAT_METRICS`.

    Example:
        >>> episode_metrics({"success": True, "outcome": 1.0, "error": None,
        ...                  "turns": [{"reward": 1.0, "action_valid": True}]})
        {'success': 1.0, 'outcome': 1.0, 'return': 1.0, 'turns': 1.0, 'invalid_rate': 0.0, 'error_rate': 0.0}
    """  # noqa: E501
    if isinstance(episode, Episode):
        episode = {"success": episode.success, "outcome": episode.outcome, "error": episode.error,
                   "turns": [t.to_dict() for t in episode.turns], "seat": episode.seat,
                   "seat_outcomes": {k: v.to_dict() for k, v in episode.seat_outcomes.items()}}
    turns = episode["turns"]
    invalid = sum(not t.get("action_valid", True) for t in turns)
    return {
        "success": float(bool(episode["success"])),
        "outcome": float(episode["outcome"]),
        "return": float(sum(float(t["reward"]) for t in turns)),
        "turns": float(len(turns)),
        "invalid_rate": invalid / len(turns) if turns else 0.0,
        "error_rate": float(episode.get("error") is not None),
        **seat_result(episode),
    }


def summarize_episodes(episodes: Iterable[Episode | Mapping[str, Any]]) -> dict[str, MetricSummary]:
    """Aggregate episodes into one :class:`MetricSummary` per metric.

    Every metric of :data:`EPISODE_METRICS`, plus :data:`SEAT_METRICS` when every episode is
    a seat view; rates get Wilson intervals.
    """
    rows = [episode_metrics(ep) for ep in episodes]
    seat_metrics = [m for m in SEAT_METRICS if rows and all(m in r for r in rows)]
    return {
        name: summarize_values([r[name] for r in rows], binary=name in _BINARY)
        for name in (*EPISODE_METRICS, *seat_metrics)
    }


# --- Records ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EntryResult:
    """Aggregates of one (env entry, agent) pair of a run.

    Attributes:
        env_id: Registered env id with its version suffix.
        env_version: The id's version number (``None`` for unversioned ids).
        env_kwargs: Constructor kwargs of the env.
        options: Reset options (level, difficulty) used for every episode.
        env_kwargs_hash: Hash of ``env_kwargs`` and ``options`` (what makes two entries comparable).
        env_fingerprint: Hash of the first test tasks' ids: changes when the env's task
            generator changes, even without a version bump.
        split: The split the tasks came from.
        agent: The agent's spec string (secrets redacted).
        agent_config: What the agent reports about itself (sampling settings, model).
        seeds: Run seeds; seed ``s`` seeds the agent and selects tasks ``s*N .. s*N+N-1``.
        episodes_per_seed: N.
        metrics: Metric name -> summary over all episodes of the entry.
        curve: Learning curve points (bench runs only): ``{"env_steps": int, metric: value}``.
        max_turns: Turn cap when it is not the env's own (``None``: the env's).
        seat: Multi-agent games: the seat the agent played (``None`` for single-agent envs).
        opponent: Multi-agent games: the spec of the agent in every other seat (secrets
            redacted); set exactly when ``seat`` is.
    """

    env_id: str
    env_version: int | None
    env_kwargs: dict[str, Any]
    options: dict[str, Any]
    env_kwargs_hash: str
    env_fingerprint: str
    split: str
    agent: str
    agent_config: dict[str, Any]
    seeds: list[int]
    episodes_per_seed: int
    metrics: dict[str, MetricSummary]
    curve: list[dict[str, float]] | None = None
    max_turns: int | None = None
    seat: str | None = None
    opponent: str | None = None

    def __post_init__(self) -> None:
        if (self.seat is None) != (self.opponent is None):
            raise ValueError(f"{self.env_id}: a seat result names both its seat and its "
                             f"opponent (got seat={self.seat!r}, opponent={self.opponent!r})")

    @property
    def key(self) -> str:
        """``env_id#hash``: one env configuration (see :func:`entry_key` for seat results)."""
        return entry_key(self.env_id, self.env_kwargs_hash, self.seat, self.opponent)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        data: dict[str, Any] = {
            "env_id": self.env_id, "env_version": self.env_version, "env_kwargs": self.env_kwargs,
            "options": self.options, "env_kwargs_hash": self.env_kwargs_hash,
            "env_fingerprint": self.env_fingerprint, "split": self.split, "agent": self.agent,
            "agent_config": self.agent_config, "seeds": self.seeds,
            "episodes_per_seed": self.episodes_per_seed,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
        }  # fmt: skip
        if self.curve is not None:
            data["curve"] = self.curve
        if self.max_turns is not None:
            data["max_turns"] = self.max_turns
        if self.seat is not None:
            data["seat"], data["opponent"] = self.seat, self.opponent
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EntryResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            env_id=str(data["env_id"]), env_version=data.get("env_version"),
            env_kwargs=dict(data.get("env_kwargs", {})), options=dict(data.get("options", {})),
            env_kwargs_hash=str(data["env_kwargs_hash"]),
            env_fingerprint=str(data["env_fingerprint"]), split=str(data["split"]),
            agent=str(data["agent"]), agent_config=dict(data.get("agent_config", {})),
            seeds=[int(s) for s in data["seeds"]],
            episodes_per_seed=int(data["episodes_per_seed"]),
            metrics={k: MetricSummary.from_dict(v) for k, v in data["metrics"].items()},
            curve=data.get("curve"), max_turns=data.get("max_turns"),
            seat=data.get("seat"), opponent=data.get("opponent"),
        )  # fmt: skip


@dataclass(frozen=True)
class RunResults:
    """The content of ``results.json``.

    Attributes:
        kind: ``"eval"`` (``turngym eval``) or ``"bench"`` (``turngym bench``).
        provenance: See :func:`provenance`.
        entries: One per (env entry, agent).
        schema: :data:`SCHEMA`.
    """

    kind: str
    provenance: dict[str, Any]
    entries: list[EntryResult] = field(default_factory=list)
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"schema": self.schema, "kind": self.kind, "provenance": self.provenance,
                "entries": [e.to_dict() for e in self.entries]}  # fmt: skip

    def save(self, path: str | Path) -> None:
        """Write atomically (a reader never sees half a file)."""
        write_json_atomic(Path(path), self.to_dict())


REQUIRED_PROVENANCE = ("turngym_version", "git_sha", "date", "command")
"""Keys a results file must carry to be accepted by the leaderboard."""


def load_results(path: str | Path) -> RunResults:
    """Read and validate ``results.json`` (a file or the run directory holding it).

    Raises:
        ResultsError: Missing, unreadable, another schema, or without provenance — with the
            path and what to do.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.exists():
        hint = " (the run did not finish: rerun the same command to resume it)" if (
            path.parent / "episodes.jsonl").exists() else ""
        raise ResultsError(f"{path}: no results file{hint}")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ResultsError(f"{path}: not valid JSON ({err})") from err
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema is None or str(schema).split("/")[0] != SCHEMA.split("/")[0]:
        raise ResultsError(f"{path}: not a turngym results file (schema {schema!r})")
    if schema != SCHEMA:
        raise ResultsError(f"{path}: schema {schema} is not supported (turngym reads {SCHEMA})")
    prov = data.get("provenance")
    missing = [k for k in REQUIRED_PROVENANCE if not isinstance(prov, dict) or k not in prov]
    if missing:
        raise ResultsError(f"{path}: provenance lacks {', '.join(missing)}")
    try:
        entries = [EntryResult.from_dict(e) for e in data["entries"]]
    except (KeyError, TypeError, ValueError) as err:
        raise ResultsError(f"{path}: malformed entry ({type(err).__name__}: {err})") from err
    return RunResults(kind=str(data.get("kind", "eval")), provenance=prov, entries=entries)


# --- Episodes ---------------------------------------------------------------------------------
def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(end_offset, record)`` for each complete line of a JSONL file.

    A last line without its newline (a writer killed mid-line) is not yielded, so callers
    can truncate the file at the last ``end_offset`` and append from there.

    Raises:
        ResultsError: A complete line that is not a JSON object (a corrupt file).
    """
    path = Path(path)
    offset = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                return
            offset += len(raw)
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as err:
                raise ResultsError(f"{path}:{number}: corrupt line ({err})") from err
            if not isinstance(record, dict):
                raise ResultsError(f"{path}:{number}: expected a JSON object")
            yield offset, record


def load_episodes(run: str | Path) -> list[dict[str, Any]]:
    """All complete episode records of a run directory (or an ``episodes.jsonl`` path)."""
    path = Path(run)
    if path.is_dir():
        path = path / "episodes.jsonl"
    if not path.exists():
        raise ResultsError(f"{path}: no episodes file")
    return [record for _, record in read_jsonl(path)]


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file and rename it over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


# --- Provenance -------------------------------------------------------------------------------
def provenance(command: Sequence[str] | None = None) -> dict[str, Any]:
    """Where and how results were made: versions, git sha, date, redacted command line."""
    from turngym import __version__

    sha, dirty = _git_state(Path(__file__).resolve().parents[2])
    return {
        "turngym_version": __version__,
        "git_sha": sha,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "platform": f"{platform.system()}-{platform.machine()}",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": [redact(a) for a in (sys.argv if command is None else command)],
        **_torch_threads(),
    }


def _torch_threads() -> dict[str, int]:
    """Torch's intra-op thread count, when torch is in use.

    Float summation order depends on it, and so the last digits of a model's outputs and,
    through them, what it samples.
    """
    torch = sys.modules.get("torch")
    return {"torch_threads": int(torch.get_num_threads())} if torch is not None else {}


def _git_state(root: Path) -> tuple[str | None, bool | None]:
    """The checkout's HEAD sha and whether it has uncommitted changes (None when not a repo)."""
    if not (root / ".git").exists():
        return None, None
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()  # fmt: skip
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                                capture_output=True, text=True, timeout=5).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None, None
    return sha, bool(status.strip())


def kwargs_hash(*parts: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-able mappings (key order does not matter).

    Example:
        >>> kwargs_hash({"a": 1, "b": 2}) == kwargs_hash({"b": 2, "a": 1})
        True
    """
    blob = json.dumps(list(parts), sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def env_provenance(
    env_id: str,
    env_kwargs: Mapping[str, Any],
    options: Mapping[str, Any],
    max_turns: int | None = None,
) -> dict[str, Any]:
    """Env id, version, kwargs hash and a fingerprint of its first test tasks.

    A turn cap other than the env's own (``max_turns``) changes what a score means, so it is
    part of the hash (and recorded) when given.

    The fingerprint resets a fresh env on test seeds 0-2 and hashes the task ids: results made
    by a changed task generator carry a different fingerprint, which the leaderboard refuses
    to rank against the old one. Multi-agent ids (:mod:`turngym.envs.multiagent.registry`)
    are fingerprinted the same way from their first seat's info.
    """
    from turngym.envs.multiagent.registry import is_multiagent

    probe = multiagent_task_ids if is_multiagent(env_id) else _task_ids
    ids, version = probe(env_id, env_kwargs, options)
    cap = {"max_turns": max_turns} if max_turns else {}
    return {
        **cap,
        "env_id": env_id,
        "env_version": version,
        "env_kwargs": dict(env_kwargs),
        "options": dict(options),
        "env_kwargs_hash": kwargs_hash(env_kwargs, options, *([cap] if cap else [])),
        "env_fingerprint": hashlib.sha256("|".join(ids).encode()).hexdigest()[:12],
    }


def _task_ids(env_id: str, env_kwargs: Mapping[str, Any],
              options: Mapping[str, Any]) -> tuple[list[str], int | None]:  # fmt: skip
    """Task ids of test seeds 0-2 and the spec's version, from a fresh Gymnasium env."""
    from turngym.core import TASK_ID
    from turngym.registry import make

    env = make(env_id, disable_env_checker=True, **env_kwargs)
    try:
        ids = []
        for seed in range(3):
            _, info = env.reset(seed=seed, options={"split": "test", **options})
            ids.append(str(info.get(TASK_ID, "")))
        spec = env.spec
    finally:
        env.close()
    return ids, spec.version if spec is not None else None


_SECRET = re.compile(r"(?i)((?:api[_-]?key|token|secret|password)=)[^&\s]+")
_USERINFO = re.compile(r"(://)[^/@\s]+@")


def redact(text: str) -> str:
    """Remove credentials from a URL or command-line argument.

    Example:
        >>> redact("openai:m@https://user:pw@host/v1?api_key=abc")
        'openai:m@https://***@host/v1?api_key=***'
    """
    return _USERINFO.sub(r"\1***@", _SECRET.sub(r"\1***", text))
