"""Tables: golden files for every format, built only from results files."""

import os
from pathlib import Path

import pytest

from turngym.evals.results import EntryResult, RunResults, load_results
from turngym.evals.stats import summarize_values
from turngym.evals.tables import FORMATS, load_tables, render, table_rows

GOLDEN = Path(__file__).parent / "golden"
SUFFIX = {"markdown": "md", "csv": "csv", "latex": "tex", "html": "html"}
PROVENANCE = {"turngym_version": "0.1.0", "git_sha": "abc", "date": "2026-01-01T00:00:00+00:00",
              "command": ["turngym", "eval"]}


def entry(env_id, agent, successes, returns, options=None):
    return EntryResult(
        env_id=env_id, env_version=0, env_kwargs={}, options=options or {},
        env_kwargs_hash="h", env_fingerprint="f", split="test", agent=agent, agent_config={},
        seeds=[0], episodes_per_seed=len(successes),
        metrics={"success": summarize_values(successes),
                 "return": summarize_values(returns, binary=False)},
    )


def write_run(root: Path, name: str = "run-a") -> Path:
    run = root / name
    run.mkdir(parents=True)
    RunResults("eval", PROVENANCE, [
        entry("turngym/Sokoban-v0", "oracle", [1.0] * 20, [10.0 + 0.1 * i for i in range(20)]),
        entry("turngym/Sokoban-v0", "my_agent & co|v2", [1.0, 0.0] * 10, [-1.0, 3.0] * 10),
        entry("turngym/FrozenLake-v0", "oracle", [1.0] * 10, [1.0] * 10, {"level": 2}),
        entry("turngym/FrozenLake-v0", "my_agent & co|v2", [0.0] * 9 + [1.0], [0.0] * 10,
              {"level": 2}),
    ]).save(run / "results.json")
    return run


@pytest.mark.parametrize("fmt", FORMATS)
def test_golden_tables(tmp_path, fmt):
    rows = table_rows(load_tables([write_run(tmp_path)]), ["success", "return"])
    text = render(rows, fmt)
    golden = GOLDEN / f"table.{SUFFIX[fmt]}"
    if os.environ.get("TURNGYM_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_aggregate_rows_are_macro_means_over_envs(tmp_path):
    rows = table_rows(load_tables([write_run(tmp_path)]), ["success"])
    agg = {r.agent: r.summary for r in rows if r.aggregate}
    assert agg["oracle"].mean == 1.0
    assert agg["my_agent & co|v2"].mean == pytest.approx((0.5 + 0.1) / 2)
    assert agg["oracle"].n == 30


def test_same_agent_in_two_runs_is_labelled_by_run(tmp_path):
    a = write_run(tmp_path, "run-a")
    b = write_run(tmp_path, "run-b")
    agents = {r.agent for r in table_rows(load_tables([a, b]))}
    assert {"oracle [run-a]", "oracle [run-b]"} <= agents
    assert all("[" in name for name in agents)


def test_unknown_metric_and_format_fail_clearly(tmp_path):
    runs = load_tables([write_run(tmp_path)])
    with pytest.raises(ValueError, match="unknown metric"):
        table_rows(runs, ["sucess"])
    with pytest.raises(ValueError, match="unknown table format"):
        render(table_rows(runs), "docx")


def test_cli_table_every_format_and_exit_codes(tmp_path, capsys):
    import io

    from turngym.cli import main

    run = write_run(tmp_path)
    for fmt in FORMATS:
        buf = io.StringIO()
        assert main(["table", str(run), "--format", fmt, "--metrics", "success", "return"],
                    stdout=buf) == 0
        assert buf.getvalue().strip() == (GOLDEN / f"table.{SUFFIX[fmt]}").read_text().strip()
    out = tmp_path / "t.tex"
    assert main(["table", str(run), "--format", "latex", "--out", str(out)],
                stdout=io.StringIO()) == 0
    assert out.read_text().startswith("\\begin{tabular}")
    assert main(["table", str(tmp_path / "missing")], stdout=io.StringIO()) == 2
    assert "no results file" in capsys.readouterr().err


def test_tables_read_only_results_files(tmp_path):
    run = write_run(tmp_path)
    assert not (run / "episodes.jsonl").exists()  # nothing but results.json is needed
    assert load_results(run).entries
