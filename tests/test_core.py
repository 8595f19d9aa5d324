from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import turngym
from turngym.core import InvalidActionPenalty, TextSpace, parse_action
from turngym.tasks import (
    SPLITS,
    draw_task,
    load_tasks_file,
    resolve_difficulty,
    split_of,
    task_id_of,
)


@pytest.mark.parametrize(
    ("text", "content"),
    [
        ("<action>up</action>", "up"),
        ("<ACTION> Up </Action>", "Up"),
        ("<action>left</action> then <action>right</action>", "right"),  # the last one wins
        ("<think>maybe <action>down</action></think><action>up</action>", "up"),
        ("<action><action>up</action>", "up"),  # nested: innermost well-formed pair
        ("<action>up", None),
        ("<action></action>", None),
        ("up", None),
        ("<think><action>up</action></think>", None),  # only inside thinking: not an action
    ],
)
def test_parse_action(text, content):
    assert parse_action(text).content == content


def test_parse_action_errors_say_what_to_do():
    assert parse_action("up").error == "no <action>...</action> tag found"
    assert "limit" in parse_action("x" * 100, max_chars=10).error
    assert parse_action("<search>q</search>", "search").content == "q"


@given(st.text())
@settings(max_examples=300, deadline=None)
def test_parse_action_never_raises(text):
    result = parse_action(text)
    assert (result.content is None) != (result.error is None)


def test_text_space():
    space = TextSpace(max_chars=5, examples=("a", "b"), seed=0)
    assert space.contains("abc") and not space.contains("abcdef") and not space.contains(3)
    assert {space.sample() for _ in range(50)} == {"a", "b"}
    assert space == TextSpace(max_chars=5, examples=("a", "b")) and space != TextSpace()
    assert "max_chars=5" in repr(space)
    assert pickle.loads(pickle.dumps(space)) == space


def test_resolve_difficulty_merges_and_rejects_typos():
    defaults = {"size": 4, "holes": 0.2}
    levels = {1: {"size": 6}}
    assert resolve_difficulty(defaults, levels, level=1, overrides={"holes": 0.3}) == {
        "size": 6,
        "holes": 0.3,
    }
    with pytest.raises(ValueError, match="did you mean 'size'"):
        resolve_difficulty(defaults, levels, overrides={"szie": 5})
    with pytest.raises(ValueError, match="Unknown level 7"):
        resolve_difficulty(defaults, levels, level=7)


def test_draw_task_lands_in_its_split_and_is_deterministic():
    def generate(rng):
        return {"n": int(rng.integers(0, 1000))}

    for split in SPLITS:
        tasks = [draw_task(generate, family="t", split=split, seed=s) for s in range(20)]
        assert all(split_of(t) == split for t in tasks)
        assert tasks == [draw_task(generate, family="t", split=split, seed=s) for s in range(20)]


def test_draw_task_gives_up_with_a_clear_message():
    task = {"only": 1}
    other = next(split for split in SPLITS if split != split_of(task))
    with pytest.raises(RuntimeError, match="too few distinct tasks"):
        draw_task(lambda rng: task, family="t", split=other, seed=0, max_attempts=5)


def test_task_ids_are_content_hashes():
    assert task_id_of("fl", {"a": 1, "b": 2}) == task_id_of("fl", {"b": 2, "a": 1})
    assert task_id_of("fl", {"a": 1}) != task_id_of("fl", {"a": 2})


def test_tasks_file(tmp_path, counter_id):
    path = tmp_path / "tasks.jsonl"
    path.write_text('{"task": {"target": 3}, "split": "test"}\n\n{"target": 5}\n')
    by_split = load_tasks_file(path)
    assert by_split["test"][0] == {"target": 3}
    env = turngym.make(counter_id, tasks_file=str(path))
    _, info = env.reset(seed=0, options={"split": "test"})
    assert info["privileged"]["target"] == 3
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match="tasks.jsonl:1: not valid JSON"):
        load_tasks_file(path)


def test_reset_rejects_bad_options(counter_id):
    env = turngym.make(counter_id)
    with pytest.raises(ValueError, match="Unknown reset option"):
        env.reset(seed=0, options={"spilt": "test"})
    with pytest.raises(ValueError, match="Unknown split 'tset'"):
        env.reset(seed=0, options={"split": "tset"})
    with pytest.raises(ValueError, match="did you mean 'max_target'"):
        turngym.make(counter_id, max_targt=3)


def test_explicit_task_option(counter_id):
    env = turngym.make(counter_id)
    _, info = env.reset(options={"task": {"target": 2}})
    assert info["privileged"]["target"] == 2


def test_invalid_action_contract(counter_id):
    env = turngym.make(counter_id)
    obs0, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("no tags here")
    assert reward == 0.0 and not terminated and not truncated and info["action_valid"] is False
    assert "Invalid action" in obs and obs.endswith(obs0)  # says what was wrong, state unchanged
    penalised = InvalidActionPenalty(turngym.make(counter_id), penalty=-0.5)
    penalised.reset(seed=0)
    _, reward, *_, info = penalised.step("<action>jump</action>")
    assert reward == -0.5 and info["reward_components"]["invalid_action"] == -0.5


def test_snapshot_restore_replays(counter_id):
    env = turngym.make(counter_id).unwrapped
    env.reset(seed=1)
    env.step("<action>inc</action>")
    snap = env.get_state()
    first = [env.step(a)[0] for a in ["<action>inc</action>", "<action>dec</action>"]]
    env.set_state(snap)
    assert [env.step(a)[0] for a in ["<action>inc</action>", "<action>dec</action>"]] == first
