"""The claim registry and `turngym repro`: verdicts, resumable seeds, reports, CLI."""

from __future__ import annotations

import io
import json

import pytest

from turngym.cli import main
from turngym.registry import UnknownNameError
from turngym.repro import Claim, Measurement, claim_registry, get_claim
from turngym.repro.runner import render_html, render_markdown, run_claims, verdict

CALLS: list[int] = []


def _toy_run(seed: int) -> Measurement:
    CALLS.append(seed)
    return Measurement(0.1 + 0.01 * seed, {"arm_a": 1.0, "arm_b": 0.9 - 0.01 * seed})


TOY = Claim(name="toy-claim", method="grpo", paper="Nobody 2026", statement="A | B",
            experiment="toy", metric="a - b", run=_toy_run, seeds=(0, 1, 2))  # fmt: skip


@pytest.fixture(autouse=True)
def _registered():
    if "toy-claim" not in claim_registry:
        claim_registry.register("toy-claim", TOY)
    CALLS.clear()


def test_verdicts():
    assert verdict([0.1, 0.2, 0.15])[0] == "shown"
    assert verdict([-0.1, -0.2, -0.15])[0] == "refuted"
    assert verdict([-0.1, 0.2, 0.0])[0] == "not shown"
    assert verdict([0.5])[0] == "not shown"  # one seed: no interval, no verdict
    name, mean, (low, high) = verdict([1.0, 2.0, 3.0])
    assert mean == 2.0 and low < 2.0 < high


def test_run_claims_writes_reports_and_resumes(tmp_path):
    results = run_claims(["toy-claim"], tmp_path, workers=1)
    assert CALLS == [0, 1, 2]
    (result,) = results
    assert result.summary[0] == "shown"
    data = json.loads((tmp_path / "repro.json").read_text())
    assert data["claims"][0]["verdict"] == "shown" and data["claims"][0]["seeds"] == [0, 1, 2]
    assert "provenance" in data
    assert (tmp_path / "toy-claim" / "seed-1.json").exists()
    md = (tmp_path / "repro.md").read_text()
    assert "A \\| B" in md  # a pipe in a cell does not break the table
    html = (tmp_path / "repro.html").read_text()
    assert "<td>shown</td>" in html and "A | B" in html and "<script" not in html
    # A rerun reuses every finished seed: nothing runs again, the table is the same.
    again = run_claims(["toy-claim"], tmp_path, workers=1)
    assert CALLS == [0, 1, 2]
    assert render_markdown(again) == render_markdown(results)
    assert render_html(again) == render_html(results)


def test_measure_rejects_a_wrong_return_type():
    bad = Claim(name="bad", method="m", paper="p", statement="s", experiment="e", metric="m",
                run=lambda seed: 1.0)  # fmt: skip
    with pytest.raises(TypeError, match="expected a Measurement"):
        bad.measure(0)


def test_unknown_claim_suggests_and_cli_exits_2(capsys):
    with pytest.raises(UnknownNameError, match="Did you mean 'toy-claim'"):
        get_claim("toy-claims")
    assert main(["repro", "toy-claims"], stdout=io.StringIO()) == 2
    assert "Did you mean 'toy-claim'" in capsys.readouterr().err


def test_cli_lists_claims():
    out = io.StringIO()
    assert main(["repro", "--list"], stdout=out) == 0
    text = out.getvalue()
    for name in ("mc-grpo-sign-flips", "trloo-unbiased", "a-grae-hard-focus",
                 "gigpo-long-horizon", "epo-entropy"):  # fmt: skip
        assert name in text


def test_builtin_claims_resolve_and_carry_their_citation():
    for name in claim_registry.names():
        claim = get_claim(name)
        assert claim.paper and claim.statement and claim.metric
        assert len(claim.seeds) >= 3, name
