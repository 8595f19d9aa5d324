"""SeqRec, ConvRec and the MovieLens loader (issue 7): metrics, grammar, oracles, leaks."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import turngym
from turngym.envs.recommend.catalog import (
    TitleIndex,
    make_catalogue,
    ndcg_at_k,
    rank_gains,
    rank_hits,
    recall_at_k,
    split_ranked_list,
)
from turngym.envs.recommend.convrec import SLOTS, ConvRec
from turngym.envs.recommend.movielens import load_movielens, movielens_tasks, write_tasks
from turngym.envs.recommend.seqrec import SeqRec

LOG3 = math.log2(3)


# --- Metrics: known answers -------------------------------------------------------------------
def test_rank_hits_ignore_out_of_catalogue_repeats_and_seen():
    assert rank_hits([3, None, 3, 5, 1, 7], relevant={3, 5, 7, 1}, seen=frozenset({1})) == [
        1, 0, 0, 1, 0, 1,
    ]  # fmt: skip


def test_recall_and_ndcg_hand_computed():
    hits = [1, 0, 1]
    assert recall_at_k(hits, n_relevant=2, k=3) == 1.0
    assert recall_at_k(hits, n_relevant=4, k=1) == 0.25
    # DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3)
    assert ndcg_at_k(hits, n_relevant=2, k=3) == pytest.approx(1.5 / (1 + 1 / LOG3))
    assert ndcg_at_k([0, 1], n_relevant=1, k=2) == pytest.approx(1 / LOG3)
    assert ndcg_at_k([1, 1, 1], n_relevant=5, k=3) == pytest.approx(1.0)  # ideal = min(R, k)
    assert ndcg_at_k([0, 0], n_relevant=0, k=2) == 0.0
    assert rank_gains([0, 1, 0, 1]) == pytest.approx([0, 1 / LOG3, 0, 1 / math.log2(5)])


def test_log_decay_from_rank_gains_matches_rank_grpo():
    """Rank-GRPO's log_decay rewards for hits [0,1,0,1] are suffix sums of the gains."""
    gains = rank_gains([0, 1, 0, 1])
    suffix = [sum(gains[i:]) for i in range(4)]
    assert suffix == pytest.approx([1.0616, 1.0616, 0.4307, 0.4307], abs=1e-4)


def test_title_index_and_list_splitting():
    index = TitleIndex(["Glass Harbor (1987)", "Glass Harbor (2001)", "Matrix, The (1999)"])
    assert index.find("  GLASS   harbor: (2001) ") == 1
    assert index.find("Glass Harbor") is None  # ambiguous without the year
    assert index.find("the matrix") == 2 and index.find("The Matrix (1999)") == 2
    assert index.find("i1") == 0 and index.find("i4") is None and index.find("Nope") is None
    assert split_ranked_list("1. A (1990) [drama]\n2) b | comedy;  - c ;; 3.") == [
        "A (1990)",
        "b",
        "c",
    ]


# --- SeqRec -----------------------------------------------------------------------------------
def _item(title, *genres):
    return {"title": title, "genres": list(genres)}


HAND_TASK = {
    "history": [_item("Old Friend (1990)", "drama")],
    "pool": [
        _item("Alpha Tide (2001)", "drama"),
        _item("Beta Tide (2002)", "comedy"),
        _item("Gamma Tide (2003)", "drama"),
        _item("Old Friend (1990)", "drama"),
    ],
    "relevant": [2, 0],
}


def test_seqrec_known_answer_with_repeat_unknown_and_seen_items():
    env = SeqRec(k=5)
    env.reset(options={"task": HAND_TASK})
    action = (
        "<action>1. alpha tide; 2. Nowhere Film (1999); 3. Alpha Tide (2001); 4. i3; "
        "5. old friend; 6. i2</action>"
    )
    obs, reward, terminated, truncated, info = env.step(action)
    assert info["rank_hits"] == [1, 0, 0, 1, 0]
    expected = (1 + 1 / math.log2(5)) / (1 + 1 / LOG3)
    assert reward == pytest.approx(expected) and info["score"] == pytest.approx(expected)
    assert info["rank_gains"] == pytest.approx([1, 0, 0, 1 / math.log2(5), 0])
    metrics = info["metrics"]
    assert metrics["recall@5"] == 1.0 and metrics["coverage"] == 1.0
    assert metrics["n_out_of_catalogue"] == 1 and metrics["n_extra"] == 1
    assert terminated and not truncated and info["action_valid"]
    assert info["privileged"]["relevant"] == ["Gamma Tide (2003)", "Alpha Tide (2001)"]
    assert info["reward_components"] == {"ndcg": pytest.approx(expected)}
    assert "1 not among the candidates, 1 repeated, 1 already watched" in obs


def test_seqrec_malformed_answers_are_invalid_and_retryable():
    env = turngym.make("turngym/SeqRec-v0")
    env.reset(seed=0, options={"task": HAND_TASK})
    for action in ("no tags", "<action> ; ;\n</action>", "<action>?!</action>"):
        _, reward, terminated, _, info = env.step(action)
        assert not info["action_valid"] and reward == 0.0 and not terminated
        assert info["rank_hits"] == [] and info["state_key"] == "pending"
    _, reward, terminated, truncated, info = env.step("<action>Gamma Tide; Alpha Tide</action>")
    assert reward == 1.0 and terminated and info["success"]


def test_seqrec_observation_hides_relevance():
    env = SeqRec()
    obs, info = env.reset(seed=3, options={"split": "test"})
    shown = re.findall(r"^i\d+ (.+?) \[", obs, flags=re.MULTILINE)
    assert shown == sorted(shown) == info["privileged"]["pool"]
    assert env.leak_check(obs) == [] and env.leak_check(info["instructions"]) == []
    leaky = "\n".join(info["privileged"]["relevant"] + info["privileged"]["pool"])
    assert env.leak_check(leaky)


def _mean_ndcg(env, n_tasks, agent):
    values = []
    for seed in range(n_tasks):
        env.reset(seed=seed, options={"split": "test"})
        values.append(env.step(agent(env, seed))[4]["metrics"]["ndcg@10"])
    return float(np.mean(values))


def _oracle(env, seed):
    return env.oracle_action()


def _random(env, seed):
    return env.action_space.examples[seed % len(env.action_space.examples)]


@pytest.mark.parametrize("n_tasks", [pytest.param(200, marks=pytest.mark.slow), 20])
def test_seqrec_oracle_reaches_the_ceiling_and_beats_random(n_tasks):
    env = SeqRec()
    oracle, random = _mean_ndcg(env, n_tasks, _oracle), _mean_ndcg(env, n_tasks, _random)
    assert oracle == pytest.approx(1.0)  # ceiling: the relevant set is the top-R by utility
    assert random < 0.35
    noisy = SeqRec(level=3)
    assert 0.7 < _mean_ndcg(noisy, n_tasks, _oracle) < 1.0  # drift puts the ceiling out of reach


def test_seqrec_history_reflects_the_user_model():
    """History items score higher under the user's vector than the catalogue average."""
    cat = make_catalogue(0, 500)
    assert len(set(cat.titles)) == 500 and cat.vectors.shape == (500, 16)
    assert make_catalogue(0, 500) is cat  # cached
    env = SeqRec()
    env.reset(seed=1, options={"split": "train"})
    scores = env.unwrapped.privileged()["scores"]
    relevant = {env.pool[r]["title"] for r in env.relevant}
    top = sorted(range(len(scores)), key=lambda p: -scores[p])[:5]
    assert {env.pool[p]["title"] for p in top} == relevant


def test_seqrec_bad_knobs_and_tasks_fail_clearly():
    with pytest.raises(ValueError, match="pool_size"):
        SeqRec(pool_size=3, n_relevant=5)
    with pytest.raises(ValueError, match="k=0"):
        SeqRec(k=0)
    with pytest.raises(ValueError, match="relevant"):
        SeqRec().reset(options={"task": {**HAND_TASK, "relevant": [9]}})


# --- ConvRec ----------------------------------------------------------------------------------
def _play_oracle(env, seed, level_options=None):
    env.reset(seed=seed, options={"split": "test", **(level_options or {})})
    done, info = False, {}
    while not done:
        _, _, done, _, info = env.step(env.oracle_action())
    return info


@pytest.mark.parametrize("level", [1, 3])
def test_convrec_oracle_succeeds_on_200_test_tasks(level):
    env = ConvRec(level=level)
    wins = sum(_play_oracle(env, seed)["success"] for seed in range(200))
    assert wins / 200 >= 0.95


def test_convrec_answers_only_what_is_asked():
    env = ConvRec()
    task = {
        "items": [
            {
                "title": "Iron Tide (1984)",
                "genre": "sci-fi",
                "tone": "dark",
                "setting": "outer space",
            },
            {
                "title": "Glass Harbor (1986)",
                "genre": "sci-fi",
                "tone": "quirky",
                "setting": "school",
            },
            {
                "title": "Amber Letters (1999)",
                "genre": "comedy",
                "tone": "quirky",
                "setting": "school",
            },
        ],
        "prefs": {"genre": "sci-fi", "era": "1980s"},
        "dislike": {"tone": "dark"},
    }
    obs, info = env.reset(options={"task": task})
    assert "User: Hi! I'd like to watch something thought-provoking" in obs
    obs = env.step("<action>ask: genre</action>")[0]
    assert "User: I'd like a sci-fi movie." in obs and "1980s" not in obs and "dark" not in obs
    obs = env.step("<action>ask: setting</action>")[0]
    assert "User: I don't mind about the setting." in obs
    obs, reward, done, _, info = env.step("<action>recommend: iron tide</action>")
    assert "really don't want something dark" in obs and reward == 0 and not done
    obs, reward, done, _, info = env.step("<action>recommend: Amber Letters</action>")
    assert "not in the mood for a comedy movie" in obs
    _, _, _, _, info = env.step("<action>ask about the weather</action>")
    assert not info["action_valid"] and info["metrics"]["questions"] == 2
    obs, reward, done, _, info = env.step("<action>recommend: i2</action>")
    assert reward == 1.0 and done and info["success"]
    assert info["state_key"] == "asked=genre,setting|recommended=0,1,2|accepted=1"


def test_convrec_user_never_volunteers_hidden_slots():
    """Random play on 60 tasks: every user line passes the leak check, and the check bites."""
    env = turngym.make("turngym/ConvRec-v0")
    rng = np.random.default_rng(0)
    for seed in range(60):
        obs, info = env.reset(seed=seed, options={"split": "test"})
        assert env.unwrapped.leak_check(obs + "\n" + info["instructions"]) == []
        done = truncated = False
        while not (done or truncated):
            examples = env.action_space.examples
            obs, _, done, truncated, _ = env.step(examples[int(rng.integers(len(examples)))])
            assert env.unwrapped.leak_check(obs) == [], obs
    base = env.unwrapped
    unasked = [s for s in base.prefs if s not in base.asked]
    if unasked:
        slot = unasked[0]
        assert base.leak_check(f"User: I want {base.prefs[slot]}")


def test_convrec_turn_limit_and_bad_knobs():
    env = ConvRec(max_turns=2)
    env.reset(seed=0, options={"split": "test"})
    env.step("<action>ask: tone</action>")
    obs, reward, done, _, info = env.step("<action>ask: tone</action>")
    assert done and reward == 0.0 and not info["success"] and "Bye" in obs
    with pytest.raises(ValueError, match="n_prefs"):
        ConvRec(n_prefs=5)
    assert set(SLOTS) == {"genre", "era", "tone", "setting"}


# --- MovieLens --------------------------------------------------------------------------------
def _write_movielens(folder, n_users=6, n_movies=30):
    rng = np.random.default_rng(0)
    movies = ["movieId,title,genres"]
    for m in range(1, n_movies + 1):
        title = f"Film {m} (19{50 + m})" if m != 2 else '"Matrix, The (1999)"'
        movies.append(f"{m},{title},Drama|Comedy" if m % 2 else f"{m},{title},(no genres listed)")
    rows = ["userId,movieId,rating,timestamp"]
    truth = {}
    for u in range(1, n_users + 1):
        seen = rng.choice(np.arange(1, n_movies + 1), size=10, replace=False)
        ratings = [5.0 if i % 3 == 0 else 2.5 for i in range(10)]
        order = rng.permutation(10)  # rows written out of time order
        for i in order:
            rows.append(f"{u},{seen[i]},{ratings[i]},{1000 + 10 * i}")
        truth[u] = (seen.tolist(), ratings)
    (folder / "movies.csv").write_text("\n".join(movies) + "\n")
    (folder / "ratings.csv").write_text("\n".join(rows) + "\n")
    return truth


def test_movielens_round_trip(tmp_path):
    truth = _write_movielens(tmp_path)
    data = load_movielens(tmp_path)
    assert data.movies[2] == ("Matrix, The (1999)", ())
    tasks = movielens_tasks(tmp_path, history_len=5, holdout=0.2, pool_size=12)
    # 10 ratings each, last 2 are the future: i = 8 (2.5) and 9 (5.0) -> one relevant item
    assert len(tasks) == 6
    seen, _ = truth[1]
    task = tasks[0]
    assert [h["title"] for h in task["history"]] == [data.movies[m][0] for m in seen[3:8]]
    assert [task["pool"][r]["title"] for r in task["relevant"]] == [data.movies[seen[9]][0]]
    assert len(task["pool"]) == 12
    pool_ids = {t["title"] for t in task["pool"]}
    assert not pool_ids & {data.movies[m][0] for m in seen if m != seen[9]}
    path = write_tasks(tasks, tmp_path / "tasks.jsonl")
    for env in (SeqRec(tasks_file=path), SeqRec(movielens=tmp_path)):
        total = 0
        for split in ("train", "validation", "test"):
            for seed in range(3):
                try:
                    env.reset(seed=seed, options={"split": split})
                except ValueError:
                    continue  # a tiny file may leave a split empty
                total += 1
                assert env.step(env.oracle_action())[1] == 1.0
        assert total > 0


def test_movielens_100k_format(tmp_path):
    (tmp_path / "u.item").write_text(
        "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "2|GoldenEye (1995)|01-Jan-1995||http://x|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n"
        "3|Four Rooms (1995)|01-Jan-1995||http://x|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n",
        encoding="latin-1",
    )
    (tmp_path / "u.data").write_text("7\t1\t3\t100\n7\t2\t2\t50\n7\t3\t5\t200\n")
    data = load_movielens(tmp_path)
    assert data.movies[1] == ("Toy Story (1995)", ("Animation", "Children's", "Comedy"))
    (task,) = movielens_tasks(data, min_history=1, holdout=0.3)
    assert [h["title"] for h in task["history"]] == ["GoldenEye (1995)", "Toy Story (1995)"]
    assert task["pool"][task["relevant"][0]]["title"] == "Four Rooms (1995)"


def test_movielens_missing_files_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="ratings.csv"):
        load_movielens(tmp_path)
