"""The Minesweeper solvers (bitset and compiled) prove exactly what the set-based reference
proves, and every backend draws the same layouts."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from minesweeper_reference import reference_deduce, reference_logic_solves, reference_place_mines

from turngym.envs.games import minesweeper_solver
from turngym.envs.games.minesweeper_solver import (
    _entropy_words,
    cells_of,
    deduce,
    flood,
    logic_solves,
    mask_of,
    mine_counts,
    neighbour_masks,
    neighbours,
    place_mines,
    resolve_backend,
)


def _numba_available() -> bool:
    try:
        resolve_backend("numba")
    except ValueError:
        return False
    return True


needs_numba = pytest.mark.skipif(
    not _numba_available(),
    reason="numba is not installed (pip install 'turngym[fast]'): the compiled backend is untested",
)
BACKENDS = ["python", pytest.param("numba", marks=needs_numba)]


def _board(rng: random.Random, rows: int, cols: int) -> tuple[list[int], int]:
    first = rng.randrange(rows * cols)
    zone = {first, *neighbours(rows, cols)[first]}
    free = [i for i in range(rows * cols) if i not in zone]
    low = min(1, len(free))  # a 3x3 board clicked in the middle has no room for a mine
    return sorted(rng.sample(free, rng.randint(low, max(low, len(free) // 3)))), first


def test_bitset_helpers_round_trip():
    flags = bytearray([0, 1, 0, 0, 2, 1])
    assert mask_of(flags) == 0b110010 and cells_of(0b110010) == [1, 4, 5]
    assert mask_of(bytearray()) == 0 and cells_of(0) == []
    assert neighbour_masks(2, 2) == (0b1110, 0b1101, 0b1011, 0b0111)


@settings(max_examples=150, deadline=None)
@given(st.integers(3, 9), st.integers(3, 9), st.integers(0, 2**32 - 1))
def test_logic_solves_matches_the_reference(rows, cols, seed):
    mines, first = _board(random.Random(seed), rows, cols)
    assert logic_solves(rows, cols, mines, first) == reference_logic_solves(
        rows, cols, mines, first
    )


@settings(max_examples=100, deadline=None)
@given(st.integers(3, 9), st.integers(3, 9), st.integers(0, 2**32 - 1))
def test_deduce_matches_the_reference_in_every_state_of_a_random_game(rows, cols, seed):
    rng = random.Random(seed)
    mines, first = _board(rng, rows, cols)
    nbrs = neighbours(rows, cols)
    counts = mine_counts(nbrs, mines)
    revealed, flagged = bytearray(rows * cols), bytearray(rows * cols)
    flood(first, nbrs, counts, revealed, flagged)
    safe_cells = [i for i in range(rows * cols) if i not in set(mines)]
    while True:
        known = set(rng.sample(mines, rng.randint(0, len(mines))))  # any true partial knowledge
        args = (rows, cols, revealed, counts, len(mines))
        assert deduce(*args, known) == reference_deduce(*args, known)
        hidden = [i for i in safe_cells if not revealed[i]]
        if not hidden:
            break
        flood(rng.choice(hidden), nbrs, counts, revealed, flagged)


@pytest.mark.parametrize(("rows", "cols", "n"), [(8, 8, 10), (6, 6, 4), (9, 9, 10), (5, 5, 8)])
@pytest.mark.parametrize("no_guess", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
def test_place_mines_draws_the_same_layouts_as_the_reference(rows, cols, n, no_guess, backend):
    for seed in range(12):
        first = (seed * 7) % (rows * cols)
        assert place_mines(rows, cols, n, seed, first, no_guess, backend) == (
            reference_place_mines(rows, cols, n, seed, first, no_guess)
        )


# --- Backends -----------------------------------------------------------------------------------
def _dense_board(rng: random.Random, rows: int, cols: int, density: float) -> tuple[list[int], int]:
    """A random first reveal and ``density`` of the cells outside its 3x3 block as mines."""
    first = rng.randrange(rows * cols)
    zone = {first, *neighbours(rows, cols)[first]}
    free = [i for i in range(rows * cols) if i not in zone]
    return sorted(rng.sample(free, min(len(free), max(1, round(density * len(free)))))), first


@needs_numba
@settings(max_examples=150, deadline=None)
@given(
    st.integers(3, 24),
    st.integers(3, 30),
    st.sampled_from([0.03, 0.1, 0.16, 0.22, 0.35, 0.6, 1.0]),
    st.integers(0, 2**32 - 1),
)
def test_the_compiled_solver_matches_the_reference(rows, cols, density, seed):
    mines, first = _dense_board(random.Random(seed), rows, cols, density)
    expected = reference_logic_solves(rows, cols, mines, first)
    assert logic_solves(rows, cols, mines, first, "numba") == expected


@needs_numba
def test_the_compiled_solver_matches_the_reference_on_a_sweep_of_sizes_and_densities():
    rng, verdicts = random.Random(11), Counter()
    for rows, cols in [(3, 3), (3, 30), (24, 3), (5, 7), (8, 8), (9, 9), (12, 12), (16, 30)]:
        for density in (0.08, 0.15, 0.2, 0.3, 0.5):
            for _ in range(5):
                mines, first = _dense_board(rng, rows, cols, density)
                got = logic_solves(rows, cols, mines, first, "numba")
                assert got == reference_logic_solves(rows, cols, mines, first), (rows, cols, mines)
                verdicts[got] += 1
    assert verdicts[True] >= 40 and verdicts[False] >= 40  # both verdicts well covered


@pytest.mark.parametrize("backend", BACKENDS)
def test_logic_solves_known_answers_and_bad_cells(backend):
    assert logic_solves(3, 3, [0], 8, backend) and not logic_solves(2, 2, [0], 3, backend)
    assert logic_solves(3, 4, [3, 7], 0, backend)  # the 2 at (0, 2) pins both mines
    assert logic_solves(3, 3, [], 4, backend)  # no mine: the first reveal opens everything
    assert logic_solves(3, 3, [0, 0], 8, backend)  # a repeated cell is one mine
    assert logic_solves(24, 30, [719], 0, backend)  # the largest board
    with pytest.raises(ValueError, match="0 to 8 on a 3x3 board"):
        logic_solves(3, 3, [9], 0, backend)
    with pytest.raises(ValueError, match="0 to 8"):
        logic_solves(3, 3, [0], -1, backend)


@needs_numba
@pytest.mark.parametrize(
    ("rows", "cols", "n"), [(8, 8, 10), (3, 3, 1), (4, 9, 20), (16, 16, 40), (24, 30, 99)]
)
@pytest.mark.parametrize("no_guess", [True, False])
def test_place_mines_draws_the_same_layouts_with_either_backend(rows, cols, n, no_guess):
    rng = random.Random(rows * cols + n)
    for seed in [0, 1, 2**31 - 2, 2**32, 2**40 + 3, 2**100 + 7]:  # 1 to 4 words of entropy
        first = rng.randrange(rows * cols) if rows > 3 else 0  # 3x3: room only from a corner
        assert place_mines(rows, cols, n, seed, first, no_guess, "numba") == (
            place_mines(rows, cols, n, seed, first, no_guess, "python")
        )


def test_backend_names_and_the_fallback_without_numba(monkeypatch):
    with pytest.raises(ValueError, match="Unknown Minesweeper solver backend 'fast'"):
        resolve_backend("fast")
    assert resolve_backend("python") == "python"
    monkeypatch.setattr(minesweeper_solver, "_kernel", lambda: None)  # as if numba were missing
    assert resolve_backend("auto") == "python"
    with pytest.raises(ValueError, match="pip install 'turngym\\[fast\\]'"):
        resolve_backend("numba")
    args = (8, 8, 10, 5, 27, True)
    assert place_mines.__wrapped__(*args, "auto") == reference_place_mines(*args)  # not memoised


# --- The compiled generator reproduces NumPy's ----------------------------------------------------
def _numpy_state(gen: np.ndarray) -> dict:
    hi, lo, inc_hi, inc_lo, has32, buf = (int(v) for v in gen)
    return {"state": hi << 64 | lo, "inc": inc_hi << 64 | inc_lo, "has_uint32": has32,
            "uinteger": buf if has32 else None}  # fmt: skip


def _compare_states(gen: np.ndarray, ref: np.random.Generator) -> None:
    ours, theirs = _numpy_state(gen), ref.bit_generator.state
    assert ours["state"] == theirs["state"]["state"] and ours["inc"] == theirs["state"]["inc"]
    assert ours["has_uint32"] == theirs["has_uint32"]
    assert ours["uinteger"] in (None, theirs["uinteger"])


@needs_numba
@settings(max_examples=120, deadline=None)
@given(
    st.one_of(st.integers(0, 2**32 - 1), st.integers(2**32, 2**130)),
    st.integers(0, 719),
    st.lists(st.tuples(st.integers(1, 720), st.floats(0, 1)), min_size=1, max_size=4),
)
def test_the_compiled_generator_draws_what_numpy_draws(seed, first, draws):
    from turngym import _rng_numba

    ref = np.random.default_rng([seed, first])
    gen = _rng_numba.from_entropy(_entropy_words(seed, first))
    _compare_states(gen, ref)  # SeedSequence and PCG64 seeding
    for pop, share in draws:  # consecutive draws share the stream, as place_mines' do
        size = round(share * pop)
        out, taken = np.empty(size, dtype=np.int64), np.zeros(pop, dtype=np.bool_)
        _rng_numba.choice_into(gen, pop, out, taken)
        assert out.tolist() == ref.choice(pop, size=size, replace=False).tolist()
        assert not taken.any()
        _compare_states(gen, ref)


@needs_numba
def test_the_compiled_generator_rejects_biased_draws_as_numpy_does():
    from turngym import _rng_numba

    # A buffered 32-bit half of 0 lands in Lemire's rejection zone for every bound that is not
    # a power of two (0 * span mod 2**32 = 0 < 2**32 mod span): the next draw is taken instead.
    ref = np.random.default_rng(3)
    state = ref.bit_generator.state
    state["has_uint32"], state["uinteger"] = 1, 0
    ref.bit_generator.state = state
    value, inc = state["state"]["state"], state["state"]["inc"]
    gen = np.array([value >> 64, value & (2**64 - 1), inc >> 64, inc & (2**64 - 1), 1, 0],
                   dtype=np.uint64)  # fmt: skip
    out, taken = np.empty(10, dtype=np.int64), np.zeros(55, dtype=np.bool_)
    _rng_numba.choice_into(gen, 55, out, taken)
    assert out.tolist() == ref.choice(55, size=10, replace=False).tolist()
    _compare_states(gen, ref)  # the same number of 32-bit draws consumed


@needs_numba
@pytest.mark.slow
def test_the_backends_agree_on_thousands_of_boards_and_layouts():
    rng, verdicts = random.Random(2024), Counter()
    for _ in range(4000):
        rows, cols = rng.randint(3, 24), rng.randint(3, 30)
        mines, first = _dense_board(rng, rows, cols, rng.choice([0.05, 0.12, 0.18, 0.25, 0.4]))
        got = logic_solves(rows, cols, mines, first, "numba")
        assert got == logic_solves(rows, cols, mines, first, "python"), (rows, cols, mines, first)
        verdicts[got] += 1
    assert min(verdicts.values()) >= 500
    for _ in range(300):
        rows, cols = rng.randint(4, 24), rng.randint(4, 30)
        n, seed = rng.randint(1, rows * cols // 4), rng.randrange(2 ** rng.choice([8, 31, 64]))
        args = (rows, cols, n, seed, rng.randrange(rows * cols), rng.random() < 0.8)
        assert place_mines(*args, "numba") == place_mines(*args, "python"), args
