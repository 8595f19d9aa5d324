"""Clarify (issue 6, InfoPO-style): grammar, rewards, the simulated user's leak guarantee."""

from __future__ import annotations

import itertools
import random

import pytest

import turngym
from turngym.agents import make_agent
from turngym.envs.dialogue.clarify import MASKED_REPLY, NEUTRAL_REPLIES, Clarify
from turngym.envs.dialogue.domains import DOMAINS, mentions, values_match
from turngym.rollout import collect

TASK = {
    "domain": "restaurant",
    "slots": {"cuisine": "thai", "date": "June 3", "time": "19:30", "party_size": "4 people"},
    "stated": ["cuisine", "party_size"],
}


def _env(**knobs):
    env = Clarify(**knobs)
    obs, info = env.reset(options={"task": TASK})
    return env, obs, info


def _user_lines(obs: str) -> str:
    return "\n".join(line for line in obs.splitlines() if line.startswith("User:"))


# --- Known answers --------------------------------------------------------------------------
def test_request_states_only_the_stated_slots():
    _, obs, info = _env()
    assert "thai" in obs and "4 people" in obs
    assert "June 3" not in obs and "19:30" not in obs
    assert "Form fields: cuisine, date, time, party_size." in obs
    assert info["privileged"]["hidden"] == ["date", "time"]
    assert info["privileged"]["min_questions"] == 2


def test_oracle_episode_return_is_one_minus_question_costs():
    env, _, _ = _env(question_cost=0.1)
    rewards = []
    for action in ("<action>ask: date</action>", "<action>ask: time</action>"):
        obs, reward, terminated, _, info = env.step(action)
        rewards.append(reward)
        assert not terminated and info["reward_components"] == {"question_cost": -0.1}
    assert "June 3" in obs or "19:30" in obs
    _, reward, terminated, _, info = env.step(
        '<action>do: {"cuisine": "Thai", "date": "june 3", "time": "19:30", '
        '"party_size": 4}</action>'
    )
    assert terminated and reward == 1.0 and info["success"]
    assert sum(rewards) + reward == pytest.approx(0.8)


def test_readable_grammar_labels_and_number_words():
    env, _, _ = _env()
    _, reward, _, _, info = env.step(
        "<action>do: cuisine = thai; date=June 3, time: 19:30; party size=four</action>"
    )
    assert reward == 1.0 and info["action_valid"]


@pytest.mark.parametrize(("partial", "expected"), [(False, 0.0), (True, 0.75)])
def test_partial_credit_knob(partial, expected):
    env, _, _ = _env(partial_credit=partial)
    _, reward, terminated, _, info = env.step(
        "<action>do: cuisine=thai; date=June 4; time=19:30; party_size=4</action>"
    )
    assert terminated and reward == expected and not info["success"]
    assert info["score"] == expected


def test_missing_field_counts_as_wrong():
    env, _, _ = _env(partial_credit=True)
    _, reward, *_ = env.step("<action>do: cuisine=thai; date=June 3</action>")
    assert reward == 0.5


def test_turn_limit_ends_with_score_zero():
    env = Clarify(max_turns=3, n_slots=2)
    env.reset(options={"task": TASK})
    for turn in range(3):
        obs, reward, terminated, _, info = env.step("<action>ask: seating</action>")
        assert reward == -0.05 and terminated == (turn == 2)
    assert info["score"] == 0.0 and NEUTRAL_REPLIES["over"] in obs


# --- The user simulator ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("question", "reply"),
    [
        ("what time works for you?", "Time: 19:30."),
        ("date", "Date: June 3."),
        ("party size", "Party size: 4 people."),
        ("which cuisine?", "Cuisine: thai."),
        ("when and at what time?", NEUTRAL_REPLIES["several"]),
        ("do you like jazz?", NEUTRAL_REPLIES["unclear"]),
        ("seating", "I don't mind about the seating."),
        ("area", "I don't mind about the area."),
    ],
)
def test_user_answers_only_what_is_asked(question, reply):
    env, _, _ = _env()
    obs, reward, _, _, info = env.step(f"<action>ask: {question}</action>")
    assert _user_lines(obs) == f"User: {reply}"
    assert info["action_valid"] and reward == -0.05
    assert info["metrics"]["user_reply"] == reply and MASKED_REPLY not in obs


@pytest.mark.parametrize(
    "action",
    [
        "ask date",  # no tags
        "<action>tell me more</action>",
        "<action>ask:   </action>",
        "<action>do: </action>",
        "<action>do: {not json</action>",
        "<action>do: [1, 2]</action>",
        "<action>do: seating=indoor</action>",  # not a field of this form
        "<action>do: date</action>",  # no value
        '<action>do: {"date": {"x": 1}}</action>',
    ],
)
def test_invalid_actions_use_no_turn(action):
    env, _, info0 = _env()
    obs, reward, terminated, _, info = env.step(action)
    assert not info["action_valid"] and reward == 0.0 and not terminated
    assert "Turns left: 8 of 8." in obs and info["state_key"] == info0["state_key"]


def test_value_lists_are_whole_word_disjoint_within_each_domain():
    fixed = [*NEUTRAL_REPLIES.values()]
    for domain in DOMAINS.values():
        fixed += [domain.opening, *(s.label for s in domain.slots)]
        for a, b in itertools.permutations(domain.slots, 2):
            for va, vb in itertools.product(a.values, b.values):
                assert va == vb or not mentions(va, vb), (domain.name, a.name, va, b.name, vb)
        for slot in domain.slots:
            for value in slot.values:
                bare = slot.phrase.replace("{v}", "")
                assert not any(mentions(text, value) for text in [*fixed, bare]), value


def test_values_match_normalises():
    flight = DOMAINS["flight"]
    assert values_match(flight.slot("cabin"), " FIRST   class. ", "first class")
    assert values_match(flight.slot("passengers"), 3, "3 passengers")
    assert not values_match(flight.slot("passengers"), "many", "3 passengers")
    assert not values_match(flight.slot("origin"), None, "Oslo")


def _question_pool(env: Clarify) -> list[str]:
    words = [w for s in env.domain.slots for w in (s.name, s.label, *s.synonyms)]
    return [*words, "anything else?", "what do you want?", "tell me everything", "budget"]


def test_user_never_volunteers_a_hidden_slot_over_many_episodes():
    """Leak test: 300 episodes of random questions, every reply checked as it is given."""
    env, rng = Clarify(level=4), random.Random(0)
    for seed in range(300):
        obs, info = env.reset(seed=seed, options={"split": ("train", "test")[seed % 2]})
        hidden = {n: v for n, v in env.slots.items() if n in info["privileged"]["hidden"]}
        assert not any(mentions(_user_lines(obs), v) for v in hidden.values())
        pool, asked, terminated = _question_pool(env), set(), False
        while not terminated:
            question = " and ".join(rng.sample(pool, rng.choice((1, 1, 2))))
            obs, _, terminated, _, info = env.step(f"<action>ask: {question}</action>")
            asked |= set(env.answers)
            for name, value in hidden.items():
                if name not in asked:
                    assert not mentions(_user_lines(obs), value), (seed, question, obs)
            assert env.leak_check(obs) == []


# --- Oracle, random floor, determinism ------------------------------------------------------
def test_oracle_beats_random_on_200_test_tasks():
    scores = {}
    for name in ("oracle", "random"):
        groups = collect("turngym/Clarify-v0", make_agent(name, seed=0), tasks=200, split="test")
        episodes = [e for g in groups for e in g.episodes]
        scores[name] = sum(e.success for e in episodes) / len(episodes)
    assert scores["oracle"] >= 0.95 and scores["random"] <= 0.05


@pytest.mark.parametrize("level", sorted(Clarify.levels))
def test_oracle_solves_every_level_with_minimal_questions(level):
    env = Clarify(level=level)
    for seed in range(20):
        _, info = env.reset(seed=seed, options={"split": "test"})
        steps, terminated = 0, False
        while not terminated:
            *_, terminated, _, info = env.step(env.oracle_action())
            steps += 1
        assert info["success"] and steps == info["privileged"]["min_questions"] + 1


def test_determinism_and_state_key():
    a, b = turngym.make("turngym/Clarify-v0"), turngym.make("turngym/Clarify-v0")
    options = {"split": "test"}
    assert a.reset(seed=11, options=options) == b.reset(seed=11, options=options)
    env, _, _ = _env()
    env.step("<action>ask: time</action>")
    env.step("<action>ask: date</action>")
    first = env.state_key()
    env.reset(options={"task": TASK})
    env.step("<action>ask: date</action>")
    env.step("<action>ask: jazz?</action>")  # neutral reply: state unchanged
    env.step("<action>ask: time</action>")
    assert env.state_key() == first == "restaurant|asked=date=June 3,time=19:30|done=|over=0"


def test_snapshot_restore_replays():
    env = Clarify()
    env.reset(seed=4, options={"split": "test"})
    env.step(env.oracle_action())
    snapshot = env.get_state()
    first = [env.step(env.oracle_action())[:3] for _ in range(3)]
    env.set_state(snapshot)
    assert [env.step(env.oracle_action())[:3] for _ in range(3)] == first


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"n_stated": 4}, "n_stated must be smaller"),
        ({"max_turns": 2}, "max_turns=2"),
        ({"domains": ["spaceship"]}, "domains must be"),
        ({"question_cost": -1}, "question_cost"),
        ({"n_slots": 9}, "n_slots=9"),
    ],
)
def test_bad_knobs_fail_with_a_clear_message(knobs, message):
    with pytest.raises(ValueError, match=message):
        Clarify(**knobs)


def test_bad_task_fails_with_a_clear_message():
    with pytest.raises(ValueError, match="A Clarify task is"):
        Clarify().reset(options={"task": {"domain": "flight", "slots": {"cabin": "sofa"}}})
