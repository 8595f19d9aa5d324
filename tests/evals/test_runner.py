"""The eval runner: run directory contents, resume, refusal of a different eval, kill safety."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from turngym.evals.results import ResultsError, load_episodes, load_results
from turngym.evals.runner import EvalRequest, RunDirError, evaluate
from turngym.evals.suites import EvalEntry
from turngym.registry import UnknownNameError

SOKO = EvalEntry("turngym/Sokoban-v0", episodes=3)
LAKE = EvalEntry("turngym/FrozenLake-v0", options={"level": 1}, episodes=4)


def request(**kw):
    base = dict(entries=(SOKO, LAKE), agents=("random", "oracle"), seeds=(0, 1))
    return EvalRequest(**{**base, **kw})


def test_eval_writes_episodes_and_results_with_provenance(tmp_path):
    results = evaluate(request(), tmp_path)
    episodes = load_episodes(tmp_path)
    assert len(episodes) == (3 + 4) * 2 * 2
    assert len({e["key"] for e in episodes}) == len(episodes)
    assert all(e["turns"] for e in episodes)  # turns included
    loaded = load_results(tmp_path)
    assert loaded.to_dict() == results.to_dict()
    prov = loaded.provenance
    assert {"turngym_version", "git_sha", "date", "command", "python"} <= set(prov)
    oracle = [e for e in loaded.entries if e.agent == "oracle"]
    assert all(e.metrics["success"].mean == 1.0 for e in oracle)
    lake = next(e for e in loaded.entries if e.env_id == "turngym/FrozenLake-v0")
    assert lake.options == {"level": 1} and lake.env_version == 0 and lake.seeds == [0, 1]
    assert lake.env_fingerprint and lake.env_kwargs_hash
    assert lake.metrics["success"].n == 8


def test_seeds_select_disjoint_tasks_and_same_seed_same_results(tmp_path):
    a = evaluate(request(agents=("random",)), tmp_path / "a")
    b = evaluate(request(agents=("random",)), tmp_path / "b")
    strip = lambda r: [e.to_dict() for e in r.entries]  # noqa: E731
    assert strip(a) == strip(b)
    for env_id in ("turngym/Sokoban-v0", "turngym/FrozenLake-v0"):
        eps = [e for e in load_episodes(tmp_path / "a") if e["env_id"] == env_id]
        assert {e["task_id"] for e in eps if e["run_seed"] == 0}.isdisjoint(
            {e["task_id"] for e in eps if e["run_seed"] == 1})


def test_rerun_resumes_without_duplicates_and_cuts_a_torn_line(tmp_path):
    evaluate(request(), tmp_path)
    path = tmp_path / "episodes.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    # Simulate a kill: the last 5 episodes never happened and the 6th-last was torn mid-line.
    path.write_text("".join(lines[:-6]) + lines[-6][: len(lines[-6]) // 2])
    (tmp_path / "results.json").unlink()
    with pytest.raises(ResultsError, match="rerun the same command"):
        load_results(tmp_path)
    evaluate(request(), tmp_path)
    keys = [e["key"] for e in load_episodes(tmp_path)]
    assert len(keys) == len(set(keys)) == len(lines)
    assert path.read_text().endswith("\n")


def test_a_different_eval_in_the_same_directory_is_refused(tmp_path):
    evaluate(request(seeds=(0,)), tmp_path)
    with pytest.raises(RunDirError, match="different eval"):
        evaluate(request(seeds=(0, 1)), tmp_path)


def test_bad_input_fails_before_any_episode(tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean"):
        evaluate(request(agents=("orcale",)), tmp_path / "a")
    with pytest.raises(ValueError, match="level"):
        evaluate(request(entries=(EvalEntry("turngym/Sokoban-v0", options={"level": 99}),)),
                 tmp_path / "b")
    assert not (tmp_path / "a" / "episodes.jsonl").exists()
    assert not (tmp_path / "b" / "episodes.jsonl").exists()


def test_corrupt_episode_file_is_reported_with_its_line(tmp_path):
    evaluate(request(seeds=(0,)), tmp_path)
    path = tmp_path / "episodes.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "{not json}\n" + "".join(lines[1:]))
    with pytest.raises(ResultsError, match=r"episodes.jsonl:2"):
        evaluate(request(seeds=(0,)), tmp_path)


SLOW_EVAL = textwrap.dedent("""
    import sys, time
    from turngym.agents import agent_registry
    from turngym.agents.scripted import RandomAgent
    from turngym.evals.runner import EvalRequest, evaluate
    from turngym.evals.suites import EvalEntry

    class Slow(RandomAgent):
        def act_batch_with_envs(self, conversations, envs):
            time.sleep(0.01)
            return super().act_batch_with_envs(conversations, envs)

    agent_registry.register("slow-random", lambda arg, seed: Slow(seed=seed))
    evaluate(EvalRequest((EvalEntry("turngym/Sokoban-v0", episodes=40),), ("slow-random",),
                         (0, 1)), sys.argv[1], max_concurrent=4)
""")


@pytest.mark.integration
def test_sigkill_mid_run_then_rerun_gives_every_episode_exactly_once(tmp_path):
    script = tmp_path / "slow_eval.py"
    script.write_text(SLOW_EVAL)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, str(script), str(run)], env=env)
    log = run / "episodes.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until some, but not all, episodes are written
        if log.exists() and log.read_text().count("\n") >= 10:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = log.read_text().count("\n")
    assert 10 <= written < 80, "the kill should land mid-run"
    assert not (run / "results.json").exists()
    subprocess.run([sys.executable, str(script), str(run)], env=env, check=True, timeout=120)
    keys = [json.loads(line)["key"] for line in log.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 80
    assert load_results(run).entries[0].metrics["success"].n == 80


def test_results_files_without_provenance_are_rejected(tmp_path):
    evaluate(request(seeds=(0,)), tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    del data["provenance"]["git_sha"]
    (tmp_path / "results.json").write_text(json.dumps(data))
    with pytest.raises(ResultsError, match="provenance lacks git_sha"):
        load_results(tmp_path)
    Path(tmp_path / "results.json").write_text('{"schema": "other/1"}')
    with pytest.raises(ResultsError, match="not a turngym results file"):
        load_results(tmp_path)
