"""`turngym leaderboard ...` through turngym.cli.main, in-process."""

from __future__ import annotations

import io
import json
import sys
import types

import pytest

from turngym.cli import main

from ._runs import ENV, Spec, rate, write_run

pytest.importorskip("sqlalchemy")


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["leaderboard", *map(str, argv)], stdout=out)
    return code, out.getvalue()


@pytest.fixture
def board(tmp_path):
    """A SQLite board with a baseline ("main") and a later run ("pr")."""
    db = tmp_path / "lb.db"
    base = write_run(tmp_path / "main", [Spec(rate(200, 140))])
    pr = write_run(tmp_path / "pr", [Spec(rate(200, 150), agent="hf:new")])
    assert run_cli("submit", base, pr, "--db", db)[0] == 0
    return db


def test_submit_and_show(tmp_path, capsys):
    db = tmp_path / "lb.db"
    run = write_run(tmp_path / "nightly", [Spec(rate(40, 30))])
    code, out = run_cli("submit", run, "--name", "n1", "--db", db)
    assert code == 0 and out.startswith("submitted n1: 1 entries, 40 episodes (eval)")
    code, out = run_cli("show", "--db", db)
    assert code == 0
    header, rule, row = out.splitlines()
    assert header.split() == ["env", "agent", "run", "success", "n", "submitted"]
    assert row.startswith(ENV) and "0.750 [" in row and " 40 " in row
    code, out = run_cli("show", "--db", db, "--json", "--metric", "turns")
    [data] = json.loads(out)
    assert (code, data["run"], data["metric"], data["mean"]) == (0, "n1", "turns", 3.0)


def test_submit_refusals_exit_2(tmp_path, capsys):
    db = tmp_path / "lb.db"
    run = write_run(tmp_path / "r", [Spec(rate(10, 5))])
    assert run_cli("submit", run, "--db", db)[0] == 0
    capsys.readouterr()
    code, out = run_cli("submit", run, tmp_path / "missing", "--db", db)
    err = capsys.readouterr().err
    assert code == 2 and out == ""
    assert err.count("turngym leaderboard:") == 2 and "already on the board" in err
    assert "no results file" in err
    code, _ = run_cli("submit", run, run, "--name", "x", "--db", db)
    assert code == 2 and "--name names one run" in capsys.readouterr().err


def test_db_from_environment(tmp_path, monkeypatch):
    db = tmp_path / "env.db"
    monkeypatch.setenv("TURNGYM_LEADERBOARD", str(db))
    assert run_cli("submit", write_run(tmp_path / "r", [Spec(rate(10, 5))]))[0] == 0
    assert db.exists()
    assert "r" in run_cli("show")[1]


def test_read_commands_refuse_a_missing_board(tmp_path, capsys):
    code, out = run_cli("show", "--db", tmp_path / "none.db")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("turngym leaderboard: no leaderboard at")
    assert "turngym leaderboard submit RUN" in err
    assert not (tmp_path / "none.db").exists()


def test_show_empty_board_and_filters(board):
    code, out = run_cli("show", "--db", board, "--env", "turngym/None-v0")
    assert code == 0 and out.startswith("(no success results for turngym/None-v0")


def test_compare(board, capsys):
    code, out = run_cli("compare", "main", "pr", "--db", board)
    assert code == 0
    header, _, row = out.splitlines()
    assert header.split() == ["env", "agent", "main", "pr", "diff", "(B-A)"]
    assert "random / hf:new" in row and row.rstrip().endswith("+0.050")
    code, _ = run_cli("compare", "main", "nope", "--db", board)
    assert code == 2 and "no submission named 'nope'" in capsys.readouterr().err


def test_gate_against_a_run_directory(tmp_path):
    base = write_run(tmp_path / "base", [Spec(rate(200, 140))])
    worse = write_run(tmp_path / "worse", [Spec(rate(200, 100))])
    report = tmp_path / "gate.md"
    code, out = run_cli("gate", worse, "--baseline", base, "--report", report)
    assert code == 1 and out.startswith("## turngym regression gate: FAIL")
    assert report.read_text() == out.rstrip("\n") + "\n"
    code, out = run_cli("gate", base, "--baseline", base)
    assert code == 0 and "gate: PASS" in out


def test_gate_against_a_submission(board, tmp_path):
    worse = write_run(tmp_path / "worse", [Spec(rate(200, 100))])
    code, out = run_cli("gate", worse, "--baseline", "main", "--db", board)
    assert code == 1 and "main on sqlite:///" in out
    code, out = run_cli("gate", worse, "--baseline", "main", "--db", board, "--tolerance", "0.25")
    assert code == 0
    code, out = run_cli("gate", worse, "--baseline", "main", "--db", board, "--json",
                        "--metric", "success", "turns", "--tolerance", "turns=2")  # fmt: skip
    data = json.loads(out)
    assert code == 1 and data["tolerance"] == {"success": 0.02, "turns": 2.0}


def test_gate_require_all_and_bad_input(tmp_path, capsys):
    other = Spec(rate(50, 25), env_id="turngym/Other-v1")
    base = write_run(tmp_path / "base", [Spec(rate(50, 25)), other])
    run = write_run(tmp_path / "run", [Spec(rate(50, 25))])
    assert run_cli("gate", run, "--baseline", base)[0] == 0
    assert run_cli("gate", run, "--baseline", base, "--require-all")[0] == 1
    code, _ = run_cli("gate", run, "--baseline", "main", "--db", tmp_path / "none.db")
    assert code == 2 and "is not a run directory" in capsys.readouterr().err
    code, _ = run_cli("gate", run, "--baseline", base, "--tolerance", "turns=x")
    assert code == 2 and "expected a number or METRIC=NUMBER" in capsys.readouterr().err
    code, _ = run_cli("gate", run, "--baseline", base, "--tolerance", "turns=1")
    assert code == 2 and "not gated" in capsys.readouterr().err


def test_export_and_serve_call_the_web_module(board, tmp_path, monkeypatch):
    calls = []
    web = types.ModuleType("turngym.leaderboard.web")

    def export_html(store, path, metric="success"):
        calls.append(("export", len(store.page_data(metric)["rows"]), metric))
        path.write_text("<html></html>")
        return path

    web.export_html = export_html
    web.serve = lambda url, host, port: calls.append(("serve", url, host, port))
    # serve blocks until interrupted, so the web module is replaced by a recorder here; the
    # real page and server are tested in test_web.py.
    monkeypatch.setitem(sys.modules, "turngym.leaderboard.web", web)
    code, out = run_cli("export", tmp_path / "page.html", "--db", board, "--metric", "turns")
    assert code == 0 and out.strip() == f"wrote {tmp_path / 'page.html'}"
    code, _ = run_cli("serve", "--db", board, "--port", "8123")
    assert code == 0
    assert calls == [("export", 2, "turns"), ("serve", f"sqlite:///{board}", "127.0.0.1", 8123)]


def test_export_writes_the_real_page(board, tmp_path):
    pytest.importorskip("turngym.leaderboard.web")
    page = tmp_path / "site" / "index.html"
    code, _ = run_cli("export", page, "--db", board)
    assert code == 0 and "turngym leaderboard" in page.read_text()
