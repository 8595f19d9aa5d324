"""turngym estimators through verl's advantage computation (verl installed, CPU).

The episodes are real FrozenLake rollouts (ragged lengths, repeated states). They are laid out
as verl lays out a multi-turn rollout -- one row per episode, each turn's model tokens
(``response_mask`` 1) followed by the env's reply (0), the turn's reward on its last model
token -- and as verl-agent's step rows. verl's ``compute_advantage`` must give every model token
the advantage turngym assigns its turn. verl's own ``compute_advantage`` passes no non-tensor
fields, so there an episode is scored by its total reward (as verl's GRPO scores it); the
adapter's ``compute_advantage`` also carries the env's outcome and the anchors.
"""

import dataclasses
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("verl")
warnings.filterwarnings("ignore", module="verl")

from verl.protocol import DataProto  # noqa: E402
from verl.trainer.ppo.ray_trainer import compute_advantage as verl_compute_advantage  # noqa: E402

import turngym.adapters.verl as tv  # noqa: E402
from turngym.agents import RandomAgent  # noqa: E402
from turngym.rollout import collect  # noqa: E402
from turngym.trainers.credit import CreditContext, TurnBatch, resolve_estimator  # noqa: E402

ENV_TOKENS = 2


@pytest.fixture(scope="module")
def groups():
    return collect("turngym/FrozenLake-v0", RandomAgent(seed=5), [0, 1, 2], group_size=4,
                   split="train", options={"difficulty": {"size": 3}})  # fmt: skip


def scored_by_return(groups):
    """The same groups with each episode's outcome replaced by its total reward."""
    return [dataclasses.replace(g, episodes=tuple(
        dataclasses.replace(ep, outcome=ep.total_reward) for ep in g.episodes))
        for g in groups]  # fmt: skip


def _width(t):
    return 1 + t % 3  # model tokens of turn t: ragged, so spans are not all alike


def trajectory_rows(groups):
    """verl's layout: one row per episode; returns the batch and each turn's token span."""
    # uid = the group's position: two seeds may draw the same small map (the same task id).
    episodes = [(f"prompt{i}", ep) for i, g in enumerate(groups) for ep in g.episodes]
    length = max(sum(_width(t) + ENV_TOKENS for t in range(len(ep.turns))) for _, ep in episodes)
    mask = torch.zeros(len(episodes), length + 3, dtype=torch.int64)
    rewards = torch.zeros(mask.shape, dtype=torch.float32)
    spans = []
    for row, (_, ep) in enumerate(episodes):
        pos = 0
        for t, turn in enumerate(ep.turns):
            mask[row, pos:pos + _width(t)] = 1
            rewards[row, pos + _width(t) - 1] = turn.reward
            spans.append((row, pos, pos + _width(t)))
            pos += _width(t) + ENV_TOKENS
    non_tensors = {
        "uid": np.array([gid for gid, _ in episodes], dtype=object),
        "outcome": np.array([ep.outcome for _, ep in episodes]),
        "anchor_obs": np.array([[t.state_key for t in ep.turns] for _, ep in episodes] + [None],
                               dtype=object)[:-1],  # fmt: skip  (ragged lists, one per row)
    }
    data = DataProto.from_dict(
        tensors={"token_level_rewards": rewards, "response_mask": mask}, non_tensors=non_tensors
    )
    return data, spans


def step_rows(groups):
    """verl-agent's layout: one row per turn, with trajectory ids and per-step rewards."""
    rows = [(f"prompt{i}", ep, t) for i, g in enumerate(groups) for ep in g.episodes
            for t in ep.turns]  # fmt: skip
    mask = torch.ones(len(rows), 4, dtype=torch.int64)
    mask[:, 3] = 0
    data = DataProto.from_dict(
        tensors={"token_level_rewards": torch.zeros(mask.shape), "response_mask": mask},
        non_tensors={
            "uid": np.array([g for g, _, _ in rows], dtype=object),
            "traj_uid": np.array([e.episode_id for _, e, _ in rows], dtype=object),
            "outcome": np.array([e.outcome for _, e, _ in rows]),
            "step_rewards": np.array([t.reward for _, _, t in rows]),
            "anchor_obs": np.array([t.state_key for _, _, t in rows], dtype=object),
        },
    )
    return data, [(row, 0, 3) for row in range(len(rows))]


def expected(groups, name, spans, shape):
    credit = resolve_estimator(name)(TurnBatch.from_groups(groups), CreditContext())
    out = torch.zeros(shape)
    for value, (row, start, end) in zip(credit.advantages, spans, strict=True):
        out[row, start:end] = float(value)
    return out


def test_every_batch_only_estimator_is_registered_under_turngym_names():
    from verl.trainer.ppo import core_algos

    names = {k for k in core_algos.ADV_ESTIMATOR_REGISTRY if k.startswith("turngym_")}
    assert {"turngym_grpo", "turngym_trloo", "turngym_gigpo", "turngym_rloo"} <= names


@pytest.mark.parametrize("name", ["grpo", "trloo", "rloo"])
def test_verl_compute_advantage_matches_turngym_per_token(groups, name):
    data, spans = trajectory_rows(groups)
    out = verl_compute_advantage(data, adv_estimator=f"turngym_{name}")
    want = expected(scored_by_return(groups), name, spans, data.batch["response_mask"].shape)
    assert torch.allclose(out.batch["advantages"], want, atol=1e-6)
    assert (out.batch["advantages"][data.batch["response_mask"] == 0] == 0).all()
    assert want.abs().sum() > 0  # the rollouts are not all alike


@pytest.mark.parametrize("name", ["gigpo", "grpo", "trloo"])
def test_the_adapters_compute_advantage_matches_turngym_in_both_layouts(groups, name):
    for layout in (trajectory_rows, step_rows):
        data, spans = layout(groups)
        out = tv.compute_advantage(data, f"turngym_{name}")
        want = expected(groups, name, spans, data.batch["response_mask"].shape)
        assert torch.allclose(out.batch["advantages"], want, atol=1e-6), layout.__name__
    batch = TurnBatch.from_groups(groups)
    assert len(set(batch.state.tolist())) < batch.n_turns  # anchors repeat: A_S is not all 0


def test_gigpo_without_anchors_refuses_rather_than_dropping_its_step_level(groups):
    data, _ = trajectory_rows(groups)
    with pytest.raises(ValueError, match="anchor_obs"):
        verl_compute_advantage(data, adv_estimator="turngym_gigpo")


def test_other_estimator_names_still_go_to_verl(groups):
    data, _ = trajectory_rows(groups)
    out = tv.compute_advantage(data, "grpo")  # verl's own GRPO: outcome at the last token
    assert out.batch["advantages"].shape == data.batch["response_mask"].shape


def test_estimator_parameters_are_checked_and_applied(groups):
    with pytest.raises(ValueError, match="gama"):
        tv.register_estimators({"trloo": {"gama": 0.5}})
    try:
        tv.register_estimators({"trloo": {"gamma": 0.5}})
        data, spans = trajectory_rows(groups)
        out = verl_compute_advantage(data, adv_estimator="turngym_trloo")
        batch = TurnBatch.from_groups(scored_by_return(groups))
        credit = resolve_estimator("trloo", {"gamma": 0.5})(batch, CreditContext())
        row, start, _ = spans[0]
        assert out.batch["advantages"][row, start].item() == pytest.approx(credit.advantages[0])
    finally:
        tv.register_estimators()
