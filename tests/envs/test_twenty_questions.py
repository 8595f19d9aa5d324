"""TwentyQuestions: knowledge base, answerer grammar, budget, oracle, and leak tests."""

from __future__ import annotations

import importlib.resources
import random
import unicodedata

import gymnasium
import numpy as np
import pytest

import turngym.envs  # noqa: F401  (registers turngym/TwentyQuestions-v0)
from turngym.agents import OracleAgent, RandomAgent
from turngym.envs.games.guessing import normalize
from turngym.envs.games.twenty_questions import TwentyQuestions, load_objects
from turngym.rollout import collect
from turngym.testing import fuzz_actions

ENV_ID = "turngym/TwentyQuestions-v0"
KB = load_objects()
SMALL = {"secret": "dog", "candidates": ["cat", "dog", "lion", "spoon"]}


def act(text: str) -> str:
    return f"<action>{text}</action>"


def start(task=SMALL, **knobs) -> TwentyQuestions:
    env = TwentyQuestions(**knobs)
    env.reset(options={"task": task})
    return env


def name_forms(name: str) -> set[str]:
    """Case, accent, punctuation and spacing variants of a name (independent of the env)."""
    low = name.lower()
    plain = "".join(c for c in unicodedata.normalize("NFKD", low) if not unicodedata.combining(c))
    return {low, plain, plain.replace(" ", ""), plain.replace(" ", "-"), plain.replace("-", " ")}


def reveals(text: str, row: int) -> bool:
    """Whether ``text`` contains any form of thing ``row``'s name or aliases, even in a word."""
    low = text.lower()
    plain = "".join(c for c in unicodedata.normalize("NFKD", low) if not unicodedata.combining(c))
    forms = set().union(*(name_forms(n) for n in (KB.names[row], *KB.aliases[row])))
    return any(form in low or form in plain for form in forms)


# --- Knowledge base ---------------------------------------------------------------------------
def test_knowledge_base_shape_header_and_unique_answers():
    header = importlib.resources.files("turngym.envs.games") / "data" / "twenty_questions.txt"
    text = header.read_text(encoding="utf-8")[:1500]
    assert "turngym's own compilation" in text and "Apache-2.0" in text
    assert len(KB.names) == 130 and len(KB.attributes) == 60 + 26
    # Every object answers some question differently from every other one, so the
    # information-gain oracle can always single it out.
    assert len({row.tobytes() for row in KB.truth}) == len(KB.names)
    assert KB.truth.sum(axis=0)[:60].min() >= 1  # every attribute is true for something


def test_no_name_hides_inside_another_name_or_question():
    texts = [normalize(text) for a in KB.attributes for text in (a.question, a.key)]
    for row in range(len(KB.names)):
        for other in range(len(KB.names)):
            if other != row:
                others = [normalize(n) for n in (KB.names[other], *KB.aliases[other])]
                assert not any(v in o for v in KB.variants(row) for o in others), KB.names[row]
        assert not any(v in t for v in KB.variants(row) for t in texts), KB.names[row]


# --- Answerer and grammar ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "reply"),
    [
        ("ask: mammal", "Is it a mammal? Yes."),
        ("ask: hunts", "Does it hunt other animals? No."),
        ("ASK: Four Legs", "Does it have four legs? Yes."),
        ("ask: four-legs", "Does it have four legs? Yes."),
        ("Does it have a tail?", "Does it have a tail? Yes."),
        ("does it have a tail", "Does it have a tail? Yes."),
        ("ask: Is it made by people?", "Is it made by people? No."),
        ("ask: letter_d", "Does its name start with the letter D? Yes."),
        ("ask: letter c", "Does its name start with the letter C? No."),
        ("starts with d", "Does its name start with the letter D? Yes."),
        ("guess: cat", "No, it is not cat."),
        ("Is it a lion?", "No, it is not lion."),
    ],
)
def test_answerer_known_answers(action, reply):
    env = start()
    obs, reward, terminated, _, info = env.step(act(action))
    assert obs.splitlines()[0] == reply
    assert (reward, terminated, info["action_valid"]) == (0.0, False, True)
    assert info["metrics"]["questions_used"] == 1


@pytest.mark.parametrize("guess", ["guess: dog", "guess: The Dog", "Is it a dog?", "guess: puppy"])
def test_right_guess_wins(guess):
    env = gymnasium.make(ENV_ID)
    env.reset(options={"task": SMALL})
    obs, reward, terminated, _, info = env.step(act(guess))
    assert (reward, terminated, info["success"], info["score"]) == (1.0, True, True, 1.0)
    assert obs.startswith("Yes! It is dog.")


@pytest.mark.parametrize(
    "action",
    [
        act("what is it?"),
        act("ask: colour"),
        act("ask:"),
        act("guess:"),
        act("is it bigger than a bread box"),
        act("Is it a dog or a cat?"),
    ],
)
def test_unparseable_questions_are_invalid_and_explain_the_grammar(action):
    env = start()
    obs, reward, terminated, _, info = env.step(action)
    assert not info["action_valid"] and (reward, terminated) == (0.0, False)
    assert "guess" in obs and "Invalid action" in obs
    assert env.used == 0 and "dog" not in obs.lower()


def test_untagged_actions_are_invalid():
    env = start()
    obs, _, _, _, info = env.step("ask: mammal")
    assert not info["action_valid"] and "<action>ask: animal</action>" in obs and env.used == 0


def test_guesses_outside_the_candidates():
    env = start()  # candidates shown: a guess must be one of them
    obs, *_, info = env.step(act("guess: banana"))
    assert not info["action_valid"] and "not one of the 4 candidates" in obs
    obs, *_, info = env.step(act("guess: unicorn"))
    assert not info["action_valid"] and "unicorn" not in obs
    env = start(show_candidates=False)  # hidden: any guess is a (wrong) guess
    obs, *_, info = env.step(act("guess: banana"))
    assert info["action_valid"] and obs.startswith("No, it is not banana.")
    obs, *_, info = env.step(act("guess: unicorn"))
    assert info["action_valid"] and obs.startswith("No, that is not the object.")
    assert "unicorn" not in obs and env.used == 2


def test_running_out_of_questions_loses_without_revealing():
    env = start(max_questions=3)
    env.step(act("ask: mammal"))
    env.step(act("guess: cat"))
    obs, reward, terminated, _, info = env.step(act("ask: pet"))
    assert terminated and (reward, info["score"]) == (0.0, 0.0)
    assert "No questions left" in obs and not reveals(obs, KB.names.index("dog"))
    obs, _, terminated, _, info = env.step(act("guess: dog"))
    assert terminated and not info["success"] and "over" in obs


def test_state_key_is_canonical_and_privileged_counts_candidates():
    a, b = start(), start()
    for text in ("ask: pet", "guess: cat", "ask: hunts"):
        a.step(act(text))
    for text in ("ask: hunts", "ask: pet", "guess: cat"):
        b.step(act(text))
    assert a.state_key() == b.state_key() == "asked=hunts:n,pet:y|wrong=cat"
    assert a.privileged() == {"secret": "dog", "gold_answers": ["dog", "puppy"],
                              "candidates_left": 1}  # fmt: skip
    assert a.metrics()["bits_gained"] == 2.0


def test_instructions_list_candidates_only_when_shown():
    shown = start().instructions()
    assert "one of these 4: cat; dog; lion; spoon." in shown
    assert "ask: KEY" in shown and "four_legs: Does it have four legs?" in shown
    hidden = start(show_candidates=False).instructions()
    assert "is one of these" not in hidden and "everyday thing" in hidden


@pytest.mark.parametrize(
    ("knobs", "match"),
    [({"n_candidates": 1}, "n_candidates"), ({"n_candidates": 131}, "n_candidates"),
     ({"max_questions": 0}, "max_questions"), ({"show_candidates": 1}, "show_candidates")],
)  # fmt: skip
def test_bad_difficulty_raises(knobs, match):
    with pytest.raises(ValueError, match=match):
        TwentyQuestions(**knobs)


@pytest.mark.parametrize(
    "task",
    [{"secret": "dog", "candidates": ["cat"]}, {"secret": "dog", "candidates": ["dog", "dog"]},
     {"secret": "unicorn", "candidates": ["unicorn"]}, {"secret": "dog"}],
)  # fmt: skip
def test_malformed_tasks_raise(task):
    with pytest.raises(ValueError, match="TwentyQuestions task"):
        TwentyQuestions().reset(options={"task": task})


# --- Determinism, levels, snapshots -----------------------------------------------------------
def test_seeded_tasks_are_deterministic_and_levels_size_the_candidates():
    a, b = TwentyQuestions(), TwentyQuestions()
    for seed in range(5):
        assert a.reset(seed=seed)[1]["task_id"] == b.reset(seed=seed)[1]["task_id"]
        assert (a.secret, a.candidates) == (b.secret, b.candidates)
    for level, n in ((0, 10), (2, 50), (3, 130), (4, 130)):
        _, info = a.reset(seed=0, options={"level": level})
        assert len(a.candidates) == n and a.secret in a.candidates
        assert ("is one of these" in info["instructions"]) == (level != 4)


def test_snapshot_restores_mid_game():
    env = TwentyQuestions()
    env.reset(seed=3, options={"split": "test"})
    env.step(env.oracle_action())
    snap = env.get_state()
    first = [env.step(env.oracle_action())[:3] for _ in range(3)]
    env.set_state(snap)
    assert [env.step(env.oracle_action())[:3] for _ in range(3)] == first


# --- Oracle -----------------------------------------------------------------------------------
def test_oracle_solves_200_test_tasks_random_rarely_does():
    oracle = collect(ENV_ID, OracleAgent(), tasks=200, split="test")
    random_ = collect(ENV_ID, RandomAgent(seed=0), tasks=200, split="test")
    assert sum(ep.success for g in oracle for ep in g.episodes) == 200
    # 25 candidates: log2(25) < 5 bits, so a good split finds one in about 5 questions.
    assert np.mean([len(ep.turns) for g in oracle for ep in g.episodes]) < 7
    assert sum(ep.success for g in random_ for ep in g.episodes) < 60


def test_oracle_finds_every_object_among_all_130():
    env = TwentyQuestions(level=4)
    for secret in KB.names:
        env.reset(options={"task": {"secret": secret, "candidates": list(KB.names)}})
        for _ in range(20):
            *_, terminated, _, info = env.step(env.oracle_action())
            if terminated:
                break
        assert info["success"], secret


def test_oracle_asks_the_best_split():
    env = start({"secret": "dog", "candidates": ["cat", "dog", "lion", "spoon"]})
    # "animal" splits 3:1, but "manmade" too; a 2:2 split is worth more.
    action = env.oracle_action()
    column = KB.column_of[normalize(action[len("<action>ask: ") : -len("</action>")])]
    answers = KB.truth[[KB.names.index(c) for c in env.candidates], column]
    assert answers.sum() == 2


# --- Leaks ------------------------------------------------------------------------------------
def test_leak_check_flags_every_form_of_the_name():
    env = start({"secret": "ice cream", "candidates": ["ice cream", "dog"]})
    for text in ("ICE CREAM", "ice-cream!", "icecream", "an ice creamery", "Ice  Cream"):
        assert env.leak_check(text), text
    assert not env.leak_check("ice and cream") and not env.leak_check(env.instructions())
    env.step(act("guess: ice cream"))
    assert not env.leak_check("it was ICE CREAM")


def test_no_reply_fragment_names_any_object():
    """Every text piece the answerer can say, for every possible hidden object."""
    env = start()
    pieces = [a.question for a in KB.attributes] + ["Yes.", "No.", env._grammar()]
    pieces += [env.step(a)[0] for a in (act("ask: nothing"), act("guess: unicorn"), "junk")]
    for shown in (True, False):
        task = {"secret": KB.names[0], "candidates": list(KB.names)}
        env = start(task, show_candidates=shown)
        pieces.append(env.instructions().replace(env._listing, ""))
    for row, secret in enumerate(KB.names):
        wrong = [f"No, it is not {other}." for other in KB.names if other != secret]
        for piece in pieces + wrong:
            assert not reveals(piece, row), (secret, piece)


def test_random_episodes_never_name_the_hidden_object():
    rng = random.Random(0)
    actions = [*TwentyQuestions().action_space.examples, *fuzz_actions(n=40)]
    actions += [act(a.question.upper()) for a in KB.attributes]
    for seed in range(60):
        env = TwentyQuestions(level=seed % 5)
        obs, info = env.reset(seed=seed, options={"split": "test"})
        row = KB.names.index(env.secret)
        texts = [info["instructions"].replace(env._listing, ""), obs]
        for _ in range(25):
            obs, _, terminated, _, _ = env.step(rng.choice(actions))
            if terminated:
                break
            texts.append(obs)
        for text in texts:
            assert not reveals(text, row), (env.secret, text)
            assert env.leak_check(text) == []


@pytest.mark.slow
def test_every_reply_for_every_object_is_leak_free():
    env = TwentyQuestions(n_candidates=0, max_questions=500)
    for row, secret in enumerate(KB.names):
        task = {"secret": secret, "candidates": list(KB.names)}
        _, info = env.reset(options={"task": task})
        texts = [info["instructions"].replace(env._listing, "")]
        texts += [env.step(act(f"ask: {a.key}"))[0] for a in KB.attributes]
        texts += [env.step(act(f"guess: {o}"))[0] for o in KB.names if o != secret]
        assert not any(reveals(t, row) or env.leak_check(t) for t in texts), secret
