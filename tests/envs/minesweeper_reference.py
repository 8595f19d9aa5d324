"""The set-based Minesweeper solver as first written: the reference for the bitset solver.

Kept verbatim (renamed ``reference_*``) so the tests can prove that the optimised solver in
:mod:`turngym.envs.games.minesweeper_solver` proves exactly the same cells and accepts exactly
the same no-guess layouts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from turngym.envs.games.minesweeper_solver import MAX_LAYOUTS, flood, mine_counts, neighbours


def _constraints(
    nbrs: Sequence[Sequence[int]],
    revealed: bytearray,
    counts: Sequence[int],
    mines: set[int],
    safe: set[int],
) -> dict[frozenset[int], int]:
    """``{unknown cells around a revealed number: mines among them}`` for every number."""
    out: dict[frozenset[int], int] = {}
    for cell, shown in enumerate(revealed):
        if not shown:  # zeros count too: flood fill leaves their flagged neighbours hidden
            continue
        unknown = [
            nb for nb in nbrs[cell] if not revealed[nb] and nb not in mines and nb not in safe
        ]
        if unknown:
            out[frozenset(unknown)] = counts[cell] - sum(nb in mines for nb in nbrs[cell])
    return out


def _subset_rule(rules: dict[frozenset[int], int]) -> tuple[set[int], set[int]]:
    """Cells proved safe or mined by comparing each constraint with its supersets."""
    by_cell: dict[int, list[frozenset[int]]] = {}
    for cells in rules:
        for cell in cells:
            by_cell.setdefault(cell, []).append(cells)
    safe, mines = set(), set()
    for small, k in rules.items():
        others = {big for cell in small for big in by_cell[cell]}
        for big in others:
            if small < big:
                diff, extra = big - small, rules[big] - k
                if extra == 0:
                    safe |= diff
                elif extra == len(diff):
                    mines |= diff
    return safe, mines


def reference_deduce(
    rows: int,
    cols: int,
    revealed: bytearray,
    counts: Sequence[int],
    n_mines: int,
    known_mines: Iterable[int] = (),
) -> tuple[set[int], set[int]]:
    """Prove hidden cells safe or mined from what is visible: revealed numbers and the total.

    Uses the single-cell rules (a number's unknown neighbours hold exactly its remaining
    count, so ``0`` means all safe and ``len`` means all mines), the subset rule, and the
    total mine count as one more constraint over every unknown cell. Flags are ignored: they
    are the player's claims, not facts.

    Args:
        rows: Board height.
        cols: Board width.
        revealed: Per cell, 1 if revealed.
        counts: Adjacent-mine counts (only read for revealed cells).
        n_mines: Mines on the board.
        known_mines: Mines already proved (speeds up repeated calls).

    Returns:
        ``(safe, mines)``: hidden cells proved safe, and every cell proved to be a mine.
    """
    nbrs = neighbours(rows, cols)
    mines, safe = set(known_mines), set()
    while True:
        rules = _constraints(nbrs, revealed, counts, mines, safe)
        unknown = frozenset(
            i for i, shown in enumerate(revealed) if not shown and i not in mines and i not in safe
        )
        if unknown:
            rules[unknown] = n_mines - len(mines)
        new_safe = {c for cells, k in rules.items() if k == 0 for c in cells}
        new_mines = {c for cells, k in rules.items() if k == len(cells) for c in cells}
        if not new_safe and not new_mines:
            new_safe, new_mines = _subset_rule(rules)
        if not new_safe and not new_mines:
            return safe, mines
        safe |= new_safe
        mines |= new_mines


def reference_logic_solves(rows: int, cols: int, mines: Iterable[int], first: int) -> bool:
    """Whether :func:`deduce` clears the board from the first reveal at cell ``first``."""
    nbrs, mine_set = neighbours(rows, cols), set(mines)
    counts = mine_counts(nbrs, mine_set)
    revealed, flagged = bytearray(rows * cols), bytearray(rows * cols)
    opened = flood(first, nbrs, counts, revealed, flagged)
    known: set[int] = set()
    while opened < rows * cols - len(mine_set):
        safe, known = reference_deduce(rows, cols, revealed, counts, len(mine_set), known)
        if not safe:
            return False
        for cell in sorted(safe):
            opened += flood(cell, nbrs, counts, revealed, flagged)
    return True


def reference_place_mines(
    rows: int, cols: int, n_mines: int, seed: int, first: int, no_guess: bool
) -> tuple[tuple[int, ...], bool]:
    """Draw the layout for a first reveal at ``first``; also whether logic alone clears it.

    Mines avoid the 3x3 block around ``first``. With ``no_guess`` layouts are redrawn until
    :func:`logic_solves` holds, up to ``MAX_LAYOUTS`` draws (the last draw is kept if none
    does; the result says so).
    """
    zone = {first, *neighbours(rows, cols)[first]}  # fits: the knobs keep 9 cells free
    candidates = np.array([i for i in range(rows * cols) if i not in zone])
    rng = np.random.default_rng([seed, first])
    for _ in range(MAX_LAYOUTS if no_guess else 1):
        mines = tuple(sorted(rng.choice(candidates, size=n_mines, replace=False).tolist()))
        solvable = reference_logic_solves(rows, cols, mines, first)
        if solvable or not no_guess:
            break
    return mines, solvable
