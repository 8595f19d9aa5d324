"""Evals: agents on suites of envs, results with provenance, tables, head-to-head benchmarks.

See docs/design.md#the-harness.

The parts: :mod:`~turngym.evals.results` (file schema), :mod:`~turngym.evals.stats`
(intervals), :mod:`~turngym.evals.suites` (named suites), :mod:`~turngym.evals.runner`
(``turngym eval``), :mod:`~turngym.evals.tables` (``turngym table``) and
:mod:`~turngym.evals.bench` (``turngym bench``). Only the first three are imported here; the
rest load on use.
"""

from turngym.evals.results import RunResults, load_episodes, load_results
from turngym.evals.stats import MetricSummary

__all__ = ["RunResults", "MetricSummary", "load_results", "load_episodes"]
