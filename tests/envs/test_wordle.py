"""Wordle: feedback known answers (duplicate letters), word lists, rules, oracle, leaks."""

from __future__ import annotations

import importlib.resources
import random
import re

import gymnasium
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import turngym.envs  # noqa: F401  (registers turngym/Wordle-v0)
from turngym.agents import OracleAgent, RandomAgent
from turngym.envs.games.wordle import (
    _EXAMPLE_WORD,
    _SAMPLE_WORDS,
    Wordle,
    feedback,
    load_word_lists,
)
from turngym.envs.games.wordle_solver import (
    CandidateIndex,
    _encode,
    _pattern_codes,
    candidate_index,
)
from turngym.rollout import collect
from turngym.tasks import split_of

ENV_ID = "turngym/Wordle-v0"


def act(word: str) -> str:
    return f"<action>{word}</action>"


def start(secret: str = "crane", **knobs) -> Wordle:
    env = Wordle(**knobs)
    env.reset(options={"task": {"secret": secret}})
    return env


# --- Feedback ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("guess", "secret", "marks"),
    [
        ("crane", "crane", "GGGGG"),
        ("react", "crane", "YYGY-"),
        # Two guessed E's, one E in the secret (not in place): only the first is yellow.
        ("speed", "abide", "--Y-Y"),
        # A green copy uses the secret's only E, so the earlier guessed E's are grey.
        ("geese", "those", "---GG"),
        # Two L's in the secret, two guessed L's elsewhere: both yellow; the third E is grey.
        ("belle", "level", "-GYYY"),
        ("eerie", "elder", "GYY--"),
        # One B green, the other guessed B takes the secret's second B as yellow.
        ("abbey", "kebab", "YYGY-"),
        ("mamma", "maxim", "GGY--"),
        ("llama", "hello", "YY---"),
    ],
)
def test_feedback_known_answers(guess, secret, marks):
    assert feedback(guess, secret) == marks


def _code(marks: str) -> int:
    return int(marks.translate(str.maketrans("-YG", "012")), 3)


def test_vectorised_feedback_matches_reference():
    rng = random.Random(0)
    for length in (4, 5, 6):
        # A small alphabet forces many repeated letters.
        words = ["".join(rng.choice("aabce") for _ in range(length)) for _ in range(60)]
        codes = _pattern_codes(_encode(words), _encode(words))
        expected = [[_code(feedback(g, s)) for s in words] for g in words]
        assert codes.tolist() == expected


# --- Word lists -------------------------------------------------------------------------------
def test_word_lists_ship_with_source_and_licence():
    folder = importlib.resources.files("turngym.envs.games") / "data"
    for name in ("wordle_solutions.txt", "wordle_guesses.txt"):
        header = (folder / name).read_text(encoding="utf-8")[:3000]
        assert "SCOWL" in header and "Permission to use, copy, modify, distribute" in header
    solutions, guesses = load_word_lists()
    for length in (4, 5, 6):
        assert len(solutions[length]) > 1000
        assert set(solutions[length]) <= guesses[length]
        assert all(re.fullmatch(rf"[a-z]{{{length}}}", w) for w in guesses[length])
        # Instruction examples are never secrets; random-agent words are legal guesses.
        assert _EXAMPLE_WORD[length] in guesses[length]
        assert _EXAMPLE_WORD[length] not in solutions[length]
        assert set(_SAMPLE_WORDS[length]) <= guesses[length]


# --- Rules ------------------------------------------------------------------------------------
def test_a_game_known_answer():
    env = gymnasium.make(ENV_ID)
    obs, info = env.reset(options={"task": {"secret": "crane"}})
    assert obs == "Guesses left: 6 of 6. The secret word has 5 letters."
    assert "<action>adieu</action>" in info["instructions"]
    obs, reward, terminated, _, info = env.step(act("React"))
    assert obs.splitlines() == [
        "Guesses left: 5 of 6. The secret word has 5 letters.",
        "1. REACT  Y Y G Y -",
    ]
    assert (reward, terminated, info["action_valid"], info["success"]) == (0.0, False, True, False)
    assert info["state_key"] == "guesses=react"
    obs, reward, terminated, _, info = env.step("<think>maybe</think><action>crane</action>")
    assert (reward, terminated, info["success"], info["score"]) == (1.0, True, True, 1.0)
    assert obs.startswith("Solved!") and obs.endswith("2. CRANE  G G G G G")
    assert info["reward_components"] == {"solved": 1.0}


@pytest.mark.parametrize(
    ("action", "says"),
    [
        (act("xqzvw"), "not in the word list"),
        (act("cranes"), "has 6 letters"),
        (act("two words"), "one word of 5 letters"),
        (act("cr4ne"), "one word of 5 letters"),
        ("crane", "no <action>"),
    ],
)
def test_invalid_guesses_use_no_guess(action, says):
    env = start()
    obs, reward, terminated, _, info = env.step(action)
    assert says in obs and not info["action_valid"]
    assert (reward, terminated, env.guesses) == (0.0, False, [])
    assert "Guesses left: 6 of 6" in obs


def test_hard_mode_rules():
    env = start("crane", hard_mode=True)
    env.step(act("react"))  # Y Y G Y -: A stays third; R, E, C must be used again
    obs, *_, info = env.step(act("mount"))
    assert not info["action_valid"] and "letter 3 must be A" in obs
    obs, *_, info = env.step(act("brace"))  # keeps A third, has R, E, C: legal
    assert info["action_valid"], obs
    env = start("eerie", hard_mode=True)
    env.step(act("geese"))  # - G Y - G: three E's revealed, two of them in place
    obs, *_, info = env.step(act("verge"))  # E second and last, but only twice
    assert not info["action_valid"] and "must contain E 3 times" in obs


def test_losing_never_reveals_the_secret():
    env = start("crane", max_guesses=2)
    env.step(act("pious"))
    obs, reward, terminated, _, info = env.step(act("dough"))
    assert terminated and (reward, info["score"]) == (0.0, 0.0)
    assert "No guesses left" in obs and "crane" not in obs.lower()
    obs, _, terminated, _, info = env.step(act("crane"))  # the game is over
    assert terminated and not info["success"] and "over" in obs


def test_state_key_is_the_set_of_guesses():
    a, b = start(), start()
    for w in ("pious", "dough"):
        a.step(act(w))
    for w in ("dough", "pious"):
        b.step(act(w))
    assert a.state_key() == b.state_key() == "guesses=dough,pious"
    assert a.privileged() == b.privileged()


def test_candidates_left_shrinks_consistently():
    env = start("crane")
    before = env.privileged()["candidates_left"]
    env.step(act("slate"))
    after = env.privileged()["candidates_left"]
    assert 1 <= after < before
    kept = env._candidates
    assert "crane" in kept and all(feedback("slate", w) == env.marks[0] for w in kept)


@pytest.mark.parametrize(
    ("knobs", "match"),
    [
        ({"word_length": 7}, "word_length"),
        ({"max_guesses": 0}, "max_guesses"),
        ({"hard_mode": "yes"}, "hard_mode"),
        ({"colour": 1}, "Unknown difficulty"),
    ],
)
def test_bad_difficulty_raises(knobs, match):
    with pytest.raises(ValueError, match=match):
        Wordle(**knobs)


@pytest.mark.parametrize("task", [{"secret": "zzzzz"}, {"secret": 5}, {"word": "crane"}])
def test_malformed_tasks_raise(task):
    with pytest.raises(ValueError, match="Wordle"):
        Wordle().reset(options={"task": task})


# --- Tasks, determinism, snapshots ------------------------------------------------------------
def test_tasks_are_deterministic_and_split_by_word():
    a, b = Wordle(), Wordle()
    for seed in range(10):
        ta = a.reset(seed=seed, options={"split": "test"})[1]["task_id"]
        assert ta == b.reset(seed=seed, options={"split": "test"})[1]["task_id"]
        assert split_of({"secret": a.secret}) == "test"
    secrets = {s: set() for s in ("train", "test")}
    for split in secrets:
        for seed in range(60):
            a.reset(seed=seed, options={"split": split})
            secrets[split].add(a.secret)
    assert not secrets["train"] & secrets["test"]


def test_levels_set_the_word_length():
    env = Wordle()
    for level, length in ((3, 4), (4, 6), (1, 5)):
        obs, _ = env.reset(seed=1, options={"level": level})
        assert len(env.secret) == length and f"has {length} letters" in obs
        assert all(len(e) == len("<action></action>") + length for e in env.action_space.examples)


def test_snapshot_restores_mid_game():
    env = start("crane")
    env.step(act("pious"))
    snap = env.get_state()
    first = [env.step(act(w))[:3] for w in ("dough", "crane")]
    env.set_state(snap)
    assert [env.step(act(w))[:3] for w in ("dough", "crane")] == first


# --- Oracle and random agent ------------------------------------------------------------------
def test_oracle_solves_200_test_tasks_random_does_not():
    oracle = collect(ENV_ID, OracleAgent(), tasks=200, split="test")
    random_ = collect(ENV_ID, RandomAgent(seed=0), tasks=200, split="test")
    wins = [ep.success for g in oracle for ep in g.episodes]
    assert sum(wins) == 200  # every 5-letter secret is found within 6 guesses
    assert max(len(ep.turns) for g in oracle for ep in g.episodes) <= 6
    assert sum(ep.success for g in random_ for ep in g.episodes) <= 2


def test_oracle_opens_with_an_informative_word_and_never_wastes_a_guess():
    env = start("crane")
    assert env.oracle_action() == "<action>slate</action>"
    seen = set()
    while not env.score():
        action = env.oracle_action()
        assert action not in seen
        seen.add(action)
        env.step(action)


@pytest.mark.slow
@pytest.mark.parametrize(("level", "at_least"), [(0, 200), (2, 195), (3, 170), (4, 200)])
def test_oracle_success_per_level(level, at_least):
    groups = collect(ENV_ID, OracleAgent(), tasks=200, split="test", options={"level": level})
    assert sum(ep.success for g in groups for ep in g.episodes) >= at_least


# --- Leaks ------------------------------------------------------------------------------------
def test_leak_check_flags_the_secret_until_it_is_guessed():
    env = start("crane")
    for text in ("it is CRANE", "c r a n e", "C-R-A-N-E!", "'crane'"):
        assert env.leak_check(text), text
    for text in ("cranes and craned", "scrane", "crank", "c r a n k"):
        assert not env.leak_check(text), text
    env.step(act("crane"))
    assert not env.leak_check("it is CRANE")


def test_no_text_names_the_secret_before_it_is_guessed():
    env = Wordle()
    guesses = sorted(load_word_lists()[1][5])
    rng = np.random.default_rng(0)
    for seed in range(40):
        obs, info = env.reset(seed=seed, options={"split": "test"})
        texts = [info["instructions"], obs]
        for _ in range(8):
            word = guesses[int(rng.integers(len(guesses)))] if rng.random() < 0.8 else "zz" * 9
            obs, _, terminated, _, _ = env.step(act(word))
            if not terminated:
                texts.append(obs)
        secret = env.secret
        for text in texts:
            assert not re.search(rf"(?<![a-z]){secret}(?![a-z])", text.lower()), text
            assert env.leak_check(text) == [] or secret in env.guesses


# --- The bitset candidate filter ------------------------------------------------------------------
def _counter_feedback(guess: str, secret: str) -> str:
    """The marking rule as first written (greens, then yellows from a Counter), for reference."""
    from collections import Counter

    marks = ["-"] * len(guess)
    unmatched: Counter[str] = Counter()
    for i, (g, s) in enumerate(zip(guess, secret, strict=True)):
        if g == s:
            marks[i] = "G"
        else:
            unmatched[s] += 1
    for i, g in enumerate(guess):
        if marks[i] != "G" and unmatched[g] > 0:
            marks[i] = "Y"
            unmatched[g] -= 1
    return "".join(marks)


_SHORT = st.text(alphabet="abcd", min_size=5, max_size=5)  # few letters: many duplicates


@settings(max_examples=300, deadline=None)
@given(_SHORT, _SHORT)
def test_feedback_matches_the_counter_reference(guess, secret):
    assert feedback(guess, secret) == _counter_feedback(guess, secret)


@settings(max_examples=200, deadline=None)
@given(st.lists(_SHORT, min_size=1, max_size=60, unique=True), _SHORT, st.data())
def test_bitset_filter_keeps_exactly_the_words_with_the_same_marks(words, guess, data):
    universe = CandidateIndex(tuple(sorted(words)))
    secret = data.draw(st.sampled_from(universe.words))
    marks = feedback(guess, secret)
    kept = universe.words_of(universe.consistent(guess, marks))
    assert kept == tuple(w for w in universe.words if feedback(guess, w) == marks)
    assert secret in kept


@pytest.mark.parametrize("length", [4, 5, 6])
def test_bitset_filter_matches_brute_force_on_the_shipped_lists(length):
    universe = candidate_index(length, None)
    guesses = sorted(load_word_lists()[1][length])
    rng = random.Random(length)
    for _ in range(25):
        guess, secret = rng.choice(guesses), rng.choice(universe.words)
        marks = feedback(guess, secret)
        expected = tuple(w for w in universe.words if feedback(guess, w) == marks)
        assert universe.words_of(universe.consistent(guess, marks)) == expected
