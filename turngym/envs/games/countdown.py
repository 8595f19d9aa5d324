"""Countdown: combine the given numbers with + - * / and parentheses to hit a target.

The numbers round of the *Countdown* TV show as used for LLM reasoning by TinyZero
(Jiayi-Pan/TinyZero, ``verl/utils/reward_score/countdown.py``) and "Stream of Search"
(Gandhi et al., 2024), in TextArena's single-player puzzle style
(docs/environments.md#countdown): the agent submits a whole arithmetic expression, e.g.
``<action>(25-5)*4+3</action>``,
and gets its value back as feedback, with up to ``attempts`` tries per task.

Expressions are parsed by a small recursive-descent parser (never ``eval``) and evaluated
exactly with :class:`fractions.Fraction`, so intermediate results may be fractions
(``8/(3-8/3)`` is 24) and the final value must equal the target exactly. Each given number may
be used at most once (the TV rule), or exactly once with ``use_all`` (TinyZero's check and the
24 game). An exhaustive solver (:mod:`~turngym.envs.games.countdown_solver`) draws targets
among the reachable ones, so every generated task is solvable, and gives the oracle a
solution.

Example:
    >>> import gymnasium, turngym.envs
    >>> env = gymnasium.make("turngym/Countdown-v0")
    >>> obs, info = env.reset(options={"task": {"numbers": [25, 5, 4, 3], "target": 83}})
    >>> print(obs)
    Numbers: 25 5 4 3
    Target: 83
    Attempts left: 4 of 4
    >>> obs, reward, terminated, *_ = env.step("<action>(25-5)*4+3</action>")
    >>> print(obs.splitlines()[0])
    Correct! (25-5)*4+3 = 83.
    >>> reward, terminated
    (1.0, True)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np

from turngym.core import TextEnv, TextSpace, Transition, check_int_knobs
from turngym.envs.games.countdown_solver import (
    MAX_NUMBERS,
    ExpressionError,
    Value,
    closest,
    evaluate_expression,
    reachable_targets,
    solve,
)
from turngym.tasks import task_fingerprint

__all__ = ["Countdown"]

_MAX_DRAWS = 200
_TASK_KEYS = frozenset({"numbers", "target", "use_all", "attempts"})
_INT_KNOBS: Mapping[str, tuple[int, int, str]] = {
    "n_numbers": (2, MAX_NUMBERS, "how many numbers are given"),
    "min_number": (1, 1000, "the smallest number that may be drawn"),
    "max_number": (1, 1000, "the largest number that may be drawn"),
    "min_target": (1, 100_000, "the smallest target"),
    "max_target": (1, 100_000, "the largest target"),
    "attempts": (1, 20, "how many expressions the agent may submit"),
}
# Candidate expressions inside a text (for the leak check): digits, operators, parentheses.
_EXPR_SPAN = re.compile(r"[\d(][\d\s()+\-*/×÷−]*[\d)]")
_EXAMPLES = (((2, 3, 7), 27, "(2+7)*3"), ((1, 5, 9), 50, "(1+9)*5"))


# --- The env ------------------------------------------------------------------------------------
def _check_task(task: Mapping[str, Any]) -> tuple[list[int], int]:
    """Validate the numbers and target of a task dict."""
    example = 'e.g. {"numbers": [25, 5, 4, 3], "target": 83}'
    unknown = sorted(set(task) - _TASK_KEYS)
    if unknown:
        raise ValueError(
            f"Countdown task has unknown key(s) {unknown}; known: {sorted(_TASK_KEYS)}."
        )
    numbers, target = task.get("numbers"), task.get("target")
    if (
        not isinstance(numbers, list)
        or not 1 <= len(numbers) <= MAX_NUMBERS
        or not all(
            isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 100_000 for x in numbers
        )
    ):
        raise ValueError(
            f"Countdown task 'numbers' must be a list of 1 to {MAX_NUMBERS} positive integers, "
            f"{example}."
        )
    if isinstance(target, bool) or not isinstance(target, int) or abs(target) > 10**9:
        raise ValueError(f"Countdown task 'target' must be an integer, {example}.")
    return numbers, target


def _random_expressions(
    numbers: Sequence[int], use_all: bool, rng: np.random.Generator, k: int = 16
) -> tuple[str, ...]:
    """Up to ``k`` random valid tagged expressions over ``numbers`` (random subsets, trees, ops)."""
    out: list[str] = []
    for _ in range(4 * k):
        size = len(numbers) if use_all else int(rng.integers(2, len(numbers) + 1))
        items = [str(numbers[i]) for i in rng.permutation(len(numbers))[:size]]
        while len(items) > 1:
            i, j = (int(x) for x in rng.choice(len(items), size=2, replace=False))
            a, b = (x if x.isdigit() else f"({x})" for x in (items[i], items[j]))
            items = [x for t, x in enumerate(items) if t not in (i, j)]
            items.append(f"{a}{'+-*/'[int(rng.integers(4))]}{b}")
        try:
            evaluate_expression(items[0], numbers, use_all=use_all)
        except ExpressionError:  # e.g. a division by zero
            continue
        out.append(f"<action>{items[0]}</action>")
        if len(out) == k:
            break
    return tuple(out)


def _closeness(value: Value | None, target: int) -> float:
    """Partial credit of a near miss: ``0.5 * max(0, 1 - |value - target| / max(|target|, 1))``."""
    if value is None:
        return 0.0
    return 0.5 * max(0.0, 1.0 - float(abs(Fraction(value) - target)) / max(abs(target), 1))


class Countdown(TextEnv):
    """Reach the target from the given numbers with + - * / (TinyZero / Stream-of-Search).

    Each turn the agent submits one whole expression. A *valid* expression uses up one of
    ``attempts`` tries and its exact value comes back as feedback ("30, which is 53 below the
    target"); hitting the target ends the episode with reward 1. An *invalid* one (garbage,
    a number that is not given or is used too often, an unused number under ``use_all``,
    division by zero) changes nothing, uses no attempt, and says what was wrong; the turn
    limit (``TimeLimit``) still counts it.

    Score and reward: the score is 1 once solved; otherwise 0, or with ``partial_credit`` the
    closeness of the best attempt so far, ``0.5 * max(0, 1 - |best - target| / |target|)``,
    which stays below 0.5 so that any exact answer beats every near miss. Each step's reward
    is the gain in score, so an episode's rewards add up to its final score.

    Difficulty knobs (:attr:`difficulty_defaults`): ``n_numbers`` (2-5; the exhaustive solver
    takes ~2 ms for 4 numbers and ~40 ms for 5; 6 would take seconds), ``min_number`` /
    ``max_number`` (range of the drawn numbers), ``min_target`` / ``max_target`` (targets are
    drawn uniformly among the *reachable* integers of this range, never equal to a given
    number unless ``use_all``), ``use_all`` (use every number exactly once, TinyZero's rule),
    ``attempts`` (1-20) and ``partial_credit``. Levels: 0 = 3 numbers up to 20; 1 = 4 numbers up
    to 50, targets 10-100 (default); 2 = 4 numbers up to 100, targets 100-999, all numbers
    used; 3 = 5 numbers up to 100, targets 100-999; 4 = the 24 game (4 numbers 1-13, target
    24, all used).

    A task is ``{"numbers": [...], "target": t}`` plus, optionally, ``use_all`` and
    ``attempts`` (otherwise from the episode's difficulty). ``privileged()`` holds a
    ``solution`` from the exact solver (``None`` proves there is none) and ``solvable``.

    Leak check: while the task is unsolved, no text may contain an expression over the given
    numbers that evaluates to the target (e.g. the solver's solution), in any spacing.

    Example:
        >>> env = Countdown(level=4)
        >>> obs, info = env.reset(seed=0, options={"split": "test"})
        >>> info["privileged"]["solvable"], env.task["target"]
        (True, 24)
    """

    family: ClassVar[str] = "countdown"
    example_actions: ClassVar[tuple[str, ...]] = (
        "<action>(25-5)*4+3</action>",
        "<action>10*10-1</action>",
        "<action>50+25</action>",
        "<action>7*(8-2)/3</action>",
    )
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "n_numbers": 4,
        "min_number": 1,
        "max_number": 50,
        "min_target": 10,
        "max_target": 100,
        "use_all": False,
        "attempts": 4,
        "partial_credit": False,
    }
    # Each preset sets every knob some preset changes, so a per-reset level fully applies.
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        level: dict(zip(("n_numbers", "min_number", "max_number", "min_target", "max_target",
                         "use_all"), values, strict=True))
        for level, values in {
            0: (3, 1, 20, 10, 50, False),
            1: (4, 1, 50, 10, 100, False),
            2: (4, 1, 100, 100, 999, True),
            3: (5, 1, 100, 100, 999, False),
            4: (4, 1, 13, 24, 24, True),  # the 24 game
        }.items()
    }  # fmt: skip

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and its valid range."""
        check_int_knobs("Countdown", difficulty, _INT_KNOBS)
        for low, high in (("min_number", "max_number"), ("min_target", "max_target")):
            if difficulty[low] > difficulty[high]:
                raise ValueError(
                    f"Countdown: {low}={difficulty[low]} is above {high}={difficulty[high]}; "
                    "swap them."
                )
        for name in ("use_all", "partial_credit"):
            if not isinstance(difficulty[name], bool):
                raise ValueError(
                    f"Countdown: {name}={difficulty[name]!r} is invalid; use True or False."
                )

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw numbers, then a target uniformly among the reachable ones in the target range.

        Raises:
            RuntimeError: No draw of numbers reached any target in the range (200 draws).
        """
        n, use_all = int(difficulty["n_numbers"]), bool(difficulty["use_all"])
        low, high = int(difficulty["min_target"]), int(difficulty["max_target"])
        low_n, high_n = int(difficulty["min_number"]), int(difficulty["max_number"])
        for _ in range(_MAX_DRAWS):
            numbers = [int(x) for x in rng.integers(low_n, high_n + 1, size=n)]
            targets = reachable_targets(numbers, low, high, use_all=use_all)
            if not use_all:  # a target among the numbers would need no arithmetic
                targets = [t for t in targets if t not in numbers]
            if targets:
                target = targets[int(rng.integers(len(targets)))]
                return {
                    "numbers": numbers,
                    "target": target,
                    "use_all": use_all,
                    "attempts": int(difficulty["attempts"]),
                }
        raise RuntimeError(
            f"Countdown: no draw of {n} numbers reached a target in [{low}, {high}] in "
            f"{_MAX_DRAWS} draws; widen the target range or allow more numbers."
        )

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Validate the task, solve it once (cached) and reset the attempts."""
        self.numbers, self.target = _check_task(task)
        knobs = {
            **self.episode_difficulty,
            **{k: task[k] for k in ("use_all", "attempts") if k in task},
        }
        self.check_difficulty(knobs)
        self.use_all, self.max_attempts = knobs["use_all"], int(knobs["attempts"])
        self.partial_credit = knobs["partial_credit"]
        self.solution = solve(self.numbers, self.target, use_all=self.use_all)
        self.attempts_used, self.solved, self.over = 0, False, False
        self.best: Value | None = None
        # Random agents sample these: random expressions over *this* task's numbers.
        rng = np.random.default_rng(int(task_fingerprint(task)[:16], 16))
        examples = _random_expressions(self.numbers, self.use_all, rng)
        self.action_space = TextSpace(examples=examples or self.example_actions)

    # --- Play ---------------------------------------------------------------------------------
    def apply(self, command: str) -> Transition:
        """Evaluate one submitted expression; invalid ones use no attempt."""
        if self.over:
            return Transition(
                terminated=True,
                effective=False,
                message="The episode is over. Call reset() for a new task.",
            )
        try:
            value, _ = evaluate_expression(command, self.numbers, use_all=self.use_all)
        except ExpressionError as err:
            shown = command if len(command) <= 60 else command[:57] + "..."
            return Transition(
                valid=False,
                effective=False,
                message=(
                    f"Invalid expression {shown!r}: {err}. No attempt was used. Use only the "
                    f"numbers {' '.join(map(str, self.numbers))}, + - * / and parentheses."
                ),
            )
        before = self.score()
        self.attempts_used += 1
        distance = abs(Fraction(value) - self.target)  # exact, as the values are
        if self.best is None or distance < abs(Fraction(self.best) - self.target):
            self.best = value
        shown = " ".join(command.split("=")[0].split())  # without a trailing "= N"
        if value == self.target:
            self.solved = self.over = True
            message = f"Correct! {shown} = {self.target}."
        else:
            gap = value - self.target
            side = "above" if gap > 0 else "below"
            message = (
                f"Attempt {self.attempts_used} of {self.max_attempts}: {shown} = {value}, "
                f"which is {abs(gap)} {side} the target {self.target}."
            )
            if self.attempts_used >= self.max_attempts:
                self.over = True
                message += " No attempts left; the episode is over."
        gain = self.score() - before
        return Transition(
            reward=gain,
            terminated=self.over,
            message=message,
            reward_components={"score_gain": gain},
        )

    # --- Views --------------------------------------------------------------------------------
    def instructions(self) -> str:
        """The rules, the grammar and one example that does not solve this task."""
        numbers = " ".join(map(str, self.numbers))
        rule = (
            "Use every number exactly once."
            if self.use_all
            else "Each number may be used at most once; you need not use them all."
        )
        credit = (
            " Otherwise your score is the closeness of your best attempt (below 0.5)."
            if self.partial_credit
            else ""
        )
        return "\n".join(
            [
                f"You are playing Countdown. Numbers: {numbers}. Target: {self.target}.",
                "Combine the numbers with + - * / and parentheses into an expression whose value "
                f"is exactly {self.target}. {rule}",
                "Arithmetic is exact: fractions are allowed along the way (7/2 stays 7/2), but "
                "write only the given numbers (no decimals, no negative numbers such as -5).",
                f"You have {self.max_attempts} attempt(s). After each one you are told its value. "
                "An invalid expression uses no attempt but still costs a turn.",
                f"Reaching the target gives reward 1 and ends the episode.{credit}",
                f"Answer with one expression in action tags. {self._example()}",
            ]
        )

    def _example(self) -> str:
        """A format example whose numbers cannot solve this task."""
        for numbers, target, expression in _EXAMPLES:
            if not self._solves(expression):
                shown = ", ".join(map(str, numbers))
                return (
                    f"For numbers {shown} and target {target} you could answer "
                    f"<action>{expression}</action>"
                )
        return "For example: <action>(a+b)*c</action> with a, b, c among the given numbers."

    def render_text(self) -> str:
        """Numbers, target, attempts left and the closest value so far."""
        lines = [
            f"Numbers: {' '.join(map(str, self.numbers))}",
            f"Target: {self.target}",
            f"Attempts left: {self.max_attempts - self.attempts_used} of {self.max_attempts}",
        ]
        if self.best is not None and not self.solved:
            gap = abs(self.best - self.target)
            lines.append(f"Closest so far: {self.best} ({gap} away)")
        return "\n".join(lines)

    def state_key(self) -> str:
        """``"a=<attempts used>|best=<closest value>|solved=<0|1>"`` (numbers fixed per task)."""
        best = "-" if self.best is None else str(self.best)
        return f"a={self.attempts_used}|best={best}|solved={int(self.solved)}"

    def score(self) -> float:
        """1.0 once solved; else 0.0, or the best attempt's closeness with partial credit."""
        if self.solved:
            return 1.0
        return _closeness(self.best, self.target) if self.partial_credit else 0.0

    def privileged(self) -> dict[str, Any]:
        """A solution from the exhaustive solver (``None``: provably none) and ``solvable``."""
        return {"solution": self.solution, "solvable": self.solution is not None}

    def metrics(self) -> dict[str, Any]:
        """Attempts used and the distance of the closest attempt (``None`` before any)."""
        gap = None if self.best is None else float(abs(Fraction(self.best) - self.target))
        return {"attempts_used": self.attempts_used, "best_distance": gap}

    def oracle_action(self) -> str:
        """Submit the solver's solution, or the closest reachable value if there is none."""
        if self.solution is not None:
            return f"<action>{self.solution}</action>"
        return f"<action>{closest(self.numbers, self.target, use_all=self.use_all)}</action>"

    def leak_check(self, text: str) -> list[str]:
        """Flag an expression that solves the task in any text shown while it is unsolved."""
        if self.solved:
            return []
        for span in _EXPR_SPAN.findall(text):
            if any(op in span for op in "+-*/×÷−") and self._solves(span):
                return [f"the text contains a solution: {span.strip()!r}"]
        return []

    def _solves(self, expression: str) -> bool:
        try:
            value, _ = evaluate_expression(expression, self.numbers, use_all=self.use_all)
        except ExpressionError:
            return False
        return value == self.target
