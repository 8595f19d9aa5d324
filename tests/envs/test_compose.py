"""Composed tasks: boundaries, modes, budgets, splits, leaks and the registered presets."""

from __future__ import annotations

import pytest

import turngym
from turngym.envs.compose import (
    SUBTASK,
    SUBTASK_END,
    SUBTASK_SCORES,
    SUBTASK_SUCCESS,
    Composed,
    composed_ids,
)
from turngym.tasks import split_of

LAKES = ["turngym/FrozenLake-v0", "turngym/FrozenLake-v0"]


def play_oracle(env):
    records = []
    while True:
        obs, reward, done, cut, info = env.step(env.oracle_action())
        records.append((info[SUBTASK], info[SUBTASK_END], reward, info))
        if done or cut:
            return records, done, cut


def test_sequential_runs_one_task_after_the_other():
    env = Composed(envs=LAKES)
    _, info = env.reset(seed=1, options={"split": "test"})
    assert info[SUBTASK] == 0 and info[SUBTASK_SCORES] == [0.0, 0.0]
    records, done, cut = play_oracle(env)
    tasks = [r[0] for r in records]
    first_end = tasks.index(1) - 1
    assert tasks == sorted(tasks) and records[first_end][1] and records[-1][1] and done and not cut
    assert [r[1] for r in records].count(True) == 2  # exactly two boundaries
    assert records[first_end][3][SUBTASK_SCORES] == [1.0, 0.0]
    last = records[-1][3]
    assert last[SUBTASK_SUCCESS] == [True, True] and last["success"] and last["score"] == 1.0
    assert all(k.startswith(("t1/", "t2/")) for r in records for k in r[3]["reward_components"])


def test_interleaved_takes_turns_until_a_task_ends():
    env = Composed(envs=LAKES, mode="interleaved")
    obs, _ = env.reset(seed=1, options={"split": "test"})
    records, done, _ = play_oracle(env)
    tasks = [r[0] for r in records]
    n = min(tasks.count(0), tasks.count(1))
    assert tasks[: 2 * n - 1] == [0, 1] * (n - 1) + [0] and done
    obs, _ = env.reset(seed=1, options={"split": "test"})
    obs, *_ = env.step(env.oracle_action())
    assert obs.startswith("(Task 1) ") and "[Task 2 of 2, turn 1]" in obs


def test_budget_ends_a_task_and_the_last_one_times_out():
    env = Composed(envs=LAKES, turns_per_task=2)
    env.reset(seed=0, options={"split": "test"})
    flags, texts = [], []
    for _ in range(4):
        obs, reward, done, cut, info = env.step("no tags")
        flags.append((info[SUBTASK], info[SUBTASK_END], done, cut, info["action_valid"]))
        texts.append(obs)
    assert flags == [(0, False, False, False, False), (0, True, False, False, False),
                     (1, False, False, False, False), (1, True, False, True, False)]  # fmt: skip
    assert "[Task 1 is over: score 0.00.]" in texts[1] and "[Task 2 of 2, turn 1]" in texts[1]
    _, _, done, cut, info = env.step("<action>up</action>")
    assert cut and not info["action_valid"]  # after the end nothing moves


def test_subtasks_come_from_the_same_split_and_the_state_key_tracks_them():
    env = Composed(envs=["turngym/Sokoban-v0", "turngym/Maze-v0"])
    for split in ("train", "test"):
        env.reset(seed=3, options={"split": split})
        assert [split_of(s["task"]) for s in env.task["subtasks"]] == [split, split]
    key = env.state_key()
    env.step(env.oracle_action())
    assert env.state_key() != key and env.state_key().startswith("0|1:")


def test_leak_check_is_every_subenvs_own():
    env = Composed(envs=["turngym/FrozenLake-v0", "turngym/Sokoban-v0"])
    env.reset(seed=0, options={"split": "test"})
    plan = env.subs[1].privileged()["optimal_plan"]
    if len(plan) >= 3:
        assert any(p.startswith("task 2:") for p in env.leak_check(" ".join(plan)))
    assert env.leak_check(env.instructions()) == []


def test_bad_configs_fail_before_any_work():
    with pytest.raises(ValueError, match="not a registered env id"):
        Composed(envs=["turngym/Nope-v0"])
    with pytest.raises(ValueError, match="mode"):
        Composed(envs=LAKES, mode="parallel")
    with pytest.raises(ValueError, match="env_kwargs"):
        Composed(envs=LAKES, env_kwargs=[{}])
    env = Composed(envs=LAKES)
    with pytest.raises(ValueError, match="subtasks"):
        env.reset(options={"task": {"subtasks": [{"env": "turngym/Maze-v0", "task": {}}]}})


def test_env_kwargs_reach_the_subenvs():
    env = Composed(envs=["turngym/Sokoban-v0"], env_kwargs=[{"level": 1}])
    env.reset(seed=0, options={"split": "test"})
    assert env.subs[0].difficulty["boxes"] == 2


def test_presets_are_registered_with_matching_limits():
    ids = composed_ids()
    assert {"turngym/ComposedSearchQA-v0", "turngym/ComposedGames-v0"} <= set(ids)
    for env_id in ids:
        env = turngym.make(env_id)
        assert env.spec.max_episode_steps == sum(env.unwrapped.budgets)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["turngym/ComposedSearchQA-v0", "turngym/ComposedGames-v0"])
def test_oracle_solves_200_test_tasks(env_id):
    env = turngym.make(env_id)
    solved = 0
    for seed in range(200):
        _, info = env.reset(seed=seed, options={"split": "test"})
        while True:
            *_, done, cut, info = env.step(env.unwrapped.oracle_action())
            if done or cut:
                break
        solved += info["success"]
    assert solved >= 198, solved
