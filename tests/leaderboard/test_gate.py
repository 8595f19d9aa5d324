"""The regression gate: flags real drops, tolerates noise, same verdict from a store baseline."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from turngym.evals.results import ResultsError
from turngym.leaderboard.gate import (
    compare_values,
    env_label,
    gate,
    match_agents,
    read_run_episodes,
)

from ._runs import ENV, Spec, rate, write_run

OTHER = "turngym/Other-v1"


def paired_drop(n: int, base: int, lost: int) -> tuple[list[int], list[int]]:
    """Baseline solves ``base`` of ``n`` tasks; the run fails ``lost`` of those, same tasks."""
    baseline = rate(n, base)
    run = list(baseline)
    for i in [i for i, s in enumerate(baseline) if s][:lost]:
        run[i] = 0
    return baseline, run


# --- Done-when (1): a real 10-point drop over 200 episodes is flagged -----------------------------
def test_flags_a_real_drop_unpaired(tmp_path):
    base = write_run(tmp_path / "base", [Spec(rate(200, 140))])
    run = write_run(tmp_path / "run", [Spec(rate(200, 120), task_offset=1000)])  # other tasks
    report = gate(run, base)
    [check] = report.checks
    assert check.method == "bootstrap"  # no common tasks: resampled independently
    assert check.diff == pytest.approx(-0.10)
    assert check.p_value < 0.05 and check.verdict == "fail" and not report.passed
    assert check.baseline.mean == 0.7 and check.run.mean == 0.6


def test_flags_a_real_drop_paired(tmp_path):
    baseline, run_ = paired_drop(200, 140, 20)
    base = write_run(tmp_path / "base", [Spec(baseline)])
    run = write_run(tmp_path / "run", [Spec(run_)])
    [check] = gate(run, base).checks
    assert check.method == "paired bootstrap"
    assert check.diff == pytest.approx(-0.10)
    assert check.p_value < 0.001 and check.verdict == "fail"


# --- Done-when (2): at most 10 false alarms in 100 null comparisons -------------------------------
@pytest.mark.parametrize("paired", [False, True])
def test_null_comparisons_rarely_fail(tmp_path, paired):
    """Both sides from the same distribution; unpaired: other tasks; paired: same tasks.

    In the paired case each task has its own difficulty (drawn once), and the two sides are
    independent attempts at the same tasks, as when a rerun uses new agent seeds.
    """
    rng = np.random.default_rng(12345 + paired)
    n, alarms = 200, 0
    difficulty = rng.uniform(0.2, 1.0, size=n)
    for i in range(100):
        p_base = difficulty if paired else np.full(n, 0.65)
        base = write_run(tmp_path / f"b{i}", [Spec(list(rng.random(n) < p_base))])
        run = write_run(tmp_path / f"r{i}", [Spec(list(rng.random(n) < p_base),
                                                  task_offset=0 if paired else n)])  # fmt: skip
        report = gate(run, base, n_boot=1000, seed=i)
        assert report.checks[0].method == ("paired bootstrap" if paired else "bootstrap")
        alarms += not report.passed
    assert alarms <= 10


# --- Done-when (3): improvements never fail; a drop within tolerance passes -----------------------
@settings(max_examples=25, deadline=None)
@given(
    successes=st.lists(st.booleans(), min_size=2, max_size=60),
    gains=st.lists(st.booleans(), min_size=60, max_size=60),
    paired=st.booleans(),
    metric=st.sampled_from(["success", "outcome", "return", "turns"]),
)
def test_improvements_never_fail(tmp_path_factory, successes, gains, paired, metric):
    tmp = tmp_path_factory.mktemp("improve")
    baseline = [int(s) for s in successes]
    better = [max(b, int(g)) for b, g in zip(baseline, gains, strict=False)]
    # Successes never drop; turns never rise (lower is better for turns).
    base = write_run(tmp / "base", [Spec(baseline, turns=[5] * len(baseline))])
    run = write_run(tmp / "run", [Spec(better, turns=[4] * len(better),
                                       task_offset=0 if paired else 1000)])  # fmt: skip
    report = gate(run, base, metrics=[metric], tolerance=0.0, n_boot=200)
    assert report.passed, report.to_markdown()


def test_drop_within_tolerance_passes(tmp_path):
    # 5000 paired episodes, 50 lost: a 1-point drop that is clearly significant.
    baseline, run_ = paired_drop(5000, 3500, 50)
    base = write_run(tmp_path / "base", [Spec(baseline)])
    run = write_run(tmp_path / "run", [Spec(run_)])
    [check] = gate(run, base).checks
    assert check.p_value < 0.01 and check.verdict == "pass"
    assert "within tolerance" in check.note
    assert not gate(run, base, tolerance=0.005).passed


def test_large_but_insignificant_drop_passes(tmp_path):
    base = write_run(tmp_path / "base", [Spec(rate(10, 6))])
    run = write_run(tmp_path / "run", [Spec(rate(10, 5), task_offset=100)])
    [check] = gate(run, base).checks
    assert check.verdict == "pass" and "not significant" in check.note


def test_lower_is_better_metric(tmp_path):
    base = write_run(tmp_path / "base", [Spec(rate(100, 50), turns=[3] * 100)])
    slower = write_run(tmp_path / "slow", [Spec(rate(100, 50), turns=[3, 5] * 50)])
    faster = write_run(tmp_path / "fast", [Spec(rate(100, 50), turns=[2] * 100)])
    assert not gate(slower, base, metrics=["turns"], tolerance=0.5).passed
    assert gate(slower, base, metrics=["turns"], tolerance=1.5).passed
    assert gate(faster, base, metrics=["turns"]).passed


# --- Done-when (4): a leaderboard submission as baseline gives the same verdict -------------------
@pytest.mark.parametrize("lost", [0, 20])
def test_store_baseline_matches_run_dir_baseline(store, tmp_path, lost):
    baseline, run_ = paired_drop(200, 140, lost)
    base = write_run(tmp_path / "base", [Spec(baseline), Spec(rate(50, 20), env_id=OTHER)])
    run = write_run(tmp_path / "run", [Spec(run_), Spec(rate(50, 18), env_id=OTHER,
                                                        task_offset=7)])  # fmt: skip
    store.submit(base, name="main")
    metrics = ["success", "turns", "invalid_rate"]
    from_dir = gate(run, base, metrics=metrics)
    from_store = gate(run, "main", store=store, metrics=metrics)
    assert from_store.passed == from_dir.passed == (lost == 0)
    strip = [(c.entry, c.agent, c.metric, c.verdict, c.p_value, c.diff, c.method, c.baseline)
             for c in from_dir.checks]  # fmt: skip
    assert [(c.entry, c.agent, c.metric, c.verdict, c.p_value, c.diff, c.method, c.baseline)
            for c in from_store.checks] == strip  # fmt: skip
    assert "main on " in from_store.baseline


# --- Matching, missing entries, changed envs ------------------------------------------------------
def test_missing_entries_are_listed_and_fail_only_when_required(tmp_path):
    base = write_run(tmp_path / "base", [Spec(rate(50, 25)), Spec(rate(50, 25), env_id=OTHER)])
    run = write_run(tmp_path / "run", [Spec(rate(50, 25)),
                                       Spec(rate(50, 25), options={"level": 3})])  # fmt: skip
    report = gate(run, base)
    verdicts = {(c.env, c.verdict) for c in report.checks}
    assert verdicts == {(ENV, "pass"), (OTHER, "missing"), (f"{ENV} (level=3)", "missing")}
    assert report.passed
    assert not gate(run, base, require_all=True).passed


def test_nothing_in_common_fails(tmp_path):
    base = write_run(tmp_path / "base", [Spec(rate(50, 25), env_id=OTHER)])
    run = write_run(tmp_path / "run", [Spec(rate(50, 25))])
    report = gate(run, base)
    assert not report.passed and report.compared == 0
    assert "Nothing was compared" in report.to_markdown()


def test_agents_match_by_name_or_as_sole_agents(tmp_path):
    base = write_run(tmp_path / "base", [Spec(rate(50, 40), agent="hf:old")])
    run = write_run(tmp_path / "run", [Spec(rate(50, 10), agent="hf:new")])
    [check] = gate(run, base).checks
    assert (check.agent, check.baseline_agent, check.verdict) == ("hf:new", "hf:old", "fail")
    base2 = write_run(tmp_path / "base2", [Spec(rate(50, 40), agent="a"),
                                           Spec(rate(50, 40), agent="b")])  # fmt: skip
    run2 = write_run(tmp_path / "run2", [Spec(rate(50, 40), agent="b"),
                                         Spec(rate(50, 40), agent="c")])  # fmt: skip
    got = {(c.agent, c.verdict) for c in gate(run2, base2).checks}
    assert got == {("a", "missing"), ("b", "pass"), ("c", "missing")}
    assert match_agents(["x", "y"], ["y"]) == ([("y", "y")], ["x"], [])


def test_changed_env_fails(tmp_path):
    base = write_run(tmp_path / "base", [Spec(rate(50, 25), fingerprint="aaa")])
    run = write_run(tmp_path / "run", [Spec(rate(50, 25), fingerprint="bbb")])
    report = gate(run, base)
    [check] = report.checks
    assert check.verdict == "env changed" and not report.passed
    assert "bump the env version" in check.note


def test_summaries_only_use_a_normal_approximation(tmp_path):
    base = write_run(tmp_path / "base", [Spec(rate(200, 140))], episodes=False)
    run = write_run(tmp_path / "run", [Spec(rate(200, 100))])
    [check] = gate(run, base).checks
    assert check.method == "normal approximation" and check.verdict == "fail"
    same = write_run(tmp_path / "same", [Spec(rate(200, 140))], episodes=False)
    assert gate(same, base).passed


def test_too_few_episodes_are_untested(tmp_path):
    base = write_run(tmp_path / "base", [Spec([1])])
    run = write_run(tmp_path / "run", [Spec([0])])
    report = gate(run, base)
    assert report.checks[0].verdict == "untested" and not report.passed  # nothing compared


# --- The report -----------------------------------------------------------------------------------
def test_markdown_report(tmp_path):
    baseline, run_ = paired_drop(200, 140, 20)
    base = write_run(tmp_path / "base", [Spec(baseline, agent="a|b")])
    run = write_run(tmp_path / "run", [Spec(run_, agent="a|b")])
    text = gate(run, base, metrics=["success", "turns"], tolerance={"turns": 1.0}).to_markdown()
    assert text.startswith("## turngym regression gate: FAIL\n")
    assert "| env | agent | metric | baseline | run | diff [95% CI] | p | verdict |" in text
    assert "| a\\|b |" in text  # pipes in agent specs do not break the table
    assert "success (higher is better)" in text and "turns (lower is better)" in text
    assert "0.700 [" in text and "n=200" in text and "-0.100 [" in text
    assert "<0.001 (paired)" in text
    assert "Tolerances (metric units): success 0.02, turns 1." in text
    assert "2000 replicates, seed 0" in text and "p < 0.05" in text
    passed = gate(base, base).to_markdown()
    assert passed.startswith("## turngym regression gate: PASS\n")
    assert "FAIL" not in passed


def test_report_to_dict_is_json(tmp_path):
    import json

    base = write_run(tmp_path / "base", [Spec(rate(20, 10))])
    data = gate(base, base).to_dict()
    assert data["passed"] and data["checks"][0]["baseline"]["n"] == 20
    json.dumps(data)


# --- Building blocks and bad input ----------------------------------------------------------------
def test_compare_values_is_seeded_and_directional():
    b, r = [1, 0] * 50, [1, 0, 0, 0] * 25

    def p(seed, **kw):
        return compare_values(b, r, rng=np.random.default_rng(seed), **kw).p_value

    assert p(3) == p(3)
    assert p(3) < 0.01  # 0.5 -> 0.25 is a drop when higher is better...
    assert p(3, higher_is_better=False) > 0.99  # ...and an improvement otherwise
    with pytest.raises(ValueError, match="equal lengths"):
        compare_values([1, 0, 1], [1, 0], paired=True, rng=np.random.default_rng(0))


def test_bootstrap_chunks_give_the_same_answer(monkeypatch):
    import turngym.leaderboard.gate as gate_module

    values = np.arange(300.0)
    whole = gate_module._bootstrap_means(values, 500, np.random.default_rng(1))
    monkeypatch.setattr(gate_module, "_MAX_DRAWS", 300 * 7)  # 7 replicates per chunk
    chunked = gate_module._bootstrap_means(values, 500, np.random.default_rng(1))
    np.testing.assert_allclose(whole, chunked)


def test_bad_parameters(tmp_path):
    base = write_run(tmp_path / "base", [Spec(rate(20, 10))])
    with pytest.raises(ValueError, match="unknown metrics \\['sucess'\\]; choose from success"):
        gate(base, base, metrics=["sucess"])
    with pytest.raises(ValueError, match="alpha"):
        gate(base, base, alpha=1.5)
    with pytest.raises(ValueError, match="tolerances must be >= 0"):
        gate(base, base, tolerance=-0.1)
    with pytest.raises(ResultsError, match="no results file"):
        gate(tmp_path / "nowhere", base)


def test_corrupt_episode_files_are_refused(tmp_path):
    run = write_run(tmp_path / "run", [Spec(rate(10, 5))])
    path = run / "episodes.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[0] + "".join(lines[2:]))
    with pytest.raises(ResultsError, match="appears twice"):
        read_run_episodes(run)
    path.write_text(lines[0].replace('"agent": "random"', '"agent": "ghost"') + "".join(lines[1:]))
    with pytest.raises(ResultsError, match="which results.json does not list"):
        read_run_episodes(run)
    path.write_text(lines[0].replace('"task_id"', '"task"') + "".join(lines[1:]))
    with pytest.raises(ResultsError, match="episode 1 is malformed"):
        read_run_episodes(run)


def test_env_label():
    assert env_label(ENV, {}, {}) == ENV
    assert env_label(ENV, {"size": 5}, {"level": 2, "difficulty": {"k": 1}}) == (
        f'{ENV} (difficulty={{"k":1}}, level=2, size=5)')
