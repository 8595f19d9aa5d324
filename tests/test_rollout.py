from __future__ import annotations

import asyncio
import json

import pytest

from turngym.agents import OracleAgent, RandomAgent, ScriptedAgent
from turngym.agents.base import ActionResult, BaseAgent
from turngym.rollout import acollect, collect


class SpyAgent(BaseAgent):
    """Records every conversation it is shown and how often it was called."""

    def __init__(self, action: str = "<action>inc</action>") -> None:
        self.calls: list[int] = []
        self.seen: list = []
        self.action = action

    def act_batch(self, conversations):
        self.calls.append(len(conversations))
        self.seen.extend(conversations)
        return [ActionResult(self.action) for _ in conversations]


def test_groups_start_from_identical_observations(counter_id):
    groups = collect(counter_id, RandomAgent(seed=3), tasks=6, group_size=4)
    assert len(groups) == 6
    for group in groups:
        first = {ep.turns[0].observation for ep in group.episodes}
        assert len(first) == 1
        assert {ep.task_id for ep in group.episodes} == {group.task_id}
        assert group.group_id == f"{group.task_id}@0"


def test_spy_agent_never_sees_privileged_data(counter_id):
    spy = SpyAgent()
    groups = collect(counter_id, spy, tasks=8, group_size=2)
    text = json.dumps([[c.instructions, c.turns, c.observation] for c in spy.seen])
    assert "THE-TARGET-IS" not in text and "privileged" not in text
    for group in groups:
        for ep in group.episodes:
            # the engine kept it on the episode, for trainers, and out of every turn's info
            assert ep.privileged["secret"].startswith("THE-TARGET-IS-")
            assert all("privileged" not in t.info for t in ep.turns)


def test_lockstep_one_call_per_tick(counter_id):
    spy = SpyAgent("<action>dec</action>")  # never reaches a positive target: runs to the limit
    collect(counter_id, spy, tasks=5, group_size=3, max_turns=4)
    assert spy.calls == [15, 15, 15, 15]


def test_state_key_is_the_state_the_action_was_taken_from(counter_id):
    [group] = collect(
        counter_id, ScriptedAgent(["<action>inc</action>"] * 3), tasks=[0], max_turns=3
    )
    keys = [t.state_key for t in group.episodes[0].turns]
    assert keys[0] == "v=0"
    assert keys[1:] == [f"v={i}" for i in range(1, len(keys))]


def test_oracle_solves_and_outcome_recorded(counter_id):
    groups = collect(counter_id, OracleAgent(), tasks=10, group_size=2)
    episodes = [ep for g in groups for ep in g.episodes]
    assert all(ep.success and ep.outcome == 1.0 and ep.error is None for ep in episodes)
    assert all(ep.num_turns == ep.privileged["target"] for ep in episodes)


def test_turn_limit_truncates(counter_id):
    [group] = collect(counter_id, ScriptedAgent(["nonsense"]), tasks=[1], max_turns=5)
    ep = group.episodes[0]
    assert ep.num_turns == 5 and ep.truncated and not ep.success
    assert [t.action_valid for t in ep.turns] == [False] * 5
    assert ep.turns[-1].truncated and not any(t.truncated for t in ep.turns[:-1])


def test_spec_limit_used_by_default(counter_id):
    [group] = collect(counter_id, ScriptedAgent(["x"]), tasks=[0])
    assert group.episodes[0].num_turns == 15  # max_episode_steps of the registration


def test_env_exception_is_recorded_not_dropped(counter_id):
    groups = collect(
        counter_id,
        ScriptedAgent(["<action>dec</action>"]),
        tasks=3,
        group_size=2,
        env_kwargs={"fail_at_turn": 2},
        max_turns=10,
    )
    episodes = [ep for g in groups for ep in g.episodes]
    assert len(episodes) == 6
    for ep in episodes:
        assert ep.error is not None and "simulated env crash" in ep.error
        assert ep.num_turns == 1 and not ep.success and ep.outcome == 0.0


def test_episode_timeout_with_worker_pool(counter_id):
    groups = collect(
        counter_id,
        ScriptedAgent(["<action>dec</action>"]),
        tasks=2,
        group_size=1,
        env_kwargs={"sleep": 0.05},
        episode_timeout=0.12,
        workers=2,
        max_turns=50,
    )
    for ep in (ep for g in groups for ep in g.episodes):
        assert ep.error is not None and "TimeoutError" in ep.error
        assert 1 <= ep.num_turns < 50


def test_max_concurrent_reuses_envs_and_keeps_order(counter_id):
    spy = SpyAgent("<action>dec</action>")
    groups = collect(counter_id, spy, tasks=4, group_size=2, max_concurrent=3, max_turns=2)
    assert max(spy.calls) <= 3
    assert [g.episodes[0].seed for g in groups] == [0, 1, 2, 3]
    assert [ep.episode_id for ep in groups[1].episodes] == ["test/1@0/0", "test/1@0/1"]


def test_collect_is_deterministic(counter_id):
    a = collect(counter_id, RandomAgent(seed=5), tasks=5, group_size=3)
    b = collect(counter_id, RandomAgent(seed=5), tasks=5, group_size=3, max_concurrent=4)
    dump = lambda gs: [ep.to_dict() | {"metrics": {}} for g in gs for ep in g.episodes]  # noqa: E731
    assert dump(a) == dump(b)


def test_episode_roundtrips_through_json(counter_id):
    from turngym.types import Episode

    [group] = collect(counter_id, OracleAgent(), tasks=[4], group_size=1)
    ep = group.episodes[0]
    assert Episode.from_dict(json.loads(json.dumps(ep.to_dict()))) == ep


def test_acollect_matches_collect(counter_id):
    spy = SpyAgent()
    groups = asyncio.run(acollect(counter_id, spy, tasks=3, group_size=2, max_turns=6))
    sync = collect(counter_id, SpyAgent(), tasks=3, group_size=2, max_turns=6)
    assert [ep.to_dict() | {"metrics": {}} for g in groups for ep in g.episodes] == [
        ep.to_dict() | {"metrics": {}} for g in sync for ep in g.episodes
    ]


def test_bad_arguments_fail_before_work(counter_id):
    with pytest.raises(ValueError, match="group_size"):
        collect(counter_id, RandomAgent(), tasks=1, group_size=0)
    with pytest.raises(ValueError, match="episode_timeout"):
        collect(counter_id, RandomAgent(), tasks=1, episode_timeout=0)
    with pytest.raises(KeyError, match="Did you mean"):
        collect("test/Countr-v0", RandomAgent(), tasks=1)


def test_agent_returning_wrong_count_is_a_clear_error(counter_id):
    class Broken(BaseAgent):
        def act_batch(self, conversations):
            return []

    with pytest.raises(RuntimeError, match="returned 0 actions for 2"):
        collect(counter_id, Broken(), tasks=2)


def test_slow_envs_step_in_a_worker_pool_with_identical_results(counter_id):
    from toy_envs import Counter, SlowCounter

    inline = collect(lambda: Counter(), RandomAgent(seed=2), tasks=4, group_size=2, max_turns=8)
    pooled = collect(lambda: SlowCounter(), RandomAgent(seed=2), tasks=4, group_size=2, max_turns=8)

    def strip(gs):
        return [ep.to_dict() | {"metrics": {}, "env_id": ""} for g in gs for ep in g.episodes]

    assert strip(inline) == strip(pooled)


def test_progress_bar_runs(counter_id, capsys):
    groups = collect(counter_id, OracleAgent(), tasks=3, group_size=2, progress=True)
    assert len(groups) == 3


def test_acollect_drives_reference_agents(counter_id):
    groups = asyncio.run(acollect(counter_id, OracleAgent(), tasks=3, group_size=2))
    assert all(ep.success for g in groups for ep in g.episodes)
