"""Shared machinery of the attribute-guessing games: TwentyQuestions and GuessMyCity.

Both re-create LMRL-Gym's dialogue games (Abdulhai et al., 2023, "LMRL Gym: Benchmarks for
Multi-Turn Reinforcement Learning with Language Models") without a
language model: the hidden thing comes from a shipped knowledge base of yes/no attributes, and a
rule-based answerer answers exactly the question it is asked, from a small grammar:

* ``ask: <key>`` or the question itself, word for word (``Is it an animal?``): answered
  ``Yes.`` or ``No.``; ``ask: letter_b`` asks whether the name starts with B.
* ``guess: <name>`` or ``Is it <name>?``: a right guess wins; a wrong one costs a question.

Anything else is an invalid action whose observation restates the grammar. Replies never echo
the agent's text and never name the hidden thing before it is guessed (see
:meth:`AttributeGuessingGame.leak_check`). The oracle asks the question that best splits the
remaining candidates (maximum information gain) and guesses once one remains.
"""

from __future__ import annotations

import functools
import importlib.resources
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, ClassVar

import numpy as np

from turngym.core import GOLD_ANSWERS, TextEnv, Transition

__all__ = [
    "Attribute",
    "KnowledgeBase",
    "AttributeGuessingGame",
    "normalize",
    "read_table",
]

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_NATURAL_GUESS = re.compile(
    r"^(?:is it|it is|it s|i guess|my guess is)\s+(?:(?:a|an|the)\s+)?(.+)$"
)
_ARTICLE = re.compile(r"^(?:a|an|the)\s+")


def normalize(text: str) -> str:
    """Lowercase, strip accents, turn every run of non-alphanumerics into one space.

    Example:
        >>> normalize("  São-Paulo?! "), normalize("four_legs")
        ('sao paulo', 'four legs')
    """
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).casefold()
    return " ".join(re.findall(r"[a-z0-9]+", plain))


def read_table(filename: str) -> list[list[str]]:
    """Read a ``|``-separated data file shipped in ``turngym/envs/games/data`` (no comments)."""
    folder = importlib.resources.files("turngym.envs.games") / "data"
    rows = []
    for line in (folder / filename).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            rows.append([cell.strip() for cell in line.split("|")])
    return rows


@dataclass(frozen=True, slots=True)
class Attribute:
    """One yes/no question: its ``key`` for ``ask: key``, its text, and its listing group.

    Attributes of the same ``group`` (e.g. every country) are listed together in the
    instructions, as keys plus one example question.
    """

    key: str
    question: str
    group: str = ""


@dataclass(frozen=True, eq=False)
class KnowledgeBase:
    """Things (canonical names plus aliases) and the truth table of their attributes.

    Build it with :meth:`build`, which appends the first-letter questions and the lookup
    tables, and checks that names, aliases and keys are unique.
    """

    names: tuple[str, ...]
    aliases: tuple[tuple[str, ...], ...]
    attributes: tuple[Attribute, ...]
    truth: np.ndarray  # (len(names), len(attributes)) bool, read-only
    row_of: Mapping[str, int] = field(default_factory=dict)  # normalized name/alias -> row
    column_of: Mapping[str, int] = field(default_factory=dict)  # normalized key/question -> col

    @classmethod
    def build(
        cls,
        things: Sequence[tuple[str, Sequence[str], set[str]]],
        attributes: Sequence[Attribute],
    ) -> KnowledgeBase:
        """Make a knowledge base from ``(name, aliases, true keys)`` rows.

        Raises:
            ValueError: A duplicate name, alias or key, or a true key that is not an attribute.
        """
        letters = [
            Attribute(f"letter_{c}", f"Does its name start with the letter {c.upper()}?", "letter")
            for c in _LETTERS
        ]
        attributes = (*attributes, *letters)
        column_of: dict[str, int] = {}
        for col, attr in enumerate(attributes):
            for form in {normalize(attr.key), normalize(attr.question)}:
                if column_of.setdefault(form, col) != col:
                    raise ValueError(f"Attribute form {form!r} is used twice.")
            if attr.group == "letter":
                column_of.setdefault(f"starts with {attr.key[-1]}", col)
        keys = [a.key for a in attributes]
        truth = np.zeros((len(things), len(attributes)), dtype=bool)
        row_of: dict[str, int] = {}
        for row, (name, aliases, true_keys) in enumerate(things):
            unknown = sorted(set(true_keys) - set(keys))
            if unknown:
                raise ValueError(f"{name!r} has unknown attribute(s) {unknown}.")
            truth[row, [keys.index(k) for k in true_keys]] = True
            truth[row, keys.index(f"letter_{normalize(name)[0]}")] = True
            for form in (name, *aliases):
                if row_of.setdefault(normalize(form), row) != row:
                    raise ValueError(f"Name {form!r} is used by two things.")
        truth.flags.writeable = False
        return cls(
            tuple(t[0] for t in things),
            tuple(tuple(t[1]) for t in things),
            tuple(attributes),
            truth,
            row_of,
            column_of,
        )

    def variants(self, row: int) -> tuple[str, ...]:
        """Normalized name and aliases of thing ``row``, with and without spaces."""
        forms = {normalize(n) for n in (self.names[row], *self.aliases[row])}
        return tuple(sorted(forms | {f.replace(" ", "") for f in forms}))


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


@functools.cache
def _split_entropy(yes: int, total: int) -> float:
    """Entropy (bits) of a yes/no answer that is yes for ``yes`` of ``total`` candidates."""
    if yes in (0, total):
        return 0.0
    p = yes / total
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


class AttributeGuessingGame(TextEnv):
    """Find the hidden thing by asking yes/no questions about its attributes.

    Subclasses set :attr:`family`, :attr:`thing`, :attr:`title`, :attr:`hidden_hint` and
    implement :meth:`knowledge_base`.

    Difficulty knobs: ``n_candidates`` (the hidden thing is one of this many, drawn per task;
    0 = the whole knowledge base), ``show_candidates`` (list them in the instructions; if
    false the agent must find the thing among everything it may be, as in LMRL-Gym) and
    ``max_questions`` (questions plus guesses before the game is lost, 20 as in LMRL-Gym).

    A task is ``{"secret": name, "candidates": [names...]}``. Solving pays reward 1 and ends
    the episode with score 1; running out of questions ends it with score 0 and the secret is
    not revealed. Privileged info: ``secret``, ``gold_answers`` (its name and aliases) and
    ``candidates_left`` (candidates consistent with every answer and wrong guess so far).
    """

    # --- Set by subclasses ---
    thing: ClassVar[str] = "thing"
    """What the hidden thing is called in texts ("object", "city")."""
    title: ClassVar[str] = "a guessing game"
    """The game's name in the instructions."""
    hidden_hint: ClassVar[str] = ""
    privileged_keys: ClassVar[frozenset[str]] = frozenset({GOLD_ANSWERS})
    answer_template: ClassVar[str] = "<action>guess: {answer}</action>"
    """What the agent is told about the thing when the candidates are not shown."""

    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "n_candidates": 25,
        "show_candidates": True,
        "max_questions": 20,
    }
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"n_candidates": 10, "show_candidates": True},
        1: {"n_candidates": 25, "show_candidates": True},
        2: {"n_candidates": 50, "show_candidates": True},
        3: {"n_candidates": 0, "show_candidates": True},
        4: {"n_candidates": 0, "show_candidates": False},
    }

    @classmethod
    def knowledge_base(cls) -> KnowledgeBase:
        """Return the (cached) knowledge base of this game."""
        raise NotImplementedError

    def __init__(self, **kwargs: Any) -> None:
        """Create the env; keyword arguments are those of :class:`~turngym.core.TextEnv`."""
        super().__init__(**kwargs)
        kb = self.knowledge_base()
        examples = [f"<action>ask: {a.key}</action>" for a in kb.attributes if not a.group]
        examples += [f"<action>guess: {name}</action>" for name in kb.names]
        self.action_space = type(self.action_space)(examples=tuple(examples))
        self.secret = ""
        self.candidates: tuple[str, ...] = ()
        self.answers: dict[int, bool] = {}  # column -> answer, in the order asked
        self.wrong: list[str] = []
        self.used = 0
        self.solved = False
        self._rows: tuple[int, ...] = ()
        self._alive: np.ndarray = np.zeros(0, dtype=bool)
        self._listing = ""

    # --- Tasks --------------------------------------------------------------------------------
    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and its valid values."""
        size = len(self.knowledge_base().names)
        n, limit = difficulty["n_candidates"], difficulty["max_questions"]
        name = type(self).__name__
        if (isinstance(n, bool) or not isinstance(n, Integral)
                or not (n == 0 or 2 <= int(n) <= size)):  # fmt: skip
            raise ValueError(
                f"{name}: n_candidates={n!r} is invalid; use 2 to {size}, or 0 for all {size}."
            )
        if not isinstance(difficulty["show_candidates"], bool):
            raise ValueError(f"{name}: show_candidates must be True or False.")
        if isinstance(limit, bool) or not isinstance(limit, Integral) or not 1 <= int(limit) <= 500:
            raise ValueError(f"{name}: max_questions={limit!r} is invalid; use 1 to 500.")

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw the candidates (without replacement), then the secret among them."""
        names = self.knowledge_base().names
        n = int(difficulty["n_candidates"]) or len(names)
        picked = sorted(int(i) for i in rng.choice(len(names), size=n, replace=False))
        candidates = [names[i] for i in picked]
        return {"secret": candidates[int(rng.integers(n))], "candidates": candidates}

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Check the task against the knowledge base and start with nothing asked."""
        kb = self.knowledge_base()
        where = f"{type(self).__name__} task"
        if set(task) != {"secret", "candidates"}:
            raise ValueError(f'A {where} is {{"secret": name, "candidates": [names]}}.')
        candidates, secret = task["candidates"], task["secret"]
        if isinstance(candidates, str) or not isinstance(candidates, Sequence) or not candidates:
            raise ValueError(f"{where}: 'candidates' must be a non-empty list of names.")
        unknown = [c for c in candidates if not isinstance(c, str) or c not in kb.names]
        if unknown or len(set(candidates)) != len(candidates) or secret not in candidates:
            raise ValueError(
                f"{where}: candidates must be distinct names of the knowledge base "
                f"(unknown: {unknown[:3]}) and include the secret."
            )
        self.secret = secret
        self.candidates = tuple(sorted(candidates, key=normalize))
        self._rows = tuple(kb.names.index(c) for c in self.candidates)
        self._alive = np.ones(len(self._rows), dtype=bool)
        self.answers, self.wrong, self.used, self.solved = {}, [], 0, False
        self.max_questions = int(self.episode_difficulty["max_questions"])
        self.show_candidates = bool(self.episode_difficulty["show_candidates"])
        names, n = "; ".join(self.candidates), len(self.candidates)
        shown = f"The {self.thing} is one of these {n}: {names}."
        self._listing = shown if self.show_candidates else ""

    # --- Dynamics -----------------------------------------------------------------------------
    def apply(self, command: str) -> Transition:
        """Answer one question or judge one guess; anything else is invalid (never echoed)."""
        if self.solved or self.used >= self.max_questions:
            return Transition(
                terminated=True,
                effective=False,
                message="The game is over. Call reset() for a new one.",
            )
        kind, value = self._parse(normalize(command))
        if kind == "ask":
            return self._ask(value)
        if kind == "guess":
            return self._guess(value)
        return Transition(valid=False, effective=False, message=f"Invalid action: {kind}")

    def _parse(self, text: str) -> tuple[str, int]:
        """``("ask", column)``, ``("guess", row)`` (-1: unknown name) or ``(error, -1)``."""
        kb = self.knowledge_base()
        verb, _, rest = text.partition(" ")
        if verb == "ask":
            column = kb.column_of.get(rest, -1)
            return ("ask", column) if column >= 0 else (self._bad_question(), -1)
        if verb == "guess":
            name = _ARTICLE.sub("", rest)
            return ("guess", kb.row_of.get(name, -1)) if name else (self._grammar(), -1)
        if text in kb.column_of:
            return "ask", kb.column_of[text]
        natural = _NATURAL_GUESS.match(text)
        if natural and natural.group(1) in kb.row_of:
            return "guess", kb.row_of[natural.group(1)]
        return self._bad_question(), -1

    def _bad_question(self) -> str:
        return f"that is not a question I can answer. {self._grammar()}"

    def _grammar(self) -> str:
        return (
            "Ask one listed question, e.g. <action>ask: letter_b</action> or the question word "
            "for word, or guess with <action>guess: NAME</action>."
        )

    def _ask(self, column: int) -> Transition:
        kb = self.knowledge_base()
        answer = bool(kb.truth[kb.names.index(self.secret), column])
        again = column in self.answers
        self.answers[column] = answer
        self.used += 1
        self._alive &= kb.truth[list(self._rows), column] == answer
        said = "Yes." if answer else "No."
        return self._after_turn(f"{kb.attributes[column].question} {said}", effective=not again)

    def _guess(self, row: int) -> Transition:
        kb = self.knowledge_base()
        name = kb.names[row] if row >= 0 else ""
        if self.show_candidates and name not in self.candidates:
            return Transition(
                valid=False,
                effective=False,
                message=(
                    f"Invalid action: that is not one of the {len(self.candidates)} candidates. "
                    "Guess a name from the list exactly as written."
                ),
            )
        self.used += 1
        if name == self.secret:
            self.solved = True
            return Transition(
                reward=1.0,
                terminated=True,
                reward_components={"solved": 1.0},
                message=f"Yes! It is {self.secret}. You found it with {self.used} questions.",
            )
        said = f"No, it is not {name}." if name else f"No, that is not the {self.thing}."
        if name and name not in self.wrong:
            self.wrong.append(name)
            if name in self.candidates:
                self._alive[self.candidates.index(name)] = False
        return self._after_turn(said, effective=bool(name))

    def _after_turn(self, message: str, effective: bool) -> Transition:
        if self.used >= self.max_questions:
            return Transition(
                terminated=True,
                effective=effective,
                message=f"{message} No questions left. The game is over.",
            )
        return Transition(effective=effective, message=message)

    # --- Views --------------------------------------------------------------------------------
    def instructions(self) -> str:
        """The rules, the candidates (if shown), every question and the grammar; no secret."""
        lines = [
            f"You are playing {self.title}. I am thinking of {_a(self.thing)}; find out which by "
            "asking yes/no questions.",
            self._listing or self.hidden_hint,
            f"You have {self.max_questions} turns: every question and every guess uses one. A "
            "right guess wins (reward 1) and ends the game; a wrong guess only uses a turn.",
            "The questions I can answer (key: question):",
            *self._question_lines(),
            "Act with exactly one of these inside <action></action> each turn:",
            "- ask by key: <action>ask: KEY</action>, e.g. <action>ask: letter_b</action>",
            "- or ask a listed question word for word, e.g. <action>"
            f"{self.knowledge_base().attributes[0].question}</action>",
            "- guess: <action>guess: NAME</action> or <action>Is it NAME?</action>",
            "Any other question is not understood and counts as an invalid turn.",
        ]
        return "\n".join(line for line in lines if line)

    def _question_lines(self) -> list[str]:
        groups: dict[str, list[Attribute]] = {}
        lines = []
        for attr in self.knowledge_base().attributes:
            if attr.group:
                groups.setdefault(attr.group, []).append(attr)
            else:
                lines.append(f"{attr.key}: {attr.question}")
        for name, attrs in groups.items():
            keys = ", ".join(a.key for a in attrs)
            example = f"{attrs[0].key}: {attrs[0].question}"
            lines.append(f"{name.capitalize()} questions, for example {example} Keys: {keys}.")
        return lines

    def render_text(self) -> str:
        """Turns left, every answer so far and the wrong guesses."""
        kb = self.knowledge_base()
        lines = [f"Questions left: {self.max_questions - self.used} of {self.max_questions}."]
        if self.solved:
            lines.append(f"Solved: it is {self.secret}.")
        for column, answer in self.answers.items():
            lines.append(f"- {kb.attributes[column].question} {'Yes.' if answer else 'No.'}")
        if self.wrong:
            lines.append(f"Wrong guesses: {'; '.join(self.wrong)}.")
        if len(lines) == 1:
            lines.append("Nothing asked yet.")
        return "\n".join(lines)

    def state_key(self) -> str:
        """``"asked=animal:y,letter_b:n|wrong=dog"``: sorted answers and sorted wrong guesses."""
        attrs = self.knowledge_base().attributes
        asked = sorted(f"{attrs[c].key}:{'y' if a else 'n'}" for c, a in self.answers.items())
        solved = "|solved" if self.solved else ""
        return f"asked={','.join(asked)}|wrong={','.join(sorted(self.wrong))}{solved}"

    def score(self) -> float:
        """1.0 once the thing has been guessed, else 0.0."""
        return 1.0 if self.solved else 0.0

    def privileged(self) -> dict[str, Any]:
        """The secret and how many candidates are consistent with everything said so far."""
        kb = self.knowledge_base()
        golds = [self.secret, *kb.aliases[kb.names.index(self.secret)]] if self.secret else []
        return {"secret": self.secret, GOLD_ANSWERS: golds,
                "candidates_left": int(self._alive.sum())}  # fmt: skip

    def metrics(self) -> dict[str, Any]:
        """Questions used and the bits of information gained so far."""
        left = max(1, int(self._alive.sum()))
        return {
            "questions_used": self.used,
            "bits_gained": round(math.log2(len(self.candidates) / left), 6),
        }

    # --- Oracle and leak check ----------------------------------------------------------------
    def oracle_action(self) -> str:
        """Ask the question with the most information gain; guess once one candidate remains.

        With two candidates left, or when the best question only singles out one candidate,
        guessing that candidate gives the same information plus a chance to win now. With one
        turn left it guesses. Ties go to the earlier question in the knowledge base.
        """
        kb = self.knowledge_base()
        alive = [i for i, ok in enumerate(self._alive) if ok] or list(range(len(self._rows)))
        names = [self.candidates[i] for i in alive]
        if len(alive) <= 2 or self.max_questions - self.used <= 1:
            return f"<action>guess: {names[0]}</action>"
        table = kb.truth[[self._rows[i] for i in alive]]
        yes = table.sum(axis=0)
        gains = [_split_entropy(int(y), len(alive)) for y in yes]
        best = int(np.argmax(gains))
        if gains[best] == 0.0:  # no question tells the rest apart
            return f"<action>guess: {names[0]}</action>"
        if min(yes[best], len(alive) - yes[best]) == 1:
            single = int(np.flatnonzero(table[:, best] == (yes[best] == 1))[0])
            return f"<action>guess: {names[single]}</action>"
        return f"<action>ask: {kb.attributes[best].key}</action>"

    def leak_check(self, text: str) -> list[str]:
        """Flag any form of the secret's name or aliases in ``text`` until it is guessed.

        The text and the names are normalized (case, accents, punctuation), and a name counts
        with its spaces or without them, also inside a longer word: ``"SAO-PAULO"``,
        ``"saopaulo"`` and ``"Parisian"`` all count. The
        candidate listing of the instructions is exempt: it names every candidate in a
        fixed (alphabetical) order, so it says nothing about which one is hidden.
        """
        if not self.secret or self.solved:
            return []
        if self._listing:
            text = text.replace(self._listing, " ")
        plain = normalize(text)
        row = self.knowledge_base().names.index(self.secret)
        return [
            f"the hidden {self.thing}'s name appears in the text (as {variant!r})"
            for variant in self.knowledge_base().variants(row)
            if variant in plain
        ]
