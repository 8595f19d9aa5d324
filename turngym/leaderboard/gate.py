"""The CI regression gate: does a run score significantly worse than a baseline?

For every env entry (``env_id#kwargs_hash``), agent and metric present in both the run and the
baseline, the gate compares the per-episode values of the two sides. A check **fails** only
when both hold:

* the observed move against the metric's direction (:data:`HIGHER_IS_BETTER`) is larger than
  the tolerance, in the metric's own units; and
* a one-sided bootstrap test says the drop is significant (``p < alpha``).

The first condition keeps tiny but real drops (large n) from blocking a merge; the second keeps
noise from doing so. Improvements never fail.

The baseline is a run directory or a submission on a leaderboard
(:class:`~turngym.leaderboard.store.LeaderboardStore`), which keeps the same per-episode values.
Only numpy is needed here; the store (SQLAlchemy) is used only when a submission is the baseline.

The per-episode records and the agent matching come from :mod:`turngym.leaderboard.episodes`,
the report from :mod:`turngym.leaderboard.report`; their public names are re-exported here.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from turngym.evals.results import HIGHER_IS_BETTER, load_results, seat_label
from turngym.evals.stats import Z95, MetricSummary, summarize_values
from turngym.leaderboard.episodes import (
    EpisodeRecord,
    env_label,
    match_agents,
    read_run_episodes,
)
from turngym.leaderboard.report import GateCheck, GateReport

if TYPE_CHECKING:
    from turngym.leaderboard.store import LeaderboardStore

__all__ = [
    "DEFAULT_TOLERANCE",
    "EpisodeRecord",
    "Comparison",
    "GateCheck",
    "GateReport",
    "compare_values",
    "env_label",
    "gate",
    "match_agents",
    "read_run_episodes",
]

DEFAULT_TOLERANCE = 0.02
"""Drops up to this many units of a metric never fail (2 points of success rate)."""

_MAX_DRAWS = 4_000_000
"""Bootstrap indices drawn per chunk: bounds memory (32 MB) for runs with many episodes."""


# --- Pairing the episodes of two runs ---------------------------------------------------------
def _pair_keys(records: Sequence[EpisodeRecord]) -> list[tuple[str, int | None, int]]:
    """A key per episode that names the same episode in another run of the same eval.

    ``(task_id, reset seed, occurrence)``: the task and its seed identify what was played, and
    the occurrence number (in run-seed, key order) separates repeats of one task. Episode keys
    themselves cannot pair runs, because they contain the agent's name.
    """
    counts: dict[tuple[str, int | None], int] = {}
    keys = []
    for r in sorted(records, key=lambda r: (r.run_seed is None, r.run_seed or 0, r.key)):
        base = (r.task_id, r.seed)
        counts[base] = counts.get(base, 0) + 1
        keys.append((*base, counts[base]))
    return keys


def _aligned_values(
    baseline: Sequence[EpisodeRecord], run: Sequence[EpisodeRecord], metric: str
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Both sides' values of ``metric``, aligned episode by episode when they can be paired.

    Sides pair when they played exactly the same episodes (same pair keys). Either way the
    values are ordered by pair key, so the same data always gives the same arrays (and the
    same seeded bootstrap), whichever place it was read from.
    """
    b = dict(zip(_pair_keys(baseline), baseline, strict=True))
    r = dict(zip(_pair_keys(run), run, strict=True))

    def values(side: dict, order: Iterable) -> np.ndarray:
        return np.array([side[k].metrics[metric] for k in order], dtype=float)

    def order(side: dict) -> list:
        return sorted(side, key=lambda k: (k[0], k[1] is None, k[1] or 0, k[2]))

    if b.keys() == r.keys():
        keys = order(b)
        return values(b, keys), values(r, keys), True
    return values(b, order(b)), values(r, order(r)), False


# --- The test ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Comparison:
    """Run-minus-baseline difference of a metric's mean, with a one-sided test for a drop.

    Attributes:
        diff: ``mean(run) - mean(baseline)``.
        ci95: 95% interval of ``diff``.
        p_value: One-sided p-value of "the run is worse" (against the metric's direction).
        method: ``"paired bootstrap"``, ``"bootstrap"`` or ``"normal approximation"``.
    """

    diff: float
    ci95: tuple[float, float]
    p_value: float
    method: str


def compare_values(
    baseline: Sequence[float] | np.ndarray,
    run: Sequence[float] | np.ndarray,
    *,
    higher_is_better: bool = True,
    paired: bool = False,
    n_boot: int = 2000,
    rng: np.random.Generator,
) -> Comparison:
    """Bootstrap test of whether ``run`` has a worse mean than ``baseline``.

    Method: percentile bootstrap of the mean difference (Efron & Tibshirani 1993, ch. 13 and
    16). Paired samples resample the per-episode differences (same tasks, same seeds, so
    task difficulty cancels out and the test is much sharper); unpaired samples resample each
    side independently. The one-sided p-value is the bootstrap share of replicates that show
    no drop, ``(1 + #{worse* <= 0}) / (B + 1)`` (Davison & Hinkley 1997, eq. 4.11, the +1
    keeping p above zero). A bootstrap rather than a z- or t-test because the metrics are 0/1
    rates, bounded scores and skewed counts (turns), for which it needs no normality
    assumption, and one code path serves paired and unpaired data.

    Args:
        baseline: Per-episode values of the baseline (at least 2).
        run: Per-episode values of the run (at least 2; the same length when ``paired``).
        higher_is_better: Direction of the metric: a drop is a move against it.
        paired: Whether ``baseline[i]`` and ``run[i]`` are the same episode.
        n_boot: Bootstrap replicates B.
        rng: The random generator (seeded by the caller, for reproducible verdicts).

    Returns:
        The :class:`Comparison`.

    Example:
        >>> c = compare_values([1, 1, 1, 0] * 50, [1, 0, 0, 0] * 50, paired=True,
        ...                    rng=np.random.default_rng(0))
        >>> round(c.diff, 2), c.p_value < 0.01, c.method
        (-0.5, True, 'paired bootstrap')
    """
    b = np.asarray(baseline, dtype=float)
    r = np.asarray(run, dtype=float)
    if len(b) < 2 or len(r) < 2:
        raise ValueError(f"need at least 2 episodes per side, got {len(b)} and {len(r)}")
    if paired and len(b) != len(r):
        raise ValueError(f"paired samples need equal lengths, got {len(b)} and {len(r)}")
    if paired:
        boot = _bootstrap_means(r - b, n_boot, rng)
    else:
        boot = _bootstrap_means(r, n_boot, rng) - _bootstrap_means(b, n_boot, rng)
    worse = -boot if higher_is_better else boot
    p_value = (1 + int(np.count_nonzero(worse <= 0))) / (n_boot + 1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return Comparison(float(r.mean() - b.mean()), (float(low), float(high)), p_value,
                      "paired bootstrap" if paired else "bootstrap")  # fmt: skip


def _bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples with replacement, drawn in memory-bounded chunks."""
    n = len(values)
    out = np.empty(n_boot)
    chunk = max(1, _MAX_DRAWS // n)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        out[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return out


def _compare_summaries(
    baseline: MetricSummary, run: MetricSummary, higher_is_better: bool
) -> Comparison:
    """Welch-style normal approximation from two summaries (when a side kept no episodes)."""
    diff = run.mean - baseline.mean
    se = math.sqrt(baseline.std**2 / max(baseline.n, 1) + run.std**2 / max(run.n, 1))
    worse = -diff if higher_is_better else diff
    if se == 0:
        p_value = 0.0 if worse > 0 else 1.0
    else:
        p_value = 0.5 * math.erfc(worse / (se * math.sqrt(2)))  # 1 - Phi(worse / se)
    return Comparison(diff, (diff - Z95 * se, diff + Z95 * se), p_value, "normal approximation")


# --- The two sides ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Entry:
    """One side's data for one (entry, agent): what the gate needs, wherever it was read."""

    label: str
    fingerprint: str
    summaries: dict[str, MetricSummary]
    episodes: list[EpisodeRecord] = field(default_factory=list)


def _run_side(run_dir: str | Path) -> dict[tuple[str, str], _Entry]:
    results = load_results(run_dir)
    run_dir = Path(run_dir)
    episodes = read_run_episodes(run_dir if run_dir.is_dir() else run_dir.parent, results)
    return {
        (e.key, e.agent): _Entry(env_label(e.env_id, e.env_kwargs, e.options)
                                 + seat_label(e.seat, e.opponent),
                                 e.env_fingerprint, e.metrics, episodes.get((e.key, e.agent), []))
        for e in results.entries
    }  # fmt: skip


def _store_side(store: LeaderboardStore, name: str) -> dict[tuple[str, str], _Entry]:
    grouped: dict[tuple[str, str], list[EpisodeRecord]] = {}
    for entry_key, agent, record in store.episodes(name):
        grouped.setdefault((entry_key, agent), []).append(record)
    return {
        (e["key"], e["agent"]): _Entry(e["env"], e["env_fingerprint"], e["metrics"],
                                       grouped.get((e["key"], e["agent"]), []))
        for e in store.entries(name)
    }  # fmt: skip


# --- The gate ---------------------------------------------------------------------------------
def gate(
    run: str | Path,
    baseline: str | Path,
    *,
    store: LeaderboardStore | None = None,
    metrics: Sequence[str] = ("success",),
    tolerance: float | Mapping[str, float] = DEFAULT_TOLERANCE,
    alpha: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
    require_all: bool = False,
) -> GateReport:
    """Compare a run with a baseline per env entry, agent and metric (see the module docs).

    Args:
        run: The run directory under test.
        baseline: A run directory, or a submission name on ``store``.
        store: The leaderboard holding the baseline submission (``None``: ``baseline`` is a
            run directory).
        metrics: Metrics to gate (names of :data:`~turngym.evals.results.HIGHER_IS_BETTER`).
        tolerance: Largest drop that never fails, in the metric's units: one number for all
            metrics, or ``{metric: tolerance}`` (others get :data:`DEFAULT_TOLERANCE`).
        alpha: Significance level of the one-sided test.
        n_boot: Bootstrap replicates per check.
        seed: Seed of the bootstrap. Each check derives its own generator from it and its
            entry, agent and metric, so a verdict does not depend on the other checks.
        require_all: Fail when an entry is on one side only or cannot be tested.

    Returns:
        The :class:`GateReport`; ``report.passed`` is the verdict.

    Raises:
        ValueError: Bad parameters or unknown metric names.
        ResultsError: A run directory's results files are missing or corrupt.
        LeaderboardError: ``baseline`` is not a submission on ``store``.
    """
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in HIGHER_IS_BETTER]
    if unknown or not metrics:
        raise ValueError(f"unknown metrics {unknown or '(none given)'}; "
                         f"choose from {', '.join(HIGHER_IS_BETTER)}")  # fmt: skip
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100 for a usable p-value, got {n_boot}")
    tolerances = _tolerances(tolerance, metrics)
    run_side = _run_side(run)
    if store is None:
        base_side, base_name = _run_side(baseline), str(baseline)
    else:
        base_side, base_name = _store_side(store, str(baseline)), f"{baseline} on {store.url}"
    checks: list[GateCheck] = []
    for key in sorted({k for k, _ in base_side} | {k for k, _ in run_side}):
        pairs, only_b, only_r = match_agents([a for k, a in base_side if k == key],
                                             [a for k, a in run_side if k == key])  # fmt: skip
        for b_agent, r_agent in pairs:
            for metric in metrics:
                b_side, r_side = base_side[key, b_agent], run_side[key, r_agent]
                if not (_carries(b_side, metric) or _carries(r_side, metric)):
                    continue  # win/draw/loss of a single-agent env: nothing to gate
                check_id = zlib.crc32(f"{key}|{r_agent}|{metric}".encode())
                rng = np.random.default_rng([seed, check_id])
                checks.append(_check(key, r_agent, b_agent, metric, b_side, r_side,
                                     tolerances[metric], alpha, n_boot, rng,
                                     require_all))  # fmt: skip
        for agent, side, where in [*((a, base_side, "baseline") for a in only_b),
                                   *((a, run_side, "run") for a in only_r)]:  # fmt: skip
            note = ("the run did not evaluate it" if where == "baseline"
                    else "new in the run: nothing to compare with")  # fmt: skip
            checks.append(GateCheck(env=side[key, agent].label, entry=key, agent=agent,
                                    baseline_agent=agent, metric=", ".join(metrics),
                                    verdict="missing", failed=require_all,
                                    note=f"only in the {where}: {note}"))  # fmt: skip
    return GateReport(run=str(run), baseline=base_name, checks=tuple(checks),
                      tolerance=tolerances, alpha=alpha, n_boot=n_boot, seed=seed,
                      require_all=require_all)  # fmt: skip


def _tolerances(tolerance: float | Mapping[str, float], metrics: Sequence[str]) -> dict[str, float]:
    if isinstance(tolerance, Mapping):
        unknown = [m for m in tolerance if m not in HIGHER_IS_BETTER]
        if unknown:
            raise ValueError(f"tolerance for unknown metrics {unknown}; "
                             f"choose from {', '.join(HIGHER_IS_BETTER)}")  # fmt: skip
        out = {m: float(tolerance.get(m, DEFAULT_TOLERANCE)) for m in metrics}
    else:
        out = {m: float(tolerance) for m in metrics}
    negative = {m: t for m, t in out.items() if not t >= 0}
    if negative:
        raise ValueError(f"tolerances must be >= 0 (metric units), got {negative}")
    return out


def _check(
    key: str, agent: str, b_agent: str, metric: str, b: _Entry, r: _Entry, tolerance: float,
    alpha: float, n_boot: int, rng: np.random.Generator, require_all: bool,
) -> GateCheck:  # fmt: skip
    """Compare one (entry, agent, metric) and decide its verdict."""
    hib = HIGHER_IS_BETTER[metric]
    row: dict[str, Any] = {"env": r.label, "entry": key, "agent": agent,
                           "baseline_agent": b_agent, "metric": metric,
                           "higher_is_better": hib}  # fmt: skip
    if b.fingerprint != r.fingerprint:
        return GateCheck(**row, verdict="env changed", failed=True,
                         note=f"env fingerprint {b.fingerprint} (baseline) vs {r.fingerprint} "
                         "(run): the tasks changed without a version bump; bump the env "
                         "version or refresh the baseline")  # fmt: skip
    b_sum, r_sum = _summary(b, metric), _summary(r, metric)
    row.update(baseline=b_sum, run=r_sum)
    if b_sum is None or r_sum is None or b_sum.n < 2 or r_sum.n < 2:
        return GateCheck(**row, verdict="untested", failed=require_all,
                         note=f"fewer than 2 values of {metric} on a side")  # fmt: skip
    if b.episodes and r.episodes:
        b_vals, r_vals, paired = _aligned_values(b.episodes, r.episodes, metric)
        comp = compare_values(b_vals, r_vals, higher_is_better=hib, paired=paired,
                              n_boot=n_boot, rng=rng)  # fmt: skip
    else:
        comp = _compare_summaries(b_sum, r_sum, hib)
    worse = -comp.diff if hib else comp.diff
    failed = worse > tolerance and comp.p_value < alpha
    if failed:
        note = (f"worse by {worse:.3g} > tolerance {tolerance:g} "
                f"and p = {comp.p_value:.3g} < {alpha:g}")  # fmt: skip
    elif worse > tolerance:
        note = f"worse by {worse:.3g} but not significant (p = {comp.p_value:.3g})"
    elif comp.p_value < alpha:
        note = f"significant drop of {worse:.3g} within tolerance {tolerance:g}"
    else:
        note = "no significant drop beyond tolerance"
    return GateCheck(**row, diff=comp.diff, diff_ci95=comp.ci95, p_value=comp.p_value,
                     method=comp.method, verdict="fail" if failed else "pass", failed=failed,
                     note=note)  # fmt: skip


def _carries(side: _Entry, metric: str) -> bool:
    """Whether the side has ``metric`` at all (seat rates only exist for multi-agent games)."""
    return metric in side.summaries or bool(side.episodes) and all(
        metric in e.metrics for e in side.episodes)


def _summary(side: _Entry, metric: str) -> MetricSummary | None:
    """The side's summary of ``metric``, from results.json or else from its episodes."""
    if metric in side.summaries:
        return side.summaries[metric]
    if side.episodes and _carries(side, metric):
        return summarize_values([e.metrics[metric] for e in side.episodes])
    return None
