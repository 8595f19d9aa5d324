from __future__ import annotations

import io
import json
import subprocess
import sys

from turngym.cli import main
from turngym.rollout import wilson_interval


def run(argv, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    code = main(argv, stdout=out, stdin=io.StringIO(stdin))
    return code, out.getvalue()


def test_list_envs_agents_estimators_plugins():
    code, out = run(["list", "envs", "--json"])
    assert code == 0 and {"turngym/Sokoban-v0", "turngym/FrozenLake-v0"} <= set(json.loads(out))
    assert {"oracle", "random", "replay"} <= set(run(["list", "agents"])[1].split())
    assert run(["list", "estimators", "--json"])[0] == 0
    assert run(["list", "plugins"])[0] == 0


def test_check_passes_and_unknown_id_is_usage_error(capsys):
    code, out = run(
        ["check", "turngym/FrozenLake-v0", "--fuzz-examples", "10", "--only", "fuzz", "pickle"]
    )
    assert code == 0 and "PASS" in out
    code, _ = run(["check", "turngym/FrozenLak-v0"])
    assert code == 2 and "Did you mean 'turngym/FrozenLake-v0'" in capsys.readouterr().err


def test_rollout_writes_episodes_and_summary(tmp_path):
    path = tmp_path / "runs" / "episodes.jsonl"
    code, out = run(
        [
            "rollout",
            "turngym/FrozenLake-v0",
            "--agent",
            "oracle",
            "--tasks",
            "5",
            "--group-size",
            "2",
            "--out",
            str(path),
            "--json",
        ]
    )
    summary = json.loads(out)
    assert code == 0 and summary["episodes"] == 10 and summary["success_rate"] == 1.0
    lines = path.read_text().splitlines()
    assert len(lines) == 10 and json.loads(lines[0])["env_id"] == "turngym/FrozenLake-v0"


def test_rollout_bad_usage(capsys):
    assert run(["rollout", "turngym/FrozenLake-v0", "--agent", "randm"])[0] == 2
    assert "Did you mean 'random'" in capsys.readouterr().err
    assert run(["rollout", "turngym/FrozenLake-v0", "--tasks", "0"])[0] == 2
    assert run(["rollout", "turngym/FrozenLake-v0", "--difficulty", "{bad"])[0] == 2
    assert run(["rollout", "turngym/FrozenLake-v0", "--difficulty", '{"szie": 5}'])[0] == 2


def test_play_interactive_session():
    code, out = run(
        ["play", "test/Counter-v0", "--seed", "0"], stdin="inc\n:privileged\nbogus\n:quit\n"
    )
    assert code == 0
    assert "value=1" in out and '"target"' in out and "Invalid action" not in out.split("bogus")[0]
    assert "unknown command 'bogus'" in out


def test_play_watch_oracle():
    code, out = run(["play", "turngym/FrozenLake-v0", "--agent", "oracle"])
    assert code == 0 and "[terminated]" in out


def test_wilson_interval_known_values():
    low, high = wilson_interval(5, 10)
    assert abs(low - 0.2366) < 1e-3 and abs(high - 0.7634) < 1e-3
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_console_script_subprocess(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "turngym.cli",
            "rollout",
            "turngym/Sokoban-v0",
            "--agent",
            "random",
            "--tasks",
            "3",
            "--group-size",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "success" in proc.stdout and "6 episodes" in proc.stdout
