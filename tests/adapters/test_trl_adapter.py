"""turngym envs and estimators in TRL's GRPOTrainer (trl installed, CPU, the tiny model).

The rollout is checked against the env itself (replaying each completion's model tokens gives
its recorded rewards), the advantages against turngym's estimator called directly, per token,
and the trainer against its job: a few GRPO steps on FrozenLake move the weights.
"""

import os
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
warnings.filterwarnings("ignore", module="trl")

from trl import GRPOConfig  # noqa: E402

from turngym.adapters.trl import (  # noqa: E402
    TurngymGRPOTrainer,
    TurngymRollout,
    episode_return,
    task_dataset,
)
from turngym.agents.tiny import build_tiny  # noqa: E402
from turngym.envs.games.frozen_lake import FrozenLake  # noqa: E402
from turngym.registry import make  # noqa: E402
from turngym.trainers.credit import CreditContext, TurnBatch, resolve_estimator  # noqa: E402

pytestmark = pytest.mark.slow

ENV = "turngym/FrozenLake-v0"
OPTIONS = {"difficulty": {"size": 3}}


def _rollout(**kwargs):
    return TurngymRollout(ENV, options=OPTIONS, max_turns=6, response_prefix="<action>",
                          response_suffix="</action>",
                          allowed_actions=FrozenLake.action_vocabulary(),
                          include_instructions=False, **kwargs)  # fmt: skip


def test_a_completion_is_the_episode_model_tokens_masked_in_env_tokens_out():
    model, tokenizer = build_tiny(ENV, seed=0)
    rollout = _rollout(seed=1)
    plays = rollout.play([0, 0, 1, 1], model, tokenizer)
    rollout.last = plays
    for p in plays:
        assert len(p.completion) == len(p.env_mask) == len(p.logprobs)
        assert [i for i, m in enumerate(p.env_mask) if m] == [s for s, _ in p.spans]
        env = make(ENV)
        env.reset(seed=p.seed, options={"split": "train", **OPTIONS})
        for (start, end), turn in zip(p.spans, p.turns, strict=True):
            move = tokenizer.decode(p.completion[start:end], skip_special_tokens=True)
            assert move in FrozenLake.action_vocabulary()
            _, reward, *_ = env.step(f"<action>{move}</action>")
            assert turn.reward == reward
        assert all(lp <= 0 for lp in p.logprobs)
    again = _rollout(seed=1).play([0, 0, 1, 1], model, tokenizer)
    assert [p.completion for p in again] == [p.completion for p in plays]  # seeded: same draws


@pytest.mark.parametrize("name", ["gigpo", "grpo", "trloo"])
def test_token_advantages_are_the_estimators_per_turn(name):
    model, tokenizer = build_tiny(ENV, seed=0)
    rollout = _rollout(seed=2)
    rollout.last = rollout.play([3] * 4 + [5] * 4, model, tokenizer)
    groups = rollout.episodes(4)
    credit = resolve_estimator(name)(TurnBatch.from_groups(groups), CreditContext())
    width = max(len(p.completion) for p in rollout.last) + 2
    tokens = rollout.token_advantages(credit.advantages, width)
    values = iter(credit.advantages)
    for row, p in enumerate(rollout.last):
        model_tokens = np.zeros(width, dtype=bool)
        for start, end in p.spans:
            assert torch.allclose(tokens[row, start:end], torch.tensor(next(values)).float())
            model_tokens[start:end] = True
        assert (tokens[row, ~torch.from_numpy(model_tokens)] == 0).all()
    with pytest.raises(ValueError, match="groups of 3"):
        rollout.episodes(3)


def test_bad_prompts_and_multi_token_actions_fail_with_one_line():
    model, tokenizer = build_tiny(ENV, seed=0)
    with pytest.raises(ValueError, match="task_dataset"):
        _rollout()(["what is 2+2?"], type("T", (), {})())
    with pytest.raises(ValueError, match="one token each"):
        TurngymRollout(ENV, allowed_actions=["walk north"]).play([0], model, tokenizer)


class _Recording(TurngymGRPOTrainer):
    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        seen = (out["advantages"].clone(), self.turngym_rollout.last)
        self.seen = [*getattr(self, "seen", []), seen]
        return out


def test_grpo_trainer_trains_the_tiny_model_with_gigpo_advantages(tmp_path):
    model, tokenizer = build_tiny(ENV, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    rollout = _rollout(seed=0)
    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False,
                      per_device_train_batch_size=8, num_generations=4, max_completion_length=256,
                      max_steps=3, report_to=[], logging_steps=1, beta=0.0, learning_rate=1e-3,
                      save_strategy="no", seed=0)  # fmt: skip
    trainer = _Recording(model=model, processing_class=tokenizer, args=args,
                         train_dataset=task_dataset(range(16)), rollout=rollout,
                         estimator="gigpo")  # fmt: skip
    assert trainer.reward_funcs[0] is episode_return
    trainer.train()
    assert rollout.env_steps > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert any(adv.abs().sum() > 0 for adv, _ in trainer.seen)  # the estimator's signal
    adv, plays = trainer.seen[-1]
    rollout.last = plays
    credit = resolve_estimator("gigpo")(TurnBatch.from_groups(rollout.episodes(4)),
                                        CreditContext(step=len(trainer.seen) - 1))  # fmt: skip
    assert torch.allclose(adv, rollout.token_advantages(credit.advantages, adv.shape[1]))


def test_estimators_that_need_more_than_the_batch_are_refused():
    from turngym.trainers.credit import estimator_registry

    needy = [n for n in estimator_registry.names()
             if getattr(estimator_registry.get(n), "requires", frozenset())]  # fmt: skip
    if not needy:
        pytest.skip("no estimator with requirements registered")
    model, tokenizer = build_tiny(ENV, seed=0)
    with pytest.raises(ValueError, match="requires|needs more than the batch"):
        TurngymGRPOTrainer(model=model, processing_class=tokenizer, rollout=_rollout(),
                           estimator=needy[0], args=GRPOConfig(output_dir="unused", use_cpu=True),
                           train_dataset=task_dataset(range(2)))  # fmt: skip
