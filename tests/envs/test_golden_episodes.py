"""Recorded episodes of every env are unchanged (speed work must not move any value).

The golden digests were recorded from the code before the hot paths were optimised; see
``golden_episodes.py`` for what is recorded and how to regenerate on purpose.
"""

from __future__ import annotations

import json

import pytest
from golden_episodes import GOLDEN, canonical, digest, env_ids, record

_SLOW = {"turngym/ConnectFour-v0", "turngym/Shop-v0"}  # deep minimax oracle / index build
_GOLDEN = json.loads(GOLDEN.read_text())


def test_every_recorded_env_is_still_registered_and_vice_versa():
    assert sorted(_GOLDEN) == env_ids()


@pytest.mark.parametrize(
    "env_id",
    [pytest.param(e, marks=pytest.mark.slow) if e in _SLOW else e for e in sorted(_GOLDEN)],
)
def test_recorded_episodes_are_identical(env_id):
    got = record(env_id)
    assert sorted(got) == sorted(_GOLDEN[env_id])
    for key, digests in _GOLDEN[env_id].items():
        steps = got[key]
        pairs = enumerate(zip(steps, digests, strict=False))
        first = next((i for i, (a, b) in pairs if a != b), None)
        assert first is None and len(steps) == len(digests), (
            f"{env_id} {key}: first difference at record {first} "
            f"({len(steps)} records now, {len(digests)} recorded)"
        )


def test_digest_tells_container_and_number_types_apart():
    assert digest((1, 2)) != digest([1, 2])
    assert digest(1) != digest(1.0) != digest(True)
    assert digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1})
    assert canonical({1: 0.1}) == {"dict": [["1", {"float": "0.1"}]]}


@pytest.mark.parametrize(
    "env_id", ["turngym/SearchQA-v0", pytest.param("turngym/Shop-v0", marks=pytest.mark.slow)]
)
def test_search_envs_record_the_same_episodes_with_the_numpy_backend(env_id, monkeypatch):
    from turngym.retrieval import bm25

    monkeypatch.setattr(bm25, "DEFAULT_BACKEND", "numpy")
    assert record(env_id) == _GOLDEN[env_id]


@pytest.mark.parametrize(
    "env_id",
    ["turngym/TicTacToe-v0", "turngym/Wordle-v0",
     pytest.param("turngym/ConnectFour-v0", marks=pytest.mark.slow)],  # fmt: skip
)
def test_recorded_episodes_are_identical_with_tasks_drawn_through_split_tables(
    env_id, monkeypatch
):
    # Envs whose tasks are a few rng.integers(n) draws: drawn through the compiled split
    # tables from the first draw (turngym._split_table), the episodes are the recorded ones.
    pytest.importorskip("numba")
    from turngym import _split_table, task_cache

    monkeypatch.setattr(_split_table, "WARM_UP", 0)
    task_cache.clear_task_cache()
    try:
        test_recorded_episodes_are_identical(env_id)
        assert [t for t in task_cache._TABLES.values() if not t.off and t.drawn]
    finally:
        task_cache.clear_task_cache()
