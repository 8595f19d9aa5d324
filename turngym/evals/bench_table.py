"""The head-to-head table of ``turngym bench`` and the curve statistics it reports.

Per (estimator, env): the final score with its 95% interval (episodes pooled over seeds),
where that interval lies against the random baseline's, the env steps at which the test curve
first reaches the bench's threshold (median over the seeds that reach it) and the normalised
area under the curve (mean ± 95% t-interval over seeds). Used by :mod:`turngym.evals.bench`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from turngym.evals.report import short_env_labels
from turngym.evals.stats import format_interval, mean_interval

if TYPE_CHECKING:
    from turngym.evals.results import RunResults

__all__ = ["steps_to_threshold", "normalised_auc", "bench_table"]


def steps_to_threshold(curve: Sequence[tuple[float, float]], threshold: float) -> float | None:
    """Env steps at the first curve point at or above ``threshold`` (``None``: never).

    Example:
        >>> steps_to_threshold([(0, 0.1), (100, 0.4), (200, 0.6)], 0.5)
        200
    """
    return next((steps for steps, value in curve if value >= threshold), None)


def normalised_auc(curve: Sequence[tuple[float, float]]) -> float:
    """Area under the curve (trapezoids) divided by its env-step span: the average height.

    Example:
        >>> normalised_auc([(0, 0.0), (100, 1.0)])
        0.5
    """
    if len(curve) < 2:
        return float(curve[0][1]) if curve else 0.0
    pairs = zip(curve, curve[1:], strict=False)
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in pairs)
    span = curve[-1][0] - curve[0][0]
    return area / span if span > 0 else float(curve[-1][1])


def bench_table(metric: str, threshold: float, jobs: list[dict], done: list[dict],
                results: RunResults) -> str:  # fmt: skip
    """The headline Markdown table: final score, the random floor, steps-to-threshold, AUC.

    Args:
        metric: The bench's metric (e.g. ``"success"``).
        threshold: The level whose first crossing the steps column reports.
        jobs: The training jobs (``estimator`` and ``entry`` key of each run).
        done: Each job's finished record (its ``curve``), in the order of ``jobs``.
        results: The bench's results (trained agents ``train:<estimator>`` and baselines).
    """
    trained = [e for e in results.entries if e.agent.startswith("train:")]
    labels = short_env_labels(trained)
    floors = {e.key: e.metrics[metric] for e in results.entries
              if e.agent == "random" and e.key in labels}  # fmt: skip
    lines = [f"| Estimator | Env | final {metric} | 95% CI | n | vs random | steps to "
             f"{threshold:g} (median; seeds reaching) | AUC (mean ± 95% CI over seeds) |",
             "|---|---|---:|---:|---:|---|---:|---:|"]  # fmt: skip
    for entry in trained:
        estimator = entry.agent.split(":", 1)[1]
        mine = [d for j, d in zip(jobs, done, strict=True)
                if j["estimator"] == estimator and j["entry"] == entry.key]  # fmt: skip
        reach = [steps_to_threshold(d["curve"], threshold) for d in mine]
        hit = [r for r in reach if r is not None]
        steps = f"{statistics.median(hit):,.0f} ({len(hit)}/{len(mine)})" if hit else \
            f"not reached (0/{len(mine)})"  # fmt: skip
        aucs = [normalised_auc(d["curve"]) for d in mine]
        auc_mean = statistics.fmean(aucs)
        std = statistics.stdev(aucs) if len(aucs) > 1 else 0.0
        low, high = mean_interval(auc_mean, std, len(aucs))
        m = entry.metrics[metric]
        lines.append(f"| {estimator} | {labels[entry.key][0]} | {m.mean:.3f} | "
                     f"{format_interval(m)} | {m.n} | {_versus(m, floors.get(entry.key))} | "
                     f"{steps} | {auc_mean:.3f} ± {(high - low) / 2:.3f} |")  # fmt: skip
    for entry in results.entries:  # the scripted floor and ceiling on the same envs
        if not entry.agent.startswith("train:") and entry.key in labels:
            m = entry.metrics[metric]
            lines.append(f"| {entry.agent} (baseline) | {labels[entry.key][0]} | {m.mean:.3f} | "
                         f"{format_interval(m)} | {m.n} | — | — | — |")  # fmt: skip
    notes = list(dict.fromkeys(note for _, note in labels.values() if note))  # once per env
    return "\n".join(lines + ([""] + notes if notes else []))


def _versus(summary: Any, floor: Any) -> str:
    """Where a trained policy's interval lies against the random baseline's."""
    if floor is None:
        return "—"
    if summary.ci95[0] > floor.ci95[1]:
        return "above"
    if summary.ci95[1] < floor.ci95[0]:
        return "below"
    return "overlaps"
