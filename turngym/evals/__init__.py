"""Evals: agents on suites of envs, results with provenance, tables, head-to-head benchmarks.

See docs/design.md#the-harness.

The parts: :mod:`~turngym.evals.results` (file schema), :mod:`~turngym.evals.stats`
(intervals), :mod:`~turngym.evals.suites` (named suites), :mod:`~turngym.evals.runner`
(``turngym eval``), :mod:`~turngym.evals.tables` (``turngym table``),
:mod:`~turngym.evals.bench` (``turngym bench``) and :mod:`~turngym.evals.frames` (results as
pandas DataFrames: :func:`load`). Only the first two are imported here; the rest load on use
(pandas only when :func:`load` is called).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from turngym.evals.results import RunResults, load_episodes, load_results
from turngym.evals.stats import MetricSummary

if TYPE_CHECKING:
    from turngym.evals.frames import RunFrames

__all__ = ["RunResults", "MetricSummary", "load_results", "load_episodes", "load"]


def load(source: Any, *, run: str | None = None) -> RunFrames:
    """Load an eval or bench run, or a leaderboard, as tidy DataFrames.

    See :func:`turngym.evals.frames.load` (episodes, turns, aggregates and curves frames).
    """
    from turngym.evals.frames import load as load_frames

    return load_frames(source, run=run)
