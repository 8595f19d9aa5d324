"""Wordle's words and logic: the word lists, the marking rule, the candidate filter, the oracle.

* :func:`feedback` marks a guess against a secret (official duplicate-letter rules).
* :class:`CandidateIndex` keeps the secrets consistent with the feedback so far as a bitset
  and narrows it by one guess with a dozen integer operations.
* :func:`best_guess` picks the guess with the most expected information (Shannon entropy of
  the feedback distribution) over the remaining candidates, as in the classic
  information-theoretic Wordle solvers.

Used by :mod:`turngym.envs.games.wordle`.
"""

from __future__ import annotations

import functools
import importlib.resources

import numpy as np

__all__ = [
    "GREEN",
    "YELLOW",
    "GREY",
    "LENGTHS",
    "load_word_lists",
    "feedback",
    "CandidateIndex",
    "candidate_index",
    "solution_set",
    "best_guess",
    "opening",
]

GREEN, YELLOW, GREY = "G", "Y", "-"
"""The three feedback marks."""

LENGTHS = (4, 5, 6)
"""The word lengths the lists cover."""

# Oracle guess pool (docs/environments.md#wordle): at most this many candidates and, outside
# hard mode, this many extra probe words, preselected by letter coverage; keeps a step under
# ~50 ms.
_POOL_CANDIDATES = 120
_POOL_PROBES = 60


@functools.cache
def load_word_lists() -> tuple[dict[int, tuple[str, ...]], dict[int, frozenset[str]]]:
    """Load the shipped word lists, by word length.

    Returns:
        ``(solutions, guesses)``: sorted secrets and the set of legal guesses per length;
        every solution is a legal guess.
    """
    folder = importlib.resources.files("turngym.envs.games") / "data"

    def read(name: str) -> list[str]:
        text = (folder / name).read_text(encoding="utf-8")
        return [w for w in text.split("\n") if w and not w.startswith("#")]

    solutions = {
        n: tuple(sorted(w for w in read("wordle_solutions.txt") if len(w) == n)) for n in LENGTHS
    }
    guesses = {
        n: frozenset(w for w in read("wordle_guesses.txt") if len(w) == n) | set(s)
        for n, s in solutions.items()
    }
    return solutions, guesses


def feedback(guess: str, secret: str) -> str:
    """Return the marks of ``guess`` against ``secret``, one per letter.

    Greens first; then each guessed letter that is not green is yellow while unmatched copies
    of it remain in the secret (left to right), else grey.

    Example:
        >>> feedback("speed", "abide"), feedback("eerie", "elder"), feedback("crane", "crane")
        ('--Y-Y', 'GYY--', 'GGGGG')
    """
    if len(guess) != len(secret):
        raise ValueError(f"feedback needs words of equal length, got {guess!r} and {secret!r}")
    if guess == secret:
        return GREEN * len(guess)
    # The secret's letters that no green uses, as a list: at most 6 letters, so removing one
    # copy is cheaper than keeping a Counter. This runs on every step, and zip's strict=
    # keyword alone would triple its cost; the lengths are checked above.
    unmatched = [s for g, s in zip(guess, secret) if g != s]  # noqa: B905
    marks = ""
    for g, s in zip(guess, secret):  # noqa: B905
        if g == s:
            marks += GREEN
        elif g in unmatched:
            marks += YELLOW
            unmatched.remove(g)
        else:
            marks += GREY
    return marks


class CandidateIndex:
    """The secrets an episode starts from, indexed so that filtering them is bit arithmetic.

    A set of words is an int with bit ``i`` set for ``words[i]``. The words consistent with one
    guess and its marks are exactly those that (a) have the guessed letter at every green
    position and not at any other guessed position, and (b) for every guessed letter ``x``
    with ``k`` green or yellow marks, contain ``x`` exactly ``k`` times if one of its copies is
    grey, else at least ``k`` times; that is the official marking rule read backwards, so it
    keeps the same words as comparing :func:`feedback` word by word (a test checks this).
    """

    __slots__ = ("words", "full", "nbytes", "at", "not_at", "exactly", "at_least")

    def __init__(self, words: tuple[str, ...]) -> None:
        length = len(words[0])
        self.words = words
        self.full = (1 << len(words)) - 1
        self.nbytes = (len(words) + 7) // 8
        alphabet = "abcdefghijklmnopqrstuvwxyz"
        at = [dict.fromkeys(alphabet, 0) for _ in range(length)]
        exactly = {letter: [0] * (length + 1) for letter in alphabet}
        for index, word in enumerate(words):
            bit = 1 << index
            for position, letter in enumerate(word):
                at[position][letter] |= bit
            for letter in set(word):
                exactly[letter][word.count(letter)] |= bit
        self.at = at
        self.not_at = [{k: self.full & ~v for k, v in here.items()} for here in at]
        self.exactly: dict[str, list[int]] = {}
        self.at_least: dict[str, list[int]] = {}
        for letter, by_count in exactly.items():
            by_count[0] = self.full & ~functools.reduce(int.__or__, by_count[1:], 0)
            at_least = [0] * (length + 1)
            for k in range(length, -1, -1):
                at_least[k] = by_count[k] | (at_least[k + 1] if k < length else 0)
            self.exactly[letter], self.at_least[letter] = by_count, at_least

    def consistent(self, guess: str, marks: str) -> int:
        """The bitset of the words that would give ``guess`` exactly these ``marks``.

        A letter whose every copy is grey is absent, which already rules it out at its grey
        places; only a grey copy of a letter that also scored needs its place excluded.
        """
        keep = self.full
        hits: dict[str, int] = {}  # letter -> its green and yellow marks
        grey = []
        for position, letter in enumerate(guess):
            mark = marks[position]
            if mark == GREY:
                grey.append(position)
            else:
                keep &= (self.at if mark == GREEN else self.not_at)[position][letter]
                hits[letter] = hits.get(letter, 0) + 1
        capped = ""  # letters with a grey copy: their count is exact
        for position in grey:
            letter = guess[position]
            k = hits.get(letter, 0)
            if k:
                keep &= self.not_at[position][letter]
            if letter not in capped:
                capped += letter
                keep &= self.exactly[letter][k]
        for letter, k in hits.items():
            if letter not in capped:
                keep &= self.at_least[letter][k]
        return keep

    def words_of(self, mask: int) -> tuple[str, ...]:
        """The words of a bitset, in order."""
        if mask == self.full:
            return self.words
        bits = np.unpackbits(
            np.frombuffer(mask.to_bytes(self.nbytes, "little"), dtype=np.uint8), bitorder="little"
        )
        return tuple(self.words[i] for i in np.flatnonzero(bits).tolist())


@functools.lru_cache(maxsize=8)
def candidate_index(length: int, extra: str | None) -> CandidateIndex:
    """The solutions of ``length``, plus a hand-written secret that is not one of them."""
    solutions = load_word_lists()[0][length]
    return CandidateIndex(solutions if extra is None else tuple(sorted({*solutions, extra})))


@functools.cache
def solution_set(length: int) -> frozenset[str]:
    """The possible secrets of ``length`` letters, as a set."""
    return frozenset(load_word_lists()[0][length])


def _encode(words: tuple[str, ...] | list[str]) -> np.ndarray:
    """Words of equal length as a ``(n, length)`` array of letter numbers 0..25."""
    return np.frombuffer("".join(words).encode(), dtype=np.uint8).reshape(len(words), -1) - 97


def _pattern_codes(guesses: np.ndarray, secrets: np.ndarray) -> np.ndarray:
    """Vectorised :func:`feedback` as base-3 codes (grey 0, yellow 1, green 2), ``(g, s)``."""
    green = guesses[:, None, :] == secrets[None, :, :]
    available = np.where(green, 26, secrets[None, :, :])  # letters left to turn yellow
    length = guesses.shape[1]
    codes = np.zeros(green.shape[:2], dtype=np.int32)
    for i in range(length):
        letter = guesses[:, None, i, None]
        hit = (available == letter) & ~green[:, :, i, None]
        found = hit.any(axis=2)
        rows, cols = np.nonzero(found)
        available[rows, cols, hit[rows, cols].argmax(axis=1)] = 27  # that copy is used up
        codes = codes * 3 + np.where(green[:, :, i], 2, found)
    return codes


@functools.cache
def _tables(length: int) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
    """Per length: the solutions, all legal guesses, and each guess's set of letters."""
    solutions, guesses = load_word_lists()
    probes = tuple(sorted(guesses[length]))
    letters = _encode(probes)
    present = np.zeros((len(probes), 26), dtype=bool)
    present[np.arange(len(probes))[:, None], letters] = True
    return solutions[length], probes, present


def _entropies(pool: np.ndarray, candidates: np.ndarray, length: int) -> np.ndarray:
    """Entropy (bits) of the feedback each pool word gets over equally likely candidates."""
    codes = _pattern_codes(pool, candidates)
    n_codes = 3**length
    offsets = codes + (np.arange(len(pool)) * n_codes)[:, None]
    counts = np.bincount(offsets.ravel(), minlength=len(pool) * n_codes).reshape(len(pool), -1)
    p = counts / candidates.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)


def best_guess(candidates: tuple[str, ...], hard: bool, last: bool) -> str:
    """The guess with the most expected information; candidates win ties.

    Args:
        candidates: Sorted secrets consistent with the feedback so far (non-empty).
        hard: Hard mode: only candidates are guaranteed legal, so only they are scored.
        last: Only one guess is left: it must be a candidate to have any chance.
    """
    if len(candidates) <= 2:
        return candidates[0]
    length = len(candidates[0])
    _, probes, present = _tables(length)
    cand = _encode(candidates)
    has = np.eye(26, dtype=bool)[cand].any(axis=1)  # (n, 26): letters of each candidate
    freq = has.sum(axis=0).astype(np.float64)
    # A letter tells most when about half the candidates have it; in all or none, nothing.
    weight = np.minimum(freq, len(candidates) - freq)
    top = np.argsort(-(has @ weight), kind="stable")[:_POOL_CANDIDATES]
    pool = [candidates[i] for i in sorted(top)]
    if not (hard or last):
        order = np.argsort(-(present @ weight), kind="stable")[:_POOL_PROBES]
        in_pool = set(pool)
        pool += [probes[i] for i in sorted(order) if probes[i] not in in_pool]
    gains = _entropies(_encode(pool), cand, length)
    is_candidate = np.arange(len(pool)) < min(len(candidates), _POOL_CANDIDATES)
    # A candidate may end the game now: worth 1/n extra; later words lose exact ties.
    score = gains + is_candidate / len(candidates)
    return pool[int(np.argmax(score))]


@functools.cache
def opening(length: int, hard: bool) -> str:
    """The oracle's first guess (cached: it only depends on the word list)."""
    return best_guess(_tables(length)[0], hard, last=False)
