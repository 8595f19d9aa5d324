"""Minesweeper mechanics and the logic solver used by the env, its generator and its oracle.

* :func:`flood` opens a cell and, through cells with no adjacent mine, its neighbourhood.
* :func:`deduce` proves hidden cells safe or mined from the visible numbers: the single-cell
  rules, the subset rule (if one constraint's cells are a subset of another's, the difference
  holds the difference of their counts) and the total mine count. It works on bitsets (one
  int per set of cells, :func:`closure`), so a no-guess layout is checked in well under a
  millisecond.
* :func:`logic_solves` plays :func:`deduce` from a first reveal to the end; :func:`place_mines`
  uses it to draw "no-guess" layouts.
* :func:`risk_order` ranks hidden cells by a cheap estimate of their mine probability, for the
  moves where nothing is provably safe.

**Backends.** Drawing a no-guess layout is most of a short Minesweeper episode's cost (the
default 8x8 board with 10 mines needs about 1.5 draws, each checked by :func:`logic_solves`),
so :func:`logic_solves` and :func:`place_mines` have two backends with identical results:
``"python"`` (the bitset solver here, and NumPy's ``default_rng([seed, first]).choice``) and
``"numba"`` (the ``fast`` extra: :mod:`._minesweeper_numba` applies the same rules on arrays,
about 10x faster, and draws the same layouts in the same compiled call through
:mod:`turngym._rng_numba`, which reproduces NumPy's generator; :func:`place_mines` then takes
about a tenth of the time). ``"auto"`` (:data:`DEFAULT_BACKEND`) takes numba when it imports; it is
imported on first use and compiled once per machine (cached; about 10 s on a busy core).

Cells are row-major indices ``row * cols + col``. Used by :mod:`turngym.envs.games.minesweeper`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from functools import cache, lru_cache
from types import ModuleType

import numpy as np

__all__ = [
    "DEFAULT_BACKEND",
    "MAX_LAYOUTS",
    "neighbours",
    "neighbour_masks",
    "mask_of",
    "cells_of",
    "mine_counts",
    "flood",
    "closure",
    "deduce",
    "logic_solves",
    "place_mines",
    "resolve_backend",
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
    opened: list[int] | None = None,
) -> int:
    """Reveal ``cell`` (a safe one) and, through zeros, its neighbourhood; return how many.

    Flagged cells stay hidden (and stop the fill). The cells it reveals are appended to
    ``opened`` when given.
    """
    if revealed[cell] or flagged[cell]:
        return 0
    revealed[cell] = 1
    found = [cell]
    if counts[cell] == 0:
        zeros = [cell]  # revealed zeros whose neighbours are still to be looked at
        while zeros:
            for nb in nbrs[zeros.pop()]:
                if not revealed[nb] and not flagged[nb]:  # marked when found: found once
                    revealed[nb] = 1
                    found.append(nb)
                    if counts[nb] == 0:
                        zeros.append(nb)
    if opened is not None:
        opened += found
    return len(found)


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


# --- Bitset solver ------------------------------------------------------------------------------
# A set of cells is an int with bit ``cell`` set, so the rules below are a few integer operations
# each (``a & ~b == 0`` is "a is a subset of b"). The rules are monotone (knowing more never
# makes a deduction impossible), so their closure does not depend on the order in which they are
# applied: every implementation of the same rules proves the same cells.
_BITS = b"0" + b"1" * 255  # bytes.translate table: a zero byte becomes "0", any other "1"


@lru_cache(maxsize=64)
def neighbour_masks(rows: int, cols: int) -> tuple[int, ...]:
    """Per cell, the bitset of its up to 8 neighbours (bit ``i`` = cell ``i``)."""
    return tuple(sum(1 << nb for nb in nbs) for nbs in neighbours(rows, cols))


def mask_of(flags: bytearray | bytes) -> int:
    """The bitset of the cells whose byte is non-zero (e.g. a ``revealed`` array)."""
    return int(bytes(flags).translate(_BITS)[::-1], 2) if flags else 0


def cells_of(mask: int) -> list[int]:
    """The cells of a bitset, in increasing order."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def _subset_bits(rules: dict[int, int], everything: int) -> tuple[int, int]:
    """The subset rule over bitset constraints: cells proved safe, cells proved mines.

    ``everything`` is the key of the global (total mine count) constraint, or 0; every other
    constraint has at most 8 cells, so supersets are looked up through a cell they share.
    """
    by_cell: dict[int, list[int]] = {}
    for cells in rules:
        if cells != everything:
            for cell in cells_of(cells):
                by_cell.setdefault(cell, []).append(cells)
    safe = mines = 0
    for small, k in rules.items():
        if small == everything:
            continue  # nothing is a strict superset of every unknown cell
        low = (small & -small).bit_length() - 1
        bigger = by_cell[low] + [everything] if everything else by_cell[low]
        for big in bigger:
            if small != big and not small & ~big:
                diff, extra = big & ~small, rules[big] - k
                if extra == 0:
                    safe |= diff
                elif extra == diff.bit_count():
                    mines |= diff
    return safe, mines


def closure(
    masks: Sequence[int],
    counts: Sequence[int],
    revealed: int,
    n_mines: int,
    full: int,
    mines: int = 0,
    frontier: Sequence[int] | None = None,
) -> tuple[int, int]:
    """Every hidden cell the rules of :func:`deduce` prove safe or mined, as bitsets.

    Args:
        masks: :func:`neighbour_masks` of the board.
        counts: Adjacent-mine counts (only read for revealed cells).
        revealed: Bitset of the revealed cells.
        n_mines: Mines on the board.
        full: Bitset of every cell.
        mines: Mines already proved.
        frontier: Revealed cells that may still border unknown cells (default: all revealed).

    Returns:
        ``(safe, mines)``: hidden cells proved safe, and every cell proved to be a mine.
    """
    live = cells_of(revealed) if frontier is None else list(frontier)
    safe = 0
    while True:
        unknown = full & ~(revealed | safe | mines)
        new_safe = new_mines = 0
        still = []
        for cell in live:  # the single-cell rules, without building the constraint table
            cells = masks[cell] & unknown
            if cells:  # a cell whose neighbours are all known stays out for good
                still.append(cell)
                k = counts[cell] - (masks[cell] & mines).bit_count()
                if k == 0:
                    new_safe |= cells
                elif k == cells.bit_count():
                    new_mines |= cells
        live = still
        left = n_mines - mines.bit_count()
        if unknown and left == 0:
            new_safe |= unknown
        elif unknown and left == unknown.bit_count():
            new_mines |= unknown
        if not new_safe and not new_mines:
            rules = {masks[c] & unknown: counts[c] - (masks[c] & mines).bit_count() for c in live}
            if unknown:
                rules[unknown] = left
            new_safe, new_mines = _subset_bits(rules, unknown)
            if not new_safe and not new_mines:
                return safe, mines
        safe |= new_safe
        mines |= new_mines


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
    total mine count as one more constraint over every unknown cell, until nothing new
    follows. Flags are ignored: they are the player's claims, not facts.

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
    known = 0
    for cell in known_mines:
        known |= 1 << cell
    safe, mines = closure(
        neighbour_masks(rows, cols), counts, mask_of(revealed), n_mines,
        (1 << rows * cols) - 1, known,
    )  # fmt: skip
    return set(cells_of(safe)), set(cells_of(mines))


def _flood_bits(
    cell: int, nbrs: Sequence[Sequence[int]], counts: Sequence[int], revealed: int
) -> int:
    """:func:`flood` on a bitset without flags: the revealed set after opening ``cell``."""
    revealed |= 1 << cell
    if counts[cell]:
        return revealed  # most cells proved safe are numbers: nothing to fill
    zeros = [cell]
    while zeros:
        for nb in nbrs[zeros.pop()]:
            bit = 1 << nb
            if not revealed & bit:  # marked when found: found once
                revealed |= bit
                if not counts[nb]:
                    zeros.append(nb)
    return revealed


def logic_solves(
    rows: int, cols: int, mines: Iterable[int], first: int, backend: str | None = None
) -> bool:
    """Whether :func:`deduce` clears the board from the first reveal at cell ``first``.

    The cells :func:`deduce` proves safe are revealed as soon as they are proved (the
    closure does not depend on the order, so this is the same verdict as alternating full
    :func:`deduce` runs with reveals, only without restarting the search each time). A
    repeated mine counts once. ``backend``: ``"python"``, ``"numba"`` (compiled; the ``fast``
    extra), ``"auto"`` (numba when installed) or ``None`` for :data:`DEFAULT_BACKEND`; every
    backend gives the same verdict.

    Raises:
        ValueError: A cell outside the board, or an unknown or missing backend.

    Example:
        >>> logic_solves(3, 3, [0], 8), logic_solves(2, 2, [0], 3)
        (True, False)
    """
    cells = np.fromiter(mines, dtype=np.int64)
    size = rows * cols
    if not 0 <= first < size or (len(cells) and not 0 <= cells.min() <= cells.max() < size):
        raise ValueError(f"Minesweeper cells must be 0 to {size - 1} on a {rows}x{cols} board.")
    return _solver(backend)(rows, cols, cells, first)


def _logic_solves_python(rows: int, cols: int, cells: np.ndarray, first: int) -> bool:
    """:func:`logic_solves` on bitsets (the ``"python"`` backend); ``cells`` are int64."""
    nbrs, masks, mine_set = neighbours(rows, cols), neighbour_masks(rows, cols), set(cells.tolist())
    counts = mine_counts(nbrs, mine_set)
    full, n_safe, n_mines = (1 << rows * cols) - 1, rows * cols - len(mine_set), len(mine_set)
    revealed = _flood_bits(first, nbrs, counts, 0)
    known, live, changed = 0, cells_of(revealed), full
    while revealed.bit_count() < n_safe:
        safe, mines_now, live = _one_round(
            masks, counts, revealed, n_mines, full, known, live, changed
        )
        if safe < 0:
            return False
        before = revealed
        for cell in cells_of(safe):
            revealed = _flood_bits(cell, nbrs, counts, revealed)
        live += cells_of(revealed & ~before)
        changed, known = (revealed & ~before) | (mines_now & ~known), mines_now
    return True


def _one_round(
    masks: Sequence[int],
    counts: Sequence[int],
    revealed: int,
    n_mines: int,
    full: int,
    mines: int,
    live: list[int],
    changed: int,
) -> tuple[int, int, list[int]]:
    """One pass of the rules: ``(safe, mines, live)``; ``safe`` is -1 when nothing follows.

    Only the numbers next to a cell in ``changed`` (or that are themselves new) are read
    again: any other one gave nothing new in the last pass, and its constraint is the same.
    """
    unknown = full & ~(revealed | mines)
    new_safe = new_mines = 0
    still = []
    for cell in live:
        around = masks[cell]
        if not (around | 1 << cell) & changed:
            still.append(cell)
            continue
        cells = around & unknown
        if cells:
            still.append(cell)
            k = counts[cell] - (around & mines).bit_count()
            if k == 0:
                new_safe |= cells
            elif k == cells.bit_count():
                new_mines |= cells
    left = n_mines - mines.bit_count()
    if unknown and left == 0:
        new_safe |= unknown
    elif unknown and left == unknown.bit_count():
        new_mines |= unknown
    if not new_safe and not new_mines:
        rules = {masks[c] & unknown: counts[c] - (masks[c] & mines).bit_count() for c in still}
        rules.pop(0, None)  # numbers whose neighbours are all known (kept above while clean)
        if unknown:
            rules[unknown] = left
        new_safe, new_mines = _subset_bits(rules, unknown)
        if not new_safe and not new_mines:
            return -1, mines, still
    return new_safe, mines | new_mines, still


@lru_cache(maxsize=512)
def place_mines(
    rows: int, cols: int, n_mines: int, seed: int, first: int, no_guess: bool,
    backend: str | None = None,
) -> tuple[tuple[int, ...], bool]:  # fmt: skip
    """Draw the layout for a first reveal at ``first``; also whether logic alone clears it.

    Mines avoid the 3x3 block around ``first``. With ``no_guess`` layouts are redrawn until
    :func:`logic_solves` holds, up to ``MAX_LAYOUTS`` draws (the last draw is kept if none
    does; the result says so). Draws come from ``np.random.default_rng([seed, first])``;
    the numba backend computes the same draws in one compiled call, so the layouts never
    depend on the backend (see :func:`logic_solves` for ``backend``).
    """
    candidates, tries = _candidates(rows, cols, first), MAX_LAYOUTS if no_guess else 1
    kernel = _kernel() if resolve_backend(backend or DEFAULT_BACKEND) == "numba" else None
    if kernel and seed >= 0 and 0 <= first < rows * cols and 0 <= n_mines <= len(candidates):
        words = _entropy_words(seed, first)
        drawn, solvable = kernel.draw_layout(rows, cols, candidates, n_mines, words, first, tries)
        return tuple(sorted(drawn.tolist())), solvable
    solves = _solver(backend)
    rng = np.random.default_rng([seed, first])  # a bad seed or count raises here, as ever
    for _ in range(tries):
        # Drawing positions in ``candidates`` consumes the generator exactly as drawing from
        # the array itself does (numpy samples indices, then takes them), minus its checks.
        mines = candidates[rng.choice(len(candidates), size=n_mines, replace=False)]
        solvable = solves(rows, cols, mines, first)
        if solvable or not no_guess:
            break
    return tuple(sorted(mines.tolist())), solvable


def _entropy_words(*values: int) -> np.ndarray:
    """NumPy's seed words of non-negative ints: each split into 32-bit words, lowest first."""
    words = [v >> at & 0xFFFFFFFF for v in values for at in range(0, max(v.bit_length(), 1), 32)]
    return np.array(words, dtype=np.uint64)


@lru_cache(maxsize=1024)
def _candidates(rows: int, cols: int, first: int) -> np.ndarray:
    """The cells a mine may take: every cell outside the 3x3 block around ``first``."""
    zone = {first, *neighbours(rows, cols)[first]}
    out = np.array([i for i in range(rows * cols) if i not in zone], dtype=np.int64)
    out.flags.writeable = False  # shared by every draw on this board
    return out


# --- Backends -----------------------------------------------------------------------------------
DEFAULT_BACKEND = "auto"
"""The backend of :func:`logic_solves` calls that name none, :func:`place_mines`' too
(``"auto"``, ``"python"`` or ``"numba"``)."""


def resolve_backend(backend: str) -> str:
    """``"python"`` or ``"numba"`` for a backend name (``"auto"``: numba when installed).

    Raises:
        ValueError: An unknown name, or ``"numba"`` without numba installed.
    """
    if backend not in ("auto", "python", "numba"):
        raise ValueError(
            f"Unknown Minesweeper solver backend {backend!r}; use 'auto', 'python' or 'numba'."
        )
    if backend == "python":
        return "python"
    available = _kernel() is not None
    if backend == "numba" and not available:
        raise ValueError("The numba solver backend needs numba: pip install 'turngym[fast]'.")
    return "numba" if available else "python"


def _solver(backend: str | None) -> Callable[[int, int, np.ndarray, int], bool]:
    """The ``(rows, cols, int64 mine cells, first) -> bool`` function of a backend name."""
    kernel = _kernel() if resolve_backend(backend or DEFAULT_BACKEND) == "numba" else None
    return kernel.solves_board if kernel else _logic_solves_python


@cache
def _kernel() -> ModuleType | None:
    """The compiled solver module, or ``None`` when numba does not import (or is broken).

    Imported on first use, not with this module: importing numba takes about half a second.
    """
    try:
        return importlib.import_module("turngym.envs.games._minesweeper_numba")
    except Exception:  # noqa: BLE001  (any failure means: use the Python backend)
        return None


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
