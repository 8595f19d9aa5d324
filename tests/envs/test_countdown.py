"""Countdown: the expression parser, the exhaustive solver, the env's rules, oracle vs random."""

from __future__ import annotations

import itertools
import random
import re
from fractions import Fraction

import gymnasium
import numpy as np
import pytest

import turngym.envs  # noqa: F401  (registers turngym/Countdown-v0)
from turngym.envs.games.countdown import Countdown
from turngym.envs.games.countdown_solver import (
    ExpressionError,
    closest,
    evaluate_expression,
    reachable_targets,
    reachable_values,
    solve,
)
from turngym.tasks import split_of

ENV_ID = "turngym/Countdown-v0"
TASK = {"numbers": [25, 5, 4, 3], "target": 83}


def act(expression: str) -> str:
    return f"<action>{expression}</action>"


def make(**kwargs):
    return gymnasium.make(ENV_ID, **kwargs)


# --- Parser: known answers ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "numbers", "value"),
    [
        ("(25-5)*4+3", [25, 5, 4, 3], 83),
        ("2+3*4", [2, 3, 4], 14),  # precedence
        ("20-5-3", [20, 5, 3], 12),  # left-associative
        ("40/4/2", [40, 4, 2], 5),
        ("8/(3-8/3)", [3, 3, 8, 8], 24),  # fractions along the way
        ("7/2", [7, 2], Fraction(7, 2)),
        (" ( 7 ) ", [7], 7),
        ("3 × 4 ÷ 2", [3, 4, 2], 6),  # typographic operators
        ("3x4", [3, 4], 12),
        ("25+5 = 30", [25, 5], 30),  # a trailing "= N" is ignored
        ("25+5 = 31", [25, 5], 30),  # ... whatever N says
        ("5+5", [5, 5, 1], 10),  # a number given twice may be used twice
        ("007+1", [7, 1], 8),
    ],
)
def test_parser_known_values(text, numbers, value):
    got, _ = evaluate_expression(text, numbers)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("text", "numbers", "message"),
    [
        ("25*25", [25, 4], "25 is used 2 times but given only once"),
        ("5+5+5", [5, 5], "5 is used 3 times but given only 2 times"),
        ("7+1", [25, 5, 4, 3], "7 is not one of the given numbers"),
        ("100-1", [10, 1], "100 is not one of the given numbers"),  # no digit concatenation
        ("4/(3-3)", [4, 3, 3], "division by zero"),
        ("4/0", [4, 0], "division by zero"),
        ("hello", [1], "'h' is not allowed"),
        ("__import__('os').system('ls')", [1], "'_' is not allowed"),
        ("2**3", [2, 3], "unexpected '*'"),
        ("2.5*4", [2, 4], "decimals are not allowed"),
        ("-3+4", [3, 4], "minus sign must stand between two operands"),
        ("3+", [3], "ends too early"),
        ("(3+4", [3, 4], "never closed"),
        ("3+4)", [3, 4], "unmatched ')'"),
        ("3 4", [3, 4], "cannot follow a complete operand"),
        ("()", [3], "unexpected ')'"),
        ("", [3], "empty"),
        ("   ", [3], "empty"),
        ("3+٣", [3], "'٣' is not allowed"),  # only ASCII digits
        ("(" * 60 + "3" + ")" * 60, [3], "nested more than 40 deep"),
        ("1+" * 200 + "1", [1], "longer than 300 characters"),
        ("3+4", [3, 4, 5], None),  # fine without use_all ...
    ],
)
def test_parser_rejects_with_a_reason(text, numbers, message):
    if message is None:
        assert evaluate_expression(text, numbers)[0] == 7
        with pytest.raises(ExpressionError, match="unused: 5"):  # ... not with it
            evaluate_expression(text, numbers, use_all=True)
        return
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate_expression(text, numbers)


def test_parser_never_raises_anything_else():
    rng = random.Random(0)
    alphabet = "0123456789+-*/() x=.÷×a"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        try:
            evaluate_expression(text, [1, 2, 3, 4, 5, 10, 25])
        except ExpressionError:
            pass


# --- Solver -------------------------------------------------------------------------------------
def _reference_all(numbers):
    """Every value of every expression using all of ``numbers`` (the classic 24 recursion)."""
    if len(numbers) == 1:
        return {Fraction(numbers[0])}
    out = set()
    for i, j in itertools.combinations(range(len(numbers)), 2):
        rest = [x for k, x in enumerate(numbers) if k not in (i, j)]
        a, b = numbers[i], numbers[j]
        results = {a + b, a * b, a - b, b - a}
        results |= {a / b} if b else set()
        results |= {b / a} if a else set()
        for value in results:
            out |= _reference_all([*rest, value])
    return out


@pytest.mark.parametrize("seed", range(6))
def test_solver_matches_a_reference_enumeration(seed):
    rng = random.Random(seed)
    numbers = [rng.randint(1, 13) for _ in range(3 + seed % 2)]
    reference = _reference_all([Fraction(x) for x in numbers])
    assert reachable_values(numbers, use_all=True) == reference
    some = set().union(
        *(
            _reference_all([Fraction(x) for x in sub])
            for r in range(1, len(numbers) + 1)
            for sub in itertools.combinations(numbers, r)
        )  # fmt: skip
    )
    assert reachable_values(numbers) == some


def test_solver_known_answers():
    assert solve([25, 5, 4, 3], 83) == "(25-3)*4-5"
    assert solve([3, 3, 8, 8], 24, use_all=True) == "8/(3-8/3)"
    assert solve([1, 1, 1, 1], 24, use_all=True) is None  # the classic unsolvable hand
    assert solve([1, 1], 5) is None
    assert solve([50, 2], 50) == "50"  # fewest numbers first
    assert solve([6, 4], 2, use_all=True) == "6-4"
    assert closest([1, 1], 5) == "1+1"
    assert reachable_targets([2, 3], 1, 6, use_all=True) == [1, 5, 6]


def _matching(text, open_at):
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise AssertionError(text)


def test_solver_parenthesises_minimally_but_correctly():
    rng = random.Random(1)
    for _ in range(200):
        numbers = [rng.randint(1, 20) for _ in range(4)]
        for target in rng.sample(reachable_targets(numbers, -50, 400, use_all=True), 3):
            expression = solve(numbers, target, use_all=True)
            assert evaluate_expression(expression, numbers, use_all=True)[0] == target
            # No parentheses around a single number, doubled, or around everything.
            assert not re.search(r"\(\d+\)|\(\([^()]*\)\)", expression), expression
            assert not (expression[0] == "(" and _matching(expression, 0) == len(expression) - 1)


# --- Env rules ----------------------------------------------------------------------------------
def test_wrong_attempt_feedback_then_solve():
    env = make()
    obs, info = env.reset(options={"task": TASK})
    assert obs == "Numbers: 25 5 4 3\nTarget: 83\nAttempts left: 4 of 4"
    assert "25 5 4 3" in info["instructions"] and "<action>" in info["instructions"]
    obs, reward, terminated, _, info = env.step(act("25 + 5"))
    assert obs.startswith("Attempt 1 of 4: 25 + 5 = 30, which is 53 below the target 83.")
    assert "Attempts left: 3 of 4" in obs and "Closest so far: 30 (53 away)" in obs
    assert (reward, terminated, info["action_valid"]) == (0.0, False, True)
    assert info["state_key"] == "a=1|best=30|solved=0"
    obs, reward, terminated, _, info = env.step(act("(25-5)*4+3"))
    assert obs.startswith("Correct! (25-5)*4+3 = 83.")
    assert (reward, terminated, info["success"], info["score"]) == (1.0, True, True, 1.0)
    assert info["reward_components"] == {"score_gain": 1.0}


def test_fraction_feedback():
    env = make()
    env.reset(options={"task": TASK})
    obs, *_ = env.step(act("25/3"))
    assert "25/3 = 25/3, which is 224/3 below" in obs


@pytest.mark.parametrize("expression", ["25*25", "7+1", "4/(3-3)", "hello", "(25", "", "import os"])
def test_invalid_expressions_use_no_attempt(expression):
    env = make()
    env.reset(options={"task": {"numbers": [25, 4, 3, 3], "target": 83}})
    obs, reward, terminated, _, info = env.step(act(expression))
    assert not info["action_valid"] and reward == 0.0 and not terminated
    assert "Invalid" in obs and "Attempts left: 4 of 4" in obs
    assert info["state_key"] == "a=0|best=-|solved=0"


def test_running_out_of_attempts_ends_the_episode():
    env = make()
    env.reset(options={"task": {**TASK, "attempts": 2}})
    env.step(act("25+5"))
    obs, reward, terminated, _, info = env.step(act("25*4"))
    assert terminated and "No attempts left" in obs and info["score"] == 0.0
    assert info["state_key"] == "a=2|best=100|solved=0"  # 100 is closer to 83 than 30
    obs, _, terminated, _, _ = env.step(act("(25-5)*4+3"))
    assert terminated and "over" in obs


def test_partial_credit_rewards_add_up_to_the_score():
    env = make(partial_credit=True)
    env.reset(options={"task": TASK})
    rewards = [env.step(act(e))[1] for e in ("25+5", "25+5+4+3", "25*3")]
    # best = 75: closeness 0.5 * (1 - 8/83)
    score = env.unwrapped.score()
    assert score == pytest.approx(0.5 * (1 - 8 / 83))
    assert sum(rewards) == pytest.approx(score)
    *_, info = env.step(act("(25-5)*4+3"))
    assert info["score"] == 1.0 and env.unwrapped.score() == 1.0


def test_use_all_rule():
    env = make(level=4)
    _, info = env.reset(options={"task": {"numbers": [3, 3, 8, 8], "target": 24}})
    assert "exactly once" in info["instructions"]
    *_, info = env.step(act("3*8"))
    assert not info["action_valid"]
    *_, terminated, _, info = env.step(act("8/(3-8/3)"))
    assert terminated and info["success"]


def test_instruction_example_never_solves_the_task():
    env = make()
    _, info = env.reset(options={"task": {"numbers": [2, 3, 7, 9], "target": 27}})
    assert "(2+7)*3" not in info["instructions"] and "(1+9)*5" in info["instructions"]
    assert env.unwrapped.leak_check(info["instructions"]) == []


def test_leak_check_flags_any_solution_until_solved():
    env = make()
    env.reset(options={"task": TASK})
    base = env.unwrapped
    assert base.leak_check("try (25 - 5) * 4 + 3 maybe") != []
    assert base.leak_check("25*4-5*3-2") == []  # 2 is not given
    assert base.leak_check("Numbers: 25 5 4 3\nTarget: 83") == []
    env.step(act("(25-5)*4+3"))
    assert base.leak_check("Correct! (25-5)*4+3 = 83.") == []  # the agent's own answer


def test_privileged_and_oracle_on_unsolvable_task():
    env = make()
    _, info = env.reset(options={"task": {"numbers": [1, 1], "target": 5}})
    assert info["privileged"] == {"solution": None, "solvable": False}
    assert env.unwrapped.oracle_action() == act("1+1")


@pytest.mark.parametrize(
    ("knobs", "match"),
    [
        ({"n_numbers": 6}, "n_numbers=6 is invalid"),
        ({"n_numbers": True}, "n_numbers=True is invalid"),
        ({"min_number": 10, "max_number": 5}, "min_number=10 is above max_number=5"),
        ({"attempts": 0}, "attempts=0 is invalid"),
        ({"use_all": "yes"}, "use_all='yes' is invalid"),
        ({"nummbers": 3}, "did you mean"),
    ],
)
def test_bad_knobs_raise(knobs, match):
    with pytest.raises(ValueError, match=match):
        Countdown(**knobs)


@pytest.mark.parametrize(
    "task",
    [{"numbers": [1, 2]}, {"numbers": "12", "target": 3}, {"numbers": [1] * 6, "target": 3},
     {"numbers": [0, 2], "target": 3}, {"numbers": [1, 2], "target": 3, "colour": 1}],
)  # fmt: skip
def test_malformed_tasks_raise(task):
    with pytest.raises(ValueError, match="Countdown task"):
        make().reset(options={"task": task})


# --- Generation, oracle, random, determinism ----------------------------------------------------
@pytest.mark.parametrize("level", sorted(Countdown.levels))
def test_every_level_generates_solvable_tasks(level):
    knobs = {**Countdown.difficulty_defaults, **Countdown.levels[level]}
    env = Countdown(level=level)
    for seed in range(8 if knobs["n_numbers"] < 5 else 2):
        _, info = env.reset(seed=seed, options={"split": "train"})
        task = env.task
        assert split_of(task) == "train" and len(task["numbers"]) == knobs["n_numbers"]
        assert all(knobs["min_number"] <= x <= knobs["max_number"] for x in task["numbers"])
        assert knobs["min_target"] <= task["target"] <= knobs["max_target"]
        assert knobs["use_all"] or task["target"] not in task["numbers"]
        solution = info["privileged"]["solution"]
        used = knobs["use_all"]
        assert evaluate_expression(solution, task["numbers"], use_all=used)[0] == task["target"]


def _play(env, seed, policy):
    env.reset(seed=seed, options={"split": "test"})
    while True:
        *_, terminated, truncated, info = env.step(policy(env))
        if terminated or truncated:
            return info["success"]


def test_oracle_solves_and_random_rarely_does_on_test_tasks():
    env = make()
    oracle = sum(_play(env, s, lambda e: e.unwrapped.oracle_action()) for s in range(40))
    rng = random.Random(0)
    floor = sum(
        _play(env, s, lambda e: rng.choice(e.unwrapped.action_space.examples)) for s in range(40)
    )
    assert oracle == 40 and floor < 10


@pytest.mark.slow
def test_oracle_vs_random_on_200_test_tasks():
    env = make()
    assert sum(_play(env, s, lambda e: e.unwrapped.oracle_action()) for s in range(200)) == 200
    rng = random.Random(0)
    wins = sum(_play(env, s, lambda e: rng.choice(e.unwrapped.action_space.examples))
               for s in range(200))  # fmt: skip
    assert wins / 200 < 0.1  # measured: 0.035


def test_random_examples_are_valid_expressions_over_the_task():
    env = make()
    env.reset(seed=3, options={"split": "test"})
    examples = env.unwrapped.action_space.examples
    assert len(examples) == 16
    for example in examples:
        *_, info = env.step(example)
        assert info["action_valid"]
        env.reset(seed=3, options={"split": "test"})


def test_same_seed_same_task_and_snapshot_replays():
    a, b = make(), make()
    obs_a, info_a = a.reset(seed=11, options={"split": "test"})
    obs_b, info_b = b.reset(seed=11, options={"split": "test"})
    assert (obs_a, info_a["task_id"]) == (obs_b, info_b["task_id"])
    a.step(act("1+1"))  # probably invalid: state must still round-trip
    snapshot = a.unwrapped.get_state()
    first = [a.step(e)[:3] for e in a.unwrapped.action_space.examples[:3]]
    a.unwrapped.set_state(snapshot)
    assert [a.step(e)[:3] for e in a.unwrapped.action_space.examples[:3]] == first


def test_generate_task_depends_only_on_its_rng():
    knobs = dict(Countdown.difficulty_defaults)
    first = Countdown().generate_task(np.random.default_rng(5), knobs)
    assert Countdown().generate_task(np.random.default_rng(5), knobs) == first
    assert solve(first["numbers"], first["target"]) is not None
