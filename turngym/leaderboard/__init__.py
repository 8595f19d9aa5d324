"""The leaderboard: a store of finished runs, the CI regression gate, and their CLI.

* :class:`~turngym.leaderboard.store.LeaderboardStore` keeps submitted runs in SQLite (default)
  or any SQLAlchemy database (PostgreSQL for teams); it needs the ``harness`` extra.
* :func:`turngym.leaderboard.gate.gate` compares a run with a baseline run or submission and
  fails only on a significant drop beyond a tolerance (numpy only); its report
  (:class:`~turngym.leaderboard.report.GateReport`) is in :mod:`turngym.leaderboard.report`.
* :mod:`turngym.leaderboard.episodes` reads a run's per-episode records and matches agents for
  both; :mod:`turngym.leaderboard.schema` holds the store's tables and engine.

The function ``gate`` is not re-exported here: it would shadow its own module
``turngym.leaderboard.gate`` (``import turngym.leaderboard.gate as m`` would bind the function).
Import it from :mod:`turngym.leaderboard.gate`.

Importing this package is cheap: names are resolved on first use, so neither
``import turngym.leaderboard`` nor the gate imports SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from turngym.leaderboard.report import GateCheck, GateReport
    from turngym.leaderboard.store import (
        LeaderboardError,
        LeaderboardStore,
        Submission,
        SubmissionError,
    )

__all__ = [
    "GateCheck",
    "GateReport",
    "LeaderboardError",
    "LeaderboardStore",
    "Submission",
    "SubmissionError",
]

_WHERE = {
    "GateCheck": "report", "GateReport": "report",
    "LeaderboardError": "store", "LeaderboardStore": "store", "Submission": "store",
    "SubmissionError": "store",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access (PEP 562)."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
