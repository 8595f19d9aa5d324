"""Known-answer and behaviour tests for turngym/Expedition-v0."""

from __future__ import annotations

import numpy as np
import pytest

import turngym
from turngym.envs.games.expedition import Expedition
from turngym.envs.games.expedition_world import World, generate_world, plan

# Start (2, 1); workbench (1, 2); trees (1, 3), (1, 4), (3, 3); ore (3, 2); river column 5;
# chest (1, 6). Wood: 2 for the pickaxe + 1 bridge section; key: 1 ore.
ROWS = ["########", "#.WTT~C#", "#....~.#", "#.oT.~.#", "########"]
TASK = {"rows": ROWS, "start": [2, 1], "river": [5, 1], "ore_needed": 1}


def reset(task=TASK, **kwargs):
    env = Expedition(**kwargs)
    obs, info = env.reset(options={"task": task})
    return env, obs, info


def act(env, *commands):
    out = None
    for command in commands:
        out = env.step(f"<action>{command}</action>")
    return out


def test_known_quest_walkthrough_and_sparse_reward():
    env, obs, info = reset()
    assert "[ ] wood" in obs and info["privileged"]["subgoal"] == "wood"
    act(env, "east", "north")  # the workbench blocks the way north
    assert env.world.pos == (2, 2)
    act(env, "east", "chop north", "east", "chop north", "west", "chop south")
    assert env.world.inventory["wood"] == 3 and env.world.done == ["wood"]
    _, r, _, _, info = act(env, "west", "craft pickaxe")
    assert "pickaxe" in env.world.done and info["privileged"]["subgoal"] == "ore"
    act(env, "mine south", "craft key")
    assert env.world.done == ["wood", "pickaxe", "ore", "key"] and r == 0.0
    _, r, done, _, info = act(env, "east", "east", "build east", "east", "east")
    assert "crossed" in env.world.done and info["score"] == 0.0 and env.world.inventory["wood"] == 0
    _, r, done, _, info = act(env, "open north")
    assert not done and "chest" in env.world.done and info["privileged"]["subgoal"] == "home"
    assert info["privileged"]["subgoal_distance"] == 4
    act(env, "west", "west", "west")
    obs, r, done, _, info = act(env, "west")
    assert done and r == 1.0 and info["success"] and info["privileged"]["progress"] == 1.0


def test_planner_matches_a_hand_count():
    env, _, info = reset()
    # Trees: 2 moves + chop, chop, 1 move + chop (6); craft (7); ore: 2 moves + mine (10);
    # key: 2 moves + craft (13); chest: 2 moves, build, 2 moves, open (19); home: 4 moves.
    assert info["privileged"]["plan_length"] == 23
    for _ in range(23):
        *_, done, _, info = env.step(env.oracle_action())
    assert done and info["success"]


def test_shaped_reward_pays_each_milestone_once():
    env, *_ = reset(reward_mode="shaped", milestone_bonus=0.5)
    act(env, "east", "east", "chop north", "east", "chop north")
    _, r, _, _, info = act(env, "west", "chop south")
    assert r == 0.5 and info["reward_components"]["milestones"] == 0.5  # "wood"
    _, r, *_ = act(env, "west", "craft pickaxe")
    assert r == 0.5


def test_rules_refuse_without_effect():
    env, *_ = reset()
    key = env.state_key()
    _, r, done, _, info = act(env, "craft pickaxe")  # not next to the workbench
    assert info["action_valid"] and not info["metrics"]["action_effective"]
    _, _, _, _, info = act(env, "mine east")
    assert info["action_valid"] and not info["metrics"]["action_effective"]
    for bad in ("fly north", "chop", "craft sword", "north east west", ""):
        _, r, done, _, info = act(env, bad)
        assert info["action_valid"] is False and r == 0 and not done
    assert env.state_key() == key


def test_partial_view_and_memory():
    env, obs, _ = reset(view=1)
    assert "?" in obs and "C" not in obs
    env2, obs2, _ = reset(view=1, memory=False)
    assert len(obs2.splitlines()[-1]) == 3  # a 3x3 window


def test_leak_check_and_malformed_task():
    env, *_ = reset()
    start = " ".join(env._plan[:6])
    assert env.leak_check(f"try {start} next") and not env.leak_check(env.instructions())
    with pytest.raises(ValueError, match="Expedition"):
        reset({"rows": ["###"], "start": [0, 0], "river": [0, 0], "ore_needed": 1})


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_generated_quests_fit_the_length_bounds(level):
    d = {**Expedition.difficulty_defaults, **Expedition.levels[level]}
    world, actions = generate_world(np.random.default_rng(level), d)
    assert d["min_plan"] <= len(actions) <= d["max_plan"]
    assert plan(World([r[:] for r in world.grid], world.pos, world.river, world.ore_needed)) == (
        actions
    )


def run_oracle(n_tasks: int, level: int | None = None) -> tuple[int, list[int]]:
    env = turngym.make("turngym/Expedition-v0")
    solved, turns = 0, []
    for seed in range(n_tasks):
        options = {"split": "test"} if level is None else {"split": "test", "level": level}
        env.reset(seed=seed, options=options)
        n = 0
        while True:
            *_, done, cut, info = env.step(env.unwrapped.oracle_action())
            n += 1
            if done or cut:
                break
        solved += info["success"]
        turns.append(n)
    return solved, turns


def test_oracle_quests_are_long():
    solved, turns = run_oracle(5)
    assert solved == 5 and min(turns) >= 100


@pytest.mark.slow
def test_oracle_solves_200_test_tasks_in_100_plus_turns():
    solved, turns = run_oracle(200)
    assert solved >= 198 and sum(turns) / len(turns) >= 100
