"""Split tables (turngym._split_table): fresh draws through them are the Python path's draws.

Every env whose generator only calls ``rng.integers(n)`` is drawn both ways on the same seeds
and splits (tables forced on from the first draw, then off) and must give the same tasks and
ids; generators that use their rng otherwise, or ask for other bounds after some draws, must
still give the Python path's tasks (their table turns itself off).
"""

import numpy as np
import pytest

pytest.importorskip("numba")

import turngym  # noqa: E402
from turngym import _split_table, task_cache  # noqa: E402
from turngym.envs.multiagent.registry import make_multiagent  # noqa: E402
from turngym.tasks import SPLITS, draw_task  # noqa: E402

SEEDS = range(0, 3000, 7)


@pytest.fixture
def tables(monkeypatch):
    """Tables used from the first draw; every cache empty before and after."""
    monkeypatch.setattr(_split_table, "WARM_UP", 0)
    task_cache.clear_task_cache()
    yield task_cache._TABLES
    task_cache.clear_task_cache()


def _draws(env, options):
    out = []
    for split in SPLITS:
        for seed in SEEDS:
            env.reset(seed=seed, options={**options, "split": split})
            out.append((split, seed, env.unwrapped.task_id, env.unwrapped.task))
    return out


CASES = [
    ("turngym/TicTacToe-v0", {}, 9 * 8),
    ("turngym/TicTacToe-v0", {"level": 2}, 9 * 8 * 7 * 6),
    ("turngym/ConnectFour-v0", {"level": 0}, 6**4),
    ("turngym/Wordle-v0", {}, None),
    ("turngym/Wordle-v0", {"level": 3}, None),
    ("turngym/Wordle-v0", {"level": 4}, None),
]


@pytest.mark.parametrize(("env_id", "options", "cells"), CASES)
def test_draws_through_a_table_are_the_python_draws(tables, monkeypatch, env_id, options, cells):
    make = make_multiagent if "ConnectFour" in env_id or "TicTacToe" in env_id else turngym.make
    fast = _draws(make(env_id), options)
    [table] = tables.values()
    assert not table.off and table.drawn  # the table served them
    if cells is not None:
        assert table.codes.size == cells
    task_cache.clear_task_cache()
    monkeypatch.setattr(_split_table, "WARM_UP", 10**9)  # Python only
    assert _draws(make(env_id), options) == fast


def test_a_generator_with_unbounded_draws_turns_its_table_off(tables):
    env = turngym.make("turngym/Minesweeper-v0")
    env.reset(seed=3)
    env.reset(seed=4)
    assert all(table.off for table in tables.values())


class _Adaptive:
    """Its second bound depends on its first draw; a draw of 0 asks for a float too."""


def _adaptive(rng):
    first = int(rng.integers(3))
    second = int(rng.integers(5 if first == 1 else 4))
    extra = float(rng.random()) if first == 0 and second == 0 else None
    return {"first": first, "second": second, "extra": extra}


def _fixed_then_float(rng):
    value = int(rng.integers(6))
    return {"value": value, "noise": float(rng.random()) if value == 5 else 0.0}


@pytest.mark.parametrize("generate", [_adaptive, _fixed_then_float])
def test_generators_that_change_their_draws_get_the_python_draws(tables, generate):
    for split in SPLITS:
        for seed in range(400):
            key = (_Adaptive, split, seed, generate.__name__)
            task, _ = task_cache.cached_draw(key, generate, "adaptive", lazy=True)
            assert task == draw_task(generate, family="adaptive", split=split, seed=seed)


def test_compiled_draws_that_disagree_with_numpy_turn_the_table_off(tables, monkeypatch):
    def generate(rng):
        return {"value": int(rng.integers(50))}

    def wrong(self, head, seed, want, first, stop):  # a compiled generator that draws otherwise
        return first, -1 - ((real(self, head, seed, want, first, stop)[1] + 1) % 50)

    real = _split_table.SplitTable.search
    monkeypatch.setattr(_split_table.SplitTable, "search", wrong)
    for seed in range(50):
        key = (np.ndarray, "train", seed, "wrong")
        task, _ = task_cache.cached_draw(key, generate, "wrong", lazy=True)
        assert task == draw_task(generate, family="wrong", split="train", seed=seed)
    assert all(table.off for table in tables.values())
