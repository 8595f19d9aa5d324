"""Exact arithmetic for Countdown: a safe expression parser and an exhaustive solver.

* :func:`evaluate_expression` parses ``+ - * /`` and parentheses over whole numbers by
  recursive descent (never ``eval``), checks that only the given numbers are used, each at most
  as often as given, and evaluates exactly with :class:`fractions.Fraction`.
* :func:`solve` and :func:`reachable_values` enumerate every value reachable from every subset
  of the numbers by a subset dynamic programme (all operator trees, exact rationals, cached per
  multiset of numbers), so "no solution" is a proof. Cost: ~2 ms for 4 numbers, ~40 ms for 5;
  6 numbers would take seconds in pure Python, so the env allows at most 5.

Used by :mod:`turngym.envs.games.countdown`.
"""

from __future__ import annotations

import operator
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from fractions import Fraction
from functools import lru_cache
from math import gcd
from typing import Union

__all__ = [
    "MAX_NUMBERS",
    "Value",
    "ExpressionError",
    "evaluate_expression",
    "reachable_values",
    "reachable_targets",
    "solve",
    "closest",
]

Value = Union[int, Fraction]  # noqa: UP007 (a runtime alias; int whenever the value is whole)
"""An exact value: an ``int`` when whole, else a ``Fraction`` (equal values hash alike)."""

MAX_NUMBERS = 5
"""The most numbers the exhaustive solver accepts."""

_MAX_EXPRESSION_CHARS = 300
_MAX_DEPTH = 40
_ALIASES = str.maketrans({"×": "*", "x": "*", "X": "*", "÷": "/", "−": "-", "–": "-"})
_TOKEN = re.compile(r"\s*(?:(\d+)|([-+*/()]))", re.ASCII)


class ExpressionError(ValueError):
    """An expression that cannot be accepted; the message says why and what to do instead."""


# --- Parsing and exact evaluation ---------------------------------------------------------------
def _num(x: Fraction) -> Value:
    """Return ``x`` as an int when it is whole (ints are much faster and hash alike)."""
    return x.numerator if x.denominator == 1 else x


def _div(a: Value, b: Value) -> Value:
    """Exact ``a / b`` for ``b != 0``, an int when whole."""
    if isinstance(a, int) and isinstance(b, int):
        return a // b if a % b == 0 else Fraction(a, b)
    return _num(Fraction(a) / Fraction(b))


_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": _div}


class _Parser:
    """Recursive descent; records the numbers it reads.

    Grammar: ``sum := product (('+'|'-') product)*``, ``product := atom (('*'|'/') atom)*``,
    ``atom := NUMBER | '(' sum ')'``.
    """

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = [*tokens, ""]  # "" marks the end, so lookahead never overruns
        self.pos = 0
        self.used: list[int] = []

    def chain(self, depth: int, ops: str) -> Value:
        """Parse a left-associative chain of ``ops`` (sums, or products when ``ops`` is */)."""
        value = self.chain(depth, "*/") if ops == "+-" else self.atom(depth)
        while self.tokens[self.pos] and self.tokens[self.pos] in ops:
            op = self.tokens[self.pos]
            self.pos += 1
            rhs = self.chain(depth, "*/") if ops == "+-" else self.atom(depth)
            if op == "/" and rhs == 0:
                raise ExpressionError("division by zero")
            value = _OPS[op](value, rhs)
        return value

    def atom(self, depth: int) -> Value:
        """Parse a number or a parenthesised sum."""
        token = self.tokens[self.pos]
        self.pos += 1
        if token[:1].isdigit():
            self.used.append(int(token))
            return int(token)
        if token == "(" and depth < _MAX_DEPTH:
            value = self.chain(depth + 1, "+-")
            if self.tokens[self.pos] != ")":
                raise ExpressionError("a '(' is never closed")
            self.pos += 1
            return value
        if token == "(":
            raise ExpressionError(f"parentheses are nested more than {_MAX_DEPTH} deep")
        if not token:
            raise ExpressionError("the expression ends too early (a number or '(' is missing)")
        if token == "-":
            raise ExpressionError("a minus sign must stand between two operands (no -5)")
        raise ExpressionError(f"unexpected {token!r} where a number or '(' should be")


def _tokenize(text: str) -> list[str]:
    """Split ``text`` into number and operator tokens; raise on anything else."""
    tokens, pos = [], 0
    stripped = text.rstrip()
    while pos < len(stripped):
        match = _TOKEN.match(stripped, pos)
        if match is None:
            bad = stripped[pos:].lstrip()[:1]
            what = "decimals are" if bad == "." else f"{bad!r} is"
            raise ExpressionError(f"{what} not allowed; use whole numbers, + - * / and parentheses")
        tokens.append(match.group(1) or match.group(2))
        pos = match.end()
    return tokens


def evaluate_expression(
    text: str, numbers: Sequence[int], *, use_all: bool = False
) -> tuple[Value, list[int]]:
    """Parse and evaluate an arithmetic expression over the given numbers, exactly.

    ``×``/``x`` and ``÷`` are read as ``*`` and ``/``; a trailing ``= N`` is ignored (the
    value always comes from the left-hand side).

    Args:
        text: The expression, e.g. ``"(25-5)*4+3"``.
        numbers: The available numbers (a multiset: a number given twice may be used twice).
        use_all: Require every number to be used exactly once.

    Returns:
        The exact value (an ``int`` when whole, else a ``Fraction``) and the numbers used.

    Raises:
        ExpressionError: Garbage, unbalanced parentheses, a number that is not available (or
            used more often than given), an unused number under ``use_all``, or division by
            zero. The message says which.

    Example:
        >>> evaluate_expression("8 / (3 - 8/3)", [3, 3, 8, 8])
        (24, [8, 3, 8, 3])
        >>> evaluate_expression("25*25", [25, 4])
        Traceback (most recent call last):
        ...
        turngym.envs.games.countdown_solver.ExpressionError: 25 is used 2 times but given only once
    """
    if len(text) > _MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"the expression is longer than {_MAX_EXPRESSION_CHARS} characters")
    text = text.translate(_ALIASES)
    if text.count("=") == 1 and re.fullmatch(r"\s*\d+\s*", text.split("=")[1]):
        text = text.split("=")[0]
    tokens = _tokenize(text)
    if not tokens:
        raise ExpressionError("the expression is empty")
    parser = _Parser(tokens)
    value = parser.chain(0, "+-")  # division by zero surfaces here, before the usage check
    if parser.pos != len(tokens):
        extra = tokens[parser.pos]
        raise ExpressionError(
            "unmatched ')'" if extra == ")" else f"{extra!r} cannot follow a complete operand"
        )
    _check_usage(parser.used, numbers, use_all)
    return value, parser.used


def _check_usage(used: Sequence[int], numbers: Sequence[int], use_all: bool) -> None:
    """Raise if ``used`` is not a sub-multiset of ``numbers`` (or not all of it with use_all)."""
    have, want = Counter(numbers), Counter(used)
    for number in want:  # in order of first use
        if have[number] == 0:
            raise ExpressionError(f"{number} is not one of the given numbers")
        if want[number] > have[number]:
            times = "once" if have[number] == 1 else f"{have[number]} times"
            raise ExpressionError(f"{number} is used {want[number]} times but given only {times}")
    if use_all and want != have:
        missing = sorted((have - want).elements())
        raise ExpressionError(
            f"every number must be used exactly once; unused: {' '.join(map(str, missing))}"
        )


# --- The exact solver ---------------------------------------------------------------------------
# Inside the solver a value is an int when whole, else a normalised (numerator, denominator)
# tuple with denominator > 1: hashing and building Fractions cost ~80% of the time otherwise.
# table[mask] maps every value reachable with exactly the numbers in ``mask`` to how it was
# first reached: the leaf index, or (op, mask_a, value_a, mask_b, value_b).
_Q = Union[int, tuple[int, int]]  # noqa: UP007
_Node = Union[int, tuple[str, int, _Q, int, _Q]]  # noqa: UP007


def _q(n: int, d: int) -> _Q:
    """Normalise ``n / d`` (``d != 0``)."""
    g = gcd(n, d)
    n, d = (n // g, d // g) if d > 0 else (-n // g, -d // g)
    return n if d == 1 else (n, d)


def _slow(op: str, a: _Q, b: _Q) -> _Q | None:
    """``a op b`` when either side is a fraction; ``None`` for division by zero."""
    an, ad = (a, 1) if type(a) is int else a
    bn, bd = (b, 1) if type(b) is int else b
    if op == "+":
        return _q(an * bd + bn * ad, ad * bd)
    if op == "-":
        return _q(an * bd - bn * ad, ad * bd)
    if op == "*":
        return _q(an * bn, ad * bd)
    return _q(an * bd, ad * bn) if bn else None


def _combine(
    a_vals: Mapping[_Q, _Node], b_vals: Mapping[_Q, _Node], ma: int, mb: int, out: dict[_Q, _Node]
) -> None:
    """Add every ``a op b`` (both orders for - and /) to ``out``; the first way found wins.

    The solver's hot loop: witnesses are built only for new values, and int pairs take a fast
    path (whole quotients stay ints).
    """
    for a in a_vals:
        a_int = type(a) is int
        for b in b_vals:
            if a_int and type(b) is int:
                found = [
                    ("+", a + b, ma, a, mb, b),
                    ("*", a * b, ma, a, mb, b),
                    ("-", a - b, ma, a, mb, b),
                    ("-", b - a, mb, b, ma, a),
                ]
                if b:
                    found.append(("/", a // b if a % b == 0 else _q(a, b), ma, a, mb, b))
                if a:
                    found.append(("/", b // a if b % a == 0 else _q(b, a), mb, b, ma, a))
            else:
                found = [
                    (op, _slow(op, x, y), mx, x, my, y)
                    for op, mx, x, my, y in (
                        ("+", ma, a, mb, b),
                        ("*", ma, a, mb, b),
                        ("-", ma, a, mb, b),
                        ("-", mb, b, ma, a),
                        ("/", ma, a, mb, b),
                        ("/", mb, b, ma, a),
                    )
                ]
            for op, v, mx, x, my, y in found:
                if v is not None and v not in out:
                    out[v] = (op, mx, x, my, y)


@lru_cache(maxsize=256)
def _table(numbers: tuple[int, ...]) -> tuple[dict[_Q, _Node], ...]:
    """Every value reachable from every subset of ``numbers`` (a sorted tuple), with a witness.

    Subsets are visited by size; each split into two non-empty halves is combined once (the
    half holding the lowest index is the first operand set). Identical sub-multisets (from
    repeated numbers) are still enumerated separately: simple, and only a constant factor.
    """
    n = len(numbers)
    table: list[dict[_Q, _Node]] = [{} for _ in range(1 << n)]
    for i, x in enumerate(numbers):
        table[1 << i][x] = i
    for mask in sorted(range(1, 1 << n), key=lambda m: (bin(m).count("1"), m)):
        low, out = mask & -mask, table[mask]
        sub = (mask - 1) & mask
        while sub:
            if sub & low and sub != mask:
                _combine(table[sub], table[mask ^ sub], sub, mask ^ sub, out)
            sub = (sub - 1) & mask
    return tuple(table)


_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "": 3}


def _render(numbers: tuple[int, ...], mask: int, value: _Q) -> tuple[str, str]:
    """Write the witness of ``value`` with only the parentheses needed; also its root operator.

    An operand needs parentheses when its root binds more loosely than the operator, and the
    right operand also at equal precedence under ``-`` and ``/`` (``a-(b-c)``).
    """
    node = _table(numbers)[mask][value]
    if isinstance(node, int):
        return str(numbers[node]), ""
    op, ma, a, mb, b = node
    (left, lop), (right, rop) = _render(numbers, ma, a), _render(numbers, mb, b)
    if _PREC[lop] < _PREC[op]:
        left = f"({left})"
    if _PREC[rop] < _PREC[op] or (_PREC[rop] == _PREC[op] and op in "-/"):
        right = f"({right})"
    return f"{left}{op}{right}", op


def _reachable(key: tuple[int, ...], use_all: bool) -> dict[_Q, int]:
    """Value -> smallest subset mask reaching it (masks index the sorted ``key``)."""
    table = _table(key)
    full = (1 << len(key)) - 1
    if use_all:
        return dict.fromkeys(table[full], full)
    found: dict[_Q, int] = {}
    for mask in sorted(range(1, full + 1), key=lambda m: (bin(m).count("1"), m)):
        for value in table[mask]:
            found.setdefault(value, mask)
    return found


def _key(numbers: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted(int(x) for x in numbers))


def reachable_values(numbers: Sequence[int], *, use_all: bool = False) -> set[Value]:
    """Every value reachable from ``numbers`` (each used at most once, or all with ``use_all``).

    Example:
        >>> sorted(reachable_values([2, 3], use_all=True), key=float)
        [-1, Fraction(2, 3), 1, Fraction(3, 2), 5, 6]
    """
    return {v if type(v) is int else Fraction(*v) for v in _reachable(_key(numbers), use_all)}


def reachable_targets(
    numbers: Sequence[int], low: int, high: int, *, use_all: bool = False
) -> list[int]:
    """The whole numbers from ``low`` to ``high`` that ``numbers`` can reach, ascending."""
    found = _reachable(_key(numbers), use_all)
    return sorted(v for v in found if type(v) is int and low <= v <= high)


def solve(numbers: Sequence[int], target: int, *, use_all: bool = False) -> str | None:
    """Return an expression over ``numbers`` that equals ``target``, or ``None`` if none does.

    The search is exhaustive (all subsets, all operator trees, exact rationals), so ``None``
    proves the task unsolvable. Among solutions it prefers one with the fewest numbers.

    Example:
        >>> solve([25, 5, 4, 3], 83)
        '(25-3)*4-5'
        >>> solve([1, 1], 5) is None
        True
    """
    key = _key(numbers)
    mask = _reachable(key, use_all).get(target)
    return None if mask is None else _render(key, mask, target)[0]


def closest(numbers: Sequence[int], target: int, *, use_all: bool = False) -> str:
    """Return an expression whose value is nearest to ``target`` (the smaller one on ties).

    Example:
        >>> closest([1, 1], 5)
        '1+1'
    """
    key = _key(numbers)
    found = _reachable(key, use_all)

    def rank(v: _Q) -> tuple[Fraction, Fraction]:
        exact = Fraction(v) if type(v) is int else Fraction(*v)
        return abs(exact - target), exact

    best = min(found, key=rank)
    return _render(key, found[best], best)[0]
