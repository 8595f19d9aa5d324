"""SearchQA (issue 6): metrics, question generation, leaks, the oracle through BM25, user files."""

from __future__ import annotations

import json

import numpy as np
import pytest

import turngym
from turngym.envs.search.corpus import load_corpus_file, search_r1_retrieve
from turngym.envs.search.env import INVALID_MESSAGE, SearchQA, parse_search_r1_action
from turngym.envs.search.questions import (
    exact_match,
    f1_score,
    make_question,
    normalize_answer,
    sub_exact_match,
)
from turngym.envs.search.world import extract_fact, get_world
from turngym.testing import check_env

SMALL = 1500


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNGYM_CACHE", str(tmp_path / "cache"))


def play(env, policy, seed, split="test", turns=8):
    obs, info = env.reset(seed=seed, options={"split": split})
    reward = 0.0
    for _ in range(turns):
        obs, reward, terminated, truncated, info = env.step(policy(env))
        if terminated:
            break
    return reward, info


def oracle(env):
    return env.unwrapped.oracle_action()


# --- Metrics (SQuAD / Search-R1 qa_em.py) -----------------------------------------------------
def test_normalisation_and_metrics_known_answers():
    assert normalize_answer("The  Velmora, Institute.") == "velmora institute"
    assert exact_match("the velmora institute", ["Velmora Institute"]) == 1.0
    assert exact_match("Velmora", ["Velmora Institute"]) == 0.0
    assert sub_exact_match("it is Velmora Institute!", ["Velmora Institute"]) == 1.0
    assert f1_score("Velmora", ["Velmora Institute"]) == pytest.approx(2 / 3)
    assert f1_score("a b c", ["x", "b c d"]) == pytest.approx(0.8)  # "a" is an article
    assert f1_score("", ["x"]) == 0.0


def test_parse_takes_the_last_search_or_answer_tag():
    assert parse_search_r1_action("<search>a</search> then <answer> b </answer>") == ("answer", "b")
    assert parse_search_r1_action("<think><answer>x</answer></think><search>q</search>") == (
        "search", "q")  # fmt: skip
    assert parse_search_r1_action("<answer> </answer>") is None
    assert parse_search_r1_action("<search>q</answer>") is None


# --- World and questions ----------------------------------------------------------------------
def test_world_is_deterministic_and_titles_unique():
    world = get_world(3, SMALL)
    assert len(world.texts) == SMALL and world.texts == get_world(3, SMALL).texts
    titles = [e.title for e in world.entities]
    assert len(set(titles)) == len(titles)
    person = next(e for e in world.entities if e.kind == "person")
    employer = world.entities[person.facts["employer"]].name
    assert extract_fact(world.texts[person.doc], person.name, "employer") == employer


def test_bridge_question_known_case():
    world = get_world(0, SMALL)
    task = make_question(world, np.random.default_rng(5), max_hops=2, comparison_rate=0.0)
    assert task["type"] == "bridge" and task["hops"] == 2
    (path,) = task["paths"]
    first, second = path["steps"]
    anchor = next(e for e in world.entities if e.title == path["anchor_title"])
    bridge = world.entities[anchor.facts[first["relation"]]]
    assert first["answer"] == bridge.name and second["subject"] == bridge.name
    assert second["answer"] == task["answers"][0]
    assert bridge.name not in task["question"]  # the bridge is only in the hop-1 passage


def test_comparison_question_known_case():
    world = get_world(0, SMALL)
    for seed in range(10):
        task = make_question(world, np.random.default_rng(seed), comparison_rate=1.0)
        assert task["type"] == "comparison" and len(task["paths"]) == 2
        (b1, y1), (b2, y2) = ([s["answer"] for s in p["steps"]] for p in task["paths"])
        earlier = task["compare"] == "min"
        assert ("earlier" in task["question"]) == earlier
        winner = b1 if (int(y1) < int(y2)) == earlier else b2
        assert task["answers"][0] == winner


# --- The env ------------------------------------------------------------------------------------
def test_episode_search_then_answer_and_reward_knob():
    env = SearchQA(corpus_size=SMALL, reward="f1")
    obs, info = env.reset(seed=1, options={"split": "test"})
    assert obs.startswith("Answer the given question.") and "Question: " in obs
    obs, reward, terminated, _, info = env.step("<search> festival </search>")
    assert obs.startswith("\n\n<information>Doc 1(Title: ") and obs.endswith("</information>\n\n")
    assert obs.count("\nDoc ") + 1 == 3 and not terminated and reward == 0.0
    obs, reward, _, _, info = env.step("no tags")
    assert obs == INVALID_MESSAGE and info["action_valid"] is False
    gold = info["privileged"]["golds"][0]
    _, reward, terminated, _, info = env.step(f"<answer> {gold} extra </answer>")
    assert terminated and 0 < reward < 1 and info["reward_components"] == {"f1": reward}
    assert info["metrics"]["em"] == 0.0 and info["metrics"]["searches"] == 1


def test_leak_gold_never_in_question_or_first_observation():
    env = SearchQA(corpus_size=SMALL, comparison_rate=0.5, max_hops=4)
    for seed in range(60):
        obs, info = env.reset(seed=seed, options={"split": "test"})
        golds = info["privileged"]["golds"]
        for text in (obs, info["instructions"]):
            hay = f" {normalize_answer(text)} "
            assert not any(f" {normalize_answer(g)} " in hay for g in golds)
        assert env.leak_check(obs) == []
    assert env.leak_check(f"hint: {golds[0]}")  # outside <information>: a leak
    assert env.leak_check(f"<information>{golds[0]}</information>") == []


def test_privileged_holds_golds_supporting_docs_and_chain():
    env = SearchQA(corpus_size=SMALL)
    _, info = env.reset(seed=2, options={"split": "test"})
    priv = info["privileged"]
    assert priv["golds"] and priv["supporting_doc_ids"] and priv["decomposition"]
    assert priv["min_searches"] == sum(len(p["steps"]) for p in priv["decomposition"])


def test_oracle_through_retriever_small():
    env = turngym.make("turngym/SearchQA-v0", corpus_size=SMALL, max_hops=4)
    wins = sum(play(env, oracle, seed)[0] for seed in range(40))
    assert wins >= 39


@pytest.mark.slow
def test_oracle_200_test_tasks_vs_random():
    env = turngym.make("turngym/SearchQA-v0")
    oracle_wins, random_wins = 0.0, 0.0
    for seed in range(200):
        reward, info = play(env, oracle, seed)
        oracle_wins += reward
        assert info["metrics"]["evidence_recall"] == 1.0 or reward < 1
        env.action_space.seed(seed)
        random_wins += play(env, lambda e: e.action_space.sample(), seed)[0]
    assert oracle_wins / 200 >= 0.95 and random_wins / 200 <= 0.05


def test_checker_passes_on_a_small_corpus():
    report = check_env("turngym/SearchQA-v0", corpus_size=SMALL, fuzz_examples=30, n_tasks=10)
    report.raise_if_failed()


# --- User corpus + QA files (HotpotQA-style) ----------------------------------------------------
def write_user_files(tmp_path):
    passages = [
        {"id": "p1", "title": "Quorvel Bridge", "text": "Quorvel Bridge was designed by Ama Tesk."},
        {"id": "p2", "title": "Ama Tesk", "text": "Ama Tesk was born in Lindrow."},
        {"id": "p3", "contents": '"Lindrow"\nLindrow is a town by the sea.'},
    ]
    questions = [
        {"question": "Where was the designer of Quorvel Bridge born?", "answer": "Lindrow",
         "supporting_facts": [["Quorvel Bridge", 0], ["Ama Tesk", 0]], "split": "test"},
        {"question": "Who designed Quorvel Bridge?", "answers": ["Ama Tesk", "A. Tesk"],
         "split": "test"},
    ]  # fmt: skip
    corpus, qa = tmp_path / "corpus.jsonl", tmp_path / "qa.jsonl"
    corpus.write_text("\n".join(json.dumps(p) for p in passages) + "\n")
    qa.write_text("\n".join(json.dumps(q) for q in questions) + "\n")
    return corpus, qa


def test_user_corpus_and_questions(tmp_path):
    corpus_file, qa_file = write_user_files(tmp_path)
    assert load_corpus_file(corpus_file).titles == ["Quorvel Bridge", "Ama Tesk", "Lindrow"]
    env = SearchQA(corpus_file=corpus_file, qa_file=qa_file, topk=2)
    obs, info = env.reset(seed=0, options={"split": "test"})
    assert "Quorvel Bridge born" in obs
    assert info["privileged"]["supporting_doc_ids"] == ["p1", "p2"]
    obs, *_ = env.step("<search> Ama Tesk born </search>")
    assert "Doc 1(Title: Ama Tesk) Ama Tesk was born in Lindrow." in obs
    assert play(env, oracle, 0)[0] == 1.0 and play(env, oracle, 1)[0] == 1.0
    with pytest.raises(ValueError, match="together"):
        SearchQA(corpus_file=corpus_file)


def test_user_files_bad_lines_fail_clearly(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n')
    corpus_file, _ = write_user_files(tmp_path)
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        SearchQA(corpus_file=corpus_file, qa_file=bad)


# --- Search-R1 /retrieve ------------------------------------------------------------------------
def test_search_r1_retrieve_shape_and_errors(tmp_path):
    corpus_file, _ = write_user_files(tmp_path)
    corpus = load_corpus_file(corpus_file)
    reply = search_r1_retrieve({"queries": ["Ama Tesk", "sea"], "topk": 1,
                                "return_scores": True}, corpus)  # fmt: skip
    (hit,), (sea,) = reply["result"]
    assert hit["document"] == {"id": "p2", "contents": '"Ama Tesk"\nAma Tesk was born in Lindrow.'}
    assert hit["score"] > 0 and sea["document"]["id"] == "p3"
    plain = search_r1_retrieve({"queries": ["Lindrow"], "topk": 3}, corpus)["result"][0]
    assert set(plain[0]) == {"id", "contents"}
    for bad in ({"queries": "x"}, {"queries": ["x"], "topk": 0}, {"queries": ["x"],
                "return_scores": "yes"}, []):  # fmt: skip
        with pytest.raises(ValueError):
            search_r1_retrieve(bad, corpus)


def test_a_rollout_tick_answers_every_search_in_one_batch(monkeypatch):
    from turngym.agents import ScriptedAgent
    from turngym.core import TextEnv
    from turngym.retrieval.bm25 import BM25Index
    from turngym.rollout import collect

    batches = []
    prefetch = BM25Index.prefetch

    def spy(self, queries, k):
        batches.append(list(queries))
        prefetch(self, queries, k)

    monkeypatch.setattr(BM25Index, "prefetch", spy)
    script = ["<search>Orvel mayor</search>", "<search>river city</search>", "<answer>x</answer>"]
    kwargs = {"corpus_size": SMALL}

    def run():
        groups = collect("turngym/SearchQA-v0", ScriptedAgent(script), tasks=2, group_size=2,
                         env_kwargs=kwargs)  # fmt: skip
        episodes = [e.to_dict() for g in groups for e in g.episodes]
        for e in episodes:
            e["metrics"].pop("wall_time_s")
        return episodes

    batched = run()
    assert batches == [["Orvel mayor"] * 4, ["river city"] * 4]  # one batch per tick
    monkeypatch.setattr(SearchQA, "before_steps", classmethod(TextEnv.before_steps.__func__))
    batches.clear()
    assert run() == batched and batches == []  # the same episodes without the hook
