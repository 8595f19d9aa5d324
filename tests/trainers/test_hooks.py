"""Trainer hooks: judges from envs, prompt augmentation, group post-processing, wiring."""

from __future__ import annotations

import numpy as np
import pytest

from turngym.agents.base import ActionResult
from turngym.trainers.credit import CreditContext, TurnBatch, resolve_estimator
from turngym.trainers.credit.r3 import R3Hooks
from turngym.trainers.hooks import (
    AugmentingAgent,
    InfoJudge,
    RolloutHooks,
    add_instructions,
    hooks_for,
    rollout_agent,
)
from turngym.types import Conversation, Episode, Group, Turn


class Echo:
    """Answers with its conversation's instructions; has a ``reseed`` to delegate."""

    seeds: list[int]

    def __init__(self) -> None:
        self.seeds = []

    def act_batch(self, conversations):
        return [ActionResult(c.instructions) for c in conversations]

    async def aact_batch(self, conversations):
        return self.act_batch(conversations)

    def reseed(self, seed: int) -> None:
        self.seeds.append(seed)


class Shout(RolloutHooks):
    def augment(self, conversation, ctx):
        return add_instructions(conversation, f"step {ctx.step}")


def test_hooks_attach_to_estimators_with_their_parameters():
    assert type(hooks_for(resolve_estimator("grpo"))) is RolloutHooks
    hooks = hooks_for(resolve_estimator("r3", {"reflection": False, "max_reflections": 1}))
    assert isinstance(hooks, R3Hooks) and not hooks.reflection and hooks.max_reflections == 1
    assert hooks_for(lambda batch, ctx: None).__class__ is RolloutHooks  # a bare plugin


def test_rollout_agent_wraps_only_when_prompts_change():
    agent = Echo()
    assert rollout_agent(agent, RolloutHooks(), CreditContext()) is agent
    ctx = CreditContext(step=3)
    wrapped = rollout_agent(agent, Shout(), ctx)
    assert isinstance(wrapped, AugmentingAgent)
    conversation = Conversation("Play.", (), "obs", "e", "t")
    assert wrapped.act_batch([conversation])[0].text == "Play.\n\nstep 3"
    wrapped.reseed(7)  # delegated to the wrapped agent
    assert agent.seeds == [7]
    assert add_instructions(Conversation("", (), "o"), "x").instructions == "x"


def test_info_judge_reads_scores_and_names_a_missing_one():
    turns = (Turn(0, "agent", "o", "a", 0.0, False, False, None, True, {"judge_score": 0.5}),
             Turn(1, "agent", "o", "a", 0.0, True, False, None, True, {}))  # fmt: skip
    batch = TurnBatch.from_groups([Group("g", "t", (Episode("e", "x", "t", 0, "train", turns,
                                                            0.0, False),))])  # fmt: skip
    with pytest.raises(ValueError, match="turn 1 of 'e' has no info"):
        InfoJudge("judge_score")(batch)
    assert InfoJudge("judge_score")(TurnBatch.from_groups([
        Group("g", "t", (Episode("e", "x", "t", 0, "train", turns[:1], 0.0, False),))
    ])).tolist() == [0.5]  # fmt: skip


torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.mark.slow
def test_trainer_gives_estimators_the_env_judge_and_the_tokenizer(tmp_path):
    from turngym.trainers.config import TrainConfig
    from turngym.trainers.trainer import Trainer

    def config(env, **kw):
        return TrainConfig(env=env, iterations=1, tasks_per_iteration=1, group_size=2,
                           max_turns=2, max_new_tokens=2, tiny_d_model=16, tiny_layers=1,
                           eval_tasks=1, out_dir=str(tmp_path / env.split("/")[1]),
                           **kw)  # fmt: skip

    trainer = Trainer(config("turngym/EmotionalSupport-v0", estimator="mapo",
                             estimator_params={"source": "judge"}))  # fmt: skip
    assert isinstance(trainer.ctx.judge, InfoJudge)
    assert trainer.ctx.tokenizer is trainer.tokenizer
    lake = Trainer(config("turngym/FrozenLake-v0", task_pool=3))
    assert lake.ctx.judge is None
    assert set(lake._task_seeds(0)) <= {0, 1, 2}
    with pytest.raises(ValueError, match="task_pool"):
        TrainConfig(task_pool=0)


@pytest.mark.slow
def test_token_advantages_reach_the_training_sequences(tmp_path, monkeypatch):
    import turngym.trainers.trainer as trainer_module
    from turngym.trainers.config import TrainConfig
    from turngym.trainers.trainer import Trainer

    seen = {}
    real = trainer_module.build_sequences

    def spy(episodes, turn_advantages, **kw):
        seen["tokens"] = kw.get("token_advantages")
        sequences, stats = real(episodes, turn_advantages, **kw)
        seen["sequences"] = sequences
        return sequences, stats

    monkeypatch.setattr(trainer_module, "build_sequences", spy)
    cfg = TrainConfig(env="turngym/SeqRec-v0", estimator="rank_grpo", iterations=1,
                      tasks_per_iteration=1, group_size=3, max_new_tokens=12, tiny_d_model=16,
                      tiny_layers=1, eval_tasks=1, eval_every=0, checkpoint_every=0,
                      temperature=3.0, response_suffix="</action>", stop=(),
                      out_dir=str(tmp_path / "run"))  # fmt: skip
    trainer = Trainer(cfg)
    trainer.step()
    tokens = seen["tokens"]
    assert tokens is not None and len(tokens) == 3  # one entry per episode
    for episode_tokens, seq in zip(tokens, seen["sequences"], strict=False):
        trained = [a for a, m in zip(seq.advantages, seq.loss_mask, strict=True) if m]
        np.testing.assert_allclose(trained, np.concatenate(episode_tokens)[: len(trained)])
