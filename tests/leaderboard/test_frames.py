"""A leaderboard as tidy DataFrames (turngym.evals.load), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

pytest.importorskip("pandas")
pytest.importorskip("sqlalchemy")

import turngym.evals  # noqa: E402
from turngym.evals.frames import AGGREGATE_COLUMNS, EPISODE_COLUMNS  # noqa: E402
from turngym.leaderboard.store import LeaderboardStore  # noqa: E402

from ._runs import Spec, rate, write_run  # noqa: E402


def test_leaderboard_frames_by_url_and_by_store(store_url, tmp_path):
    a = write_run(tmp_path / "run-a", [Spec(rate(20, 15)), Spec(rate(20, 5), agent="oracle")])
    b = write_run(tmp_path / "run-b", [Spec(rate(10, 2))])
    with LeaderboardStore(store_url) as store:
        store.submit(a)
        store.submit(b)
        by_store = turngym.evals.load(store)
    frames = turngym.evals.load(store_url)
    assert frames.kind == "leaderboard"
    agg = frames.aggregates
    assert list(agg.columns) == list(AGGREGATE_COLUMNS)
    success = agg[agg.metric == "success"].set_index(["run", "agent"])["mean"]
    assert success.to_dict() == {("run-a", "random"): 0.75, ("run-a", "oracle"): 0.25,
                                 ("run-b", "random"): 0.2}  # fmt: skip
    episodes = frames.episodes
    assert list(episodes.columns) == list(EPISODE_COLUMNS)
    assert episodes.groupby(["run", "agent"]).size().to_dict() == {
        ("run-a", "oracle"): 20, ("run-a", "random"): 20, ("run-b", "random"): 10}
    # Per-episode values reproduce the stored means.
    means = episodes.groupby(["run", "agent"])["success"].mean()
    assert means[("run-a", "random")] == success[("run-a", "random")]
    assert frames.turns.empty  # the store keeps per-episode metrics, not turns
    assert set(frames.provenance) == {"run-a", "run-b"}
    assert by_store.aggregates.equals(agg)
