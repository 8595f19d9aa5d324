"""turngym bench on a tiny budget: files, curve statistics, rerun reuse, leaderboard rows."""

import json
from dataclasses import replace

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from turngym.evals.bench import DEFAULT_RECIPE, BenchSpec, run_bench  # noqa: E402
from turngym.evals.bench_table import normalised_auc, steps_to_threshold  # noqa: E402
from turngym.evals.results import load_results  # noqa: E402
from turngym.evals.suites import EvalEntry  # noqa: E402
from turngym.registry import UnknownNameError  # noqa: E402

TINY = BenchSpec(
    estimators=("grpo", "rloo"), seeds=(0,), env_steps=40, eval_every=1, eval_tasks=4,
    envs=(EvalEntry("turngym/FrozenLake-v0", options={"difficulty": {"size": 3}}, episodes=4),),
    recipe={**DEFAULT_RECIPE, "tasks_per_iteration": 2, "group_size": 2},
    baseline_episodes=2,
)


def test_curve_statistics():
    curve = [(0, 0.0), (100, 0.5), (300, 0.5)]
    assert steps_to_threshold(curve, 0.5) == 100
    assert steps_to_threshold(curve, 0.9) is None
    assert normalised_auc(curve) == pytest.approx((25 + 100) / 300)
    assert normalised_auc([(0, 0.7)]) == 0.7


def test_tiny_bench_writes_report_results_and_reuses_finished_runs(tmp_path):
    db = tmp_path / "lb.db"
    submit = True
    try:
        import turngym.leaderboard.store  # noqa: F401
    except ImportError:
        submit = False
    report = run_bench(TINY, tmp_path / "bench", workers=1, db=str(db), submit=submit)
    out = tmp_path / "bench"
    for name in ("results.json", "episodes.jsonl", "curves.png", "bench.md", "report.html"):
        assert (out / name).exists(), name
    results = load_results(out)
    assert results.kind == "bench"
    trained = [e for e in results.entries if e.agent.startswith("train:")]
    assert [e.agent for e in trained] == ["train:grpo", "train:rloo"]
    assert all(e.curve and e.curve[0]["env_steps"] == 0 for e in trained)
    assert all(e.metrics["success"].n == 4 for e in trained)
    baselines = {e.agent for e in results.entries} - {"train:grpo", "train:rloo"}
    assert baselines == {"random", "oracle"}
    assert results.provenance["bench"]["env_steps"] == 40
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "train:grpo" in html
    assert "*" not in html.split("<h2>Configuration")[0]  # no Markdown emphasis leaks in
    assert "Starting policy:" in html and "Decoding: restricted" in html
    md = (out / "bench.md").read_text()
    assert "FrozenLake-v0 ¹" in report.table and "¹ FrozenLake-v0: difficulty=" in md
    assert "¹ ¹" not in md  # each footnote once, marker first
    assert "| vs random |" in report.table
    assert "| grpo |" in report.table and "| oracle (baseline) |" in report.table
    # A rerun trains nothing again: the finished runs' done.json are reused.
    done = sorted(out.glob("train/*/done.json"))
    stamps = [p.stat().st_mtime_ns for p in done]
    again = run_bench(TINY, out, workers=1, db=str(db), submit=submit)
    assert [p.stat().st_mtime_ns for p in done] == stamps
    assert again.table == report.table
    if submit:
        assert report.submitted and "already there" in again.submitted


def test_bad_estimator_fails_before_training(tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean"):
        run_bench(BenchSpec(estimators=("gpro",)), tmp_path, submit=False)
    with pytest.raises((TypeError, ValueError), match="bogus"):
        run_bench(BenchSpec(estimators=("grpo",), params={"grpo": {"bogus": 1}}), tmp_path,
                  submit=False)
    assert not (tmp_path / "train").exists()


def test_spec_round_trips_to_json():
    data = json.loads(json.dumps(TINY.to_dict()))
    assert data["envs"][0]["env_id"] == "turngym/FrozenLake-v0"


def _comparable(results: dict) -> dict:
    prov = {k: v for k, v in results["provenance"].items() if k not in ("date", "command")}
    return {**results, "provenance": prov}


def test_two_identical_benches_give_identical_tables(tmp_path):
    spec = replace(TINY, baseline_suite=None)  # the bench's own env: floor and ceiling
    for name in ("a", "b"):
        run_bench(spec, tmp_path / name, workers=1, submit=False, progress="off")
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "bench.md").read_bytes() == (b / "bench.md").read_bytes()
    ra = json.loads((a / "results.json").read_text())
    rb = json.loads((b / "results.json").read_text())
    assert _comparable(ra) == _comparable(rb)
    assert ra["provenance"]["torch_threads_per_run"] >= 1


def test_a_dying_worker_is_one_clear_error():
    from dying_worker import die

    from turngym.evals.bench_jobs import RunProcessDied, _run_pool
    from turngym.trainers.progress import MultiRunDisplay

    display = MultiRunDisplay("off", lambda m: None)
    with pytest.raises(RunProcessDied, match="rerun the same command to resume"):
        _run_pool([{"out_dir": "x"}], 1, lambda m: None, display, job_fn=die)
    display.close()
