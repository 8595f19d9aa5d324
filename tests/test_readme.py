"""The README's code runs as written (quick start, register-your-own-env, results as DataFrames)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import gymnasium
import pytest

from turngym.agents import OracleAgent
from turngym.rollout import collect
from turngym.testing import check_env

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_quick_start_runs():
    exec(compile(BLOCKS[0], "README quick start", "exec"), {})


def test_register_your_own_env_example(tmp_path, monkeypatch):
    (tmp_path / "acme_envs.py").write_text(BLOCKS[1])
    monkeypatch.syspath_prepend(str(tmp_path))
    import acme_envs

    try:
        acme_envs.register_envs()
        check_env("GuessNumber-v0", fuzz_examples=30).raise_if_failed()
        groups = collect("GuessNumber-v0", OracleAgent(), tasks=5)
        assert all(ep.success for g in groups for ep in g.episodes)
    finally:
        gymnasium.registry.pop("GuessNumber-v0", None)
        sys.modules.pop("acme_envs", None)


def _bash_commands(marker: str) -> list[list[str]]:
    """The `turngym ...` commands of the README's bash block that contains ``marker``."""
    import shlex

    block = next(b for b in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
                 if marker in b)  # fmt: skip
    joined = block.replace("\\\n", " ")
    return [shlex.split(line)[1:] for line in joined.splitlines() if line.startswith("turngym ")]


@pytest.mark.slow
def test_train_then_eval_example_agrees(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import io
    import json

    from turngym.cli import main
    from turngym.evals.results import load_results

    train, evaluate = _bash_commands("turngym train --estimator gigpo")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    assert main(train + ["--progress", "off"], stdout=out) == 0
    trained = json.loads(out.getvalue().splitlines()[0])
    assert main(evaluate, stdout=io.StringIO()) == 0
    success = load_results(tmp_path / "runs/lake-eval").entries[0].metrics["success"]
    assert success.n == 50
    assert success.mean == pytest.approx(trained["eval_success"])


def test_results_as_dataframes_example(tmp_path, monkeypatch):
    """The README's "Results as DataFrames": its two shell commands, then its Python block."""
    pytest.importorskip("pandas")
    import shlex

    from turngym.cli import main

    section = README.read_text().split("### Results as DataFrames", 1)[1]
    commands = re.findall(r"```bash\n(.*?)```", section, re.S)[0].strip().splitlines()
    code = next(block for block in BLOCKS if "turngym.evals.load" in block)
    monkeypatch.chdir(tmp_path)
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "turngym" and main(argv[1:]) == 0
    exec(compile(code, "README results as DataFrames", "exec"), {})
