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
import math
import re
from collections import Counter
from collections.abc import Mapping
from numbers import Integral
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from turngym.core import GOLD_ANSWERS, TextEnv, Transition
from turngym.envs.games.wordle_solver import (
    GREEN,
    GREY,
    LENGTHS,
    YELLOW,
    best_guess,
    candidate_index,
    feedback,
    load_word_lists,
    opening,
    solution_set,
)

__all__ = ["Wordle", "feedback", "load_word_lists", "GREEN", "YELLOW", "GREY"]

# Example guesses shown in the instructions: legal guesses that are never secrets (plurals or
# rare words), so that an example can never name the answer.
_EXAMPLE_WORD = {4: "arts", 5: "adieu", 6: "crates"}
_SAMPLE_WORDS = {
    4: ("tale", "rose", "mint", "cold", "bark", "dusk"),
    5: ("crane", "slate", "pound", "fight", "brick", "lemon"),
    6: ("planet", "stream", "bright", "mother", "sailor", "cousin"),
}
_WORD = re.compile(r"[a-z]+")


@functools.cache
def _examples(length: int) -> tuple[str, ...]:
    return tuple(f"<action>{w}</action>" for w in _SAMPLE_WORDS[length])


@functools.cache
def _legal_words(length: int) -> frozenset[str]:
    """The legal guesses of ``length`` letters (empty for lengths without a list)."""
    return load_word_lists()[1].get(length, frozenset())


@functools.lru_cache(maxsize=1024)
def _spaced(marks: str) -> str:
    """``"GY-"`` as ``"G Y -"`` (3**6 mark strings at most)."""
    return " ".join(marks)


@functools.lru_cache(maxsize=4096)
def _bits(start: int, left: int) -> float:
    """Bits of information in narrowing ``start`` equally likely secrets to ``left``."""
    return round(math.log2(start / max(1, left)), 6)


# The outcomes of a legal guess; frozen records, so one instance each serves every step.
_SOLVED = Transition(
    reward=1.0,
    terminated=True,
    message="Solved!",
    reward_components=MappingProxyType({"solved": 1.0}),
)
_LOST = Transition(
    terminated=True,
    message="No guesses left. The game is over.",
    reward_components=MappingProxyType({}),
)
_GO_ON = Transition(reward_components=MappingProxyType({}))


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
        # The candidate secrets (consistent with the feedback so far) as a bitset over the
        # episode's universe; each guess narrows it by its own marks only.
        self._universe_key: tuple[int, str | None] = (int(self.difficulty["word_length"]), None)
        self._mask = 0
        self._n_start = 1
        self._left = 0  # self._mask.bit_count(), read every step

    @property
    def _candidates(self) -> tuple[str, ...]:
        """The secrets consistent with the feedback so far, sorted (the oracle's pool)."""
        return candidate_index(*self._universe_key).words_of(self._mask)

    def _use_examples(self, length: int) -> None:
        """Make random agents guess words of the episode's length."""
        examples = _examples(length)
        if self.action_space.examples != examples:
            self.action_space = type(self.action_space)(examples=examples)

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and its valid values."""
        length, guesses = difficulty["word_length"], difficulty["max_guesses"]
        if isinstance(length, bool) or length not in LENGTHS:
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

    # The secret is one rng.integers(n): reset may draw it without building NumPy's generator.
    _integer_draws = generate_task

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
        self._lines: list[str] = []  # one rendered line per guess
        # The oracle's candidate set; a hand-written secret outside the solutions joins it.
        extra = None if secret in solution_set(len(secret)) else secret
        self._universe_key = (len(secret), extra)
        self._mask = candidate_index(len(secret), extra).full
        self._n_start = self._left = self._mask.bit_count()

    # --- Dynamics -----------------------------------------------------------------------------
    def apply(self, command: str) -> Transition:
        """Score one guessed word; illegal words are invalid and use no guess."""
        guesses, secret = self.guesses, self.secret
        if guesses and (guesses[-1] == secret or len(guesses) >= self.max_guesses):  # over
            return Transition(
                terminated=True,
                effective=False,
                message="The game is over. Call reset() for a new one.",
            )
        word = command.strip().lower()
        # A word of the list has the right length and letters; only hard mode can refuse it.
        legal = word in _legal_words(len(secret))
        problem = self._illegal(word) if self.hard_mode or not legal else ""
        if problem:
            return Transition(valid=False, effective=False, message=f"Invalid guess: {problem}")
        marks = feedback(word, secret)
        guesses.append(word)
        self.marks.append(marks)
        self._lines.append(f"{len(guesses)}. {word.upper()}  {_spaced(marks)}")
        mask = self._mask
        if mask & (mask - 1):  # more than one candidate left
            self._mask = mask = mask & candidate_index(*self._universe_key).consistent(word, marks)
            self._left = mask.bit_count()
        if word == secret:
            return _SOLVED
        if len(guesses) >= self.max_guesses:
            return _LOST
        return _GO_ON

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

    # --- Views --------------------------------------------------------------------------------
    def _example(self) -> str:
        return f"<action>{_EXAMPLE_WORD[len(self.secret)]}</action>"

    def instructions(self) -> str:
        """Rules, feedback legend, action grammar and one example (never the secret)."""
        return _instructions(len(self.secret), self.max_guesses, self.hard_mode, self._example())

    def render_text(self) -> str:
        """Guesses left, then one line per guess with its marks."""
        left = self.max_guesses - len(self.guesses)
        head = (
            f"Guesses left: {left} of {self.max_guesses}. "
            f"The secret word has {len(self.secret)} letters."
        )
        return "\n".join([head, *self._lines]) if self._lines else head

    def state_key(self) -> str:
        """``"guesses=adieu,crane"``: the sorted set of guessed words (the feedback follows)."""
        return "guesses=" + ",".join(sorted(set(self.guesses)))

    def score(self) -> float:
        """1.0 once the secret has been guessed, else 0.0."""
        return 1.0 if self.guesses and self.guesses[-1] == self.secret else 0.0

    def privileged(self) -> dict[str, Any]:
        """The secret and the number of secrets consistent with the feedback so far."""
        return {"secret": self.secret, GOLD_ANSWERS: [self.secret] if self.secret else [],
                "candidates_left": self._left}

    def metrics(self) -> dict[str, Any]:
        """Guesses used and the bits of information gained so far."""
        return {
            "guesses_used": len(self.guesses),
            "bits_gained": _bits(self._n_start, self._left),
        }

    def oracle_action(self) -> str:
        """The entropy-maximising guess over the remaining candidates (see module docstring)."""
        if self._mask.bit_count() == len(load_word_lists()[0][len(self.secret)]):
            word = opening(len(self.secret), self.hard_mode)
        else:
            last = self.max_guesses - len(self.guesses) <= 1
            word = best_guess(self._candidates, self.hard_mode, last)
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


@functools.lru_cache(maxsize=64)
def _instructions(n: int, max_guesses: int, hard_mode: bool, example: str) -> str:
    """The instructions of a game (built once per rule set: every reset shows them)."""
    lines = [
        f"You are playing Wordle. Find the secret English word of {n} letters in at most "
        f"{max_guesses} guesses.",
        f"Each guess must be a word of {n} letters from the game's word list.",
        "After each guess you see the guess and one mark per letter: G = right letter in the "
        "right place, Y = the letter is in the word but in another place, - = the letter is "
        "not in the word (or the word has no more copies of it).",
        "A guessed letter that appears twice is marked Y twice only if the word has it twice.",
    ]
    if hard_mode:
        lines.append(
            "Hard mode: every hint must be used. Letters marked G must stay in their place "
            "and letters marked Y must appear in every later guess."
        )
    lines.append(
        "Solving gives reward 1 and ends the game. Think if you like, then answer with one "
        f"word in action tags, for example: {example}"
    )
    return "\n".join(lines)
