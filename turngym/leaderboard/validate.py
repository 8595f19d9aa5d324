"""What the leaderboard checks before it accepts a run: types, ranges, and the episodes.

A submission is a ``results.json`` plus its ``episodes.jsonl``. The board trusts neither
number in ``results.json`` on its own: :func:`check_submission` validates every field (types,
known kinds and metrics, finite numbers in each metric's documented range, intervals that hold
their means, provenance of the right types) and then **recomputes every row from the episodes**
(:func:`~turngym.evals.results.episode_metrics` per episode, the same
:func:`~turngym.evals.stats.summarize_values` the eval used). A row whose summary differs from
its episodes, or an episode out of range, is refused with a message naming the row and why.

A forger can still write self-consistent files; what the checks guarantee is that every row on
the board is what its own episodes say, with values a real run can produce.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from turngym.evals.results import EPISODE_METRICS, SEAT_METRICS, EntryResult, RunResults
from turngym.evals.stats import MetricSummary, summarize_values
from turngym.leaderboard.episodes import EpisodeRecord, env_label
from turngym.tasks import SPLITS

__all__ = ["KINDS", "METRIC_RANGES", "SubmissionInvalid", "check_submission"]

KINDS = ("eval", "bench")
"""The run kinds the board accepts (``turngym eval`` and ``turngym bench``)."""

METRIC_RANGES: dict[str, tuple[float, float]] = {
    "success": (0.0, 1.0), "outcome": (0.0, 1.0), "return": (-math.inf, math.inf),
    "turns": (0.0, math.inf), "invalid_rate": (0.0, 1.0), "error_rate": (0.0, 1.0),
    "win": (0.0, 1.0), "draw": (0.0, 1.0), "loss": (0.0, 1.0),
}  # fmt: skip
"""The documented range of each metric (``return`` is any finite number; win, draw and loss
are the seat rates of multi-agent games)."""

_BINARY = ("success", "error_rate", *SEAT_METRICS)  # per-episode 0 or 1; Wilson intervals
_KNOWN = (*EPISODE_METRICS, *SEAT_METRICS)
_METHODS = ("wilson", "t")
_HEX = re.compile(r"[0-9a-f]{7,64}")
_TOLERANCE = 1e-9


class SubmissionInvalid(ValueError):
    """A run the board refuses: the message names the row (or field) and what is wrong."""


def check_submission(
    results: RunResults, episodes: Mapping[tuple[str, str], Sequence[EpisodeRecord]]
) -> dict[tuple[str, str], dict[str, MetricSummary]]:
    """Validate a run and recompute its rows from its episodes.

    Args:
        results: The loaded ``results.json``.
        episodes: Its episodes grouped by ``(entry key, agent)``
            (:func:`~turngym.leaderboard.episodes.read_run_episodes`).

    Returns:
        ``{(entry key, agent): {metric: summary}}`` recomputed from the episodes (equal to
        ``results.json``'s, or the run would have been refused).

    Raises:
        SubmissionInvalid: The first problem found, naming the row and why.
    """
    if results.kind not in KINDS:
        raise SubmissionInvalid(f"kind {results.kind!r} is not one of {list(KINDS)}")
    _check_provenance(results.provenance)
    if not episodes:
        raise SubmissionInvalid("the run has no episodes.jsonl: rows are recomputed from the "
                                "episodes, so a run without them cannot be checked")  # fmt: skip
    recomputed = {}
    for entry in results.entries:
        row = f"row {env_label(entry.env_id, entry.env_kwargs, entry.options)} / {entry.agent}"
        try:
            _check_entry(entry)
            records = episodes.get((entry.key, entry.agent), ())
            recomputed[(entry.key, entry.agent)] = _recompute(entry, records)
        except SubmissionInvalid as err:
            raise SubmissionInvalid(f"{row}: {err}") from None
    return recomputed


# --- Provenance and fields ---------------------------------------------------------------------
def _check_provenance(prov: Mapping[str, Any]) -> None:
    def bad(key: str, want: str) -> SubmissionInvalid:
        return SubmissionInvalid(f"provenance {key!r} must be {want}, got {prov.get(key)!r:.80}")

    version = prov.get("turngym_version")
    if not isinstance(version, str) or not 0 < len(version) <= 64:
        raise bad("turngym_version", "a version string")
    sha = prov.get("git_sha")
    if sha is not None and (not isinstance(sha, str) or not _HEX.fullmatch(sha)):
        raise bad("git_sha", "null or a hexadecimal commit id")
    if prov.get("git_dirty") is not None and not isinstance(prov.get("git_dirty"), bool):
        raise bad("git_dirty", "null, true or false")
    for key in ("python", "platform"):
        if key in prov and not (isinstance(prov[key], str) and len(prov[key]) <= 200):
            raise bad(key, "a short string")
    date = prov.get("date")
    try:
        parsed = _dt.datetime.fromisoformat(date) if isinstance(date, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise bad("date", "an ISO 8601 date")
    command = prov.get("command")
    if not isinstance(command, list) or not all(isinstance(a, str) for a in command):
        raise bad("command", "a list of strings")


def _check_entry(entry: EntryResult) -> None:
    checks = [
        (isinstance(entry.env_id, str) and 0 < len(entry.env_id) <= 200, "env_id", "a short id"),
        (entry.env_version is None or (isinstance(entry.env_version, int)
                                       and entry.env_version >= 0), "env_version",
         "null or a version number"),
        (entry.split in SPLITS, "split", f"one of {list(SPLITS)}"),
        (0 < len(entry.agent) <= 500, "agent", "an agent spec"),
        (bool(entry.seeds) and len(set(entry.seeds)) == len(entry.seeds), "seeds",
         "distinct run seeds"),
        (entry.episodes_per_seed >= 1, "episodes_per_seed", "at least 1"),
        (0 < len(entry.env_fingerprint) <= 64 and 0 < len(entry.env_kwargs_hash) <= 64,
         "env_fingerprint", "a short hash"),
    ]  # fmt: skip
    for ok, field, want in checks:
        if not ok:
            raise SubmissionInvalid(f"{field} must be {want}, got {getattr(entry, field)!r:.80}")
    unknown = sorted(set(entry.metrics) - set(_KNOWN))
    if unknown or not entry.metrics:
        raise SubmissionInvalid(f"unknown metrics {unknown}; known: {list(_KNOWN)}")
    lacking = [m for m in SEAT_METRICS if m not in entry.metrics] if entry.seat else []
    if lacking:  # a seat row is ranked on its rates: all three, recomputed below
        raise SubmissionInvalid(f"a seat row must summarise win, draw and loss; it lacks "
                                f"{', '.join(lacking)}")  # fmt: skip
    for name, summary in entry.metrics.items():
        _check_summary(name, summary)
    n = {s.n for s in entry.metrics.values()}
    expected = len(entry.seeds) * entry.episodes_per_seed
    if n != {expected}:
        raise SubmissionInvalid(f"n must be seeds x episodes_per_seed = {expected} for every "
                                f"metric, got {sorted(n)}")  # fmt: skip
    _check_curve(entry.curve)


def _check_summary(name: str, s: MetricSummary) -> None:
    low, high = METRIC_RANGES[name]
    numbers = (s.mean, s.std, *s.ci95)
    if not all(math.isfinite(x) for x in numbers):
        raise SubmissionInvalid(f"{name}: mean, std and interval must be finite numbers, got "
                                f"mean {s.mean}, std {s.std}, ci95 {list(s.ci95)}")  # fmt: skip
    if not low <= s.mean <= high:
        raise SubmissionInvalid(f"{name}: mean {s.mean} is outside its range [{low}, {high}]")
    if s.std < 0 or s.n < 1:
        raise SubmissionInvalid(f"{name}: std {s.std} and n {s.n} must be >= 0 and >= 1")
    if not s.ci95[0] - _TOLERANCE <= s.mean <= s.ci95[1] + _TOLERANCE:
        raise SubmissionInvalid(f"{name}: the interval {list(s.ci95)} does not contain its "
                                f"mean {s.mean}")  # fmt: skip
    if s.method not in _METHODS:
        raise SubmissionInvalid(f"{name}: interval method {s.method!r} is not one of "
                                f"{list(_METHODS)}")  # fmt: skip


def _check_curve(curve: Any) -> None:
    if curve is None:
        return
    if not isinstance(curve, list) or not all(isinstance(p, Mapping) for p in curve):
        raise SubmissionInvalid("curve must be a list of points")
    for point in curve:
        steps = point.get("env_steps")
        if isinstance(steps, bool) or not isinstance(steps, int | float) or not (
                math.isfinite(steps) and steps >= 0):  # fmt: skip
            raise SubmissionInvalid(f"curve point {dict(point)!r:.80} needs env_steps >= 0")
        for name, value in point.items():
            if name == "env_steps":
                continue
            low, high = METRIC_RANGES.get(name, (math.nan, math.nan))
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not (math.isfinite(value) and low <= value <= high):
                raise SubmissionInvalid(f"curve point {dict(point)!r:.80}: {name} must be a "
                                        "known metric within its range")  # fmt: skip


# --- Recomputation -----------------------------------------------------------------------------
def _recompute(entry: EntryResult, records: Sequence[EpisodeRecord]) -> dict[str, MetricSummary]:
    """Each metric of ``entry`` from its episodes; refuse out-of-range episodes and mismatches."""
    if len(records) != len(entry.seeds) * entry.episodes_per_seed:
        raise SubmissionInvalid(f"episodes.jsonl has {len(records)} episodes for it, not the "
                                f"{len(entry.seeds) * entry.episodes_per_seed} it summarises")
    for record in records:
        if record.run_seed is not None and record.run_seed not in entry.seeds:
            raise SubmissionInvalid(f"episode {record.key!r} has run seed {record.run_seed}, "
                                    f"not one of {entry.seeds}")  # fmt: skip
        for name, value in record.metrics.items():
            low, high = METRIC_RANGES[name]
            binary_ok = name not in _BINARY or value in (0.0, 1.0)
            if not (math.isfinite(value) and low <= value <= high and binary_ok):
                raise SubmissionInvalid(f"episode {record.key!r}: {name} = {value} is outside "
                                        f"its range [{low}, {high}]")  # fmt: skip
    recomputed = {}
    for name, claimed in entry.metrics.items():
        values = [r.metrics[name] for r in records if name in r.metrics]
        if len(values) != len(records):  # win/draw/loss of episodes that were not seat views
            raise SubmissionInvalid(f"{name}: {len(records) - len(values)} of its episodes "
                                    "have no value of it (not seat views of a game)")
        mine = summarize_values(values, binary=name in _BINARY)
        if not _same(claimed, mine):
            raise SubmissionInvalid(
                f"{name} does not match its {len(values)} episodes: results.json says mean "
                f"{claimed.mean!r}, ci95 {list(claimed.ci95)}, n {claimed.n}; the episodes give "
                f"mean {mine.mean!r}, ci95 {list(mine.ci95)}, n {mine.n}")
        recomputed[name] = mine
    return recomputed


def _same(a: MetricSummary, b: MetricSummary) -> bool:
    numbers = zip((a.mean, a.std, *a.ci95), (b.mean, b.std, *b.ci95), strict=True)
    close = all(math.isclose(x, y, rel_tol=_TOLERANCE, abs_tol=_TOLERANCE) for x, y in numbers)
    return close and a.n == b.n and a.method == b.method
