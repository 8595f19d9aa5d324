"""The critic, tree and update-order methods train the tiny model end to end (slow, CPU)."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from turngym.trainers.config import TrainConfig  # noqa: E402
from turngym.trainers.trainer import Trainer  # noqa: E402

pytestmark = pytest.mark.slow

_TIMING = {"rollout_s", "update_s", "elapsed_s", "critic_update_s"}
METHODS = ["ppo_gae", "bilevel_gae", "odysseus", "hiper", "archer", "seeupo", "tree_grpo"]
ENVS = {"frozenlake": ("turngym/FrozenLake-v0", {"difficulty": {"size": 3, "step_penalty": -0.05}}),
        "household": ("turngym/Household-v0", {"level": 0})}  # fmt: skip


def config(tmp_path, estimator, env="frozenlake", **kw) -> TrainConfig:
    env_id, options = ENVS[env]
    base = dict(
        env=env_id, env_options=options, estimator=estimator, iterations=2,
        tasks_per_iteration=2, group_size=2, max_turns=4, max_new_tokens=1,
        response_prefix="<action>", response_suffix="</action>", stop=(), history=0,
        include_instructions=False, minibatch_size=16, eval_every=0, eval_tasks=2,
        checkpoint_every=0, out_dir=str(tmp_path / "run"), invalid_action_penalty=-0.1,
        tiny_d_model=16, tiny_layers=1, critic_params={}, strategy_params={},
    )  # fmt: skip
    if estimator == "tree_grpo":
        base["strategy_params"] = {"branches": 2}
    if estimator in ("ppo_gae", "bilevel_gae", "odysseus", "hiper"):
        base["critic_params"] = {"d_model": 16, "layers": 1}
    if estimator == "archer":
        base["critic_params"] = {"d_model": 16, "layers": 1, "steps": 2}
    base.update(kw)
    return TrainConfig(**base)


def metrics(path) -> list[dict]:
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in _TIMING} for r in rows]


@pytest.mark.parametrize("env", sorted(ENVS))
@pytest.mark.parametrize("estimator", METHODS)
def test_method_trains_the_tiny_model(tmp_path, estimator, env):
    torch.set_num_threads(1)
    trainer = Trainer(config(tmp_path, estimator, env))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    rows = trainer.train()
    assert [r["iteration"] for r in rows] == [1, 2]
    assert all(math.isfinite(v) for r in rows for v in r.values() if isinstance(v, float))
    if trainer.parts.critic is not None:
        assert "critic_value_loss" in rows[-1] and "critic_explained_var" in rows[-1]
    if estimator == "tree_grpo":
        assert rows[0]["seq_episodes"] == 2 * (2 + 2)  # roots + branches per task
    if estimator == "seeupo":
        assert rows[0]["seeupo_turn_updates"] >= 1
    changed = any(not torch.equal(a, b) for a, b in
                  zip(before, trainer.model.parameters(), strict=True))  # fmt: skip
    assert changed or all(r.get("optimizer_steps", 0) == 0 for r in rows)


def test_value_loss_falls_on_frozenlake(tmp_path):
    torch.set_num_threads(1)
    rows = Trainer(config(tmp_path, "ppo_gae", iterations=20, tasks_per_iteration=4,
                          group_size=4, seed=3)).train()  # fmt: skip
    loss = [r["critic_value_loss"] for r in rows]
    assert sum(loss[-5:]) / 5 < 0.6 * sum(loss[:3]) / 3, loss


@pytest.mark.parametrize("estimator", ["ppo_gae", "archer", "seeupo"])
def test_resume_continues_the_same_metrics_stream_with_the_critic(tmp_path, estimator):
    torch.set_num_threads(1)
    kw = dict(iterations=4, checkpoint_every=2, eval_every=2)
    straight = tmp_path / "straight"
    Trainer(config(straight, estimator, **kw)).train()
    resumed = tmp_path / "resumed"
    Trainer(config(resumed, estimator, **{**kw, "iterations": 2})).train()
    Trainer(config(resumed, estimator, **kw)).train()
    assert metrics(resumed / "run") == metrics(straight / "run")


def test_hiper_trains_with_the_switch_subgoal_format(tmp_path):
    torch.set_num_threads(1)
    cfg = config(tmp_path, "hiper", output_format="switch_subgoal", response_prefix="<switch>",
                 response_suffix="", stop=("</action>",), max_new_tokens=8)  # fmt: skip
    trainer = Trainer(cfg)
    rows = trainer.train()
    assert [r["iteration"] for r in rows] == [1, 2]
    assert "<switch>" in trainer.tokenizer.get_vocab()
    assert all(math.isfinite(r["critic_value_loss"]) for r in rows)
