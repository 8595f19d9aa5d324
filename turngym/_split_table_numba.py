"""The compiled loop of :mod:`turngym._split_table` (numba; imported only where installed)."""

from __future__ import annotations

import numba
import numpy as np

from turngym._rng_numba import bounded, from_entropy

__all__ = ["first_in_split"]


@numba.njit(cache=True, nogil=True)
def first_in_split(w0, w1, w2, seed, bounds, codes, want, first, stop):  # noqa: ANN001, ANN201
    """Walk the attempts ``first..stop-1`` of one seed until a candidate's split is ``want``.

    Each attempt's generator is NumPy's ``default_rng`` of the entropy words ``w0, w1, w2``
    (family and split), ``seed`` and the attempt (:func:`turngym._rng_numba.from_entropy`);
    its draws are ``integers(b)`` for each bound ``b`` (Lemire's method, as NumPy and
    :class:`turngym._seed_sequence.LazyGenerator` draw them), read as one mixed-radix index
    into ``codes``. Returns ``(attempt, index)`` for the first wanted split, ``(attempt, -1 -
    index)`` for the first index with no code yet, or ``(stop, 0)``.
    """
    entropy = np.empty(5, dtype=np.uint64)
    entropy[0], entropy[1], entropy[2], entropy[3] = w0, w1, w2, seed
    for attempt in range(first, stop):
        entropy[4] = np.uint64(attempt)
        gen = from_entropy(entropy)
        index = 0
        for bound in bounds:
            index = index * bound + bounded(gen, bound - 1)
        code = codes[index]
        if code == want:
            return attempt, index
        if code < 0:
            return attempt, -1 - index
    return stop, 0
