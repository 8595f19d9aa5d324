"""Claims that need training: GiGPO vs GRPO on a long horizon, and EPO's entropy smoothing.

Both arms of a seed train the same tiny model from the same initialisation, on the same task
stream and budget (env steps), with the bench's recipe; only the method differs.
"""

from __future__ import annotations

import functools

import numpy as np

from turngym.evals.bench import HORIZON_ENV, HORIZON_OPTIONS, HORIZON_TURNS
from turngym.repro.experiments import train_and_evaluate
from turngym.repro.registry import Claim, Measurement

__all__ = ["GIGPO_LONG_HORIZON", "EPO_ENTROPY"]

# The env of `turngym bench --suite horizon`: a 4x4 lake, the goal's reward only, 12 moves.
_CLAIM_STEPS = 16_000


def gigpo_long_horizon(seed: int) -> Measurement:
    """Final test success of GiGPO minus GRPO after the same budget."""
    train = functools.partial(train_and_evaluate, env=HORIZON_ENV, seed=seed,
                              env_steps=_CLAIM_STEPS, options=HORIZON_OPTIONS,
                              max_turns=HORIZON_TURNS)  # fmt: skip
    gigpo = train("gigpo")
    grpo = train("grpo")
    return Measurement(gigpo["success"] - grpo["success"],
                       {"success_gigpo": gigpo["success"], "success_grpo": grpo["success"]})


GIGPO_LONG_HORIZON = Claim(
    name="gigpo-long-horizon",
    method="gigpo",
    paper="Feng et al. 2025, Group-in-Group Policy Optimization for LLM Agent Training "
    "(arXiv 2505.10978), sections 4-5 (ALFWorld, WebShop)",
    statement="On long-horizon tasks with sparse rewards, GiGPO's step-level groups (same "
    "anchor state across a group's episodes) give better credit than GRPO's episode-level "
    "advantage, and a higher success rate for the same budget.",
    experiment=f"Tiny model, restricted to the four moves, trained with GiGPO and with GRPO "
    f"on FrozenLake 4x4 (reward only at the goal, {HORIZON_TURNS} moves) for {_CLAIM_STEPS:,} "
    "env steps each from the same initialisation; success on 100 test tasks.",
    metric="final test success: gigpo - grpo",
    run="turngym.repro.claims.training:gigpo_long_horizon",
    budget="~6 min/seed",
)


def _fluctuation(rows_entropy: list[float]) -> float:
    values = np.asarray(rows_entropy)
    return float(np.abs(np.diff(values)).mean()) if values.size > 1 else 0.0


def epo_entropy(seed: int) -> Measurement:
    """Mean |change| of the policy entropy between iterations: without EPO minus with."""
    train = functools.partial(train_and_evaluate, "grpo", env=HORIZON_ENV, seed=seed,
                              env_steps=_CLAIM_STEPS // 2, options=HORIZON_OPTIONS,
                              max_turns=HORIZON_TURNS, history=True)  # fmt: skip
    plain = train()
    smooth = train(recipe={"epo": {"differentiable": True}})
    before, after = _fluctuation(plain["entropy_history"]), _fluctuation(smooth["entropy_history"])
    return Measurement(before - after, {"fluctuation_grpo": before, "fluctuation_epo": after,
                                        "success_grpo": plain["success"],
                                        "success_epo": smooth["success"]})  # fmt: skip


EPO_ENTROPY = Claim(
    name="epo-entropy",
    method="epo",
    paper="Xu et al. 2025, EPO: Entropy-regularized Policy Optimization for LLM Agents "
    "Reinforcement Learning (arXiv 2509.22576), abstract and section 3",
    statement="Bounding each turn's entropy to a band around its historical average "
    "(entropy smoothing) prevents abrupt entropy fluctuations during multi-turn training.",
    experiment="GRPO with the entropy bonus, with and without EPO's smoothing term "
    "(differentiable form: the released code's term has no gradient; kappa 0.5-1.5, p 0.1), "
    f"on FrozenLake 4x4 (sparse, {HORIZON_TURNS} moves), {_CLAIM_STEPS // 2:,} env steps; "
    "mean absolute change of the policy entropy between iterations.",
    metric="entropy fluctuation: grpo - grpo+epo",
    run="turngym.repro.claims.training:epo_entropy",
    kind="mechanism",
    budget="~4 min/seed",
)
