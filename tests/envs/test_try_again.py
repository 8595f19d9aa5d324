"""TryAgain (issue 6, UFO "Try Again"): reward formula, unary feedback, generators, leaks."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

import turngym
from turngym.agents import make_agent
from turngym.envs.dialogue.puzzles import (
    GENERATORS,
    answer_in_text,
    answer_key,
    generate_puzzle,
    is_correct,
    parse_number,
)
from turngym.envs.dialogue.try_again import FEEDBACK, TryAgain, ufo_return
from turngym.rollout import collect

TASK = {
    "kind": "sequence",
    "answer_type": "number",
    "question": "What number comes next in the sequence 3, 7, 11, 15, ...?",
    "answer": "19",
}
ORDER_TASK = {
    "kind": "ordering",
    "answer_type": "order",
    "question": "Ada, Ben and Cleo all differ in age. Ben is older than Ada. Cleo is older "
    "than Ben. List everyone from oldest to youngest, separated by commas.",
    "answer": "Cleo, Ben, Ada",
}


def _play(answers, task=TASK, **knobs):
    env = TryAgain(**knobs)
    env.reset(options={"task": task})
    return env, [env.step(f"<answer>{a}</answer>") for a in answers]


# --- Reward: UFO's attempt discount and repetition penalty (docs/environments.md#tryagain)
def test_correct_at_first_attempt_earns_one():
    _, steps = _play(["19"])
    obs, reward, terminated, _, info = steps[0]
    assert (obs, reward, terminated) == ("Correct!", 1.0, True)
    assert info["reward_components"] == {"correct": 1.0, "repetition_penalty": 0.0}


def test_discount_and_repetition_penalty_known_answer():
    """Wrong, the same wrong again, then right at t=2: 0.5**2 - 0.5 * (1 - 2/3)."""
    _, steps = _play(["23", "23.0", "19"])
    rewards = [s[1] for s in steps]
    assert rewards[:2] == [0.0, 0.0] and steps[2][2]
    assert rewards[2] == pytest.approx(0.25 - 0.5 / 3)
    assert sum(rewards) == pytest.approx(ufo_return(2, ["n:23", "n:23", "n:19"], 0.5, 0.5))
    assert steps[2][4]["reward_components"]["correct"] == 0.25
    assert steps[2][4]["metrics"]["effective_ratio"] == pytest.approx(2 / 3)


def test_distinct_wrong_answers_are_not_penalised():
    _, steps = _play(["1", "2", "19"])
    assert steps[2][1] == pytest.approx(0.25)


def test_running_out_of_attempts_pays_only_the_penalty():
    _, steps = _play(["5", "5", "5"], max_attempts=3)
    assert [s[2] for s in steps] == [False, False, True]
    assert steps[2][1] == pytest.approx(-0.5 * (1 - 1 / 3))
    assert steps[2][0] == "That's not it, and no attempts are left."
    assert not steps[2][4]["success"]


def test_gamma_and_lambda_knobs():
    _, steps = _play(["4", "4", "19"], gamma=0.9, repeat_penalty=0.3)
    assert steps[2][1] == pytest.approx(0.81 - 0.3 * (1 - 2 / 3))
    assert ufo_return(None, [], 0.5, 0.5) == 0.0 and ufo_return(0, ["n:1"], 0.5, 0.5) == 1.0


def test_feedback_is_unary_whatever_the_answer():
    """Close or far, number or nonsense: the observation is the same and has no hint."""
    env, steps = _play(["18", "1000000", "banana"])
    assert [s[0] for s in steps] == [FEEDBACK] * 3
    assert len({s[4]["state_key"] for s in steps}) == 3


def test_invalid_actions_use_no_attempt():
    env = TryAgain(max_attempts=1)
    _, info0 = env.reset(options={"task": TASK})
    for action in ("19", "<answer></answer>", "<answer>  </answer>", "<action>19</action>"):
        obs, reward, terminated, _, info = env.step(action)
        assert not info["action_valid"] and reward == 0.0 and not terminated
        assert info["state_key"] == info0["state_key"] and "Invalid action" in obs
    assert env.step("<think>maybe 20?</think><answer>19</answer>")[1] == 1.0


# --- Answer normalisation ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "gold", "kind", "expected"),
    [
        ("19", "19", "number", True),
        (" 19.0 ", "19", "number", True),
        ("1,024", "1024", "number", True),
        ("The answer is 19.", "19", "number", True),
        ("7/2", "3.5", "number", True),
        ("19.001", "19", "number", False),
        ("19 or 20", "19", "number", False),
        ("nineteen", "19", "number", False),
        ("cleo,ben,  ADA", "Cleo, Ben, Ada", "order", True),
        ("Cleo > Ben > Ada", "Cleo, Ben, Ada", "order", True),
        ("Cleo, Ada, Ben", "Cleo, Ben, Ada", "order", False),
        ("Cleo, Ben", "Cleo, Ben, Ada", "order", False),
    ],
)
def test_answers_are_normalised(answer, gold, kind, expected):
    assert is_correct(answer, gold, kind) is expected


def test_answer_keys_and_numbers():
    assert answer_key("42", "number") == answer_key("42.00", "number") == "n:42"
    assert answer_key("Hello  World", "text") == "s:helloworld"
    assert parse_number("1e999") is None and parse_number("") is None


# --- Generators and leaks ----------------------------------------------------------------------
def _knobs(**over):
    return {**TryAgain.difficulty_defaults, **over}


def _ordering_is_determined(question: str, answer: str) -> bool:
    names = [n.strip() for n in answer.split(",")]
    facts = re.findall(r"(\w+) is (\w+) than (\w+)\.", question)
    orders = [
        p
        for p in itertools.permutations(names)
        if all(
            (p.index(x) < p.index(y)) == (w in ("taller", "older", "faster")) for x, w, y in facts
        )
    ]
    return orders == [tuple(names)]


def test_three_generators_and_each_is_sound():
    assert len(GENERATORS) >= 3
    rng = np.random.default_rng(0)
    for kind in GENERATORS:
        for _ in range(100):
            puzzle = generate_puzzle(rng, _knobs(puzzle_types=[kind], n_people=5))
            assert puzzle["kind"] == kind
            if kind == "ordering":
                assert _ordering_is_determined(puzzle["question"], puzzle["answer"])
            elif kind == "arithmetic":  # the solution steps chain to the answer
                last = puzzle["solution"][-1].split("=")[-1].strip()
                assert last == puzzle["answer"]


def test_sequence_rules_are_right():
    rng = np.random.default_rng(3)
    for _ in range(200):
        puzzle = generate_puzzle(rng, _knobs(puzzle_types=["sequence"], seq_complexity=1))
        terms = [int(t) for t in re.findall(r"-?\d+", puzzle["question"])]
        nxt = int(puzzle["answer"])
        if "arithmetic" in puzzle["solution"][0]:
            assert nxt - terms[-1] == terms[1] - terms[0]
        else:
            assert nxt * terms[0] == terms[-1] * terms[1]


@pytest.mark.parametrize("level", sorted(TryAgain.levels))
def test_gold_answer_never_in_question_instructions_or_feedback(level):
    """Leak test over 150 tasks per level; wrong answers are replayed to see every feedback."""
    env = TryAgain(level=level)
    for seed in range(150):
        obs, info = env.reset(seed=seed, options={"split": ("train", "test")[seed % 2]})
        gold, kind = info["privileged"]["answer"], info["privileged"]["answer_type"]
        texts = [obs, info["instructions"]]
        for action in env.action_space.examples:
            if not is_correct(re.sub("</?answer>", "", action), gold, kind):
                step = env.step(action)
                texts.append(step[0])
                if step[2]:
                    break
        for text in texts:
            assert not answer_in_text(gold, kind, text), (seed, text)
            assert env.leak_check(text) == []


def test_leak_check_catches_a_leak():
    env = TryAgain()
    env.reset(options={"task": ORDER_TASK})
    assert env.leak_check("Hint: Cleo, Ben and Ada.") and not env.leak_check(ORDER_TASK["question"])
    with pytest.raises(ValueError, match="does not\nappear|does not appear"):
        TryAgain().reset(options={"task": {**TASK, "answer": "15"}})


# --- Oracle, random floor, determinism ------------------------------------------------------
def test_oracle_beats_random_on_200_test_tasks():
    rates, returns = {}, {}
    for name in ("oracle", "random"):
        groups = collect("turngym/TryAgain-v0", make_agent(name, seed=0), tasks=200, split="test")
        episodes = [e for g in groups for e in g.episodes]
        rates[name] = sum(e.success for e in episodes) / len(episodes)
        returns[name] = sum(sum(t.reward for t in e.turns) for e in episodes) / len(episodes)
    assert rates["oracle"] == 1.0 and returns["oracle"] == 1.0
    assert rates["random"] < 0.2 and returns["random"] < 0.2


def test_determinism_state_key_and_snapshot():
    a, b = turngym.make("turngym/TryAgain-v0"), turngym.make("turngym/TryAgain-v0")
    assert a.reset(seed=5, options={"split": "test"}) == b.reset(seed=5, options={"split": "test"})
    env, _ = _play(["3", "7"])
    assert env.state_key() == "attempts=2|tried=n:3,n:7|solved=0"
    snapshot = env.get_state()
    first = [env.step(f"<answer>{x}</answer>")[:3] for x in ("3", "19")]
    env.set_state(snapshot)
    assert [env.step(f"<answer>{x}</answer>")[:3] for x in ("3", "19")] == first


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"puzzle_types": ["riddles"]}, "puzzle_types"),
        ({"gamma": 1.5}, "gamma=1.5"),
        ({"max_attempts": 0}, "max_attempts=0"),
        ({"repeat_penalty": True}, "repeat_penalty"),
    ],
)
def test_bad_knobs_fail_with_a_clear_message(knobs, message):
    with pytest.raises(ValueError, match=message):
        TryAgain(**knobs)
