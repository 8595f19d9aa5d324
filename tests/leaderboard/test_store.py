"""LeaderboardStore against a real SQLite file and (when available) a real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")

from turngym.leaderboard.store import (  # noqa: E402
    LeaderboardError,
    LeaderboardStore,
    SubmissionError,
)

from ._runs import ENV, Spec, rate, write_run  # noqa: E402

OTHER = "turngym/Other-v1"


def test_submit_and_read_back(store, tmp_path):
    run = write_run(tmp_path / "run-a", [Spec(rate(50, 30)), Spec(rate(40, 10), env_id=OTHER)])
    sub = store.submit(run)
    assert (sub.name, sub.kind, sub.entries, sub.episodes) == ("run-a", "eval", 2, 90)
    [listed] = store.submissions()
    assert listed["name"] == "run-a" and listed["provenance"]["command"][-1] == str(run)
    assert listed["turngym_version"] and listed["source"] == str(run.resolve())
    entries = {e["env_id"]: e for e in store.entries("run-a")}
    assert entries[ENV]["metrics"]["success"].mean == pytest.approx(0.6)
    assert entries[ENV]["metrics"]["success"].n == 50
    assert entries[OTHER]["env_version"] == 1
    values = store.episode_values("run-a", entries[ENV]["key"], "random", "success")
    assert len(values) == 50 and sum(values.values()) == 30


def test_name_defaults_to_directory_and_can_be_given(store, tmp_path):
    store.submit(write_run(tmp_path / "nightly", [Spec(rate(10, 5))]))
    store.submit(write_run(tmp_path / "x", [Spec(rate(10, 6))]), name="candidate")
    assert [s["name"] for s in store.submissions()] == ["nightly", "candidate"]


@pytest.mark.parametrize("missing", ["command", "git_sha"])
def test_refuses_results_without_provenance(store, tmp_path, missing):
    run = write_run(tmp_path / "run", [Spec(rate(10, 5))], drop_provenance=[missing])
    with pytest.raises(SubmissionError, match=f"provenance lacks {missing}"):
        store.submit(run)
    assert store.submissions() == []


def test_refuses_unfinished_run(store, tmp_path):
    run = write_run(tmp_path / "run", [Spec(rate(10, 5))])
    (run / "results.json").unlink()
    with pytest.raises(SubmissionError, match="did not finish"):
        store.submit(run)


def test_refuses_inconsistent_episode_file(store, tmp_path):
    run = write_run(tmp_path / "run", [Spec(rate(10, 5))])
    lines = (run / "episodes.jsonl").read_text().splitlines(keepends=True)
    (run / "episodes.jsonl").write_text("".join(lines[:-1]))
    with pytest.raises(SubmissionError, match="9 episodes .* summarises 10"):
        store.submit(run)
    assert store.submissions() == []


def test_refuses_taken_name_and_the_same_run_twice(store, tmp_path):
    run = write_run(tmp_path / "run", [Spec(rate(10, 5))])
    store.submit(run)
    with pytest.raises(SubmissionError, match="already on the board at .*; pick another name"):
        store.submit(write_run(tmp_path / "other" / "run", [Spec(rate(10, 5))]))
    with pytest.raises(SubmissionError, match="already on the board as 'run'"):
        store.submit(run, name="again")
    assert len(store.submissions()) == 1


def test_refuses_changed_env(store, tmp_path):
    store.submit(write_run(tmp_path / "old", [Spec(rate(10, 5), fingerprint="abc")]))
    changed = write_run(tmp_path / "new", [Spec(rate(10, 5), fingerprint="def")])
    with pytest.raises(SubmissionError) as err:
        store.submit(changed)
    message = str(err.value)
    assert "env changed" in message and "abc" in message and "def" in message
    assert "bump the env version or start a new board" in message
    # Other options select other tasks, hence another fingerprint: that is not a change.
    store.submit(write_run(tmp_path / "lvl", [Spec(rate(10, 5), options={"level": 2},
                                                   fingerprint="def")]))  # fmt: skip


def test_refused_submission_writes_nothing(store, tmp_path):
    store.submit(write_run(tmp_path / "old", [Spec(rate(10, 5), fingerprint="abc")]))
    # The first entry is new to the board, the second conflicts: the whole run is refused...
    bad = write_run(tmp_path / "bad", [Spec(rate(10, 5), env_id=OTHER, fingerprint="o1"),
                                       Spec(rate(10, 5), fingerprint="zzz")])  # fmt: skip
    with pytest.raises(SubmissionError, match="env changed"):
        store.submit(bad)
    assert [s["name"] for s in store.submissions()] == ["old"]
    assert [e["run"] for e in store.entries()] == ["old"]
    # ...including its new env: another fingerprint for OTHER is still welcome.
    store.submit(write_run(tmp_path / "ok", [Spec(rate(10, 5), env_id=OTHER, fingerprint="o2")]))


def test_unknown_submission_suggests_names(store, tmp_path):
    store.submit(write_run(tmp_path / "baseline", [Spec(rate(10, 5))]))
    with pytest.raises(LeaderboardError, match="did you mean 'baseline'"):
        store.entries("baselin")


def test_rows_filter_and_order(store, tmp_path):
    store.submit(write_run(tmp_path / "a", [Spec(rate(20, 5)), Spec(rate(20, 9), env_id=OTHER)]))
    store.submit(write_run(tmp_path / "b", [Spec(rate(20, 15), agent="smart")]))
    rows = store.rows()
    assert [(r["env_id"], r["run"]) for r in rows] == [(OTHER, "a"), (ENV, "b"), (ENV, "a")]
    assert [r["run"] for r in store.rows(env_id=ENV)] == ["b", "a"]
    assert rows[1]["mean"] == 0.75 and rows[1]["n"] == 20 and rows[1]["metric"] == "success"
    # Lower is better for turns: the run with fewer turns ranks first.
    store.submit(write_run(tmp_path / "c", [Spec(rate(20, 5), turns=[1] * 20)]))
    assert store.rows(env_id=ENV, metric="turns")[0]["run"] == "c"
    with pytest.raises(LeaderboardError, match="unknown metric 'sucess'"):
        store.rows(metric="sucess")


def test_compare_matches_agents(store, tmp_path):
    store.submit(write_run(tmp_path / "a", [Spec(rate(20, 10), agent="hf:old"),
                                            Spec(rate(20, 10), env_id=OTHER)]))  # fmt: skip
    store.submit(write_run(tmp_path / "b", [Spec(rate(20, 14), agent="hf:new")]))
    rows = {r["entry"].split("#")[0]: r for r in store.compare("a", "b")}
    assert rows[ENV]["agent_a"] == "hf:old" and rows[ENV]["agent_b"] == "hf:new"
    assert rows[ENV]["diff"] == pytest.approx(0.2)
    assert rows[OTHER]["mean_b"] is None and rows[OTHER]["diff"] is None


def test_page_data_shape_and_numbers(store, tmp_path):
    curve = [{"env_steps": 0, "success": 0.1}, {"env_steps": 100, "success": 0.5}]
    store.submit(write_run(tmp_path / "a", [
        Spec(rate(100, 60)), Spec(rate(100, 20), options={"level": 2}, fingerprint="f2"),
    ]))  # fmt: skip
    store.submit(write_run(tmp_path / "b", [Spec(rate(100, 70), agent="ppo", curve=curve)],
                           kind="bench"))  # fmt: skip
    data = store.page_data()
    assert set(data) == {"title", "generated", "metric", "metrics", "envs", "env_sets", "rows",
                         "curves"}  # fmt: skip
    assert data["title"] == "turngym leaderboard" and data["metric"] == "success"
    assert data["metrics"][:2] == ["success", "outcome"]
    assert data["envs"] == [ENV, f"{ENV} (level=2)"]
    # b (one env) is not ranked against a (two envs): each leads its own env set.
    assert [(r["run"], r["env_set"], r["rank"]) for r in data["rows"]] == [
        ("a", "set-1", 1), ("b", "set-2", 1)]
    row = data["rows"][0]
    assert set(row) == {"run", "agent", "kind", "submitted", "git_sha", "turngym_version",
                        "mean", "ci95", "n", "per_env", "env_set", "rank"}  # fmt: skip
    assert row["mean"] == pytest.approx(0.4) and row["n"] == 200
    assert set(row["per_env"]) == {ENV, f"{ENV} (level=2)"}
    assert set(row["per_env"][ENV]) == {"mean", "ci95", "n", "rank"}
    assert row["per_env"][ENV]["rank"] == 2 and data["rows"][1]["per_env"][ENV]["rank"] == 1
    # Combined interval: mean ± 1.96 * sqrt(se_1^2 + se_2^2) / 2, se_i = half-width / 1.96.
    halves = [(e["ci95"][1] - e["ci95"][0]) / 2 for e in row["per_env"].values()]
    expected = (halves[0] ** 2 + halves[1] ** 2) ** 0.5 / 2
    assert row["ci95"][1] - row["mean"] == pytest.approx(expected)
    assert data["rows"][1]["kind"] == "bench"
    assert data["curves"] == [{"run": "b", "agent": "ppo", "env": ENV, "metric": "success",
                               "points": [[0, 0.1], [100, 0.5]]}]  # fmt: skip
    json.dumps(data)  # plain JSON for the page


def test_aggregate_ranks_only_within_the_same_env_set(store, tmp_path):
    """Issue 13 item 5: an agent evaluated on fewer envs never outranks in aggregate."""
    hard = {"options": {"level": 2}, "fingerprint": "f2"}
    store.submit(write_run(tmp_path / "x", [Spec(rate(50, 40), agent="x"),
                                            Spec(rate(50, 10), agent="x", **hard)]))
    store.submit(write_run(tmp_path / "y", [Spec(rate(50, 30), agent="y"),
                                            Spec(rate(50, 20), agent="y", **hard)]))
    store.submit(write_run(tmp_path / "z", [Spec(rate(50, 45), agent="z")]))  # easy env only
    data = store.page_data()
    assert data["env_sets"] == [
        {"id": "set-1", "envs": [ENV, f"{ENV} (level=2)"], "rows": 2},
        {"id": "set-2", "envs": [ENV], "rows": 1}]
    ranks = {r["agent"]: (r["env_set"], r["rank"]) for r in data["rows"]}
    assert ranks == {"x": ("set-1", 1), "y": ("set-1", 1), "z": ("set-2", 1)}  # x, y tie: 0.5
    per_env = {r["agent"]: {e: s["rank"] for e, s in r["per_env"].items()} for r in data["rows"]}
    assert per_env == {"z": {ENV: 1}, "x": {ENV: 2, f"{ENV} (level=2)": 2},
                       "y": {ENV: 3, f"{ENV} (level=2)": 1}}


def test_page_data_empty_board(store):
    data = store.page_data(metric="turns")
    assert (data["rows"], data["envs"], data["curves"], data["metric"]) == ([], [], [], "turns")


def test_concurrent_writers(store_url, tmp_path):
    runs = [write_run(tmp_path / f"run-{i}", [Spec(rate(30, i + 3))]) for i in range(8)]
    # No store has opened the database yet: the writers also race to create the tables.
    errors = []

    def submit(batch):
        try:
            with LeaderboardStore(store_url) as store:
                for run in batch:
                    store.submit(run)
        except Exception as err:  # pragma: no cover - the assertion below reports it
            errors.append(err)

    threads = [threading.Thread(target=submit, args=(runs[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with LeaderboardStore(store_url) as store:
        assert sorted(s["name"] for s in store.submissions()) == sorted(r.name for r in runs)
        assert len(store.episodes("run-5")) == 30


def test_concurrent_same_name_lands_once(store_url, tmp_path):
    runs = [write_run(tmp_path / f"r{i}", [Spec(rate(30, i + 3))]) for i in range(4)]
    outcomes = []

    def submit(run):
        with LeaderboardStore(store_url) as store:
            try:
                store.submit(run, name="same")
                outcomes.append("ok")
            except SubmissionError as err:
                outcomes.append(str(err))

    threads = [threading.Thread(target=submit, args=(run,)) for run in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 1, outcomes
    assert all("same" in o for o in outcomes if o != "ok")


def test_bad_locations_are_clear(tmp_path):
    with pytest.raises(LeaderboardError, match="directory .* does not exist"):
        LeaderboardStore(tmp_path / "no" / "such" / "lb.db")
    with pytest.raises(LeaderboardError, match="cannot open the leaderboard"):
        LeaderboardStore("postgresql+psycopg://nobody:pw@127.0.0.1:1/none?connect_timeout=2")


def test_password_is_hidden():
    with pytest.raises(LeaderboardError) as err:
        LeaderboardStore("postgresql+psycopg://me:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in str(err.value) and "***" in str(err.value)


def test_import_stays_light():
    code = ("import sys, turngym.leaderboard as lb, turngym.leaderboard.gate, turngym.cli;"
            "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported';"
            "assert lb.GateReport is turngym.leaderboard.gate.GateReport;"
            "from turngym.leaderboard.store import LeaderboardStore;"
            "assert lb.LeaderboardStore is LeaderboardStore")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
