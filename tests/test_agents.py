from __future__ import annotations

import json

import pytest

from turngym.agents import OracleAgent, RandomAgent, ReplayAgent, make_agent
from turngym.registry import UnknownNameError
from turngym.rollout import collect


def test_make_agent_by_name(tmp_path):
    assert isinstance(make_agent("random", seed=2), RandomAgent)
    assert isinstance(make_agent("oracle"), OracleAgent)
    with pytest.raises(UnknownNameError, match="Did you mean 'oracle'"):
        make_agent("oracel")
    with pytest.raises(ValueError, match="replay needs a file"):
        make_agent("replay")
    with pytest.raises(FileNotFoundError):
        make_agent(f"replay:{tmp_path / 'missing.jsonl'}")


def test_replay_reproduces_a_recorded_collection(tmp_path, counter_id):
    recorded = collect(counter_id, RandomAgent(seed=9), tasks=4, group_size=2)
    path = tmp_path / "episodes.jsonl"
    path.write_text("".join(json.dumps(ep.to_dict()) + "\n" for g in recorded for ep in g.episodes))
    replayed = collect(counter_id, make_agent(f"replay:{path}"), tasks=4, group_size=2)
    strip = lambda gs: [ep.to_dict() | {"metrics": {}} for g in gs for ep in g.episodes]  # noqa: E731
    assert strip(replayed) == strip(recorded)


def test_replay_rejects_corrupt_files(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"episode_id": "x"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: not an episode record"):
        ReplayAgent(path)


def test_random_agent_actions_do_not_depend_on_batch_composition(counter_id):
    alone = collect(counter_id, RandomAgent(seed=1), tasks=[3], group_size=1)
    batched = collect(counter_id, RandomAgent(seed=1), tasks=[0, 1, 2, 3], group_size=1)
    assert [t.action for t in alone[0].episodes[0].turns] != [] and [
        t.action for t in alone[0].episodes[0].turns
    ] == [t.action for t in batched[3].episodes[0].turns]
