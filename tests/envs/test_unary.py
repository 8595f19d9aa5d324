from __future__ import annotations

import pytest

import turngym
from turngym.envs.unary import (
    FEEDBACK,
    UnaryFeedback,
    normalise_answer,
    repetition_penalty,
    ufo_return,
    ufo_step_reward,
)


def seqrec(attempts: int = 3) -> UnaryFeedback:
    return UnaryFeedback(turngym.make("turngym/SeqRec-v0"), attempts=attempts)


def test_reward_pieces_match_the_paper():
    assert ufo_step_reward(0, True, 0.5) == 1.0 and ufo_step_reward(2, True, 0.5) == 0.25
    assert ufo_step_reward(1, False, 0.5) == 0.0
    assert repetition_penalty(["a", "a", "b"], 0.5) == pytest.approx(-0.5 / 3)
    assert repetition_penalty([], 0.5) == 0.0
    assert ufo_return(None, ["a", "a"], 0.5, 0.5) == pytest.approx(-0.25)
    assert normalise_answer("<answer> Velmora  Institute </answer>") == "velmorainstitute"


def test_wrong_answers_restart_the_task_with_only_unary_feedback():
    env = seqrec(attempts=3)
    first, _ = env.reset(seed=0, options={"split": "test"})
    wrong = "<action>i1; i2</action>"
    obs, reward, terminated, truncated, info = env.step(wrong)
    success = info["success"]
    assert not success and reward == 0.0 and (terminated, truncated) == (False, False)
    assert obs == FEEDBACK  # single-turn task: its question is already in the history
    assert info["metrics"]["attempt"] == 1 and info["reward_components"] == {"correct": 0.0}
    oracle = env.unwrapped.oracle_action()
    obs, reward, terminated, _, info = env.step(oracle)
    assert terminated and info["success"] and reward == 0.5  # right at attempt 1: 1 / 2
    assert info["reward_components"] == {"correct": 0.5, "repetition_penalty": 0.0}


def test_attempts_run_out_with_the_repetition_penalty():
    env = seqrec(attempts=2)
    env.reset(seed=0, options={"split": "test"})
    env.step("<action>i1; i2</action>")
    _, reward, terminated, truncated, info = env.step("<action> I1;  i2 </action>")
    assert terminated and not truncated and not info["success"]
    assert reward == pytest.approx(-0.5 * (1 - 1 / 2))  # the same answer twice


def test_multi_turn_inner_envs_restart_with_their_first_observation_shown_again():
    env = UnaryFeedback(turngym.make("turngym/SearchQA-v0", corpus_size=800), attempts=2)
    first, _ = env.reset(seed=0, options={"split": "test"})
    obs, reward, *_ = env.step("<search> anything </search>")
    assert reward == 0.0 and obs != FEEDBACK  # searching is not an attempt
    obs, *_ = env.step("<answer> nobody </answer>")
    assert obs == FEEDBACK  # the restarted question equals the first one: history holds it


def test_bad_settings_fail_at_once():
    with pytest.raises(ValueError, match="attempts"):
        UnaryFeedback(turngym.make("turngym/SeqRec-v0"), attempts=0)
    with pytest.raises(ValueError, match="gamma"):
        UnaryFeedback(turngym.make("turngym/SeqRec-v0"), gamma=2.0)
