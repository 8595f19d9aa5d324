from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from turngym.registry import UnknownNameError  # noqa: E402
from turngym.trainers.config import TrainConfig  # noqa: E402
from turngym.trainers.trainer import Trainer  # noqa: E402

_TIMING = {"rollout_s", "update_s", "elapsed_s"}


def small(tmp_path, **kw) -> TrainConfig:
    base = dict(
        iterations=4, tasks_per_iteration=2, group_size=3, max_turns=4, max_new_tokens=1,
        response_suffix="</action>", stop=(), include_instructions=False, minibatch_size=8,
        eval_every=2, eval_tasks=2, checkpoint_every=2, out_dir=str(tmp_path / "run"),
        invalid_action_penalty=-0.1, estimator_params={"score": "return"}, tiny_d_model=16,
        tiny_layers=1,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def metrics(path) -> list[dict]:
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in _TIMING} for r in rows]


def test_training_runs_writes_metrics_and_checkpoint(tmp_path):
    rows = Trainer(small(tmp_path)).train()
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
    assert "eval_success" in rows[1] and "eval_success" in rows[3] and "eval_success" not in rows[0]
    assert all(r["optimizer_steps"] >= 1 and r["loss"] == r["loss"] for r in rows)  # finite
    run = tmp_path / "run"
    assert (run / "checkpoint" / "trainer_state.pt").exists() and (run / "config.json").exists()
    assert rows[0]["adv_abs_mean"] > 0  # the invalid-action penalty gives the groups variance


def test_parameters_change(tmp_path):
    trainer = Trainer(small(tmp_path, iterations=1))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    after = list(trainer.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_resume_continues_the_same_metrics_stream(tmp_path):
    straight = tmp_path / "straight"
    Trainer(small(straight)).train()
    resumed = tmp_path / "resumed"
    Trainer(small(resumed, iterations=2)).train()  # stops after the iteration-2 checkpoint
    # simulate a crash after iteration 3 was logged but before its checkpoint
    with (resumed / "run" / "metrics.jsonl").open("a") as fh:
        fh.write(json.dumps({"iteration": 3, "partial": True}) + "\n")
    Trainer(small(resumed)).train()
    assert metrics(resumed / "run") == metrics(straight / "run")


def test_resume_refuses_a_different_config(tmp_path):
    Trainer(small(tmp_path, iterations=2)).train()
    with pytest.raises(ValueError, match="config differs in \\['learning_rate'\\]"):
        Trainer(small(tmp_path, learning_rate=0.5))


def test_gradient_accumulation_gives_the_same_update(tmp_path):
    one = Trainer(small(tmp_path / "a", iterations=1, grad_accumulation=1, eval_every=0))
    four = Trainer(small(tmp_path / "b", iterations=1, grad_accumulation=4, eval_every=0))
    one.train()
    four.train()
    for a, b in zip(one.model.parameters(), four.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_bad_estimator_config_fails_before_any_rollout(tmp_path, monkeypatch):
    import turngym.trainers.trainer as trainer_module

    def no_rollouts(*args, **kwargs):
        raise AssertionError("collect must not run")

    monkeypatch.setattr(trainer_module, "collect", no_rollouts)
    with pytest.raises(UnknownNameError, match="Did you mean .*'grpo'"):
        Trainer(small(tmp_path, estimator="gpro"))
    with pytest.raises((TypeError, ValueError), match="gamma"):
        Trainer(small(tmp_path, estimator="trloo", estimator_params={"gama": 0.9}))
    with pytest.raises(ValueError, match="Unknown difficulty knob"):
        Trainer(small(tmp_path, env_options={"difficulty": {"szie": 4}}))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("estimator", ["rloo", "trloo", "gigpo", "drgrpo"])
def test_other_estimators_train(tmp_path, estimator):
    params = {} if estimator == "trloo" else {"score": "return"}
    rows = Trainer(small(tmp_path, iterations=1, estimator=estimator, estimator_params=params,
                         eval_every=0)).train()  # fmt: skip
    assert rows[0]["optimizer_steps"] >= 1


def test_minibatches_without_advantage_signal_are_skipped(tmp_path):
    from turngym.trainers.tokens import TrainingSequence

    trainer = Trainer(small(tmp_path, iterations=1, entropy_coef=0.01))

    def seq(advantage: float) -> TrainingSequence:
        return TrainingSequence(
            input_ids=(1, 2, 3, 4), loss_mask=(0, 0, 1, 1),
            advantages=(0.0, 0.0, advantage, advantage), old_logprobs=(0.0,) * 4,
            prompt_length=2, episode_index=0, turn_indices=(0,),
        )  # fmt: skip

    before = [p.detach().clone() for p in trainer.model.parameters()]
    out = trainer.update([seq(0.0)] * 4, 0)
    assert out["optimizer_steps"] == 0 and out["skipped_steps"] >= 1
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))
    out = trainer.update([seq(0.0)] * 3 + [seq(1.0)], 0)
    assert out["optimizer_steps"] >= 1
