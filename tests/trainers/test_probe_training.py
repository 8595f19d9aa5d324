"""``turngym train`` with every probe-based estimator, end to end on CPU (slow).

SearchQA (level 0) runs the built-in tiny model; TwentyQuestions runs a tiny model saved with
``save_pretrained`` and loaded from its directory, the path a real Hugging Face model takes.
"""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from turngym.cli import main  # noqa: E402

ESTIMATORS = ("igpo", "a2tgpo", "siop", "pbsd", "grpo_vps", "swap", "infopo")
COMMON = ["--iterations", "3", "--tasks-per-iteration", "1", "--group-size", "3",
          "--max-turns", "3", "--max-new-tokens", "4", "--eval-every", "0", "--eval-tasks", "1",
          "--minibatch-size", "32", "--no-resume"]  # fmt: skip


def check_rows(out_dir):
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert row["probe_s"] >= 0 and row["probe_tokens"] >= 0 and row["probe_shared_tokens"] >= 0
        assert all(math.isfinite(v) for v in row.values() if isinstance(v, float))
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_train_on_searchqa_with_the_tiny_model(tmp_path, estimator):
    args = ["train", "--env", "turngym/SearchQA-v0", "--env-options", '{"level": 0}',
            "--estimator", estimator, "--response-prefix", "", "--stop", "</search>",
            "</answer>", "--tiny-d-model", "16", "--tiny-layers", "1", "--history", "none",
            "--out-dir", str(tmp_path / "run"), *COMMON]  # fmt: skip
    assert main(args) == 0
    rows = check_rows(tmp_path / "run")
    if estimator in ("igpo", "a2tgpo", "grpo_vps", "swap"):  # gold answer probed every turn
        assert all(r["probe_rows"] > 0 for r in rows)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    from turngym.agents.tiny import build_tiny

    model, tokenizer = build_tiny("turngym/TwentyQuestions-v0", d_model=16, n_layers=1)
    path = tmp_path_factory.mktemp("tiny-hf")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_train_on_twenty_questions_from_a_saved_model(tmp_path, saved_model, estimator):
    args = ["train", "--env", "turngym/TwentyQuestions-v0", "--model", str(saved_model),
            "--estimator", estimator, "--out-dir", str(tmp_path / "run"), *COMMON]  # fmt: skip
    assert main(args) == 0
    rows = check_rows(tmp_path / "run")
    if estimator != "siop":  # SIOP probes the group's answers; an untrained policy gives few
        assert all(r["probe_rows"] > 0 for r in rows)
