"""``np.random.default_rng(SeedSequence(entropy))`` without SeedSequence's per-call cost.

Every task candidate gets its own generator (:func:`turngym.tasks.task_rng`). NumPy builds one
through ``SeedSequence``, whose pooling and ``generate_state`` run through several NumPy arrays
and an ``np.errstate`` context per call: several times the cost of drawing a small task. This
module computes the same four 64-bit seed words in plain integer arithmetic and hands them to
NumPy's own ``PCG64``, so the generator, its state and every number it draws are identical.

The arithmetic is NumPy's ``SeedSequence`` (after O'Neill's ``seed_seq_fe``, "Developing a
seed_seq Alternative", 2015): entropy integers become 32-bit words (lowest first); a 4-word
pool is filled by the ``hashmix`` of the first words, mixed every word into every other, and
then mixed with each remaining word; ``generate_state(4, uint64)`` hashes the pool cyclically
into 8 words, read as little-endian pairs. :class:`Stream` precomputes everything that depends
only on the first three words (a task's family and split), leaving about twenty integer
operations per generator. The tests compare the state with NumPy's on many entropies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.random.bit_generator import ISpawnableSeedSequence

__all__ = ["uint32_words", "Stream", "generator", "LazyGenerator"]

_MASK = 0xFFFFFFFF
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875  # pool hashing
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED  # output hashing
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_POOL = 4

# The hash multiplier before and after each pool hashmix call (it depends only on the call's
# rank), and the pair of each output word.
_A = [_INIT_A]
for _ in range(256):
    _A.append(_A[-1] * _MULT_A & _MASK)
_B = [_INIT_B]
for _ in range(8):
    _B.append(_B[-1] * _MULT_B & _MASK)
_B0, _B1, _B2, _B3, _B4, _B5, _B6, _B7, _B8 = _B


def uint32_words(values: Sequence[int]) -> list[int]:
    """The 32-bit words NumPy makes of non-negative integers: each lowest word first, 0 as [0].

    Raises:
        ValueError: A negative value (as NumPy does).
    """
    words = []
    for value in values:
        if value < 0:
            raise ValueError("expected non-negative integer")
        if value == 0:
            words.append(0)
        while value > 0:
            words.append(value & _MASK)
            value >>= 32
    return words


def _hashmix(value: int, rank: int) -> int:
    value = (value ^ _A[rank]) * _A[rank + 1] & _MASK
    return value ^ (value >> 16)


def _mix(x: int, y: int) -> int:
    out = (_MIX_L * x - _MIX_R * y) & _MASK
    return out ^ (out >> 16)


def _output(p0: int, p1: int, p2: int, p3: int) -> tuple[int, int, int, int]:
    """``generate_state(4, uint64)`` of a finished pool."""
    o0 = (p0 ^ _B0) * _B1 & _MASK
    o1 = (p1 ^ _B1) * _B2 & _MASK
    o2 = (p2 ^ _B2) * _B3 & _MASK
    o3 = (p3 ^ _B3) * _B4 & _MASK
    o4 = (p0 ^ _B4) * _B5 & _MASK
    o5 = (p1 ^ _B5) * _B6 & _MASK
    o6 = (p2 ^ _B6) * _B7 & _MASK
    o7 = (p3 ^ _B7) * _B8 & _MASK
    return (
        (o0 ^ (o0 >> 16)) | (o1 ^ (o1 >> 16)) << 32,
        (o2 ^ (o2 >> 16)) | (o3 ^ (o3 >> 16)) << 32,
        (o4 ^ (o4 >> 16)) | (o5 ^ (o5 >> 16)) << 32,
        (o6 ^ (o6 >> 16)) | (o7 ^ (o7 >> 16)) << 32,
    )


class Stream:
    """Seed words of every entropy that starts with the same three 32-bit words.

    The pool words 0-2 after the all-to-all mixing, and the three values mixed into word 3
    meanwhile, depend on the first three words only; :meth:`state` finishes the pooling from
    the fourth word on, and :meth:`pool_of` then :meth:`finish` do so for the common tail of
    one seed word and one attempt word with every constant folded in.
    """

    __slots__ = ("_p0", "_p1", "_p2", "_into3", "_fold")

    def __init__(self, head: Sequence[int]) -> None:
        """Precompute for the first three words ``head`` (each below 2**32)."""
        if len(head) != 3:
            raise ValueError(f"a stream starts with 3 words, got {len(head)}")
        pool = [_hashmix(head[i], i) for i in range(3)]
        rank, into3 = _POOL, []
        for src in range(3):  # the mixing steps that read no word from the fourth on
            for dst in range(_POOL):
                if src != dst:
                    hashed = _hashmix(pool[src], rank)
                    if dst == 3:
                        into3.append(hashed)
                    else:
                        pool[dst] = _mix(pool[dst], hashed)
                    rank += 1
        self._p0, self._p1, self._p2 = pool
        self._into3 = tuple(into3)
        # For pool_of: mix(x, y) = f(L * x - R * y), so the fixed operands are stored times
        # their multiplier.
        self._fold = (pool[0] * _MIX_L, pool[1] * _MIX_L, pool[2] * _MIX_L,
                      *(hashed * _MIX_R for hashed in into3))  # fmt: skip

    def state(self, tail: Sequence[int]) -> tuple[int, int, int, int]:
        """The seed words of ``head + tail`` (``tail``: at least one 32-bit word)."""
        pool = [self._p0, self._p1, self._p2, _hashmix(tail[0], 3)]
        for hashed in self._into3:
            pool[3] = _mix(pool[3], hashed)
        for dst, rank in ((0, 13), (1, 14), (2, 15)):  # word 3 into words 0-2
            pool[dst] = _mix(pool[dst], _hashmix(pool[3], rank))
        rank = 16
        for word in tail[1:]:  # every later word mixes into every pool word
            for dst in range(_POOL):
                pool[dst] = _mix(pool[dst], _hashmix(word, rank))
                rank += 1
        return _output(*pool)

    def pool_of(self, seed: int) -> tuple[int, int, int, int]:
        """The pool after a one-word seed, before the attempt word (shared by all attempts)."""
        f0, f1, f2, i0, i1, i2 = self._fold
        v = (seed ^ _A3) * _A4 & 0xFFFFFFFF
        p3 = v ^ (v >> 16)
        v = (0xCA01F9DD * p3 - i0) & 0xFFFFFFFF
        p3 = v ^ (v >> 16)
        v = (0xCA01F9DD * p3 - i1) & 0xFFFFFFFF
        p3 = v ^ (v >> 16)
        v = (0xCA01F9DD * p3 - i2) & 0xFFFFFFFF
        p3 = v ^ (v >> 16)
        h = (p3 ^ _A13) * _A14 & 0xFFFFFFFF
        v = (f0 - 0x4973F715 * (h ^ (h >> 16))) & 0xFFFFFFFF
        p0 = v ^ (v >> 16)
        h = (p3 ^ _A14) * _A15 & 0xFFFFFFFF
        v = (f1 - 0x4973F715 * (h ^ (h >> 16))) & 0xFFFFFFFF
        p1 = v ^ (v >> 16)
        h = (p3 ^ _A15) * _A16 & 0xFFFFFFFF
        v = (f2 - 0x4973F715 * (h ^ (h >> 16))) & 0xFFFFFFFF
        return p0, p1, v ^ (v >> 16), p3

    @staticmethod
    def finish(pool: tuple[int, int, int, int], attempt: int) -> tuple[int, int, int, int]:
        """The seed words of a :meth:`pool_of` pool and a one-word attempt."""
        p0, p1, p2, p3 = pool
        h0, h1, h2, h3 = _attempt_terms(attempt)
        v = (0xCA01F9DD * p0 - h0) & 0xFFFFFFFF
        p0 = v ^ (v >> 16)
        v = (0xCA01F9DD * p1 - h1) & 0xFFFFFFFF
        p1 = v ^ (v >> 16)
        v = (0xCA01F9DD * p2 - h2) & 0xFFFFFFFF
        p2 = v ^ (v >> 16)
        v = (0xCA01F9DD * p3 - h3) & 0xFFFFFFFF
        p3 = v ^ (v >> 16)
        return _output(p0, p1, p2, p3)


_A3, _A4, _A13, _A14, _A15, _A16 = (_A[i] for i in (3, 4, 13, 14, 15, 16))
if (_MIX_L, _MIX_R) != (0xCA01F9DD, 0x4973F715):  # pool_of and finish spell them out
    raise AssertionError("mixing constants changed")
_ATTEMPT_TERMS: dict[int, tuple[int, int, int, int]] = {}


def _attempt_terms(attempt: int) -> tuple[int, int, int, int]:
    """R times the hashmix of the attempt word at ranks 16-19 (a word fixed per attempt)."""
    terms = _ATTEMPT_TERMS.get(attempt)
    if terms is None:
        h0, h1, h2, h3 = (_hashmix(attempt, 16 + k) * _MIX_R for k in range(_POOL))
        terms = (h0, h1, h2, h3)
        if len(_ATTEMPT_TERMS) < 4096:  # attempts are small numbers; bound it anyway
            _ATTEMPT_TERMS[attempt] = terms
    return terms


class _SeedWords(ISpawnableSeedSequence):
    """A seed sequence whose ``generate_state(4, uint64)`` was computed ahead.

    What ``PCG64`` asks for at construction; anything else (``spawn``, other sizes, the
    ``entropy`` and ``pool`` attributes) goes to a real ``SeedSequence`` of the same entropy,
    built when first needed, so the generator behaves as NumPy's in every respect.
    """

    __slots__ = ("_entropy", "_words", "_real")

    def __init__(self, entropy: list[int], words: tuple[int, int, int, int]) -> None:
        self._entropy = entropy
        self._words = words
        self._real: np.random.SeedSequence | None = None

    def _sequence(self) -> np.random.SeedSequence:
        if self._real is None:
            self._real = np.random.SeedSequence(self._entropy)
        return self._real

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> np.ndarray:
        """The state words; the precomputed ones for ``(4, np.uint64)``."""
        if n_words == 4 and dtype is np.uint64:
            return np.array(self._words, dtype=np.uint64)
        return self._sequence().generate_state(n_words, dtype)

    def spawn(self, n_children: int) -> list[np.random.SeedSequence]:
        """Children of the equivalent ``SeedSequence``."""
        return self._sequence().spawn(n_children)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in _SeedWords.__slots__:
            raise AttributeError(name)
        return getattr(self._sequence(), name)

    def __reduce__(self) -> str | tuple[Any, ...]:
        return self._sequence().__reduce__()  # unpickles as the real SeedSequence

    def __repr__(self) -> str:
        return repr(self._sequence())


def generator(entropy: list[int], words: tuple[int, int, int, int]) -> np.random.Generator:
    """``np.random.default_rng(np.random.SeedSequence(entropy))``, given its seed ``words``."""
    return np.random.Generator(np.random.PCG64(_SeedWords(entropy, words)))


_MASK64 = (1 << 64) - 1
_MASK128 = (1 << 128) - 1
_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645  # PCG's default 128-bit multiplier


class LazyGenerator:
    """:func:`generator`'s numbers, drawing ``integers(n)`` in Python until anything else is used.

    A task generator that only calls ``rng.integers(n)`` (a board opening, a secret word, a
    layout seed) needs one or two 32-bit draws, less work than building NumPy's generator.
    This class steps PCG64 itself (O'Neill, 2014, "PCG: A family of simple fast
    space-efficient statistically good algorithms for random number generation",
    HMC-CS-2014-0905: the 128-bit LCG with the XSL-RR output; 32-bit draws take the low, then
    the high half of a 64-bit output) and bounds each draw by Lemire's multiply-and-reject
    method as NumPy does for ranges below 2**32 (Lemire, 2019, "Fast Random Integer Generation
    in an Interval", ACM TOMACS 29(1)). Any other method or argument builds the real NumPy
    generator at the same state, and every later call goes to it, so the numbers are NumPy's
    throughout (the tests compare mixed sequences of calls).
    """

    __slots__ = ("_entropy", "_words", "_state", "_inc", "_has", "_buf", "_drawn", "_real")

    def __init__(self, entropy: list[int], words: tuple[int, int, int, int]) -> None:
        """The generator of ``SeedSequence(entropy)``, whose seed words are ``words``."""
        self._entropy, self._words = entropy, words
        v0, v1, v2, v3 = words
        inc = ((v2 << 64 | v3) << 1 | 1) & _MASK128  # PCG64's seeding: pcg_setseq_128_srandom_r
        self._inc = inc
        self._state = ((inc + (v0 << 64 | v1)) * _PCG_MULT + inc) & _MASK128
        self._has, self._buf, self._drawn = False, 0, False
        self._real: np.random.Generator | None = None

    def _next32(self) -> int:
        if self._has:
            self._has = False
            return self._buf
        state = self._state = (self._state * _PCG_MULT + self._inc) & _MASK128
        high = state >> 64
        x, rot = (high ^ state) & _MASK64, high >> 58
        out = ((x >> rot) | (x << (64 - rot))) & _MASK64
        self._has, self._buf = True, out >> 32
        return out & 0xFFFFFFFF

    def integers(
        self, low: Any, high: Any = None, size: Any = None, dtype: Any = np.int64,
        endpoint: bool = False,
    ) -> Any:  # fmt: skip
        """``Generator.integers``; ``integers(n)`` with ``1 <= n < 2**32`` is drawn here.

        That case returns a Python ``int`` (NumPy returns an ``np.int64`` of the same value):
        the task generators this serves convert the draw with ``int()`` anyway.
        """
        if (high is not None or size is not None or endpoint or dtype is not np.int64
                or self._real is not None or type(low) is not int
                or not 1 <= low < 0xFFFFFFFF):  # fmt: skip
            return self.materialize().integers(low, high, size, dtype, endpoint)
        if low == 1:
            return 0  # NumPy draws nothing for a single value
        self._drawn = True
        m = self._next32() * low
        if m & 0xFFFFFFFF < low:
            threshold = (0xFFFFFFFF - (low - 1)) % low
            while m & 0xFFFFFFFF < threshold:
                m = self._next32() * low
        return m >> 32

    def materialize(self) -> np.random.Generator:
        """The NumPy generator at this generator's state (built once)."""
        if self._real is None:
            real = generator(self._entropy, self._words)
            if self._drawn:
                real.bit_generator.state = {
                    "bit_generator": "PCG64",
                    "state": {"state": self._state, "inc": self._inc},
                    "has_uint32": int(self._has),
                    "uinteger": self._buf,
                }
            self._real = real
        return self._real

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in LazyGenerator.__slots__:
            raise AttributeError(name)
        return getattr(self.materialize(), name)

    def __reduce__(self) -> str | tuple[Any, ...]:
        return self.materialize().__reduce__()

    def __repr__(self) -> str:
        return repr(self.materialize())
