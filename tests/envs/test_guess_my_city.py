"""GuessMyCity: the city table, derived answers, aliases and accents, oracle, leak tests.

The grammar and the budget are shared with TwentyQuestions and tested there in depth; this
file checks what is particular to cities and repeats the leak tests on the city data.
"""

from __future__ import annotations

import importlib.resources
import random
import unicodedata

import gymnasium
import numpy as np
import pytest

import turngym.envs  # noqa: F401  (registers turngym/GuessMyCity-v0)
from turngym.agents import OracleAgent, RandomAgent
from turngym.envs.games.guess_my_city import GuessMyCity, load_cities
from turngym.envs.games.guessing import normalize
from turngym.rollout import collect
from turngym.testing import fuzz_actions

ENV_ID = "turngym/GuessMyCity-v0"
KB = load_cities()
FOUR = {"secret": "São Paulo", "candidates": ["Lima", "Oslo", "São Paulo", "Tokyo"]}


def act(text: str) -> str:
    return f"<action>{text}</action>"


def start(task=FOUR, **knobs) -> GuessMyCity:
    env = GuessMyCity(**knobs)
    env.reset(options={"task": task})
    return env


def answer(city: str, key: str) -> bool:
    return bool(KB.truth[KB.names.index(city), KB.column_of[normalize(key)]])


def reveals(text: str, row: int) -> bool:
    """Any case/accent/spacing form of city ``row``'s names inside ``text`` (env-independent)."""

    def plain(s: str) -> str:
        s = unicodedata.normalize("NFKD", s.lower())
        return "".join(c for c in s if not unicodedata.combining(c))

    low, flat = text.lower(), plain(text)
    forms = set()
    for name in (KB.names[row], *KB.aliases[row]):
        flat_name = plain(name)
        forms |= {name.lower(), flat_name, flat_name.replace(" ", ""), flat_name.replace(" ", "-")}
    return any(f in low or f in flat for f in forms)


# --- The table --------------------------------------------------------------------------------
def test_table_header_size_and_unique_answers():
    path = importlib.resources.files("turngym.envs.games") / "data" / "guess_my_city.txt"
    header = path.read_text(encoding="utf-8")[:1500]
    assert "turngym's own compilation" in header and "Apache-2.0" in header
    assert len(KB.names) == 109
    assert len({row.tobytes() for row in KB.truth}) == len(KB.names)  # all distinguishable


@pytest.mark.parametrize(
    ("city", "key", "expected"),
    [
        ("São Paulo", "south_america", True),
        ("São Paulo", "north", False),
        ("São Paulo", "tropics", False),  # 23.55 S, just south of the Tropic of Capricorn
        ("São Paulo", "pop_over_20m", True),
        ("São Paulo", "capital", False),
        ("São Paulo", "portuguese", True),
        ("São Paulo", "letter_s", True),
        ("London", "east", False),  # 0.13 W
        ("London", "far_from_equator", True),
        ("London", "olympics", True),
        ("London", "united_kingdom", True),
        ("Tokyo", "coastal", True),
        ("Nairobi", "tropics", True),
        ("Nairobi", "english", True),
        ("Wellington", "pop_over_2m", False),
        ("Mexico City", "north_america", True),
        ("Istanbul", "europe", True),
        ("Ankara", "asia", True),
    ],
)
def test_derived_facts(city, key, expected):
    assert answer(city, key) is expected


def test_no_name_hides_inside_another_name_or_question():
    texts = [normalize(text) for a in KB.attributes for text in (a.question, a.key)]
    for row in range(len(KB.names)):
        for other in range(len(KB.names)):
            if other != row:
                others = [normalize(n) for n in (KB.names[other], *KB.aliases[other])]
                assert not any(v in o for v in KB.variants(row) for o in others), KB.names[row]
        assert not any(v in t for v in KB.variants(row) for t in texts), KB.names[row]


# --- Answerer ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "reply"),
    [
        ("ask: south_america", "Is it in South America? Yes."),
        ("ask: south america", "Is it in South America? Yes."),
        ("Is it in Brazil?", "Is it in Brazil? Yes."),
        ("ask: united_states", "Is it in the United States? No."),
        ("IS IT IN THE NORTHERN HEMISPHERE", "Is it in the Northern Hemisphere? No."),
        ("ask: pop_over_10m", "Do more than 10 million people live in its urban area? Yes."),
        ("ask: Is Portuguese an official or main language there?",
         "Is Portuguese an official or main language there? Yes."),
        ("guess: Lima", "No, it is not Lima."),
    ],
)  # fmt: skip
def test_answerer_known_answers(action, reply):
    env = start()
    obs, _, terminated, _, info = env.step(act(action))
    assert obs.splitlines()[0] == reply and info["action_valid"] and not terminated


@pytest.mark.parametrize("guess", ["guess: São Paulo", "guess: sao paulo", "Is it SAO-PAULO?"])
def test_guesses_ignore_case_and_accents(guess):
    env = gymnasium.make(ENV_ID)
    env.reset(options={"task": FOUR})
    obs, reward, terminated, _, info = env.step(act(guess))
    assert (reward, terminated, info["success"]) == (1.0, True, True)
    assert obs.startswith("Yes! It is São Paulo.")


def test_aliases_are_accepted():
    env = start({"secret": "Mumbai", "candidates": ["Mumbai", "Chennai"]})
    assert env.step(act("guess: Bombay"))[1] == 1.0


def test_questions_about_other_places_are_not_understood():
    env = start()
    for text in ("Is it near the sea?", "Is it in Texas?", "ask: population", "ask: brazil?!x"):
        obs, *_, info = env.step(act(text))
        assert not info["action_valid"] and "guess: NAME" in obs, text
    assert env.used == 0


# --- Oracle and random agent ------------------------------------------------------------------
def test_oracle_solves_200_test_tasks_random_rarely_does():
    oracle = collect(ENV_ID, OracleAgent(), tasks=200, split="test")
    random_ = collect(ENV_ID, RandomAgent(seed=0), tasks=200, split="test")
    assert sum(ep.success for g in oracle for ep in g.episodes) == 200
    assert np.mean([len(ep.turns) for g in oracle for ep in g.episodes]) < 7
    assert sum(ep.success for g in random_ for ep in g.episodes) < 80


def test_oracle_finds_every_city_among_all_109():
    env = GuessMyCity(level=4)
    used = []
    for secret in KB.names:
        env.reset(options={"task": {"secret": secret, "candidates": list(KB.names)}})
        for _ in range(20):
            *_, terminated, _, info = env.step(env.oracle_action())
            if terminated:
                break
        assert info["success"], secret
        used.append(env.used)
    assert max(used) <= 12 and np.mean(used) < 9  # log2(109) = 6.8


def test_determinism_and_snapshot():
    a, b = GuessMyCity(), GuessMyCity()
    a.reset(seed=4, options={"split": "test"})
    b.reset(seed=4, options={"split": "test"})
    assert (a.secret, a.candidates) == (b.secret, b.candidates)
    a.step(a.oracle_action())
    snap = a.get_state()
    first = [a.step(a.oracle_action())[:3] for _ in range(3)]
    a.set_state(snap)
    assert [a.step(a.oracle_action())[:3] for _ in range(3)] == first


# --- Leaks ------------------------------------------------------------------------------------
def test_leak_check_flags_every_form_of_the_name():
    env = start()
    for text in ("SÃO PAULO", "sao paulo", "SaoPaulo", "são-paulo", "the saopauloans"):
        assert env.leak_check(text), text
    assert not env.leak_check(env.instructions())  # the alphabetical list is exempt
    assert not env.leak_check("Is it in Brazil? Yes.")


def test_no_reply_fragment_names_any_city():
    env = start()
    pieces = [a.question for a in KB.attributes] + ["Yes.", "No.", env._grammar()]
    pieces += [env.step(a)[0] for a in (act("ask: nothing"), act("guess: Atlantis"), "junk")]
    for shown in (True, False):
        env = start({"secret": KB.names[0], "candidates": list(KB.names)}, show_candidates=shown)
        pieces.append(env.instructions().replace(env._listing, ""))
    for row, secret in enumerate(KB.names):
        wrong = [f"No, it is not {other}." for other in KB.names if other != secret]
        for piece in pieces + wrong:
            assert not reveals(piece, row), (secret, piece)


def test_random_episodes_never_name_the_hidden_city():
    rng = random.Random(1)
    actions = [*GuessMyCity().action_space.examples, *fuzz_actions(n=40)]
    actions += [act(a.question.lower()) for a in KB.attributes]
    for seed in range(60):
        env = GuessMyCity(level=seed % 5)
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
def test_every_reply_for_every_city_is_leak_free():
    env = GuessMyCity(n_candidates=0, max_questions=500)
    for row, secret in enumerate(KB.names):
        _, info = env.reset(options={"task": {"secret": secret, "candidates": list(KB.names)}})
        texts = [info["instructions"].replace(env._listing, "")]
        texts += [env.step(act(f"ask: {a.key}"))[0] for a in KB.attributes]
        texts += [env.step(act(f"guess: {o}"))[0] for o in KB.names if o != secret]
        assert not any(reveals(t, row) or env.leak_check(t) for t in texts), secret
