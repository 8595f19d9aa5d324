"""Tables: golden files for every format, built only from results files."""

import os
from pathlib import Path

import pytest

from turngym.evals.results import EntryResult, RunResults, load_results
from turngym.evals.stats import summarize_values
from turngym.evals.tables import FORMATS, load_tables, missing_aggregate_note, render, table_rows

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


# --- Honest aggregates: never mix env sets ---------------------------------------------------
def _runs_with_a_partial_agent(tmp_path, envs_b):
    """Agent a on Sokoban, FrozenLake and Maze; agent b only on ``envs_b``."""
    envs = {"turngym/Sokoban-v0": [1.0] * 8 + [0.0] * 2, "turngym/FrozenLake-v0": [1.0] * 5 +
            [0.0] * 5, "turngym/Maze-v0": [0.0] * 10}
    entries = [entry(env, "a", values, values) for env, values in envs.items()]
    entries += [entry(env, "b", [1.0] * 10, [1.0] * 10) for env in envs_b]
    run = tmp_path / "run"
    run.mkdir(parents=True)
    RunResults("eval", PROVENANCE, entries).save(run / "results.json")
    return load_tables([run])


def test_aggregate_averages_only_the_envs_every_agent_has(tmp_path):
    rows = table_rows(_runs_with_a_partial_agent(
        tmp_path, ["turngym/Sokoban-v0", "turngym/FrozenLake-v0"]))
    agg = {r.agent: r for r in rows if r.aggregate}
    assert set(agg) == {"a", "b"}
    # a's Maze score (0.0) is left out: both rows average Sokoban and FrozenLake only.
    assert agg["a"].summary.mean == pytest.approx((0.8 + 0.5) / 2)
    assert agg["a"].summary.n == agg["b"].summary.n == 20
    assert agg["a"].env == "2 of 3 envs (macro mean)"
    assert agg["a"].note == "averages turngym/Sokoban-v0; turngym/FrozenLake-v0"
    text = render(rows)
    assert "**2 of 3 envs (macro mean)**" in text
    assert text.splitlines()[-1] == ("2 of 3 envs (macro mean): averages turngym/Sokoban-v0; "
                                     "turngym/FrozenLake-v0")


def test_no_aggregate_when_fewer_than_two_envs_are_shared(tmp_path):
    rows = table_rows(_runs_with_a_partial_agent(tmp_path, ["turngym/Maze-v0"]))
    assert not any(r.aggregate for r in rows)
    assert "1 of 3 in common" in missing_aggregate_note(rows)
    full = table_rows(_runs_with_a_partial_agent(
        tmp_path / "x", ["turngym/Sokoban-v0", "turngym/FrozenLake-v0", "turngym/Maze-v0"]))
    assert {r.env for r in full if r.aggregate} == {"all envs (macro mean)"}
    assert missing_aggregate_note(full) is None


def test_cli_table_says_why_there_is_no_aggregate(tmp_path, capsys):
    from turngym.cli import main

    _runs_with_a_partial_agent(tmp_path, ["turngym/Maze-v0"])
    assert main(["table", str(tmp_path / "run")]) == 0
    captured = capsys.readouterr()
    assert "macro mean" not in captured.out
    assert captured.err.strip().startswith("turngym table: no macro mean")


# --- Short env labels and interval display ----------------------------------------------------
def test_difficulty_goes_to_a_note_and_the_label_stays_short(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    difficulty = {"difficulty": {"size": 3, "step_penalty": -0.05}, "level": 1}
    e = entry("turngym/FrozenLake-v0", "a", [1.0, 0.0], [1.0, 0.0], difficulty)
    RunResults("eval", PROVENANCE, [e]).save(run / "results.json")
    rows = table_rows(load_tables([run]))
    assert rows[0].env == "turngym/FrozenLake-v0 (level=1) [h]"
    note = '[h] turngym/FrozenLake-v0 (level=1): difficulty={"size": 3, "step_penalty": -0.05}'
    assert render(rows).splitlines()[-1] == note
    assert 'title="difficulty={&quot;size&quot;: 3' in render(rows, "html")
    assert "<tfoot>" in render(rows, "html")
    assert r"\multicolumn{6}{l}{\footnotesize [h] turngym/FrozenLake-v0" in render(rows, "latex")
    assert render(rows, "csv").splitlines()[1].endswith(',"difficulty={""size"": 3, '
                                                        '""step_penalty"": -0.05}"')


def test_asymmetric_intervals_show_their_ends():
    from turngym.evals.stats import format_interval

    rate = summarize_values([1] + [0] * 14)  # 0.067: a "± 0.097" would reach below 0
    assert format_interval(rate) == "[0.012, 0.298]"
    assert format_interval(summarize_values([1.0, 2.0, 3.0], binary=False)) == "± 2.484"
    assert format_interval(summarize_values([1, 0] * 10)) == "± 0.201"  # Wilson at p = 1/2
