"""End-to-end `turngym eval` and `turngym table` through the CLI entry point."""

import io

from turngym.cli import main


def run(*argv):
    buf = io.StringIO()
    code = main(list(argv), stdout=buf)
    return code, buf.getvalue()


def test_eval_then_resume_then_table(tmp_path):
    out = tmp_path / "run"
    code, text = run("eval", "smoke", "--agents", "random", "oracle", "--episodes", "3",
                     "--out", str(out))
    assert code == 0
    assert "| turngym/Sokoban-v0 | oracle | success | 1.000 |" in text
    assert (out / "results.json").exists() and (out / "episodes.jsonl").exists()
    code, text = run("eval", "smoke", "--agents", "random", "oracle", "--episodes", "3",
                     "--out", str(out))
    assert code == 0 and "0 to run" in text
    code, text = run("table", str(out), "--format", "csv")
    assert code == 0 and text.startswith("env,agent,metric")


def test_eval_bad_input_exits_2_with_a_hint(tmp_path, capsys):
    assert run("eval", "smoek", "--out", str(tmp_path / "a"))[0] == 2
    assert "Did you mean 'smoke'" in capsys.readouterr().err
    assert run("eval", "turngym/Sokoban-v0", "--agents", "oracel", "--out",
               str(tmp_path / "b"))[0] == 2
    assert "oracle" in capsys.readouterr().err
    out = str(tmp_path / "c")
    assert run("eval", "turngym/Sokoban-v0", "--episodes", "1", "--out", out)[0] == 0
    assert run("eval", "turngym/Sokoban-v0", "--episodes", "2", "--out", out)[0] == 2
    assert "different eval" in capsys.readouterr().err


def test_default_run_directory_is_derived_from_the_request(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, text = run("eval", "turngym/FrozenLake-v0", "--episodes", "2")
    assert code == 0
    first_line = text.splitlines()[0]
    assert first_line.startswith("run directory: runs/eval/")
    assert (tmp_path / first_line.split(": ")[1] / "results.json").exists()
