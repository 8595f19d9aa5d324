"""The mechanism claims compute what they say on real rollouts (one seed each, fast ones)."""

from __future__ import annotations

import pytest

from turngym.repro.claims.baselines import a_grae_hard_focus, mc_grpo_sign_flips, trloo_unbiased
from turngym.repro.experiments import NoisyOracleAgent, returns_to_go, split_group, task_groups


def test_noisy_oracle_spans_random_to_oracle():
    def success(eps: float) -> float:
        groups = task_groups("turngym/FrozenLake-v0", NoisyOracleAgent(eps, seed=0), tasks=20,
                             episodes=4, seed=0)  # fmt: skip
        return sum(e.success for g in groups for e in g.episodes) / 80

    assert success(0.0) == 1.0
    assert success(0.9) < success(0.3) < 1.0
    with pytest.raises(ValueError):
        NoisyOracleAgent(1.5)


def test_split_group_and_returns_to_go():
    (group,) = task_groups("turngym/FrozenLake-v0", NoisyOracleAgent(0.0), tasks=1, episodes=3,
                           seed=1)  # fmt: skip
    head, rest = split_group(group, 2)
    assert len(head.episodes) == 2 and len(rest) == 1
    with pytest.raises(ValueError):
        split_group(group, 3)
    togo = returns_to_go(group.episodes[0])
    assert togo[0] == pytest.approx(sum(t.reward for t in group.episodes[0].turns))


@pytest.mark.slow
def test_mechanism_claims_measure_the_documented_quantities():
    m = mc_grpo_sign_flips(0)
    assert m.effect == pytest.approx(m.details["flip_rate_grpo"] - m.details["flip_rate_mc_grpo"])
    assert 0 <= m.details["flip_rate_mc_grpo"] <= 1 and m.details["counted_grpo"] > 0
    t = trloo_unbiased(0)
    # TRLOO's leave-one-out baseline is unbiased: the regression slope is close to 1.
    assert t.details["slope_trloo"] == pytest.approx(1.0, abs=0.15)
    a = a_grae_hard_focus(0)
    assert a.details["weak_accuracy"] < 0.5 < a.details["strong_accuracy"]
