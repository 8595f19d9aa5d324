"""Progress lines, EPO's entropy smoothing in the trainer, restricted-decoding scores."""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from turngym.trainers.progress import (  # noqa: E402
    LineReporter,
    MultiRunDisplay,
    ProgressEvent,
    format_event,
    make_reporter,
)
from turngym.trainers.regularisers import (  # noqa: E402
    EPOSmoothing,
    check_epo_options,
    token_turns,
)
from turngym.trainers.tokens import TrainingSequence  # noqa: E402


def _event(**kw):
    base = dict(run="r", iteration=4, env_steps=500, total=1000.0, done=500.0,
                unit="env steps", elapsed_s=20.0, success=0.25, evaluated=True, final=False)
    return ProgressEvent(**{**base, **kw})


def test_progress_line_has_steps_success_elapsed_and_eta():
    line = format_event(_event())
    assert line == "r: iteration 4, env steps 500/1,000, success 0.250, elapsed 20s, ETA 20s"
    assert "iteration 4/10" in format_event(_event(unit="iterations", total=10, done=4))
    assert format_event(_event(final=True)).endswith("done")
    assert _event(done=0.0).eta_s is None


def test_line_reporter_prints_eval_points_and_the_end_only():
    out = io.StringIO()
    report = LineReporter(out)
    report(_event(evaluated=False))
    report(_event())
    report(_event(evaluated=False, final=True))
    assert len(out.getvalue().splitlines()) == 2


def test_auto_mode_prints_lines_when_not_a_terminal():
    out = io.StringIO()
    assert isinstance(make_reporter("auto", out), LineReporter)
    with pytest.raises(ValueError, match="progress must be one of"):
        make_reporter("loud")
    said: list[str] = []
    display = MultiRunDisplay("auto", said.append, out)
    display.put(_event().to_dict())
    display.close()
    assert said and "success 0.250" in said[0]


def test_epo_options_are_checked():
    assert check_epo_options({})["kappa_high"] == 1.5
    with pytest.raises(ValueError, match="did you mean 'kappa_low'"):
        check_epo_options({"kappa_lo": 0.1})
    with pytest.raises(ValueError, match="must be a bool"):
        check_epo_options({"differentiable": 1})
    with pytest.raises(ValueError, match="kappa_low < kappa_high"):
        check_epo_options({"kappa_low": 2.0})


def _seq(mask, turns):
    n = len(mask)
    return TrainingSequence(input_ids=tuple(range(n)), loss_mask=tuple(mask),
                            advantages=(0.0,) * n, old_logprobs=(0.0,) * n, prompt_length=1,
                            episode_index=0, turn_indices=tuple(turns))  # fmt: skip


def test_token_turns_follow_the_trainable_runs():
    turns = token_turns([_seq([0, 1, 1, 0, 0, 1], [0, 3]), _seq([0, 1], [2])], 6)
    assert turns.tolist() == [[-1, 0, 0, -1, -1, 3], [-1, 2, -1, -1, -1, -1]]


def test_epo_history_and_term():
    state: dict = {}
    epo = EPOSmoothing(check_epo_options({"differentiable": True}), state)
    mask = torch.ones(1, 3)
    turns = torch.tensor([[0, 0, 1]])
    entropy = torch.tensor([[1.0, 1.0, 2.0]], requires_grad=True)
    assert epo.term(entropy, mask, turns, 0) is None  # no history yet
    epo.end_iteration()
    assert state["epo"] == {"sum": [1.0, 2.0], "count": [1, 1]}
    low = torch.tensor([[0.1, 1.0, 2.0]], requires_grad=True)
    term = epo.term(low, mask, turns, 1)
    # token 0 is below 0.5 * H_bar = 0.5 by 0.4: penalty 0.1 * 0.4, token-mean over 3 tokens
    assert float(term) == pytest.approx(0.1 * 0.4 / 3)
    term.backward()
    assert low.grad is not None and float(low.grad[0, 0]) < 0


def test_restricted_scoring_matches_the_sampler():
    from turngym.agents.hf import HFAgent
    from turngym.agents.tiny import build_tiny
    from turngym.rollout import collect
    from turngym.trainers.policy import sequence_token_logprobs
    from turngym.trainers.tokens import build_sequences

    model, tokenizer = build_tiny("turngym/FrozenLake-v0", d_model=32, n_layers=1)
    agent = HFAgent(model, tokenizer, response_prefix="<action>", response_suffix="</action>",
                    stop=(), history=0, include_instructions=False,
                    allowed_actions=("left", "down", "right", "up"))  # fmt: skip
    groups = collect("turngym/FrozenLake-v0", agent, 3, 3, options={"difficulty": {"size": 3}})
    episodes = [e for g in groups for e in g.episodes]
    assert all(t.action_valid for e in episodes for t in e.turns)  # only moves come out
    seqs, _ = build_sequences(episodes, [np.ones(len(e.turns)) for e in episodes], mode="turn")
    with torch.no_grad():
        restricted, _ = sequence_token_logprobs(model, seqs, allowed_ids=agent.allowed_ids)
        free, _ = sequence_token_logprobs(model, seqs)
    for row, seq in enumerate(seqs):
        mask = np.array(seq.loss_mask, bool)
        sampled = np.array(seq.old_logprobs)[mask]
        assert np.allclose(restricted[row, : len(mask)].numpy()[mask], sampled, atol=1e-5)
        assert np.all(free[row, : len(mask)].numpy()[mask] < sampled)  # the full softmax is wider
