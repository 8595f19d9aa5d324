"""Wordle: find the secret word from per-letter colour feedback.

The text version of Josh Wardle's *Wordle* (2021) as used by LMRL-Gym (Abdulhai et al., 2023;
docs/environments.md#wordle): the agent guesses words of the secret's length and after each
guess sees one mark per letter, ``G`` (green: right letter, right place), ``Y`` (yellow: the
letter is in the word elsewhere) or ``-`` (grey: not in the word, or no further copies of it).
Duplicate letters follow the official rules: greens are marked first, then each remaining
copy of a letter in the secret turns at most one guessed copy yellow, left to right.

Word lists ship as package data (``data/wordle_solutions.txt`` and ``data/wordle_guesses.txt``,
derived from SCOWL; source and licence in their headers). Secrets are drawn from the solutions
list; any word of the guesses list is a legal guess.

The oracle maximises the expected information (Shannon entropy of the feedback distribution)
over the remaining candidate secrets, as in the classic information-theoretic Wordle solvers.

Example:
    >>> import gymnasium, turngym.envs
    >>> env = gymnasium.make("turngym/Wordle-v0")
    >>> obs, info = env.reset(options={"task": {"secret": "crane"}})
    >>> obs, reward, terminated, truncated, info = env.step("<action>react</action>")
    >>> print(obs)
    Guesses left: 5 of 6. The secret word has 5 letters.
    1. REACT  Y Y G Y -
    >>> env.step("<action>crane</action>")[1:3]
    (1.0, True)
"""

from __future__ import annotations

import functools
import importlib.resources
import math
import re
from collections import Counter
from collections.abc import Mapping
from numbers import Integral
from typing import Any, ClassVar

import numpy as np

from turngym.core import GOLD_ANSWERS, TextEnv, Transition

__all__ = ["Wordle", "feedback", "load_word_lists"]

GREEN, YELLOW, GREY = "G", "Y", "-"
"""The three feedback marks."""

_LENGTHS = (4, 5, 6)
# Example guesses shown in the instructions: legal guesses that are never secrets (plurals or
# rare words), so that an example can never name the answer.
_EXAMPLE_WORD = {4: "arts", 5: "adieu", 6: "crates"}
_SAMPLE_WORDS = {
    4: ("tale", "rose", "mint", "cold", "bark", "dusk"),
    5: ("crane", "slate", "pound", "fight", "brick", "lemon"),
    6: ("planet", "stream", "bright", "mother", "sailor", "cousin"),
}
# Oracle guess pool: at most this many candidates and, outside hard mode,
# this many extra probe words, preselected by letter coverage; keeps a step under ~50 ms.
_POOL_CANDIDATES = 120
_POOL_PROBES = 60
_WORD = re.compile(r"[a-z]+")


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
        n: tuple(sorted(w for w in read("wordle_solutions.txt") if len(w) == n)) for n in _LENGTHS
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
    marks = [GREY] * len(guess)
    unmatched: Counter[str] = Counter()
    for i, (g, s) in enumerate(zip(guess, secret, strict=True)):
        if g == s:
            marks[i] = GREEN
        else:
            unmatched[s] += 1
    for i, g in enumerate(guess):
        if marks[i] != GREEN and unmatched[g] > 0:
            marks[i] = YELLOW
            unmatched[g] -= 1
    return "".join(marks)


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


def _code_of(marks: str) -> int:
    code = 0
    for mark in marks:
        code = code * 3 + (2 if mark == GREEN else 1 if mark == YELLOW else 0)
    return code


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


def _best_guess(candidates: tuple[str, ...], hard: bool, last: bool) -> str:
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
def _opening(length: int, hard: bool) -> str:
    """The oracle's first guess (cached: it only depends on the word list)."""
    return _best_guess(_tables(length)[0], hard, last=False)


class Wordle(TextEnv):
    """Guess the secret word in at most ``max_guesses`` tries (LMRL-Gym's and NYT's Wordle).

    Difficulty knobs (:attr:`difficulty_defaults`):

    * ``word_length`` (4, 5 or 6): length of the secret and of every guess.
    * ``max_guesses`` (1..20, default 6): guesses before the episode ends unsolved.
    * ``hard_mode``: every revealed hint must be used: green letters stay in place and
      yellow letters must appear again (NYT's hard mode).

    Levels: 0 = 5 letters with 8 guesses, 1 = standard (5 letters, 6 guesses, the default),
    2 = hard mode, 3 = 4 letters in hard mode (more look-alike words), 4 = 6 letters.

    A task is ``{"secret": "crane"}``; the split is decided by the word, so test secrets are
    never training secrets at any difficulty. Solving pays reward 1 and ends the episode with
    score 1; running out of guesses ends it with score 0. A word that is not in the list, has
    the wrong length or breaks hard mode is an invalid action and uses no guess.

    Privileged info: ``secret`` (also as ``gold_answers``) and ``candidates_left`` (secrets
    consistent with the feedback).
    Leak check: the secret may not appear in a text (any case, as a word or spelled out with
    separators) before the agent has guessed it; the env never reveals it on a loss.

    Example:
        >>> env = Wordle(level=2)
        >>> obs, info = env.reset(seed=0, options={"split": "test"})
        >>> info["privileged"]["candidates_left"] > 100
        True
    """

    family: ClassVar[str] = "wordle"
    privileged_keys: ClassVar[frozenset[str]] = frozenset({GOLD_ANSWERS})
    answer_template: ClassVar[str] = "<action>{answer}</action>"
    example_actions: ClassVar[tuple[str, ...]] = tuple(
        f"<action>{w}</action>" for w in _SAMPLE_WORDS[5]
    )
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "word_length": 5,
        "max_guesses": 6,
        "hard_mode": False,
    }
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"word_length": 5, "max_guesses": 8, "hard_mode": False},
        1: {"word_length": 5, "max_guesses": 6, "hard_mode": False},
        2: {"word_length": 5, "max_guesses": 6, "hard_mode": True},
        3: {"word_length": 4, "max_guesses": 6, "hard_mode": True},
        4: {"word_length": 6, "max_guesses": 6, "hard_mode": False},
    }

    def __init__(self, **kwargs: Any) -> None:
        """Create the env; keyword arguments are those of :class:`~turngym.core.TextEnv`."""
        super().__init__(**kwargs)
        self._use_examples(int(self.difficulty["word_length"]))
        self.secret = ""
        self.guesses: list[str] = []
        self.marks: list[str] = []
        self._candidates: tuple[str, ...] = ()
        self._n_start = 1

    def _use_examples(self, length: int) -> None:
        """Make random agents guess words of the episode's length."""
        examples = tuple(f"<action>{w}</action>" for w in _SAMPLE_WORDS[length])
        if self.action_space.examples != examples:
            self.action_space = type(self.action_space)(examples=examples)

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and its valid values."""
        length, guesses = difficulty["word_length"], difficulty["max_guesses"]
        if isinstance(length, bool) or length not in _LENGTHS:
            raise ValueError(f"Wordle: word_length={length!r} is invalid; use 4, 5 or 6.")
        if (isinstance(guesses, bool) or not isinstance(guesses, Integral)
                or not 1 <= int(guesses) <= 20):  # fmt: skip
            raise ValueError(
                f"Wordle: max_guesses={guesses!r} is invalid; use an integer from 1 to 20."
            )
        if not isinstance(difficulty["hard_mode"], bool):
            raise ValueError(
                f"Wordle: hard_mode={difficulty['hard_mode']!r} is invalid; use True or False."
            )

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw a secret uniformly from the solutions of the requested length."""
        words = load_word_lists()[0][int(difficulty["word_length"])]
        return {"secret": words[int(rng.integers(len(words)))]}

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Check the secret (a legal guess of 4-6 letters) and start with no guesses."""
        if set(task) != {"secret"}:
            raise ValueError(f'A Wordle task is {{"secret": "<word>"}}, got keys {sorted(task)}.')
        secret = task["secret"]
        guesses = load_word_lists()[1]
        if not isinstance(secret, str) or secret not in guesses.get(len(secret), ()):
            raise ValueError(
                f"Wordle secret {secret!r} is not a lowercase word of 4 to 6 letters from the "
                "shipped guesses list (turngym/envs/games/data/wordle_guesses.txt)."
            )
        self.secret = secret
        self._use_examples(len(secret))
        self.max_guesses = int(self.episode_difficulty["max_guesses"])
        self.hard_mode = bool(self.episode_difficulty["hard_mode"])
        self.guesses, self.marks = [], []
        solutions = load_word_lists()[0][len(secret)]
        # The oracle's candidate set; a hand-written secret outside the solutions joins it.
        self._candidates = solutions if secret in solutions else tuple(sorted({*solutions, secret}))
        self._n_start = len(self._candidates)

    # --- Dynamics -----------------------------------------------------------------------------
    def apply(self, command: str) -> Transition:
        """Score one guessed word; illegal words are invalid and use no guess."""
        if self._over():
            return Transition(
                terminated=True,
                effective=False,
                message="The game is over. Call reset() for a new one.",
            )
        word = command.strip().lower()
        problem = self._illegal(word)
        if problem:
            return Transition(valid=False, effective=False, message=f"Invalid guess: {problem}")
        marks = feedback(word, self.secret)
        self.guesses.append(word)
        self.marks.append(marks)
        if len(self._candidates) > 1:
            code = _code_of(marks)
            keep = _pattern_codes(_encode([word]), _encode(self._candidates))[0] == code
            self._candidates = tuple(w for w, k in zip(self._candidates, keep, strict=True) if k)
        if word == self.secret:
            return Transition(
                reward=1.0, terminated=True, message="Solved!", reward_components={"solved": 1.0}
            )
        if len(self.guesses) >= self.max_guesses:
            return Transition(terminated=True, message="No guesses left. The game is over.")
        return Transition()

    def _illegal(self, word: str) -> str:
        """Why ``word`` may not be guessed now ("" if it may). Echoes only non-secret words."""
        length = len(self.secret)
        shown = word if len(word) <= 12 else word[:9] + "..."
        if not _WORD.fullmatch(word):
            return f"a guess is one word of {length} letters a-z, e.g. {self._example()}."
        if len(word) != length:
            return f"{shown!r} has {len(word)} letters; the secret has {length}."
        if word not in load_word_lists()[1][length]:
            return f"{word!r} is not in the word list. Guess a common English word."
        if self.hard_mode:
            return self._hard_mode_violation(word)
        return ""

    def _hard_mode_violation(self, word: str) -> str:
        """The first hard-mode rule ``word`` breaks ("" if none)."""
        for guess, marks in zip(self.guesses, self.marks, strict=True):
            for i, (letter, mark) in enumerate(zip(guess, marks, strict=True)):
                if mark == GREEN and word[i] != letter:
                    return f"hard mode: letter {i + 1} must be {letter.upper()}."
            revealed = Counter(g for g, m in zip(guess, marks, strict=True) if m != GREY)
            for letter, count in sorted(revealed.items()):
                if word.count(letter) < count:
                    times = "" if count == 1 else f" {count} times"
                    return f"hard mode: the guess must contain {letter.upper()}{times}."
        return ""

    def _over(self) -> bool:
        return bool(self.guesses) and (
            self.guesses[-1] == self.secret or len(self.guesses) >= self.max_guesses
        )

    # --- Views --------------------------------------------------------------------------------
    def _example(self) -> str:
        return f"<action>{_EXAMPLE_WORD[len(self.secret)]}</action>"

    def instructions(self) -> str:
        """Rules, feedback legend, action grammar and one example (never the secret)."""
        n = len(self.secret)
        lines = [
            f"You are playing Wordle. Find the secret English word of {n} letters in at most "
            f"{self.max_guesses} guesses.",
            f"Each guess must be a word of {n} letters from the game's word list.",
            "After each guess you see the guess and one mark per letter: G = right letter in the "
            "right place, Y = the letter is in the word but in another place, - = the letter is "
            "not in the word (or the word has no more copies of it).",
            "A guessed letter that appears twice is marked Y twice only if the word has it twice.",
        ]
        if self.hard_mode:
            lines.append(
                "Hard mode: every hint must be used. Letters marked G must stay in their place "
                "and letters marked Y must appear in every later guess."
            )
        lines.append(
            "Solving gives reward 1 and ends the game. Think if you like, then answer with one "
            f"word in action tags, for example: {self._example()}"
        )
        return "\n".join(lines)

    def render_text(self) -> str:
        """Guesses left, then one line per guess with its marks."""
        left = self.max_guesses - len(self.guesses)
        lines = [
            f"Guesses left: {left} of {self.max_guesses}. "
            f"The secret word has {len(self.secret)} letters."
        ]
        for i, (guess, marks) in enumerate(zip(self.guesses, self.marks, strict=True), start=1):
            lines.append(f"{i}. {guess.upper()}  {' '.join(marks)}")
        return "\n".join(lines)

    def state_key(self) -> str:
        """``"guesses=adieu,crane"``: the sorted set of guessed words (the feedback follows)."""
        return "guesses=" + ",".join(sorted(set(self.guesses)))

    def score(self) -> float:
        """1.0 once the secret has been guessed, else 0.0."""
        return 1.0 if self.guesses and self.guesses[-1] == self.secret else 0.0

    def privileged(self) -> dict[str, Any]:
        """The secret and the number of secrets consistent with the feedback so far."""
        return {"secret": self.secret, GOLD_ANSWERS: [self.secret] if self.secret else [],
                "candidates_left": len(self._candidates)}

    def metrics(self) -> dict[str, Any]:
        """Guesses used and the bits of information gained so far."""
        return {
            "guesses_used": len(self.guesses),
            "bits_gained": round(math.log2(self._n_start / max(1, len(self._candidates))), 6),
        }

    def oracle_action(self) -> str:
        """The entropy-maximising guess over the remaining candidates (see module docstring)."""
        if len(self._candidates) == len(_tables(len(self.secret))[0]):
            word = _opening(len(self.secret), self.hard_mode)
        else:
            last = self.max_guesses - len(self.guesses) <= 1
            word = _best_guess(self._candidates, self.hard_mode, last)
        return f"<action>{word}</action>"

    def leak_check(self, text: str) -> list[str]:
        """Flag the secret in ``text`` (as a word, any case, or spelled out) until guessed."""
        if not self.secret or self.secret in self.guesses:
            return []
        lowered = text.lower()
        if re.search(rf"(?<![a-z]){self.secret}(?![a-z])", lowered):
            return ["the secret word appears in the text"]
        spelled = r"[\s\-.,_'\"*]+".join(self.secret)
        if re.search(rf"(?<![a-z]){spelled}(?![a-z])", lowered):
            return ["the secret word appears spelled out in the text"]
        return []
