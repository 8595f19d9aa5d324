"""Learned critics, plug validation and the reverse-turn schedule (tiny models, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from turngym.agents.tiny import build_tiny
from turngym.trainers.config import TrainConfig
from turngym.trainers.credit import Credit, TurnBatch, UnknownParameterError
from turngym.trainers.credit.values import ValueTargets
from turngym.trainers.critic import ValueCritic, explained_variance
from turngym.trainers.plugs import check_method
from turngym.trainers.replay_critic import TwinQCritic
from turngym.trainers.schedules import ReverseTurnSchedule
from turngym.trainers.tokens import TrainingSequence
from turngym.types import Episode, Group, TokenTrace, Turn

WORDS = ["<action>", "</action>", "up", "down", "left", "right", "room", "a", "b", "c"]


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return build_tiny(WORDS, d_model=16, n_layers=1, n_heads=2)


def _batch(rewards_per_episode, completion=(9, 10)):
    groups = []
    episodes = []
    for e, rewards in enumerate(rewards_per_episode):
        turns = tuple(
            Turn(t, "agent", f"room {t}", "<action>up</action>", r, t == len(rewards) - 1,
                 False, None, True,
                 trace=TokenTrace((2, 13 + t % 3, 14), tuple(completion),
                                  (-0.1,) * len(completion)))
            for t, r in enumerate(rewards)
        )  # fmt: skip
        episodes.append(Episode(f"e{e}", "toy-v0", "task", 0, "train", turns, 0.0, False))
    groups.append(Group("g", "task", tuple(episodes)))
    return TurnBatch.from_groups(groups)


def test_value_critic_positions_and_zero_init(tiny):
    model, tokenizer = tiny
    critic = ValueCritic(model, tokenizer, d_model=16, layers=1)
    batch = _batch([[0.0, 1.0], [0.5]])
    values = critic.values(batch)
    assert values.positions.tolist() == [3, 3, 3]  # two completion tokens + 1 each
    assert values.lengths.tolist() == [2, 2, 2]
    assert np.all(values.head("value") == 0.0)  # zero-initialised head
    assert len(values.pieces[0]) == 2 and critic.values(batch) is values  # cached


@pytest.mark.parametrize("model_kind", ["separate", "shared"])
def test_value_critic_fits_its_targets(tiny, model_kind):
    model, tokenizer = tiny
    critic = ValueCritic(model, tokenizer, model=model_kind, d_model=16, layers=1, lr=0.05,
                         value_clip=None, epochs=1)  # fmt: skip
    batch = _batch([[0.0, 1.0], [0.5], [0.0, 0.0, 1.0]])
    target = np.array([1.0, 1.0, 0.5, 1.0, 1.0, 1.0])
    credit = Credit(np.zeros(6), value_targets={"value": ValueTargets.per_turn(target)})
    losses = []
    for step in range(25):
        losses.append(critic.after_credit(batch, credit, step)["critic_value_loss"])
        critic._cache = None  # re-score with the updated critic, as a new iteration would
        critic.values(batch)
    assert losses[-1] < 0.25 * losses[0]
    before = critic.values(batch).head("value").copy()
    clone = ValueCritic(model, tokenizer, model=model_kind, d_model=16, layers=1)
    clone.load_state_dict(critic.state_dict())
    np.testing.assert_allclose(clone.values(batch).head("value"), before, atol=1e-6)


def test_value_clipping_limits_the_step(tiny):
    model, tokenizer = tiny
    critic = ValueCritic(model, tokenizer, d_model=16, layers=1, lr=0.5, value_clip=0.01)
    batch = _batch([[1.0]])
    credit = Credit(np.zeros(1), value_targets={"value": ValueTargets.per_turn([5.0])})
    metrics = critic.after_credit(batch, credit, 0)
    assert metrics["critic_clip_frac"] >= 0.0 and metrics["critic_explained_var"] == 0.0


@pytest.mark.slow
def test_twin_q_critic_learns_td_targets(tiny):
    model, tokenizer = tiny
    critic = TwinQCritic(model, tokenizer, d_model=16, layers=1, lr=0.02, steps=20, tau=0.5,
                         gamma=0.5)  # fmt: skip
    batch = _batch([[0.0, 1.0], [1.0]])
    first = critic.before_credit(batch, 0)
    assert first["critic_buffer"] == 3.0
    for step in range(1, 6):
        last = critic.before_credit(batch, step)
    assert last["critic_buffer"] == 18.0
    assert last["critic_q_loss"] < first["critic_q_loss"]
    values = critic.values(batch)
    q = values.at("q1", "after")
    assert q[1] > q[0] - 0.05  # terminal reward 1 versus 0 + 0.5 * V(s')
    restored = TwinQCritic(model, tokenizer, d_model=16, layers=1)
    restored.load_state_dict(critic.state_dict())
    assert len(restored.buffer) == 18
    np.testing.assert_allclose(restored.values(batch).head("q1"), values.head("q1"), atol=1e-6)


def test_explained_variance():
    assert explained_variance(np.ones(3), np.ones(3)) == 0.0
    assert explained_variance(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 1.0


def test_plug_options_are_checked_before_training():
    with pytest.raises(UnknownParameterError, match="Did you mean 'value_clip'"):
        check_method(TrainConfig(estimator="ppo_gae", critic_params={"value_clp": 0.1}))
    with pytest.raises(ValueError, match="has no critic"):
        check_method(TrainConfig(estimator="grpo", critic_params={"lr": 0.1}))
    with pytest.raises(ValueError, match="sequence_mode='turn'"):
        check_method(TrainConfig(estimator="seeupo", sequence_mode="episode"))
    with pytest.raises(UnknownParameterError, match="branches"):
        check_method(TrainConfig(estimator="tree_grpo", strategy_params={"branchs": 2}))
    assert check_method(TrainConfig(estimator="hiper")).critic.name == "value"


def _seq(episode, turn, advantage):
    return TrainingSequence(
        input_ids=(1, 2, 3), loss_mask=(0, 1, 1), advantages=(0.0, advantage, advantage),
        old_logprobs=(0.0,) * 3, prompt_length=1, episode_index=episode, turn_indices=(turn,),
    )


def test_reverse_turn_schedule_order_and_ratio():
    # Episode 0 has turns 0, 1; episode 1 has turn 0 only. The update of turn 1 moves the
    # log-probs of episode 0's sequence by +0.3 per token -> M = clip(e^0.3) = 1.2, which
    # scales episode 0's turn-0 advantage; episode 1 (no later turn) keeps its own.
    sequences = [_seq(0, 0, 1.0), _seq(0, 1, 2.0), _seq(1, 0, -1.0)]
    seen, shift = [], {}

    def optimize(batch, iteration):
        seen.append([(s.turn_indices[0], s.episode_index, s.advantages[1]) for s in batch])
        for s in batch:
            shift[(s.episode_index, s.turn_indices[0])] = 0.3
        return {"loss": 1.0}

    def logprobs(batch):
        return [torch.full((3,), shift.get((s.episode_index, s.turn_indices[0]), 0.0))
                for s in batch]  # fmt: skip

    out = ReverseTurnSchedule().update(sequences, 0, optimize=optimize, logprobs=logprobs)
    assert seen[0] == [(1, 0, 2.0)]
    assert seen[1] == [(0, 0, pytest.approx(1.2)), (0, 1, -1.0)]
    assert out["seeupo_turn_updates"] == 2.0 and out["loss"] == 1.0


def test_switch_subgoal_format_reaches_prompt_and_vocabulary():
    from turngym.trainers.credit.hiper import FORMAT_INSTRUCTIONS
    from turngym.trainers.plugs import format_env, tiny_source

    config = TrainConfig(env="turngym/FrozenLake-v0", estimator="hiper",
                         output_format="switch_subgoal")  # fmt: skip
    env = format_env(config.env, config)()
    _, info = env.reset(seed=0)
    assert info["instructions"].endswith(FORMAT_INSTRUCTIONS)
    assert {"<switch>", "</subgoal>", "KEEP"} <= set(tiny_source(config))
    plain = TrainConfig(env="turngym/FrozenLake-v0")
    assert format_env(plain.env, plain) == plain.env and tiny_source(plain) == plain.env
    with pytest.raises(ValueError, match="output_format"):
        TrainConfig(output_format="xml")


def test_every_method_builds_from_its_name_with_the_bench_recipe():
    # turngym bench builds TrainConfigs from estimator names only: every part must follow.
    from turngym.evals.bench import DEFAULT_RECIPE
    from turngym.trainers.credit import estimator_registry, resolve_estimator
    from turngym.trainers.trainer import _CAPABILITIES

    for name in estimator_registry.names():
        if name.startswith("test_"):
            continue
        resolve_estimator(name, {}, _CAPABILITIES)
        check_method(TrainConfig(**DEFAULT_RECIPE, estimator=name))


def test_list_estimators_shows_method_parts():
    import io

    from turngym.cli import main

    out = io.StringIO()
    assert main(["list", "estimators"], stdout=out) == 0
    lines = {line.split()[0]: line for line in out.getvalue().splitlines()}
    assert "critic twin_q" in lines["archer"] and "strategy tree" in lines["tree_grpo"]
    assert "schedule reverse_turn" in lines["seeupo"]
    assert not any(part in lines["grpo"] for part in ("critic", "strategy", "schedule"))
