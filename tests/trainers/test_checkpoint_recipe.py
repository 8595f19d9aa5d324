"""A checkpoint carries its agent recipe: `hf:<checkpoint>` evaluates as the training run did."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from turngym.agents import make_agent  # noqa: E402
from turngym.agents.hf import RECIPE_FILE, HFAgent  # noqa: E402
from turngym.cli import main  # noqa: E402
from turngym.evals.bench import DEFAULT_RECIPE  # noqa: E402
from turngym.evals.results import load_results  # noqa: E402
from turngym.trainers.config import TrainConfig  # noqa: E402
from turngym.trainers.trainer import Trainer  # noqa: E402

LAKE = {"difficulty": {"size": 3}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    recipe = {**DEFAULT_RECIPE, "tasks_per_iteration": 2, "group_size": 2,
              "eval_temperature": 0.0}  # greedy: the checkpoint's eval must match exactly
    config = TrainConfig(**recipe, env="turngym/FrozenLake-v0", env_options=LAKE, iterations=2,
                         eval_every=0, eval_tasks=24, out_dir=str(out), progress="off")  # fmt: skip
    rows = Trainer(config).train()
    return out / "checkpoint", rows[-1]


def test_checkpoint_holds_the_eval_recipe(trained):
    checkpoint, _ = trained
    recipe = json.loads((checkpoint / RECIPE_FILE).read_text())
    assert recipe["allowed_actions"] == ["left", "down", "right", "up"]
    assert recipe["temperature"] == 0.0 and recipe["max_new_tokens"] == 1
    assert recipe["response_prefix"] == "<action>" and recipe["response_suffix"] == "</action>"
    assert recipe["history"] == 0 and recipe["include_instructions"] is False
    agent = make_agent(f"hf:{checkpoint}")
    assert isinstance(agent, HFAgent) and agent.allowed_actions == ("left", "down", "right", "up")


def test_hf_checkpoint_reproduces_the_training_eval(trained, tmp_path):
    checkpoint, last = trained
    code = main(["eval", "turngym/FrozenLake-v0", "--options", json.dumps(LAKE),
                 "--agents", f"hf:{checkpoint}", "--episodes", "24", "--out",
                 str(tmp_path / "eval")])  # fmt: skip
    assert code == 0
    summary = load_results(tmp_path / "eval").entries[0].metrics["success"]
    # Greedy decoding on the same 24 test tasks: the very same episodes, so the same score.
    assert summary.mean == pytest.approx(last["eval_success"])
    assert summary.n == 24


def test_spec_query_overrides_the_recipe(trained):
    checkpoint, _ = trained
    agent = make_agent(f"hf:{checkpoint}?temperature=0.7&allowed_actions=free&max_new_tokens=4")
    assert agent.temperature == 0.7 and agent.allowed_actions is None
    assert agent.max_new_tokens == 4 and agent.response_suffix == "</action>"  # kept
    tiny = make_agent(f"tiny:{checkpoint}?temperature=0")
    assert tiny.temperature == 0.0 and tiny.allowed_actions == ("left", "down", "right", "up")
    with pytest.raises(ValueError, match="Did you mean 'temperature'"):
        make_agent(f"hf:{checkpoint}?temprature=0")


def test_missing_checkpoint_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no model there"):
        make_agent(f"hf:{tmp_path / 'nowhere'}")


def test_restricted_decoding_needs_one_token_actions():
    from turngym.agents.tiny import build_tiny

    model, tokenizer = build_tiny(["<action>", "go", "to", "up"], d_model=16, n_heads=2)
    with pytest.raises(ValueError, match="one-token actions"):
        HFAgent(model, tokenizer, allowed_actions=("go to",))
