"""The Prober against direct scoring with a real tiny model, and probes inside the Trainer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from turngym.agents.tiny import build_tiny, split_words  # noqa: E402
from turngym.cli import main  # noqa: E402
from turngym.core import GOLD_ANSWERS  # noqa: E402
from turngym.trainers.config import TrainConfig  # noqa: E402
from turngym.trainers.credit import Credit, TurnBatch, resolve_estimator  # noqa: E402
from turngym.trainers.credit.probe_values import ProbeNeeds, ProbeOptions, gold_targets  # noqa: E402
from turngym.trainers.losses import clipped_surrogate  # noqa: E402
from turngym.trainers.policy import token_logprobs  # noqa: E402
from turngym.trainers.probes import Prober, probe_needs  # noqa: E402
from turngym.trainers.tokens import build_sequences, collate  # noqa: E402
from turngym.types import Episode, Group, TokenTrace, Turn  # noqa: E402

TEXTS = (
    "\nPlay the game .\nno .\nyes .\n<action> ask: animal big</action> guess: owl cat "
    "<action>guess: owl"
)
TEMPLATE = "<action>guess: {answer}</action>"


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = build_tiny(split_words(TEXTS), d_model=16, n_heads=2, n_layers=1, seed=3)
    return model.eval(), tokenizer


def encode(tokenizer, text):
    return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])


def toy_batch(tokenizer, gold="owl"):
    """Two episodes of one task sharing the first prompt; observations sit in the prompts."""
    observations = ["Play the game .", "no .", "yes ."]
    actions = [" ask: animal", " ask: big", " guess: cat"]
    episodes = []
    for i, n in enumerate((3, 2)):
        prompt, turns = "<bos>", []
        for t in range(n):
            prompt += f"\n{observations[t]}\n<action>"
            trace = TokenTrace(encode(tokenizer, prompt), encode(tokenizer, actions[t]))
            turns.append(Turn(t, "agent", observations[t], f"<action>{actions[t]}</action>",
                              0.0, t == n - 1, False, None, True, trace=trace))  # fmt: skip
            prompt += actions[t] + "</action>"
        episodes.append(Episode(f"e{i}", "toy-v0", "task", 0, "train", tuple(turns), float(i),
                                bool(i), privileged={GOLD_ANSWERS: [gold]}))  # fmt: skip
    return TurnBatch.from_groups([Group("task@0", "task", tuple(episodes))])


def direct(model, context, scored):
    ids = torch.tensor([list(context) + list(scored)])
    lp, _ = token_logprobs(model, ids, torch.ones_like(ids))
    return lp[0, len(context) :].detach().double().numpy()


def prober(tiny, share=True, **needs):
    model, tokenizer = tiny
    return Prober(model, tokenizer, needs=ProbeNeeds(**needs),
                  options=ProbeOptions(share_prefix=share, batch_rows=3),
                  answer_template=TEMPLATE, response_prefix="<action>")  # fmt: skip


def test_answer_probes_equal_direct_scoring_with_and_without_prefix_sharing(tiny):
    model, tokenizer = tiny
    batch = toy_batch(tokenizer)
    needs = dict(targets=gold_targets, points=frozenset({"before", "after"}), gold=True)
    shared, plain = prober(tiny, True, **needs)(batch), prober(tiny, False, **needs)(batch)
    lead, gold = encode(tokenizer, "guess:"), encode(tokenizer, " owl")
    assert tokenizer.unk_token_id not in gold + lead
    turns = [t for g in batch.groups for ep in g.episodes for t in ep.turns]
    for row, turn in enumerate(turns):
        want = direct(model, turn.trace.prompt_ids + lead, gold).mean()
        assert shared.before[row, 0] == pytest.approx(want, abs=1e-5)
        assert plain.before[row, 0] == pytest.approx(want, abs=1e-5)
    assert np.allclose(shared.after, plain.after, atol=1e-5) and np.isfinite(shared.after).all()
    assert shared.cost["probe_shared_tokens"] > 0 == plain.cost["probe_shared_tokens"]
    # Episode 1 repeats episode 0's first two turns: 3 distinct prompts, 2 points each.
    assert shared.cost["probe_rows"] == 2 * 3
    assert shared.answers == ("cat", None) and shared.golds == (("owl",), ("owl",))


def test_teacher_and_counterfactual_passes(tiny):
    model, tokenizer = tiny
    batch = toy_batch(tokenizer)
    values = prober(tiny, teacher=True, counterfactual=True)(batch)
    turns = [t for g in batch.groups for ep in g.episodes for t in ep.turns]
    for row, turn in enumerate(turns):
        own = direct(model, turn.trace.prompt_ids, turn.trace.completion_ids)
        assert values.student.split()[row] == pytest.approx(own, abs=1e-5)  # exact round trip
        assert not np.allclose(values.teacher.split()[row], own)  # the hint changes the context
    assert values.action_tokens.tolist() == [len(t.trace.completion_ids) for t in turns]
    first = turns[1]  # turn 1 of episode 0: its observation "no ." answers turn 0
    factual = direct(model, first.trace.prompt_ids, first.trace.completion_ids).mean()
    assert values.next_factual[0] == pytest.approx(factual, abs=1e-5)
    assert np.isnan(values.next_factual[2]) and np.isnan(values.next_counterfactual[4])
    assert np.isfinite(values.next_counterfactual[[0, 1, 3]]).all()


def test_prober_restores_training_mode_and_builds_no_graph(tiny):
    model, tokenizer = tiny
    model.train()
    try:
        values = prober(tiny, targets=gold_targets, points=frozenset({"first"}))(
            toy_batch(tokenizer)
        )
        assert model.training and np.isfinite(values.before[[0, 3], 0]).all()
        assert np.isnan(values.before[[1, 2, 4], 0]).all()  # "first": prompt only
    finally:
        model.eval()


def test_frozen_scorer_does_not_follow_the_policy(tiny):
    model, tokenizer = tiny
    batch = toy_batch(tokenizer)
    frozen = prober(tiny, targets=gold_targets, points=frozenset({"before"}), scorer="initial")
    before = frozen(batch).before.copy()
    with torch.no_grad():
        model.lm_head.weight.mul_(2.0)
    try:
        assert np.allclose(frozen(batch).before, before)
        moved = prober(tiny, targets=gold_targets, points=frozenset({"before"}))(batch).before
        assert not np.allclose(moved, before)
    finally:
        with torch.no_grad():
            model.lm_head.weight.div_(2.0)


def test_probe_needs_binds_defaults_and_validates_at_config_time():
    needs = probe_needs(resolve_estimator("siop", {"num_refs": 2}, {"probe"}))
    assert needs.points == frozenset({"first", "after"}) and needs.scorer == "initial"
    assert not needs.gold and probe_needs(resolve_estimator("grpo", {})) is None
    with pytest.raises(ValueError, match="equivalence='nli'"):
        probe_needs(resolve_estimator("siop", {"equivalence": "nli"}, {"probe"}))
    assert probe_needs(resolve_estimator("siop", {"reference": "gold"}, {"probe"})).gold


def test_per_turn_clip_ranges_and_token_advantages_reach_the_loss():
    turns = tuple(
        Turn(t, "agent", "o", "a", 0.0, t == 1, False, None, True,
             trace=TokenTrace((1, 2), (3, 4), (0.0, 0.0)))
        for t in range(2)
    )  # fmt: skip
    ep = Episode("e", "toy-v0", "task", 0, "train", turns, 1.0, True)
    credit = Credit(np.ones(2), clip_ranges=np.array([[0.1, 0.1], [0.3, 0.3]]),
                    token_advantages=(np.array([1.0, 2.0]), np.array([1.0, 1.0])))  # fmt: skip
    seqs, _ = build_sequences([ep], [credit.advantages], clip_ranges=[credit.clip_ranges],
                              token_advantages=[credit.token_advantages])  # fmt: skip
    batch = collate(seqs, 0)
    assert batch["advantages"][0].tolist() == [0, 0, 1, 2]
    ratio = math.log(1.5)  # every token's ratio is 1.5: each turn clips at its own 1 + eps
    logp = torch.full(batch["input_ids"].shape, ratio)
    loss, _ = clipped_surrogate(logp, torch.zeros_like(logp), batch["advantages"],
                                batch["loss_mask"], clip_low=batch["clip_low"],
                                clip_high=batch["clip_high"], dual_clip=None)  # fmt: skip
    assert float(loss) == pytest.approx(-(1.1 * 1 + 1.1 * 2 + 1.3 + 1.3) / 4)


def test_gold_answers_required_before_any_rollout(tmp_path, monkeypatch, capsys):
    import turngym.trainers.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "collect", lambda *a, **k: pytest.fail("no rollouts"))
    config = TrainConfig(env="turngym/FrozenLake-v0", estimator="igpo", out_dir=str(tmp_path))
    with pytest.raises(ValueError, match="needs gold answers") as err:
        trainer_module.Trainer(config)
    message = str(err.value)
    assert "\n" not in message and "turngym/SearchQA-v0" in message and "Wordle" in message
    code = main(["train", "--env", "turngym/FrozenLake-v0", "--estimator", "pbsd",
                 "--out-dir", str(tmp_path / "cli")])  # fmt: skip
    assert code != 0 and "needs gold answers" in capsys.readouterr().err
    with pytest.raises(ValueError, match="Did you mean 'share_prefix'"):
        TrainConfig(estimator="igpo", probe_options={"share_prefixx": True})
    assert main(["train", "--estimator", "igpo", "--estimator-params",
                 json.dumps({"info_gain": "log_prob"})]) != 0  # fmt: skip


def test_list_estimators_flags_unverified_options(capsys):
    assert main(["list", "estimators"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "probe" in lines["igpo"] and "VERIFIED-CODE" in lines["igpo"]
    assert "PAPER" in lines["pbsd"] and "combine" in lines["pbsd"]
    assert main(["list", "estimators", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["a2tgpo"]["unverified"] and rows["grpo"]["requires"] == []


def test_probe_claims_are_registered_with_three_seeds():
    from turngym.repro.registry import get_claim

    for name in (
        "igpo-fewer-zero-advantage-groups",
        "siop-verifier-free-credit",
        "pbsd-credit-without-outcome-spread",
        "infopo-intrinsic-where-outcomes-tie",
    ):
        claim = get_claim(name)
        assert len(claim.seeds) >= 3 and claim.kind == "mechanism" and callable(claim.run)


def test_answer_probes_need_an_answer_template_at_config_time(tmp_path, monkeypatch):
    import turngym.trainers.trainer as trainer_module

    # SIOP's answer clusters read the episodes' answers: on an env without an answer template
    # every advantage would silently be 0, so the config is refused before any rollout.
    monkeypatch.setattr(trainer_module, "collect", lambda *a, **k: pytest.fail("no rollouts"))
    config = TrainConfig(env="turngym/FrozenLake-v0", estimator="siop", out_dir=str(tmp_path))
    with pytest.raises(ValueError, match="no answer_template") as err:
        trainer_module.Trainer(config)
    assert "turngym/SearchQA-v0" in str(err.value)
