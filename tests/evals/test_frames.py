"""Results as tidy DataFrames: eval runs, bench runs and leaderboards through turngym.evals.load."""

from __future__ import annotations

import json

import pytest

pd = pytest.importorskip("pandas")

import turngym.evals  # noqa: E402
from turngym.agents import RandomAgent  # noqa: E402
from turngym.cli import main  # noqa: E402
from turngym.evals.frames import (  # noqa: E402
    AGGREGATE_COLUMNS,
    EPISODE_COLUMNS,
    TURN_COLUMNS,
    episodes_frame,
    turns_frame,
)
from turngym.evals.results import load_episodes, load_results  # noqa: E402
from turngym.rollout import collect  # noqa: E402

ENV = "turngym/FrozenLake-v0"


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory):
    """A real `turngym eval` run: random and oracle, 2 seeds x 4 episodes."""
    out = tmp_path_factory.mktemp("runs") / "lake"
    code = main(["eval", ENV, "--agents", "random", "oracle", "--seeds", "0", "1",
                 "--episodes", "4", "--out", str(out)])  # fmt: skip
    assert code == 0
    return out


def test_eval_run_frames_hold_every_episode_turn_and_aggregate(eval_run):
    frames = turngym.evals.load(eval_run)
    records = load_episodes(eval_run)
    assert frames.kind == "eval"
    assert list(frames.episodes.columns) == list(EPISODE_COLUMNS)
    assert len(frames.episodes) == len(records) == 16
    assert set(frames.episodes["run"]) == {"lake"}
    assert list(frames.turns.columns) == list(TURN_COLUMNS)
    assert len(frames.turns) == sum(len(r["turns"]) for r in records)
    # The frames agree with results.json, number for number.
    results = load_results(eval_run)
    agg = frames.aggregates.set_index(["agent", "metric"])
    for entry in results.entries:
        for metric, s in entry.metrics.items():
            row = agg.loc[(entry.agent, metric)]
            assert (row["mean"], row["n"], row["ci_low"], row["ci_high"]) == (
                s.mean, s.n, s.ci95[0], s.ci95[1])
    assert list(frames.aggregates.columns) == list(AGGREGATE_COLUMNS)
    # ... and with the episodes: the mean success per agent is the aggregate's mean.
    by_agent = frames.episodes.groupby("agent")["success"].mean()
    assert by_agent["oracle"] == agg.loc[("oracle", "success"), "mean"] == 1.0
    returns = frames.turns.groupby(["agent", "episode_id", "run_seed"])["reward"].sum()
    assert returns.sum() == pytest.approx(frames.episodes["return"].sum())
    assert frames.curves.empty


def test_turn_frame_has_state_keys_validity_and_advantages():
    from turngym.trainers.credit import resolve_estimator
    from turngym.trainers.credit.types import CreditContext, TurnBatch

    groups = collect(ENV, RandomAgent(seed=3), tasks=3, group_size=4)
    credit = resolve_estimator("rloo", {})(TurnBatch.from_groups(groups), CreditContext())
    turns = turns_frame(groups, run="mine", credit=credit)
    flat = [t for g in groups for ep in g.episodes for t in ep.turns]
    assert turns["state_key"].tolist() == [t.state_key for t in flat]
    assert turns["action_valid"].tolist() == [t.action_valid for t in flat]
    assert turns["advantage"].tolist() == pytest.approx(credit.advantages.tolist())
    with pytest.raises(ValueError, match="advantages for"):
        turns_frame(groups[:1], credit=credit)
    episodes = episodes_frame(groups)
    assert episodes["success"].tolist() == [ep.success for g in groups for ep in g.episodes]


def test_bench_dir_frames_include_the_learning_curves(eval_run, tmp_path):
    # A bench directory has the same files, kind "bench" and a mean curve per trained agent.
    bench = tmp_path / "bench"
    bench.mkdir()
    data = json.loads((eval_run / "results.json").read_text())
    data["kind"] = "bench"
    data["entries"][0]["curve"] = [{"env_steps": 0, "success": 0.1},
                                   {"env_steps": 640, "success": 0.4}]  # fmt: skip
    (bench / "results.json").write_text(json.dumps(data))
    (bench / "episodes.jsonl").write_text((eval_run / "episodes.jsonl").read_text())
    frames = turngym.evals.load(bench, run="b1")
    assert frames.kind == "bench"
    assert frames.curves[["env_steps", "value"]].values.tolist() == [[0, 0.1], [640, 0.4]]
    assert set(frames.curves["metric"]) == {"success"}
    assert (frames.episodes["run"] == "b1").all() and len(frames.episodes) == 16


def test_two_runs_compare_in_one_frame(eval_run, tmp_path):
    other = tmp_path / "lake-random"
    assert main(["eval", ENV, "--agents", "random", "--episodes", "4", "--out", str(other)]) == 0
    both = pd.concat([turngym.evals.load(eval_run).aggregates,
                      turngym.evals.load(other).aggregates])  # fmt: skip
    table = both[both.metric == "success"].pivot_table(index="agent", columns="run",
                                                       values="mean")  # fmt: skip
    assert table.shape == (2, 2)
    assert table.loc["oracle", "lake"] == 1.0
    assert pd.isna(table.loc["oracle", "lake-random"])


def test_missing_results_say_so(tmp_path):
    from turngym.evals.results import ResultsError

    with pytest.raises(ResultsError, match="no results file"):
        turngym.evals.load(tmp_path)
