"""Minesweeper mechanics and the logic solver used by the env, its generator and its oracle.

* :func:`flood` opens a cell and, through cells with no adjacent mine, its neighbourhood.
* :func:`deduce` proves hidden cells safe or mined from the visible numbers: the single-cell
  rules, the subset rule (if one constraint's cells are a subset of another's, the difference
  holds the difference of their counts) and the total mine count.
* :func:`logic_solves` plays :func:`deduce` from a first reveal to the end; :func:`place_mines`
  uses it to draw "no-guess" layouts.
* :func:`risk_order` ranks hidden cells by a cheap estimate of their mine probability, for the
  moves where nothing is provably safe.

Cells are row-major indices ``row * cols + col``. Used by :mod:`turngym.envs.games.minesweeper`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

__all__ = [
    "MAX_LAYOUTS",
    "neighbours",
    "mine_counts",
    "flood",
    "deduce",
    "logic_solves",
    "place_mines",
    "risk_order",
]

MAX_LAYOUTS = 500
"""How many layouts :func:`place_mines` draws at most in search of a no-guess one."""


@lru_cache(maxsize=64)
def neighbours(rows: int, cols: int) -> tuple[tuple[int, ...], ...]:
    """Per cell (row-major index), the indices of its up to 8 neighbours."""
    table = []
    for cell in range(rows * cols):
        r, c = divmod(cell, cols)
        table.append(
            tuple(
                rr * cols + cc
                for rr in range(max(0, r - 1), min(rows, r + 2))
                for cc in range(max(0, c - 1), min(cols, c + 2))
                if (rr, cc) != (r, c)
            )
        )
    return tuple(table)


def mine_counts(nbrs: Sequence[Sequence[int]], mines: Iterable[int]) -> list[int]:
    """The number of adjacent mines of every cell."""
    counts = [0] * len(nbrs)
    for mine in mines:
        for nb in nbrs[mine]:
            counts[nb] += 1
    return counts


def flood(
    cell: int,
    nbrs: Sequence[Sequence[int]],
    counts: Sequence[int],
    revealed: bytearray,
    flagged: bytearray,
) -> int:
    """Reveal ``cell`` (a safe one) and, through zeros, its neighbourhood; return how many."""
    stack, opened = [cell], 0
    while stack:
        here = stack.pop()
        if revealed[here] or flagged[here]:
            continue
        revealed[here] = 1
        opened += 1
        if counts[here] == 0:
            stack.extend(nb for nb in nbrs[here] if not revealed[nb])
    return opened


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
    safe: set[int] = set()
    mines: set[int] = set()
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


def deduce(
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
    mines, safe = set(known_mines), set[int]()
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


def logic_solves(rows: int, cols: int, mines: Iterable[int], first: int) -> bool:
    """Whether :func:`deduce` clears the board from the first reveal at cell ``first``.

    Example:
        >>> logic_solves(3, 3, [0], 8), logic_solves(2, 2, [0], 3)
        (True, False)
    """
    nbrs, mine_set = neighbours(rows, cols), set(mines)
    counts = mine_counts(nbrs, mine_set)
    revealed, flagged = bytearray(rows * cols), bytearray(rows * cols)
    opened = flood(first, nbrs, counts, revealed, flagged)
    known: set[int] = set()
    while opened < rows * cols - len(mine_set):
        safe, known = deduce(rows, cols, revealed, counts, len(mine_set), known)
        if not safe:
            return False
        for cell in sorted(safe):
            opened += flood(cell, nbrs, counts, revealed, flagged)
    return True


@lru_cache(maxsize=512)
def place_mines(
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
        solvable = logic_solves(rows, cols, mines, first)
        if solvable or not no_guess:
            break
    return mines, solvable


def risk_order(
    rows: int, cols: int, revealed: bytearray, counts: Sequence[int], n_mines: int, mines: set[int]
) -> list[tuple[float, int]]:
    """Estimated mine probability of every hidden cell not proved a mine, lowest first.

    A cell next to revealed numbers gets the largest ``remaining count / unknown neighbours``
    among them; any other cell the density of the mines not yet located. A cheap local
    estimate, not the exact probability (which needs enumerating frontier configurations).
    """
    nbrs = neighbours(rows, cols)
    rules = _constraints(nbrs, revealed, counts, mines, set())
    local: dict[int, float] = {}
    for cells, k in rules.items():
        for cell in cells:
            local[cell] = max(local.get(cell, 0.0), k / len(cells))
    hidden = [i for i, shown in enumerate(revealed) if not shown and i not in mines]
    density = (n_mines - len(mines)) / max(len(hidden), 1)
    return sorted((local.get(cell, density), cell) for cell in hidden)
