"""The bitset Minesweeper solver proves exactly what the set-based reference proves."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from minesweeper_reference import reference_deduce, reference_logic_solves, reference_place_mines

from turngym.envs.games.minesweeper_solver import (
    cells_of,
    deduce,
    flood,
    logic_solves,
    mask_of,
    mine_counts,
    neighbour_masks,
    neighbours,
    place_mines,
)


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
def test_place_mines_draws_the_same_layouts_as_the_reference(rows, cols, n, no_guess):
    for seed in range(12):
        first = (seed * 7) % (rows * cols)
        assert place_mines(rows, cols, n, seed, first, no_guess) == reference_place_mines(
            rows, cols, n, seed, first, no_guess
        )
