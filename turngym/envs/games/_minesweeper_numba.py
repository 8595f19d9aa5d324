"""The compiled no-guess check: :func:`solves`, a numba kernel of ``logic_solves``.

It is the ``fast`` extra's backend of :mod:`turngym.envs.games.minesweeper_solver`, imported
only when used. It applies the same rules as the bitset solver there, to the same fixpoint,
so it returns the same verdict on every board:

* the single-cell rules: a revealed number whose unknown neighbours hold none of its
  remaining mines makes them all safe; one whose unknown neighbours all must be mines makes
  them mines;
* the subset rule: if the unknown cells of number ``a`` are a strict subset of those of
  number ``b``, the difference holds ``k_b - k_a`` mines (all safe if 0, all mines if it is
  the difference's size). The global constraint (every unknown cell holds the mines not yet
  located) is the superset of every number's, so it is compared with each of them too;
* the remaining-count rule: no mine left means every unknown cell is safe.

Cells proved safe are revealed at once (with flood fill through zeros). Every rule is
monotone on a true layout (knowing more never blocks a deduction), so the closure does not
depend on the order: a work queue re-reads only the numbers next to a cell that changed, and
the subset rule runs only when the queue is empty.

Boards go up to 24x30, so cells are array indices (no one-word bitset): a neighbour table
``int32[n, 8]`` padded with -1 and a ``uint8`` state per cell. One thread, no Python objects.
Compiled once per machine (``cache=True``) on the first call, with :mod:`turngym._rng_numba`:
9-15 s measured on a shared 2-core machine, then about 0.5 s per process to load the cache. A check
then takes about 10 microseconds on the default 8x8 board (the bitset solver: about 100-130).
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np

from turngym._rng_numba import choice_into, from_entropy
from turngym.envs.games.minesweeper_solver import neighbours

__all__ = ["draw_layout", "neighbour_table", "place", "solves", "solves_board"]

# Rows of the int32 work array a call shares between its helpers (one column per cell; the
# queue, a ring, has one slot more). A cell's state: not known yet, revealed, proved a mine.
_STATE, _COUNT, _QUEUED, _VERSION, _SEEN, _STAMP, _QUEUE, _LIVE, _STACK = range(9)
_UNKNOWN, _OPEN, _MINE = 0, 1, 2
# Slots of the counter array: cells revealed, mines proved, queue head and tail, live cells,
# and a clock that ticks whenever a number's constraint changes (its ``_VERSION``).
_N_OPEN, _N_KNOWN, _HEAD, _TAIL, _N_LIVE, _CLOCK = range(6)


@lru_cache(maxsize=64)
def neighbour_table(rows: int, cols: int) -> np.ndarray:
    """:func:`~turngym.envs.games.minesweeper_solver.neighbours` as ``int32[n, 8]``, -1-padded."""
    table = np.full((rows * cols, 8), -1, dtype=np.int32)
    for cell, around in enumerate(neighbours(rows, cols)):
        table[cell, : len(around)] = around
    table.flags.writeable = False  # shared by every call on this board size
    return table


def solves_board(rows: int, cols: int, mines: np.ndarray, first: int) -> bool:
    """:func:`solves` on a ``rows`` x ``cols`` board (``mines``: int64 cells on the board)."""
    return bool(solves(neighbour_table(rows, cols), mines, first))


def draw_layout(
    rows: int, cols: int, candidates: np.ndarray, n_mines: int, entropy: np.ndarray,
    first: int, tries: int,
) -> tuple[np.ndarray, bool]:  # fmt: skip
    """:func:`place` on a ``rows`` x ``cols`` board: ``(mines, solvable)``."""
    mines, solvable = place(neighbour_table(rows, cols), candidates, n_mines, entropy, first, tries)
    return mines, bool(solvable)


@numba.njit(cache=True, nogil=True)
def solves(table, mines, first):  # noqa: ANN001, ANN201  (numba infers the types)
    """Whether the rules clear the board of ``mines`` (int64 cells) from a reveal at ``first``.

    ``table`` is :func:`neighbour_table` of the board. Repeated mines count once.
    """
    n = table.shape[0]
    w = np.zeros((9, n + 1), dtype=np.int32)
    is_mine = np.zeros(n, dtype=np.bool_)
    n_mines = 0
    for m in mines:
        if not is_mine[m]:
            is_mine[m] = True
            n_mines += 1
            for j in range(8):
                if table[m, j] < 0:
                    break
                w[_COUNT, table[m, j]] += 1
    w[_STAMP, :] = -1  # no cell is stamped yet (a stamp is a cell id)
    ctr = np.zeros(6, dtype=np.int64)
    _open(first, table, w, ctr)
    while ctr[_N_OPEN] < n - n_mines:
        while ctr[_HEAD] != ctr[_TAIL]:  # the single-cell rules, to fixpoint
            cell = w[_QUEUE, ctr[_HEAD]]
            ctr[_HEAD] = (ctr[_HEAD] + 1) % (n + 1)
            w[_QUEUED, cell] = 0
            _single(cell, table, w, ctr)
        if ctr[_N_OPEN] == n - n_mines:
            break
        if ctr[_N_KNOWN] == n_mines:  # no mine left: every unknown cell is safe
            return True
        if not _subsets(table, w, ctr, n_mines):
            return False
    return True


@numba.njit(cache=True, nogil=True)
def place(table, candidates, n_mines, entropy, first, tries):  # noqa: ANN001, ANN201
    """``place_mines``' draw loop: ``(mines, solvable)`` of the first layout :func:`solves`.

    Draws ``n_mines`` of ``candidates`` as ``np.random.default_rng(entropy).choice(
    len(candidates), n_mines, replace=False)`` does (see :mod:`turngym._rng_numba`), up to
    ``tries`` times; the last draw is returned when none is solvable.
    """
    gen = from_entropy(entropy)
    picks = np.empty(n_mines, dtype=np.int64)
    taken = np.zeros(len(candidates), dtype=np.bool_)
    mines = np.empty(n_mines, dtype=np.int64)
    solvable = False
    for _ in range(tries):
        choice_into(gen, len(candidates), picks, taken)
        for i in range(n_mines):
            mines[i] = candidates[picks[i]]
        solvable = solves(table, mines, first)
        if solvable:
            break
    return mines, solvable


@numba.njit(cache=True, nogil=True)
def _single(cell, table, w, ctr):  # noqa: ANN001, ANN202
    """The single-cell rules of the revealed number ``cell``."""
    unknown = _count(cell, table, w, _UNKNOWN)
    k = w[_COUNT, cell] - _count(cell, table, w, _MINE)
    if unknown == 0 or (k != 0 and k != unknown):
        return
    for j in range(8):
        x = table[cell, j]
        if x < 0:
            break
        if w[_STATE, x] == _UNKNOWN:
            _settle(x, k == 0, table, w, ctr)


@numba.njit(cache=True, nogil=True)
def _subsets(table, w, ctr, n_mines):  # noqa: ANN001, ANN202
    """The subset rule between every pair of numbers and with the global constraint.

    Returns whether anything new was proved. Two numbers are compared again only if one of
    their constraints changed since the last comparison (the same constraints give the same
    verdict). Revealed cells without unknown neighbours leave ``live`` for good.
    """
    kept = 0
    for i in range(ctr[_N_LIVE]):
        a = w[_LIVE, i]
        if _count(a, table, w, _UNKNOWN) > 0:
            w[_LIVE, kept] = a
            kept += 1
    ctr[_N_LIVE] = kept
    n = table.shape[0]
    progress = False
    for i in range(kept):  # cells revealed meanwhile are appended after ``kept``: next pass
        a = w[_LIVE, i]
        first = _stamp(a, table, w)
        seen, w[_SEEN, a] = w[_SEEN, a], ctr[_CLOCK]
        # A number whose unknown cells include a's touches each of them, ``first`` too.
        for j in range(8):
            b = table[first, j] if first >= 0 else -1
            if b < 0:
                break
            if (b != a and w[_STATE, b] == _OPEN
                    and max(w[_VERSION, a], w[_VERSION, b]) > seen
                    and _pair(a, b, table, w, ctr)):  # fmt: skip
                progress = True
                first = _stamp(a, table, w)  # a flood may have opened some of a's cells
        size = _count(a, table, w, _UNKNOWN)
        total = n - ctr[_N_OPEN] - ctr[_N_KNOWN]  # every unknown cell: the global constraint
        if 0 < size < total:
            extra = n_mines - ctr[_N_KNOWN] - (w[_COUNT, a] - _count(a, table, w, _MINE))
            if extra == 0 or extra == total - size:
                progress = True
                _stamp(a, table, w)
                for x in range(n):
                    if w[_STATE, x] == _UNKNOWN and w[_STAMP, x] != a:
                        _settle(x, extra == 0, table, w, ctr)
    return progress


@numba.njit(cache=True, nogil=True)
def _pair(a, b, table, w, ctr):  # noqa: ANN001, ANN202
    """The subset rule for numbers ``a`` (its unknown cells stamped) and ``b``.

    Applies when every unknown cell of ``a`` is one of ``b``'s; returns whether it proved
    anything.
    """
    inside = outside = known = 0
    for j in range(8):
        x = table[b, j]
        if x < 0:
            break
        if w[_STATE, x] == _UNKNOWN:
            if w[_STAMP, x] == a:
                inside += 1
            else:
                outside += 1
        elif w[_STATE, x] == _MINE:
            known += 1
    if outside == 0 or inside < _count(a, table, w, _UNKNOWN):
        return False
    extra = (w[_COUNT, b] - known) - (w[_COUNT, a] - _count(a, table, w, _MINE))
    if extra != 0 and extra != outside:
        return False
    for j in range(8):
        x = table[b, j]
        if x < 0:
            break
        if w[_STATE, x] == _UNKNOWN and w[_STAMP, x] != a:
            _settle(x, extra == 0, table, w, ctr)
    return True


@numba.njit(cache=True, nogil=True)
def _stamp(a, table, w):  # noqa: ANN001, ANN202
    """Stamp the unknown neighbours of ``a`` with ``a``; return the first of them, or -1."""
    first = -1
    for j in range(8):
        x = table[a, j]
        if x < 0:
            break
        if w[_STATE, x] == _UNKNOWN:
            w[_STAMP, x] = a
            if first < 0:
                first = x
    return first


@numba.njit(cache=True, nogil=True, inline="always")
def _count(cell, table, w, which):  # noqa: ANN001, ANN202
    """How many neighbours of ``cell`` are in state ``which``."""
    out = 0
    for j in range(8):
        x = table[cell, j]
        if x < 0:
            break
        if w[_STATE, x] == which:
            out += 1
    return out


@numba.njit(cache=True, nogil=True)
def _settle(cell, safe, table, w, ctr):  # noqa: ANN001, ANN202
    """Reveal the unknown ``cell`` if ``safe`` (with flood fill), else record a mine."""
    if not safe:
        w[_STATE, cell] = _MINE
        ctr[_N_KNOWN] += 1
        _touch(cell, table, w, ctr)
    else:
        _open(cell, table, w, ctr)


@numba.njit(cache=True, nogil=True)
def _open(cell, table, w, ctr):  # noqa: ANN001, ANN202
    """Reveal the safe, unknown ``cell`` and, through zeros, its neighbourhood."""
    w[_STATE, cell] = _OPEN
    w[_STACK, 0] = cell
    top = 1
    while top:
        top -= 1
        here = w[_STACK, top]
        w[_LIVE, ctr[_N_LIVE]] = here
        ctr[_N_LIVE] += 1
        ctr[_N_OPEN] += 1
        _changed(here, w, ctr)  # its own constraint is new
        _touch(here, table, w, ctr)
        if w[_COUNT, here] == 0:
            for j in range(8):
                x = table[here, j]
                if x < 0:
                    break
                if w[_STATE, x] == _UNKNOWN:
                    w[_STATE, x] = _OPEN
                    w[_STACK, top] = x
                    top += 1


@numba.njit(cache=True, nogil=True)
def _touch(cell, table, w, ctr):  # noqa: ANN001, ANN202
    """``cell`` changed: the revealed numbers around it have new constraints."""
    for j in range(8):
        x = table[cell, j]
        if x < 0:
            break
        if w[_STATE, x] == _OPEN:
            _changed(x, w, ctr)


@numba.njit(cache=True, nogil=True, inline="always")
def _changed(cell, w, ctr):  # noqa: ANN001, ANN202
    """The constraint of number ``cell`` changed: stamp its version, queue it once."""
    ctr[_CLOCK] += 1
    w[_VERSION, cell] = ctr[_CLOCK]
    if not w[_QUEUED, cell]:
        w[_QUEUED, cell] = 1
        w[_QUEUE, ctr[_TAIL]] = cell
        ctr[_TAIL] = (ctr[_TAIL] + 1) % w.shape[1]
