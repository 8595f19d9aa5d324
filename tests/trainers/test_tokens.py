from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from turngym.trainers.tokens import TrainingSequence, build_sequences, collate
from turngym.types import Episode, TokenTrace, Turn


def make_turn(index: int, trace: TokenTrace | None) -> Turn:
    return Turn(
        index, "agent", f"obs{index}", f"act{index}", 0.0, False, False, None, True, trace=trace
    )


def make_episode(traces: list[TokenTrace | None], episode_id: str = "ep") -> Episode:
    turns = tuple(make_turn(i, tr) for i, tr in enumerate(traces))
    return Episode(episode_id, "toy-v0", "task", 0, "train", turns, 1.0, True)


def nested_episode() -> Episode:
    """Three turns whose prompts extend the previous prompt + completion."""
    t0 = TokenTrace((1, 2), (10, 11), (-0.1, -0.2))
    t1 = TokenTrace((1, 2, 10, 11, 3), (12,), (-0.3,))
    t2 = TokenTrace((1, 2, 10, 11, 3, 12, 4, 5), (13, 14, 15), (-0.4, -0.5, -0.6))
    return make_episode([t0, t1, t2])


# --- turn mode ---------------------------------------------------------------------------


def test_turn_mode_masks_and_broadcast_known_answer():
    ep_a = nested_episode()
    ep_b = make_episode([TokenTrace((7,), (8, 9), (-1.0, -2.0))], "b")
    seqs, stats = build_sequences([ep_a, ep_b], [np.array([0.5, -1.0, 2.0]), np.array([3.0])])
    assert len(seqs) == 4
    s0, s1, s2, s3 = seqs
    assert s0.input_ids == (1, 2, 10, 11)
    assert s0.loss_mask == (0, 0, 1, 1)
    assert s0.advantages == (0.0, 0.0, 0.5, 0.5)
    assert s0.old_logprobs == (0.0, 0.0, -0.1, -0.2)
    assert s0.prompt_length == 2 and s0.turn_indices == (0,) and s0.episode_index == 0
    assert s1.input_ids == (1, 2, 10, 11, 3, 12)
    assert s1.loss_mask == (0, 0, 0, 0, 0, 1)
    assert s1.advantages == (0.0,) * 5 + (-1.0,)
    assert s2.advantages[-3:] == (2.0, 2.0, 2.0) and s2.num_trainable == 3
    assert s3.episode_index == 1 and s3.advantages == (0.0, 3.0, 3.0)
    assert s3.old_logprobs == (0.0, -1.0, -2.0)
    assert stats["sequences"] == 4 and stats["turns_used"] == 4
    assert stats["trainable_tokens"] == 8 and stats["tokens"] == 4 + 6 + 11 + 3
    assert stats["turns_without_trace"] == 0 and stats["episode_fallbacks"] == 0


def test_token_advantages_override_broadcast():
    ep = nested_episode()
    tok = [[np.array([1.0, 2.0]), None, [0.1, 0.2, 0.3]]]
    seqs, _ = build_sequences([ep], [[9.0, 8.0, 7.0]], token_advantages=tok)
    assert seqs[0].advantages == (0.0, 0.0, 1.0, 2.0)
    assert seqs[1].advantages[-1] == 8.0  # None falls back to the turn advantage
    assert seqs[2].advantages[-3:] == (0.1, 0.2, 0.3)
    with pytest.raises(ValueError, match="completion tokens"):
        build_sequences([ep], [[9.0, 8.0, 7.0]], token_advantages=[[[1.0], None, None]])


def test_clip_ranges_and_weights_per_token():
    ep = nested_episode()
    clips = [np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])]
    seqs, _ = build_sequences([ep], [[1.0, 1.0, 1.0]], clip_ranges=clips, weights=[[1, 2, 3]])
    assert seqs[0].clip_low == (0.0, 0.0, 0.1, 0.1)
    assert seqs[0].clip_high == (0.0, 0.0, 0.2, 0.2)
    assert seqs[2].clip_high[-3:] == (0.6, 0.6, 0.6)
    assert [s.weight for s in seqs] == [1.0, 2.0, 3.0]
    plain, _ = build_sequences([ep], [[1.0, 1.0, 1.0]])
    assert plain[0].clip_low is None and plain[0].weight == 1.0


def test_turn_without_trace_is_skipped_and_counted_or_strict_raises():
    ep = make_episode([None, TokenTrace((1,), (2,), (-0.5,))])
    seqs, stats = build_sequences([ep], [[1.0, 2.0]])
    assert [s.turn_indices for s in seqs] == [(1,)]
    assert stats["turns_without_trace"] == 1 and stats["turns"] == 2
    with pytest.raises(ValueError, match="no TokenTrace"):
        build_sequences([ep], [[1.0, 2.0]], strict=True)


def test_missing_logprobs_flagged():
    ep = make_episode([TokenTrace((1,), (2, 3))])
    (seq,), stats = build_sequences([ep], [[1.0]])
    assert seq.old_logprobs == (0.0, 0.0, 0.0) and not seq.has_old_logprobs
    assert stats["turns_without_logprobs"] == 1


def test_empty_completion_skipped_in_turn_mode():
    ep = make_episode([TokenTrace((1,), ()), TokenTrace((1,), (5,))])
    seqs, stats = build_sequences([ep], [[1.0, 1.0]])
    assert len(seqs) == 1 and stats["empty_completions"] == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"turn_advantages": [[1.0, 2.0]]}, "shape"),
        ({"turn_advantages": [[1.0, 2.0, 3.0], [1.0]]}, "entries for 1 episodes"),
        ({"turn_advantages": [[1.0, np.nan, 3.0]]}, "NaN"),
        ({"turn_advantages": [[1.0, 2.0, 3.0]], "mode": "token"}, "mode"),
        ({"turn_advantages": [[1.0, 2.0, 3.0]], "clip_ranges": [[0.2, 0.2, 0.2]]}, "shape"),
        ({"turn_advantages": [[1.0, 2.0, 3.0]], "weights": [[1.0]]}, "shape"),
    ],
)
def test_bad_credit_raises_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_sequences([nested_episode()], **kwargs)


def test_training_sequence_validates():
    with pytest.raises(ValueError, match="loss_mask"):
        TrainingSequence(
            input_ids=(1, 2),
            loss_mask=(1,),
            advantages=(0, 0),
            old_logprobs=(0, 0),
            prompt_length=0,
            episode_index=0,
            turn_indices=(0,),
        )
    with pytest.raises(ValueError, match="Prompt tokens"):
        TrainingSequence(
            input_ids=(1, 2),
            loss_mask=(1, 1),
            advantages=(0, 0),
            old_logprobs=(0, 0),
            prompt_length=1,
            episode_index=0,
            turn_indices=(0,),
        )


# --- episode mode ------------------------------------------------------------------------


def test_episode_mode_reconstructs_one_sequence():
    ep = nested_episode()
    (seq,), stats = build_sequences([ep], [[0.5, -1.0, 2.0]], mode="episode")
    assert seq.input_ids == (1, 2, 10, 11, 3, 12, 4, 5, 13, 14, 15)
    assert seq.loss_mask == (0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1)
    assert seq.advantages == (0, 0, 0.5, 0.5, 0, -1.0, 0, 0, 2.0, 2.0, 2.0)
    assert seq.old_logprobs == (0, 0, -0.1, -0.2, 0, -0.3, 0, 0, -0.4, -0.5, -0.6)
    assert seq.prompt_length == 2 and seq.turn_indices == (0, 1, 2)
    assert stats["sequences"] == 1 and stats["turns_used"] == 3 and stats["trainable_tokens"] == 6


def test_episode_mode_falls_back_when_not_prefix_consistent():
    ok = nested_episode()
    # Turn 1's prompt drops turn 0's completion (a history window): not prefix-consistent.
    bad = make_episode([TokenTrace((1, 2), (10,), (-0.1,)), TokenTrace((1, 3), (12,), (-0.2,))])
    seqs, stats = build_sequences([ok, bad], [[1, 1, 1], [1, 2]], mode="episode")
    assert [s.turn_indices for s in seqs] == [(0, 1, 2), (0,), (1,)]
    assert seqs[2].input_ids == (1, 3, 12) and seqs[2].advantages == (0, 0, 2.0)
    assert stats["episode_fallbacks"] == 1


def test_episode_mode_falls_back_on_unequal_weights():
    seqs, stats = build_sequences(
        [nested_episode()], [[1, 1, 1]], mode="episode", weights=[[1.0, 1.0, 0.5]]
    )
    assert len(seqs) == 3 and stats["weight_fallbacks"] == 1
    (seq,), _ = build_sequences(
        [nested_episode()], [[1, 1, 1]], mode="episode", weights=[[0.5, 0.5, 0.5]]
    )
    assert seq.weight == 0.5


def test_episode_mode_skips_untraced_turn_inside():
    t0 = TokenTrace((1,), (2,), (-0.1,))
    t2 = TokenTrace((1, 2, 3, 4, 5), (6,), (-0.2,))
    (seq,), stats = build_sequences([make_episode([t0, None, t2])], [[1, 9, 2]], mode="episode")
    assert seq.input_ids == (1, 2, 3, 4, 5, 6) and seq.loss_mask == (0, 1, 0, 0, 0, 1)
    assert seq.turn_indices == (0, 2) and stats["turns_without_trace"] == 1


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.integers(0, 50), max_size=4),
            st.lists(st.integers(0, 50), min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_episode_mode_matches_turn_mode_tokens(parts):
    # Build nested traces: prompt_{t+1} = prompt_t + completion_t + observation_{t+1}.
    prompt: tuple[int, ...] = (99,)
    traces = []
    for observation, completion in parts:
        prompt = prompt + tuple(observation)
        traces.append(TokenTrace(prompt, tuple(completion), tuple([-1.0] * len(completion))))
        prompt = prompt + tuple(completion)
    adv = [np.arange(len(parts), dtype=float) + 1]
    (seq,), _ = build_sequences([make_episode(traces)], adv, mode="episode")
    per_turn, _ = build_sequences([make_episode(traces)], adv, mode="turn")
    assert seq.input_ids == per_turn[-1].input_ids
    trained = [a for a, m in zip(seq.advantages, seq.loss_mask, strict=True) if m]
    assert trained == [
        a for s in per_turn for a, m in zip(s.advantages, s.loss_mask, strict=True) if m
    ]


# --- collate -----------------------------------------------------------------------------


def test_collate_right_pads_and_aligns():
    torch = pytest.importorskip("torch")
    seqs, _ = build_sequences([nested_episode()], [[0.5, -1.0, 2.0]])
    batch = collate(seqs, pad_id=63)
    assert batch["input_ids"].shape == (3, 11) and batch["input_ids"].dtype == torch.int64
    assert batch["input_ids"][0].tolist() == [1, 2, 10, 11] + [63] * 7
    assert batch["attention_mask"][0].tolist() == [1] * 4 + [0] * 7
    assert batch["loss_mask"][1].tolist() == [0, 0, 0, 0, 0, 1] + [0] * 5
    assert batch["advantages"].dtype == torch.float32
    assert batch["advantages"][2, -3:].tolist() == [2.0, 2.0, 2.0]
    assert batch["old_logprobs"][0, :4].tolist() == pytest.approx([0, 0, -0.1, -0.2])
    assert batch["weights"].tolist() == [1.0, 1.0, 1.0]
    assert batch["prompt_lengths"].tolist() == [2, 5, 8]
    assert batch["has_old_logprobs"].all()
    assert "clip_low" not in batch


def test_collate_clip_ranges_and_errors():
    pytest.importorskip("torch")
    ep = nested_episode()
    clipped, _ = build_sequences([ep], [[1, 1, 1]], clip_ranges=[[[0.1, 0.2]] * 3])
    plain, _ = build_sequences([ep], [[1, 1, 1]])
    batch = collate(clipped, pad_id=0)
    assert batch["clip_low"][0].tolist() == pytest.approx([0, 0, 0.1, 0.1] + [0] * 7)
    with pytest.raises(ValueError, match="clip ranges"):
        collate(clipped[:1] + plain[1:], pad_id=0)
    with pytest.raises(ValueError, match="at least one"):
        collate([], pad_id=0)
