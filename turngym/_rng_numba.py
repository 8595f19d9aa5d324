"""NumPy's ``default_rng(entropy).choice(n, k, replace=False)`` streams, compiled with numba.

Minesweeper draws its layouts with ``np.random.default_rng([seed, first])`` and
``choice(..., replace=False)``; building that generator and calling ``choice`` costs about
30 microseconds of Python-level overhead per layout, several times what the compiled solver
needs to check it. This module reproduces the same numbers inside one compiled call, so the
layouts are identical with or without numba (the tests compare them with NumPy's on many
seeds, board sizes and consecutive draws, and the rare rejection branch on a forced state):

* ``SeedSequence`` entropy pooling and ``generate_state`` (O'Neill's ``seed_seq_fe`` hash,
  as NumPy implements it: a 4-word pool, then 8 words for PCG64's seed and increment);
* PCG64, 128-bit LCG with the XSL-RR output (O'Neill, 2014, "PCG: A family of simple fast
  space-efficient statistically good algorithms for random number generation",
  HMC-CS-2014-0905), on two 64-bit halves; 32-bit draws take the low, then the high half
  of each 64-bit output, as NumPy's ``next_uint32`` does;
* bounded integers by Lemire's multiply-and-reject method (Lemire, 2019, "Fast Random
  Integer Generation in an Interval", ACM TOMACS 29(1), Algorithm 5), NumPy's unmasked
  ``random_bounded_uint64`` for ranges below 2**32;
* ``choice`` without replacement below 10,000 items: Floyd's sampling (Bentley & Floyd, 1987,
  "Programming pearls: a sample of brilliance", CACM 30(9)) followed by a Fisher-Yates
  shuffle of the sample, each draw bounded as above.

NumPy promises stable streams for ``SeedSequence`` and PCG64, not for ``Generator.choice``;
if a future NumPy changed ``choice``, the equality tests say so.

A generator is a ``uint64[6]`` array: the 128-bit state and increment as (high, low) halves,
then whether a 32-bit half is buffered and that half.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["from_entropy", "choice_into", "next_uint32", "bounded"]

_STATE_HI, _STATE_LO, _INC_HI, _INC_LO, _HAS32, _BUF32 = 0, 1, 2, 3, 4, 5
# Every constant is a uint64: numba turns mixed signed/unsigned 64-bit arithmetic into floats.
_U0, _U1, _U16, _U32, _U58, _U63, _U64 = (np.uint64(v) for v in (0, 1, 16, 32, 58, 63, 64))
_MASK32 = np.uint64(0xFFFFFFFF)
_MASK6 = np.uint64(63)
_MULT_HI = np.uint64(0x2360ED051FC65DA4)  # PCG's default 128-bit multiplier
_MULT_LO = np.uint64(0x4385DF649FCCF645)
# NumPy's SeedSequence constants (pool of 4 words, mixing multipliers, 16-bit xorshift).
_INIT_A, _MULT_A = np.uint64(0x43B0D7E5), np.uint64(0x931E8875)
_INIT_B, _MULT_B = np.uint64(0x8B51F9DD), np.uint64(0x58F38DED)
_MIX_L, _MIX_R = np.uint64(0xCA01F9DD), np.uint64(0x4973F715)
_POOL = 4


@numba.njit(cache=True, nogil=True, inline="always")
def _hashmix(value, const):  # noqa: ANN001, ANN202
    """One ``seed_seq_fe`` hash step: ``(hashed value, next multiplier)``, both 32-bit."""
    value ^= const
    const = (const * _MULT_A) & _MASK32
    value = (value * const) & _MASK32
    return value ^ (value >> _U16), const


@numba.njit(cache=True, nogil=True, inline="always")
def _mix(x, y):  # noqa: ANN001, ANN202
    out = (_MIX_L * x - _MIX_R * y) & _MASK32
    return out ^ (out >> _U16)


@numba.njit(cache=True, nogil=True)
def _seed_words(entropy):  # noqa: ANN001, ANN202
    """``SeedSequence(entropy words).generate_state(8, uint32)``, as uint64 values."""
    pool = np.zeros(_POOL, dtype=np.uint64)
    const = _INIT_A
    for i in range(_POOL):
        pool[i], const = _hashmix(entropy[i] if i < len(entropy) else _U0, const)
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                hashed, const = _hashmix(pool[src], const)
                pool[dst] = _mix(pool[dst], hashed)
    for src in range(_POOL, len(entropy)):
        for dst in range(_POOL):
            hashed, const = _hashmix(entropy[src], const)
            pool[dst] = _mix(pool[dst], hashed)
    out = np.empty(8, dtype=np.uint64)
    const = _INIT_B
    for i in range(8):
        value = pool[i % _POOL] ^ const
        const = (const * _MULT_B) & _MASK32
        value = (value * const) & _MASK32
        out[i] = value ^ (value >> _U16)
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _mulhi(a, b):  # noqa: ANN001, ANN202
    """The high 64 bits of the 128-bit product of two uint64."""
    a_lo, a_hi, b_lo, b_hi = a & _MASK32, a >> _U32, b & _MASK32, b >> _U32
    cross1, cross2 = a_lo * b_hi, a_hi * b_lo
    mid = ((a_lo * b_lo) >> _U32) + (cross1 & _MASK32) + (cross2 & _MASK32)
    return a_hi * b_hi + (cross1 >> _U32) + (cross2 >> _U32) + (mid >> _U32)


@numba.njit(cache=True, nogil=True)
def _step(gen):  # noqa: ANN001, ANN202
    """Advance the LCG: ``state = state * MULT + inc`` modulo 2**128."""
    hi, lo = gen[_STATE_HI], gen[_STATE_LO]
    new_hi = _mulhi(lo, _MULT_LO) + lo * _MULT_HI + hi * _MULT_LO
    new_lo = lo * _MULT_LO
    low = new_lo + gen[_INC_LO]
    gen[_STATE_HI] = new_hi + gen[_INC_HI] + (_U1 if low < new_lo else _U0)
    gen[_STATE_LO] = low


@numba.njit(cache=True, nogil=True)
def from_entropy(entropy):  # noqa: ANN001, ANN201
    """The generator of ``np.random.default_rng(entropy)``; ``entropy``: uint64 of 32-bit words.

    The words are what NumPy makes of the seed: each non-negative integer split into 32-bit
    words, lowest first (``[seed, first]`` with both below 2**32 gives two words).
    """
    words = _seed_words(entropy)
    v0, v1 = words[0] | (words[1] << _U32), words[2] | (words[3] << _U32)
    v2, v3 = words[4] | (words[5] << _U32), words[6] | (words[7] << _U32)
    gen = np.zeros(6, dtype=np.uint64)
    gen[_INC_HI] = (v2 << _U1) | (v3 >> _U63)  # inc = (initseq << 1) | 1, initseq = v2:v3
    gen[_INC_LO] = (v3 << _U1) | _U1
    gen[_STATE_HI], gen[_STATE_LO] = gen[_INC_HI], gen[_INC_LO]  # one step from state 0
    low = gen[_STATE_LO] + v1  # add the initial state v0:v1
    gen[_STATE_HI] += v0 + (_U1 if low < v1 else _U0)
    gen[_STATE_LO] = low
    _step(gen)
    return gen


@numba.njit(cache=True, nogil=True)
def next_uint32(gen):  # noqa: ANN001, ANN201
    """The next 32-bit draw: the low half of a fresh 64-bit output, then its high half."""
    if gen[_HAS32]:
        gen[_HAS32] = _U0
        return gen[_BUF32]
    _step(gen)
    hi, lo = gen[_STATE_HI], gen[_STATE_LO]
    x, rot = hi ^ lo, hi >> _U58
    out = (x >> rot) | (x << ((_U64 - rot) & _MASK6))
    gen[_HAS32], gen[_BUF32] = _U1, out >> _U32
    return out & _MASK32


@numba.njit(cache=True, nogil=True)
def bounded(gen, high):  # noqa: ANN001, ANN202
    """A uniform integer in ``[0, high]`` (``high`` < 2**32 - 1): Lemire's method."""
    if high == 0:
        return 0
    span = np.uint64(high) + _U1
    m = next_uint32(gen) * span
    if (m & _MASK32) < span:
        threshold = (_MASK32 - np.uint64(high)) % span
        while (m & _MASK32) < threshold:
            m = next_uint32(gen) * span
    return np.int64(m >> _U32)


@numba.njit(cache=True, nogil=True)
def choice_into(gen, pop, out, taken):  # noqa: ANN001, ANN201
    """``Generator.choice(pop, len(out), replace=False)`` into ``out`` (``pop`` <= 10,000).

    ``taken`` is a ``bool[pop]`` scratch array, all False; it is left all False.
    """
    size = len(out)
    for j in range(pop - size, pop):  # Floyd: a value already taken is replaced by j
        value = bounded(gen, j)
        if taken[value]:
            value = j
        taken[value] = True
        out[j - pop + size] = value
    for i in range(size - 1, 0, -1):
        k = bounded(gen, i)
        out[i], out[k] = out[k], out[i]
    for i in range(size):
        taken[out[i]] = False
