"""Known-answer and behaviour tests for turngym/Shop-v0 (WebShop-like; Yao et al., 2022)."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

import turngym
from turngym.agents import OracleAgent, RandomAgent
from turngym.envs.shop import catalog as catalog_module
from turngym.envs.shop.env import Shop
from turngym.envs.shop.reward import get_reward, indel_ratio, normalize_color, token_set_ratio
from turngym.envs.shop.vocab import COLORS, OPTION_VALUES
from turngym.retrieval import bm25
from turngym.rollout import collect

SHIRT = {
    "id": "b0shirt001",
    "query": "dress shirt",
    "category": "Clothing › Men › Shirts",
    "nouns": ["acme", "shirt"],
    "attributes": ["machine wash", "slim fit", "long sleeve"],
    "title": "Acme Machine Wash Slim Fit Dress Shirt",
    "bullets": ["Machine wash for everyday use"],
    "description": "The Acme dress shirt is machine wash, slim fit and long sleeve.",
    "price": 23.5,
}
GOAL = {
    "query": "dress shirt",
    "category": "Clothing › Men › Shirts",
    "nouns": ["acme", "shirt"],
    "attributes": ["machine wash", "slim fit"],
    "options": {"color": "navy", "size": "m"},
    "price_upper": 30.0,
}


@pytest.fixture(scope="module", autouse=True)
def temp_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TURNGYM_CACHE", str(tmp_path_factory.mktemp("turngym_cache")))
        catalog_module.get_catalog.cache_clear()
        bm25.clear_memory_cache()
        yield
    catalog_module.get_catalog.cache_clear()
    bm25.clear_memory_cache()


# --- The WebShop reward formula ------------------------------------------------------------------
def test_exact_match_scores_one():
    r = get_reward(SHIRT, GOAL, ["navy", "m"])
    assert (r.reward, r.r_type, r.attribute_hits, r.option_hits, r.price_ok) == (1.0, 1, 2, 2, True)


def test_missing_attribute():
    goal = {**GOAL, "attributes": ["machine wash", "wrinkle free"]}
    assert get_reward(SHIRT, goal, ["navy", "m"]).reward == pytest.approx(4 / 5)


def test_attribute_found_only_in_the_text_counts():
    product = {**SHIRT, "attributes": ["slim fit"]}  # "machine wash" is still in the title
    assert get_reward(product, GOAL, ["navy", "m"]).reward == 1.0


def test_wrong_and_missing_options():
    assert get_reward(SHIRT, GOAL, ["teal", "m"]).reward == pytest.approx(4 / 5)
    assert get_reward(SHIRT, GOAL, []).reward == pytest.approx(3 / 5)


def test_over_price():
    product = {**SHIRT, "price": 30.01}
    r = get_reward(product, GOAL, ["navy", "m"])
    assert (r.price_ok, r.reward) == (False, pytest.approx(4 / 5))
    assert get_reward(product, {**GOAL, "price_upper": None}, ["navy", "m"]).reward == 1.0


def test_wrong_type():
    lamp = {**SHIRT, "query": "table lamp", "category": "Home › Decor › Lighting"}
    assert get_reward({**lamp, "nouns": ["zed", "lamp"]}, GOAL, ["navy", "m"]).reward == 0.0
    # Another brand of shirt: title score 1/2 > 0.2, so r_type stays 1.
    assert get_reward({**lamp, "nouns": ["zed", "shirt"]}, GOAL, ["navy", "m"]).r_type == 1.0
    many = {**GOAL, "nouns": list("abcdef")}  # 1 of 6 nouns shared, no query/category match
    assert get_reward({**lamp, "nouns": ["a"]}, many, ["navy", "m"]).r_type == 0.5
    eleven = {**GOAL, "nouns": list("abcdefghijk")}  # 1 of 11 < 0.1
    assert get_reward({**lamp, "nouns": ["a"]}, eleven, ["navy", "m"]).r_type == 0.1
    # Same category (>= 2 shared levels) keeps r_type at 1 despite a low title score.
    assert get_reward({**SHIRT, "nouns": ["a"]}, many, ["navy", "m"]).r_type == 1.0


def test_fuzzy_matching_known_values():
    assert indel_ratio("abc", "abc") == 100.0
    assert indel_ratio("", "x") == 0.0
    assert token_set_ratio("machine wash", "machine washable") == pytest.approx(1200 / 14)
    assert token_set_ratio("non slip sole", "non slip") == 100.0
    assert token_set_ratio("slim fit", "fit slim") == 100.0
    assert token_set_ratio("x", "") == 0.0


def test_option_values_never_fuzzy_match_each_other():
    for dim, values in OPTION_VALUES.items():
        for a, b in itertools.combinations(values, 2):
            assert token_set_ratio(a, b) <= 85, (dim, a, b)
    assert [normalize_color(c) for c in COLORS] == list(COLORS)


# --- Catalogue and caching -----------------------------------------------------------------------
def test_catalogue_is_deterministic_and_shared_between_envs():
    a, b = Shop(catalog_size=300), Shop(catalog_size=300)
    a.reset(seed=0)
    b.reset(seed=0)
    assert a.catalog is b.catalog and a.catalog.index is b.catalog.index
    other = catalog_module.get_catalog(300, 1, 0.3)
    assert other.products[0]["id"] != a.catalog.products[0]["id"]
    ids = [p["id"] for p in a.catalog.products]
    assert len(set(ids)) == len(ids) == 300


def test_goal_is_satisfied_by_its_target_and_never_names_it():
    env = Shop()
    for seed in range(20):
        _, info = env.reset(seed=seed, options={"split": "test"})
        target = env.catalog.products[env.target]
        assert target["id"] not in info["instructions"]
        assert target["brand"].lower() not in info["instructions"].lower()
        best = list(env._best_options(env.target).values())
        assert get_reward(target, env.goal, best).reward == 1.0


# --- Dynamics ------------------------------------------------------------------------------------
def test_invalid_actions_change_nothing_and_never_raise():
    env = Shop(catalog_size=300)
    _, info = env.reset(seed=1)
    bad = ["<action>click[buy now]</action>", "<action>jump</action>", "no tag"]
    bad += ["<action>search[]</action>", f"<action>search[{'x' * 300}]</action>"]
    for action in bad:
        _, reward, terminated, _, step_info = env.step(action)
        assert not step_info["action_valid"] and reward == 0 and not terminated
        assert step_info["state_key"] == info["state_key"] == "search"
    _, _, _, _, info = env.step("<action>search[yoga mat]</action>")
    assert info["action_valid"] and info["state_key"] == "results|q=yoga mat|p=1"
    _, _, _, _, again = env.step("<action>search[yoga mat]</action>")  # no search bar here
    assert not again["action_valid"] and again["state_key"] == info["state_key"]
    _, _, _, _, paged = env.step("<action>Click[ NEXT > ]</action>")
    assert paged["state_key"] == "results|q=yoga mat|p=2"


def test_a_bad_purchase_ends_with_partial_reward():
    env = Shop()
    env.reset(seed=3, options={"split": "test"})
    env.step("<action>search[" + env.goal["type"] + "]</action>")
    wrong = next(i for i in env.state.results if i != env.target)
    env.step(f"<action>click[{env.catalog.products[wrong]['id']}]</action>")
    _, reward, terminated, _, info = env.step("<action>click[buy now]</action>")
    assert terminated and 0.0 <= reward < 1.0 and not info["success"]
    assert info["score"] == reward and info["reward_components"] == {"purchase": reward}


def test_binary_reward_variant():
    env = Shop(binary_reward=True)
    env.reset(seed=0, options={"split": "test"})
    total = 0.0
    for _ in range(15):
        _, reward, terminated, _, info = env.step(env.oracle_action())
        total += reward
        if terminated:
            break
    assert total == 10.0 and info["score"] == 1.0


def test_difficulty_is_validated():
    with pytest.raises(ValueError, match="goal_attributes"):
        Shop(goal_attributes=9)
    with pytest.raises(ValueError, match="show_actions"):
        Shop(show_actions="yes")
    env = Shop(level=0)
    _, info = env.reset(seed=0)
    assert len(env.goal["attributes"]) <= 1 and env.catalog.size == 1000


# --- Oracle vs random and state-key sharing ------------------------------------------------------
def _rates(agent, tasks):
    groups = collect("turngym/Shop-v0", agent, tasks=tasks, group_size=1, split="test")
    episodes = [ep for g in groups for ep in g.episodes]
    success = sum(ep.success for ep in episodes) / len(episodes)
    score = sum(ep.turns[-1].info.get("score", 0.0) for ep in episodes) / len(episodes)
    return success, score


def test_oracle_beats_random_on_200_test_tasks():
    # Under a second on 2 cores, so it runs in the default suite (no slow marker needed).
    oracle, _ = _rates(OracleAgent(), 200)
    random_success, _ = _rates(RandomAgent(seed=0), 200)
    assert oracle >= 0.95 and random_success <= 0.05


def test_random_admissible_agent_stays_below_the_oracle():
    env, rng = turngym.make("turngym/Shop-v0"), random.Random(0)
    scores = []
    for seed in range(30):
        env.reset(seed=seed, options={"split": "test"})
        info = {"score": 0.0}
        for _ in range(15):
            _, _, terminated, truncated, info = env.step(
                rng.choice(env.unwrapped.admissible_actions())
            )
            if terminated or truncated:
                break
        scores.append(info["score"])
    assert all(0.0 <= s <= 1.0 for s in scores) and sum(s == 1.0 for s in scores) < 30


def test_group_episodes_share_state_keys():
    groups = collect("turngym/Shop-v0", RandomAgent(seed=0), tasks=5, group_size=4, split="train")
    shared_total = 0
    for group in groups:
        seen = Counter()
        for episode in group.episodes:
            seen.update({turn.info["state_key"] for turn in episode.turns})
        shared_total += sum(1 for n in seen.values() if n >= 2)
        assert not any("turn" in key for key in seen)
    assert shared_total > 0
