"""Task draws are bit-identical to NumPy's SeedSequence streams, and unchanged on many seeds.

``turngym.tasks`` builds each candidate's generator without ``SeedSequence`` (see
``turngym._seed_sequence``) and keeps drawn tasks as canonical JSON; both are speed work that
must not move a single task. The digests below were recorded from the code before it (every
split, 42 seeds each, task ids and task JSON).
"""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import turngym
from turngym import _seed_sequence
from turngym.envs.multiagent.registry import is_multiagent, make_multiagent
from turngym.task_cache import cached_task, clear_task_cache
from turngym.tasks import (
    SPLITS,
    _family_word,
    _task_rng,
    canonical_json,
    draw_task,
    split_of,
    task_fingerprint,
    task_rng,
)

_WORD = st.integers(min_value=0, max_value=2**70)


def _numpy_state(entropy: list[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in np.random.SeedSequence(entropy).generate_state(4, np.uint64))


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORD, min_size=4, max_size=8))  # a task's: family word, split, seed, attempt
def test_stream_seed_words_equal_numpys_seed_sequence(entropy):
    words = _seed_sequence.uint32_words(entropy)
    stream = _seed_sequence.Stream(words[:3])
    assert stream.state(words[3:]) == _numpy_state(entropy)
    if len(words) == 5:  # the hot path: one word each for the seed and the attempt
        assert stream.finish(stream.pool_of(words[3]), words[4]) == _numpy_state(entropy)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["wordle", "tictactoe", "minesweeper", "sokoban", "x"]),
    st.sampled_from(SPLITS),
    st.integers(min_value=0, max_value=2**80),
    st.integers(min_value=0, max_value=2**33),
)
def test_task_rng_is_numpys_default_rng_of_the_same_entropy(family, split, seed, attempt):
    entropy = [_family_word(family), SPLITS.index(split), seed, attempt]
    ours = task_rng(family, split, seed, attempt)
    theirs = np.random.default_rng(np.random.SeedSequence(entropy))
    assert ours.bit_generator.state == theirs.bit_generator.state
    assert ours.integers(1000, size=8).tolist() == theirs.integers(1000, size=8).tolist()


def test_a_small_first_word_still_gives_numpys_stream():
    # A family word below 2**32 shifts the seed into the precomputed head; still exact.
    for entropy in ([5, 0, 7, 0], [0, 0, 0, 0], [2**32 - 1, 2, 2**40, 3]):
        theirs = np.random.default_rng(np.random.SeedSequence(entropy))
        assert _task_rng(list(entropy)).bit_generator.state == theirs.bit_generator.state


def test_the_generator_behaves_like_numpys_in_every_respect():
    entropy = [_family_word("wordle"), 1, 12345, 2]
    ours, theirs = _task_rng(list(entropy)), np.random.default_rng(np.random.SeedSequence(entropy))
    assert ours.bit_generator.seed_seq.entropy == entropy
    assert [g.random() for g in ours.spawn(2)] == [g.random() for g in theirs.spawn(2)]
    copy = pickle.loads(pickle.dumps(ours))
    assert isinstance(copy.bit_generator.seed_seq, np.random.SeedSequence)
    assert copy.random() == ours.random() == theirs.random()
    assert ours.bit_generator.seed_seq.generate_state(3).tolist() == (
        np.random.SeedSequence(entropy).generate_state(3).tolist()
    )


def test_negative_seeds_and_words_are_refused_as_before():
    with pytest.raises(ValueError, match="seed must be >= 0"):
        task_rng("wordle", "train", -1)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        draw_task(lambda rng: {}, family="wordle", split="train", seed=-1)
    with pytest.raises(ValueError, match="Unknown split"):
        draw_task(lambda rng: {}, family="wordle", split="tran", seed=-1)
    with pytest.raises(ValueError, match="non-negative"):
        _seed_sequence.uint32_words([3, -1])
    with pytest.raises(ValueError, match="non-negative"):
        task_rng("wordle", "train", 3, attempt=-1)


@pytest.mark.parametrize(
    "task",
    [{"b": 1, "a": (1, 2.5)}, {"x": "é", "y": None, "z": True}, {"k": {"2": [1, {"c": "d"}]}},
     {"f": 1e16, "n": -0.0}, {"grid": [[0, 1] * 5] * 10, "name": "big"}, {"inf": float("inf")},
     {1: "int key", 3: ("a", None)}, {"n": None, "l": [None, 0.5]}],
)  # fmt: skip
def test_cached_copies_equal_a_json_round_trip_and_are_fresh(task):
    clear_task_cache()
    key = (type(None), "train", 0, "{}")
    first = cached_task(key, lambda: task)
    again = cached_task(key, lambda: pytest.fail("drawn twice"))
    expected = __import__("json").loads(canonical_json(task))
    assert first == again == expected and list(first) == list(expected)
    assert canonical_json(first) == canonical_json(expected)  # same types (lists, not tuples)
    assert first is not again
    first.clear()
    assert cached_task(key, lambda: task) == expected
    clear_task_cache()


@pytest.mark.parametrize(
    ("task", "split", "fingerprint"),
    [({"secret": "crane"}, "train", "a3ce6c34553e6ec0"),
     ({"opening": ["5", "3"]}, "train", "aac400c4bafaf89f"),
     ({"b": [1, 2], "a": "x"}, "train", "721ef82f2d6c0997"),
     ({"secret": "adieu"}, "test", "7001fbc70b95dedd"),
     ({"secret": "pound"}, "validation", "950203b0e0e8f193")],
)  # fmt: skip
def test_split_and_fingerprint_known_answers(task, split, fingerprint):
    # Recorded from the reference implementation (json.dumps with sort_keys, then SHA-256).
    assert task_fingerprint(task)[:16] == fingerprint
    assert split_of(task) == split


# Digest of "<task id>|<task JSON>" for seeds 0..39, 2**32 + 5 and 10**12 on every split,
# recorded before the task path was optimised.
_DRAWS = {
    "turngym/Wordle-v0": "835a3e8cde3241b1",
    "turngym/Minesweeper-v0": "024fa51f5a0049b1",
    "turngym/TicTacToe-v0": "45a73e77aff27d59",
    "turngym/Sokoban-v0": "baf2b70985416cea",
    "turngym/FrozenLake-v0": "2d21e7ce9eab5cd4",
    "turngym/Maze-v0": "fa82717880243a55",
    "turngym/ConnectFour-v0": "95b1edbb69627140",
    "turngym/DealOrNoDeal-v0": "2b674d951fa14139",
    "turngym/Household-v0": "33556998c17764c8",
}


@pytest.mark.parametrize("env_id", sorted(_DRAWS))
def test_drawn_tasks_are_the_recorded_ones(env_id):
    env = make_multiagent(env_id) if is_multiagent(env_id) else turngym.make(env_id).unwrapped
    digest = hashlib.sha256()
    for split in SPLITS:
        for seed in [*range(40), 2**32 + 5, 10**12]:
            env.reset(seed=seed, options={"split": split})
            digest.update(f"{env.task_id}|{canonical_json(env.task)}\n".encode())
    assert digest.hexdigest()[:16] == _DRAWS[env_id]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=2**32 - 1), min_size=4, max_size=4),
    st.lists(
        st.one_of(
            st.sampled_from([1, 2, 9, 2315, 2**31 - 1, 2**31 + 1, 3 * 2**30, 2**32 - 2]),
            st.integers(min_value=1, max_value=2**32 - 2),
        ),
        max_size=6,
    ),
    st.booleans(),
)
def test_lazy_generator_draws_numpys_numbers_then_hands_over_its_state(entropy, highs, peek):
    words = _seed_sequence.uint32_words(entropy)
    lazy = _seed_sequence.LazyGenerator(entropy, _seed_sequence.Stream(words[:3]).state(words[3:]))
    numpy_rng = np.random.default_rng(np.random.SeedSequence(entropy))
    for high in highs:  # 2**31 + 1 and 3 * 2**30 often take Lemire's rejection branch
        ours, theirs = lazy.integers(high), numpy_rng.integers(high)
        assert ours == theirs and type(ours) is int
    if peek:  # any other use builds NumPy's generator at the same state, buffered half included
        assert lazy.bit_generator.state == numpy_rng.bit_generator.state
    assert lazy.integers(0, 10, size=3).tolist() == numpy_rng.integers(0, 10, size=3).tolist()
    assert lazy.integers(7) == numpy_rng.integers(7) and lazy.random() == numpy_rng.random()


def test_lazy_draws_give_the_same_tasks_as_numpy_generators():
    from turngym.envs.multiagent.tictactoe import TicTacToe
    from turngym.tasks import _draw

    env = TicTacToe(opening_plies=3)
    for seed in range(60):
        for split in SPLITS:
            generate = lambda rng: env.generate_task(rng, env.difficulty)  # noqa: E731
            assert _draw(generate, "tictactoe", split, seed, lazy=True) == (
                _draw(generate, "tictactoe", split, seed)
            )


def test_only_an_envs_own_integer_draws_get_the_lazy_generator():
    from turngym.envs.games.wordle import Wordle

    seen = []

    class Spy(Wordle):  # overrides generate_task, so it may use rng in any way
        def generate_task(self, rng, difficulty):
            seen.append(type(rng))
            return super().generate_task(rng, difficulty)

    Spy().reset(seed=987_654, options={"split": "test"})
    assert seen and set(seen) == {np.random.Generator}
    assert Wordle.generate_task is Wordle._integer_draws


@pytest.mark.parametrize(
    "task",
    [{"opening": ["5", "3"]}, {"z": 1, "a": [2.5, None, True, "é\n"]}, {"x": float("nan")},
     {"k": {"b": (1, 2), "a": {}}}, {3: "int key"}],
)  # fmt: skip
def test_a_candidates_json_is_canonical_json(task):
    from turngym.tasks import _encode_candidate

    assert _encode_candidate(task) == canonical_json(task)


def test_a_candidate_that_is_not_json_raises_the_usual_errors():
    from turngym.tasks import _encode_candidate

    with pytest.raises(TypeError, match="not JSON serializable"):
        _encode_candidate({"a": object()})
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        _encode_candidate({"a": loop})
