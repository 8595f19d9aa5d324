"""`turngym rollout` on multi-agent envs and `turngym list` grouped by family."""

from __future__ import annotations

import io
import json

import pytest

from turngym.cli import main

pytest.importorskip("pettingzoo")


def run(argv) -> tuple[int, str]:
    out = io.StringIO()
    return main(argv, stdout=out), out.getvalue()


def test_rollout_policy_vs_opponent_writes_seat_views(tmp_path):
    path = tmp_path / "episodes.jsonl"
    code, out = run(["rollout", "turngym/TicTacToe-v0", "--agent", "random", "--opponent",
                     "minimax", "--tasks", "4", "--group-size", "2", "--out", str(path),
                     "--json"])  # fmt: skip
    summary = json.loads(out)
    assert code == 0 and summary["seat"] == "player_0" and summary["games"] == 8
    assert summary["episodes"] == 8  # the top level is --agent's seat
    assert {s: b["agent"] for s, b in summary["seats"].items()} == {
        "player_0": "random", "player_1": "minimax"
    }  # fmt: skip
    assert summary["seats"]["player_0"]["success_rate"] == 0.0  # random never beats minimax
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 16 and {r["seat"] for r in rows} == {"player_0", "player_1"}
    for row in rows:
        assert {t["agent_id"] for t in row["turns"]} <= {row["seat"]}
        assert set(row["seat_outcomes"]) == {"player_0", "player_1"}


def test_rollout_self_play_and_seat_choice():
    code, out = run(["rollout", "turngym/DealOrNoDeal-v0", "--agent", "negotiator",
                     "--tasks", "3"])  # fmt: skip
    assert code == 0
    assert "negotiator (player_0) vs negotiator (player_1)" in out and "3 games" in out
    code, out = run(["rollout", "turngym/ConnectFour-v0", "--agent", "minimax:1", "--opponent",
                     "random", "--seat", "player_1", "--tasks", "2", "--json"])  # fmt: skip
    summary = json.loads(out)
    assert code == 0 and summary["seats"]["player_1"]["agent"] == "minimax:1"


def test_rollout_multiagent_usage_errors(capsys):
    assert run(["rollout", "turngym/TicTacToe-v0", "--seat", "player_1"])[0] == 2
    assert "--seat needs --opponent" in capsys.readouterr().err
    argv = ["rollout", "turngym/TicTacToe-v0", "--opponent", "random", "--seat", "player_7"]
    assert run(argv)[0] == 2 and "not a seat" in capsys.readouterr().err
    assert run(["rollout", "turngym/FrozenLake-v0", "--opponent", "random"])[0] == 2
    assert "multi-agent envs" in capsys.readouterr().err
    assert run(["rollout", "turngym/TicTacToe-v0", "--opponent", "minimax:x"])[0] == 2
    assert "search depth" in capsys.readouterr().err


def test_play_on_a_multiagent_id_says_where_to_go(capsys):
    assert run(["play", "turngym/TicTacToe-v0"])[0] == 2
    assert "multi-agent (PettingZoo AEC) env" in capsys.readouterr().err


def test_list_envs_grouped_by_family():
    code, out = run(["list", "envs"])
    lines = out.splitlines()
    assert code == 0 and "games" in lines and "multiagent" in lines
    after = lines[lines.index("multiagent") + 1 :]
    assert "  turngym/TicTacToe-v0" in after and "  turngym/FrozenLake-v0" not in after
    flat = json.loads(run(["list", "envs", "--json"])[1])  # unchanged shape: a flat id list
    assert isinstance(flat, list) and {"turngym/FrozenLake-v0", "turngym/TicTacToe-v0"} <= set(flat)
    by_family = json.loads(run(["list", "envs", "--json", "--by-family"])[1])
    assert "turngym/ConnectFour-v0" in by_family["multiagent"]
    assert "turngym/Sokoban-v0" in by_family["games"]
    assert "test/Counter-v0" in by_family["test"]  # not under turngym.envs: its namespace
    assert sorted(i for ids in by_family.values() for i in ids) == flat


def test_list_agents_includes_scripted_opponents():
    assert {"minimax", "negotiator"} <= set(run(["list", "agents"])[1].split())


def test_check_runs_pettingzoo_api_test_and_ours_on_multiagent_ids():
    import io

    from turngym.cli import main

    buf = io.StringIO()
    assert main(["check", "turngym/TicTacToe-v0", "--fuzz-examples", "10"], stdout=buf) == 0
    text = buf.getvalue()
    assert "turngym/TicTacToe-v0: PASS" in text and "ok   pettingzoo" in text
    buf = io.StringIO()
    assert main(["check", "turngym/TicTacToe-v0", "--only", "gymnasium"], stdout=buf) == 0
    assert "pettingzoo" in buf.getvalue() and "privacy" not in buf.getvalue()
