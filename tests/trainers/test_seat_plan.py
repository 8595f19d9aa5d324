"""Who plays which seat of a multi-agent game in training and evaluation (SeatPlan)."""

import pytest

from turngym.agents import RandomAgent
from turngym.rollout import collect
from turngym.trainers.config import TrainConfig
from turngym.trainers.seats import SeatPlan

GAME = "turngym/TicTacToe-v0"


def plan(**kw):
    return SeatPlan.from_config(TrainConfig(env=GAME, **kw))


def _groups():
    # Both seats' groups of 3 tasks x 2 games, as a self-play rollout returns them.
    return collect(GAME, RandomAgent(seed=0), [0, 1, 2], 2, split="train")


def test_fixed_opponent_trains_one_seat_and_evaluates_it():
    p = plan(opponent="random", train_seat="player_1", eval_opponent="minimax")
    policy = object()
    players = p.players(policy, iteration=3)
    assert players["player_1"] is policy and players["player_0"] is p.opponent
    eval_players, seat = p.evaluation(policy)
    assert seat == "player_1" and eval_players["player_1"] is policy
    assert eval_players["player_0"] is p.eval_opponent and p.eval_opponent_spec == "minimax"
    groups = _groups()
    trained = p.trained(groups)
    assert len(groups) == 6 and len(trained) == 3
    assert {ep.seat for g in trained for ep in g.episodes} == {"player_1"}


def test_self_play_trains_every_seat_and_evaluates_the_first_against_random():
    p = plan()
    policy = object()
    assert p.train_seat is None and p.players(policy, 0) is policy
    groups = _groups()
    assert p.trained(groups) == groups
    _, seat = p.evaluation(policy)
    assert seat == "player_0" and p.eval_opponent_spec == "random"
    # With a seat named, self-play still plays both seats but trains only that one.
    only = plan(train_seat="player_0")
    assert only.players(policy, 0) is policy
    assert {ep.seat for g in only.trained(groups) for ep in g.episodes} == {"player_0"}


def test_bad_seat_settings_fail_before_anything_is_built():
    with pytest.raises(ValueError, match="its seats are player_0, player_1"):
        plan(train_seat="player_9")
    with pytest.raises(ValueError, match="invalid_action_penalty=0"):
        plan(invalid_action_penalty=-0.1)
    with pytest.raises(ValueError, match="is single-agent"):
        SeatPlan.from_config(TrainConfig(env="turngym/FrozenLake-v0", opponent="random"))
    assert SeatPlan.from_config(TrainConfig(env="turngym/FrozenLake-v0")) is None
