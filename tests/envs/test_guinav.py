"""Known-answer and behaviour tests for turngym/GUINav-v0."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import turngym
from turngym.envs.gui.apps import App, generate_app, solve
from turngym.envs.gui.env import GUINav

# Home: [1] button Settings, [2] switch Wi-Fi (off). Settings: [1] switch Unlock (off),
# [2] button Display (locked until Unlock is on), [3] text. Display: [1] textbox Name,
# [2] switch Dark mode (off), [3] text, [4] text (viewport 2: two pages).
TASK = {
    "app": "Demo Settings",
    "viewport": 2,
    "screens": [
        {"title": "Home", "parent": -1, "widgets": [0, 1]},
        {"title": "Settings", "parent": 0, "widgets": [2, 3, 4]},
        {"title": "Display", "parent": 1, "widgets": [5, 6, 7, 8]},
    ],
    "widgets": [
        {"role": "button", "label": "Settings", "target": 1},
        {"role": "switch", "label": "Wi-Fi", "value": False},
        {"role": "switch", "label": "Unlock", "value": False},
        {"role": "button", "label": "Display", "target": 2, "lock": [2, True]},
        {"role": "text", "label": "Version 1"},
        {"role": "textbox", "label": "Name", "value": ""},
        {"role": "text", "label": "Hello"},
        {"role": "switch", "label": "Dark mode", "value": False},
        {"role": "text", "label": "Bye"},
    ],
    "goals": [{"kind": "toggle", "widget": 7, "value": True}],
}


def reset(task=TASK, **kwargs):
    env = GUINav(**kwargs)
    obs, info = env.reset(options={"task": task})
    return env, obs, info


def test_known_plan_unlocks_then_scrolls():
    env, obs, info = reset()
    # Settings, unlock, Display, scroll to page 2, flip Dark mode (the 3rd widget).
    assert info["privileged"]["optimal_plan"] == [
        "click 1", "click 1", "click 2", "scroll down", "click 3"]  # fmt: skip
    assert info["privileged"]["goal_paths"] == [["Home", "Settings", "Display"]]
    assert obs.splitlines()[0] == "Screen: Home  (page 1 of 1)"
    assert '[2] switch "Wi-Fi" off' in obs


def test_locked_button_then_success_with_sparse_reward():
    env, *_ = reset()
    env.step("<action>click 1</action>")
    obs, reward, done, _, info = env.step("<action>click 2</action>")
    assert "disabled" in obs and reward == 0.0 and info["action_valid"] is True
    assert info["metrics"]["action_effective"] is False
    for action in ("click 1", "click 2", "scroll down"):
        obs, reward, done, _, info = env.step(f"<action>{action}</action>")
    assert "Dark mode" in obs and not done
    obs, reward, done, _, info = env.step("<action>click 3</action>")
    assert done and reward == 1.0 and info["success"] and info["score"] == 1.0


def test_shaped_rewards_goal_bonus_and_undo():
    task = {**TASK, "goals": [{"kind": "toggle", "widget": 1, "value": True},
                              {"kind": "type", "widget": 5, "value": "nova-12"}]}  # fmt: skip
    env, *_ = reset(task, reward_mode="shaped", goal_bonus=0.25)
    _, r, done, _, info = env.step("<action>click 2</action>")
    assert r == 0.25 and not done and info["reward_components"]["goals"] == 0.25
    _, r, *_ = env.step("<action>click 2</action>")
    assert r == -0.25  # undoing a goal costs its bonus again


def test_type_sets_value_and_invalid_actions_change_nothing():
    task = {**TASK, "goals": [{"kind": "type", "widget": 5, "value": "nova-12"}]}
    env, *_ = reset(task)
    key = env.state_key()
    for bad in ("click 9", "type 1 x", "scroll sideways", "dance", "click", "back now"):
        _, r, done, _, info = env.step(f"<action>{bad}</action>")
        assert info["action_valid"] is False and r == 0 and not done and env.state_key() == key
    env.values[2] = True  # unlock, then go to Display and type
    env.step("<action>click 1</action>")
    env.step("<action>click 2</action>")
    _, r, done, _, info = env.step("<action>type 1 nova-12</action>")
    assert done and r == 1.0 and env.values[5] == "nova-12"


def test_back_goes_to_parent_and_scroll_limits():
    env, *_ = reset()
    _, _, _, _, info = env.step("<action>back</action>")
    assert info["metrics"]["action_effective"] is False  # already on Home
    env.step("<action>click 1</action>")
    obs, *_ = env.step("<action>scroll down</action>")
    assert "page 2 of 2" in obs
    _, _, _, _, info = env.step("<action>scroll down</action>")
    assert info["metrics"]["action_effective"] is False
    obs, *_ = env.step("<action>back</action>")
    assert "Screen: Home  (page 1 of 1)" in obs.splitlines()


def test_state_key_is_screen_page_and_values():
    env, _, info = reset()
    assert info["state_key"] == "0|0|,0,0,,,,,0,"
    env.step("<action>click 2</action>")
    assert env.state_key() == "0|0|,1,0,,,,,0,"


def test_leak_check_flags_plan_and_goal_path():
    env, *_ = reset()
    assert env.leak_check("click 1, click 1, click 2, scroll down, click 3")
    assert env.leak_check("go Home > Settings > Display")
    assert env.leak_check(env.instructions()) == []


def test_malformed_task_is_one_clear_error():
    with pytest.raises(ValueError, match="GUINav"):
        reset({**TASK, "goals": [{"kind": "toggle", "widget": 99, "value": True}]})
    with pytest.raises(ValueError, match="needs 'screens'"):
        reset({"widgets": []})


def test_bad_knobs_fail_early():
    with pytest.raises(ValueError, match="screens"):
        GUINav(screens=0)
    with pytest.raises(ValueError, match="goal_kinds"):
        GUINav(goal_kinds=["swipe"])


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), screens=st.integers(1, 25), locks=st.integers(0, 4),
       goals=st.integers(1, 3))  # fmt: skip
def test_generated_apps_are_solvable_and_plans_replay(seed, screens, locks, goals):
    d = {**GUINav.difficulty_defaults, "screens": screens, "locks": locks, "goals": goals}
    app = generate_app(np.random.default_rng(seed), d)
    app = App.from_task(app.to_task())  # the JSON round trip keeps everything
    plan = solve(app, 0, 0, app.initial_values())
    assert plan is not None
    env, *_ = reset(app.to_task())
    for i, action in enumerate(plan):
        _, _, done, _, info = env.step(f"<action>{action}</action>")
        assert info["action_valid"] and done == (i == len(plan) - 1)


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_oracle_solves_test_tasks(level):
    env = turngym.make("turngym/GUINav-v0")
    for seed in range(30):
        env.reset(seed=seed, options={"split": "test", "level": level})
        while True:
            *_, done, cut, info = env.step(env.unwrapped.oracle_action())
            if done or cut:
                break
        assert info["success"], (level, seed)


@pytest.mark.slow
def test_oracle_solves_200_test_tasks_per_level():
    env = turngym.make("turngym/GUINav-v0")
    for level in (0, 1, 2, 3):
        solved = 0
        for seed in range(200):
            env.reset(seed=seed, options={"split": "test", "level": level})
            while True:
                *_, done, cut, info = env.step(env.unwrapped.oracle_action())
                if done or cut:
                    break
            solved += info["success"]
        assert solved >= 198, (level, solved)
