"""Puzzle generators and answer normalisation for the TryAgain env (UFO).

UFO ("A Simple 'Try Again' Can Elicit Multi-Turn LLM Reasoning", arXiv 2507.14295) wraps
single-answer problems in a multi-attempt loop; turngym uses procedural
generators instead of MetaMathQA (docs/environments.md#tryagain). Three families are written here:

* ``arithmetic``: a multi-step word problem about a collection (buy, give away, packs of N,
  doubling, halving); the answer is an integer.
* ``ordering``: who is taller / older / faster, from pairwise facts whose transitive closure fixes
  a total order; the answer is the whole order (``"Cleo, Ada, Ben"``), so that the question,
  which must name everyone, still does not contain it.
* ``sequence``: the next term of an arithmetic, geometric, quadratic, Fibonacci-like,
  interleaved or affine-recurrence sequence.

Every generator rejects candidates whose gold answer appears in the question
(:func:`answer_in_text`), which is also :class:`TryAgain`'s leak check. Generators draw only
from the ``numpy.random.Generator`` they are given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = [
    "GENERATORS",
    "generate_puzzle",
    "parse_number",
    "answer_key",
    "is_correct",
    "answer_in_text",
]

Puzzle = dict[str, Any]

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_WORD = re.compile(r"[a-z]+")
_FILLER = frozenset({"and", "then", "is", "the", "from", "to", "than"})
_MAX_CANDIDATES = 200


# --- Answers ----------------------------------------------------------------------------------
def parse_number(text: str) -> float | None:
    """Read a number: the whole text (``"1,024"``, ``"-3.5"``, ``"7/2"``) or its only number.

    Example:
        >>> parse_number(" 1,024. "), parse_number("x = 42 apples"), parse_number("3 or 4")
        (1024.0, 42.0, None)
    """
    text = text.strip().rstrip(".").replace(",", "")
    fraction = re.fullmatch(r"\s*([-+]?\d+)\s*/\s*(\d+)\s*", text)
    if fraction and int(fraction.group(2)):
        return int(fraction.group(1)) / int(fraction.group(2))
    numbers = _NUMBER.findall(text)
    if len(numbers) != 1:
        return None
    try:
        value = float(numbers[0])
    except (OverflowError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _names(text: str) -> tuple[str, ...]:
    return tuple(w for w in _WORD.findall(text.lower()) if w not in _FILLER)


def answer_key(answer: str, answer_type: str) -> str:
    """Canonical form of an answer, used for correctness and for counting distinct answers.

    Numbers become ``"n:<value>"`` (so ``"42"`` and ``"42.0"`` are one answer), name lists their
    lower-case names, anything else its lower-cased words without whitespace (UFO's
    normalisation).

    Example:
        >>> answer_key("42.0", "number"), answer_key(" Ada >  ben, cleo", "order")
        ('n:42', 'o:ada|ben|cleo')
    """
    if answer_type == "number":
        value = parse_number(answer)
        if value is not None:
            return f"n:{value:.12g}"
    if answer_type == "order":
        names = _names(answer)
        if names:
            return "o:" + "|".join(names)
    return "s:" + "".join(answer.lower().split())


def is_correct(answer: str, gold: str, answer_type: str) -> bool:
    """Whether ``answer`` matches ``gold`` (numbers within 1e-6 relative tolerance).

    Example:
        >>> is_correct("12.0000001", "12", "number"), is_correct("ada ben", "Ben, Ada", "order")
        (True, False)
    """
    if answer_type == "number":
        value, target = parse_number(answer), parse_number(gold)
        return (
            value is not None
            and target is not None
            and abs(value - target) <= 1e-6 * max(1.0, abs(target))
        )
    return answer_key(answer, answer_type) == answer_key(gold, answer_type)


def answer_in_text(gold: str, answer_type: str, text: str) -> bool:
    """Whether ``text`` gives the answer away (the leak check).

    A number leaks if it appears as a standalone number; an order if its names appear
    consecutively (ignoring punctuation and filler words).

    Example:
        >>> answer_in_text("12", "number", "It costs 112 or 12.5"), answer_in_text(
        ...     "Ada, Ben", "order", "Ada and Ben")
        (False, True)
    """
    if answer_type == "number":
        value = parse_number(gold)
        return any(parse_number(token) == value for token in _NUMBER.findall(text.replace(",", "")))
    names, words = _names(gold), _names(text)
    return any(words[i : i + len(names)] == names for i in range(len(words) - len(names) + 1))


# --- Generators -------------------------------------------------------------------------------
_PEOPLE = ("Mia", "Omar", "Lena", "Ravi", "Zoe", "Ken", "Ines", "Tariq")
_ITEMS = ("stickers", "marbles", "coins", "shells", "stamps", "cards")


def _arithmetic(rng: np.random.Generator, knobs: Mapping[str, Any]) -> Puzzle:
    """A word problem with ``steps`` operations on a running total (kept within max_value)."""
    top = int(knobs["max_value"])
    name = _PEOPLE[int(rng.integers(len(_PEOPLE)))]
    items = _ITEMS[int(rng.integers(len(_ITEMS)))]
    value = int(rng.integers(2, max(3, top // 2)))
    lines, steps = [f"{name} has {value} {items}."], []
    for _ in range(int(knobs["steps"])):
        ops = (
            ["add", "sub", "packs"]
            + (["double"] if 2 * value <= top else [])
            + (["half"] if value % 2 == 0 else [])
        )
        op = ops[int(rng.integers(len(ops)))]
        if op == "add" or (op == "sub" and value < 2):
            b = int(rng.integers(1, max(2, top - value)))
            lines.append(f"Then {name} finds {b} more.")
            steps.append(f"{value} + {b} = {value + b}")
            value += b
        elif op == "sub":
            b = int(rng.integers(1, value))
            lines.append(f"{name} gives {b} of them to a friend.")
            steps.append(f"{value} - {b} = {value - b}")
            value -= b
        elif op == "packs":
            b, c = int(rng.integers(2, 6)), int(rng.integers(2, max(3, min(13, top // 10 + 3))))
            lines.append(f"{name} buys {b} packs with {c} {items} in each pack.")
            steps.append(f"{value} + {b} * {c} = {value + b * c}")
            value += b * c
        elif op == "double":
            lines.append(f"Then the number of {items} {name} has doubles.")
            steps.append(f"{value} * 2 = {value * 2}")
            value *= 2
        else:
            lines.append(f"{name} gives away half of them.")
            steps.append(f"{value} / 2 = {value // 2}")
            value //= 2
    lines.append(f"How many {items} does {name} have now?")
    return {"question": " ".join(lines), "answer": str(value), "solution": steps}


_TRAITS = (
    ("height", "taller", "shorter", "tallest", "shortest"),
    ("age", "older", "younger", "oldest", "youngest"),
    ("speed", "faster", "slower", "fastest", "slowest"),
)
_NAMES = ("Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana")


def _ordering(rng: np.random.Generator, knobs: Mapping[str, Any]) -> Puzzle:
    """Pairwise facts (every adjacent pair plus ``extra_facts`` redundant ones) fixing an order."""
    n = int(knobs["n_people"])
    people = sorted(str(p) for p in rng.choice(_NAMES, size=n, replace=False))
    order = [people[int(i)] for i in rng.permutation(n)]
    noun, more, less, most, least = _TRAITS[int(rng.integers(len(_TRAITS)))]
    pairs = [(i, i + 1) for i in range(n - 1)]
    others = [(i, j) for i in range(n) for j in range(i + 2, n)]
    for k in rng.permutation(len(others))[: int(knobs["extra_facts"])]:
        pairs.append(others[int(k)])
    facts = []
    for k in rng.permutation(len(pairs)):
        i, j = pairs[int(k)]
        if rng.random() < 0.5:
            facts.append(f"{order[i]} is {more} than {order[j]}.")
        else:
            facts.append(f"{order[j]} is {less} than {order[i]}.")
    question = (
        f"{', '.join(people[:-1])} and {people[-1]} all differ in {noun}. {' '.join(facts)} "
        f"List everyone from {most} to {least}, separated by commas."
    )
    steps = [f"{order[i]} > {order[i + 1]}" for i in range(n - 1)]
    return {"question": question, "answer": ", ".join(order), "solution": steps}


def _sequence(rng: np.random.Generator, knobs: Mapping[str, Any]) -> Puzzle:
    """The next term of a sequence whose rule comes from the ``seq_complexity`` tier."""
    kinds = [["arithmetic", "geometric"], ["quadratic", "fibonacci"], ["interleaved", "affine"]]
    pool = [k for tier in kinds[: int(knobs["seq_complexity"])] for k in tier]
    kind = pool[int(rng.integers(len(pool)))]
    n = int(knobs["seq_terms"]) + 1
    a, b = int(rng.integers(1, 20)), int(rng.integers(2, 10))
    if kind == "arithmetic":
        terms = [a + b * i for i in range(n)]
    elif kind == "geometric":
        r = int(rng.integers(2, 4))
        terms = [(a % 5 + 1) * r**i for i in range(n)]
    elif kind == "quadratic":
        c = int(rng.integers(1, 4))
        terms = [a + b * i + c * i * i for i in range(n)]
    elif kind == "fibonacci":
        terms = [a % 9 + 1, b]
        while len(terms) < n:
            terms.append(terms[-1] + terms[-2])
    elif kind == "interleaved":
        p, e = int(rng.integers(20, 60)), int(rng.integers(1, 6))
        terms = [a + b * (i // 2) if i % 2 == 0 else p - e * (i // 2) for i in range(n)]
    else:
        c = int(rng.choice([-3, -2, -1, 1, 2, 3]))
        terms = [a % 5 + 2]
        while len(terms) < n:
            terms.append(2 * terms[-1] + c)
    shown = ", ".join(str(t) for t in terms[:-1])
    return {
        "question": f"What number comes next in the sequence {shown}, ...?",
        "answer": str(terms[-1]),
        "solution": [f"rule: {kind}"],
    }


GENERATORS: Mapping[str, tuple[str, Callable[[np.random.Generator, Mapping[str, Any]], Puzzle]]]
GENERATORS = {
    "arithmetic": ("number", _arithmetic),
    "ordering": ("order", _ordering),
    "sequence": ("number", _sequence),
}
"""Puzzle type -> (answer type, generator)."""


def generate_puzzle(rng: np.random.Generator, knobs: Mapping[str, Any]) -> Puzzle:
    """Draw one puzzle of a type from ``knobs["puzzle_types"]`` whose answer is not in it.

    Returns:
        ``{"kind", "answer_type", "question", "answer", "solution"}``.

    Raises:
        RuntimeError: No leak-free candidate in 200 draws (never seen with valid knobs).
    """
    types = sorted(knobs["puzzle_types"])
    kind = types[int(rng.integers(len(types)))]
    answer_type, generate = GENERATORS[kind]
    for _ in range(_MAX_CANDIDATES):
        puzzle = generate(rng, knobs)
        if not answer_in_text(puzzle["answer"], answer_type, puzzle["question"]):
            return {"kind": kind, "answer_type": answer_type, **puzzle}
    raise RuntimeError(f"TryAgain: no leak-free {kind} puzzle in {_MAX_CANDIDATES} draws.")
