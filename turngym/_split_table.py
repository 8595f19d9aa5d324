"""Compiled split look-ups for tasks drawn from a few bounded integers (the ``fast`` extra).

Drawing a task (:func:`turngym.task_cache.cached_draw`) tries candidates until one lands in the
requested split: each candidate builds a generator from ``(family, split, seed, attempt)``,
generates a task, encodes it and hashes it. For generators that only call ``rng.integers(n)``
a few times (a Wordle secret, a board opening) the candidate is a function of those few
draws, and the tasks they can make are few. A :class:`SplitTable` remembers, for one env class
and difficulty, the split (and the drawn task) of every tuple of draws seen so far, and a
compiled loop (numba, with :mod:`turngym._rng_numba`, NumPy's generator reproduced) walks the
attempts of a seed, drawing the integers and reading their split, until it finds the split
wanted: ~1 us for what costs ~15-20 us in Python.

Every entry comes from the Python path: a draw tuple the table has not seen sends the loop
back to Python, which generates that candidate with a recording generator and stores it only
if the generator asked for exactly the table's bounds and got exactly the compiled draws
(which also checks the compiled generator against NumPy's on every new entry). A generator
asks for the same next bound whenever its earlier draws are the same (it depends on its rng
and difficulty only), so an entry's draws are the real draws of every candidate that reaches
it: the tasks are the ones the Python path draws, bit for bit. A generator that asks for
anything else, or for other bounds, or too many cells, turns its table off.

The loop is compiled on first use (cached per machine; a few seconds), so a table is only
used after :data:`WARM_UP` draws of its key in a process: short runs never pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["WARM_UP", "MAX_CELLS", "UNKNOWN", "SplitTable", "Recorder", "compiled"]

WARM_UP = 1000
"""Draws of a table's key before its compiled look-up is used (see the module docstring)."""

MAX_CELLS = 1 << 14
"""Largest product of bounds a table covers (a layout seed of 2**31 values turns it off;
the largest table of the built-in envs, a 4-ply TicTacToe opening, has 3,024 cells)."""

UNKNOWN = -1
"""Split code of a draw tuple the table has not seen."""

_KERNEL: list[Any] = []  # [the compiled loop, or None without numba], filled on first use


def compiled() -> Any:
    """The compiled search (:func:`_first_in_split`), or ``None`` where numba is missing."""
    if not _KERNEL:
        try:
            from turngym._split_table_numba import first_in_split

            kernel: Any = first_in_split
        except ImportError:  # the fast extra is not installed: the Python path only
            kernel = None
        _KERNEL.append(kernel)
    return _KERNEL[0]


class SplitTable:
    """The split and drawn task of each tuple of integer draws of one (env class, difficulty).

    ``bounds`` are the ``n`` of each ``rng.integers(n)`` call, in order; a tuple of draws is
    stored at its mixed-radix index. ``codes[index]`` is the split's position in
    :data:`turngym.tasks.SPLITS` (``UNKNOWN`` if not seen), ``drawn[index]`` the drawn task.
    """

    __slots__ = ("bounds", "codes", "drawn", "uses", "off")

    def __init__(self) -> None:
        self.bounds: np.ndarray | None = None
        self.codes: np.ndarray | None = None
        self.drawn: dict[int, Any] = {}
        self.uses = 0
        self.off = False

    def wanted(self) -> bool:
        """Count a draw; whether the compiled look-up should serve it."""
        if self.off:
            return False
        self.uses += 1
        if self.uses <= WARM_UP:
            return False
        if compiled() is None:
            self.off = True
            return False
        return True

    def learn_bounds(self, bounds: Sequence[int]) -> None:
        """Size the table for these bounds, or turn it off (none, or too many cells)."""
        cells = math.prod(bounds)
        if not bounds or cells > MAX_CELLS:
            self.off = True
            return
        self.bounds = np.array(bounds, dtype=np.int64)
        self.codes = np.full(cells, UNKNOWN, dtype=np.int8)

    def index_of(self, values: Sequence[int]) -> int:
        """The mixed-radix index of a tuple of draws (one per bound)."""
        assert self.bounds is not None
        index = 0
        for bound, value in zip(self.bounds.tolist(), values, strict=True):
            index = index * bound + value
        return index

    def remember(self, index: int, code: int, drawn: Any) -> None:
        """Store one candidate's split code and drawn task."""
        assert self.codes is not None
        self.drawn[index] = drawn
        self.codes[index] = code

    def search(self, head: tuple[int, int, int], seed: int, want: int, first: int,
               stop: int) -> tuple[int, int]:  # fmt: skip
        """``(attempt, index)`` of the first attempt from ``first`` whose split is ``want``.

        ``head``: the three entropy words of the family and split, before ``seed`` (one word)
        and the attempt. A negative index ``-1 - i`` means that attempt's draws (index ``i``)
        are not in the table yet; ``attempt == stop`` means no attempt below ``stop`` did.
        """
        attempt, index = compiled()(*head, seed, self.bounds, self.codes, want, first, stop)
        return int(attempt), int(index)


class Recorder:
    """A task generator's rng that records its ``integers(n)`` calls (and notes any other use).

    Wraps a :class:`turngym._seed_sequence.LazyGenerator`; ``calls`` holds ``(n, value)`` per
    plain ``integers(n)``, ``other`` is set by anything else (the table is then turned off).
    """

    def __init__(self, rng: Any) -> None:
        self._rng = rng
        self.calls: list[tuple[int, int]] = []
        self.other = False

    def integers(self, low: Any, high: Any = None, size: Any = None, dtype: Any = np.int64,
                 endpoint: bool = False) -> Any:  # fmt: skip
        """``Generator.integers``, recorded when it is a plain ``integers(n)``."""
        value = self._rng.integers(low, high, size, dtype, endpoint)
        if (high is None and size is None and not endpoint and dtype is np.int64
                and type(low) is int and 1 <= low < 0xFFFFFFFF):  # fmt: skip
            self.calls.append((low, int(value)))
        else:
            self.other = True
        return value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        self.other = True
        return getattr(self._rng, name)
