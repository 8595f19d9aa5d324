"""Claims of the outcome-baseline methods: MC-GRPO, TRLOO and A-GRAE (mechanism claims).

Each experiment rolls out a fixed policy many times per task: the first few episodes of a
task form the training group an estimator sees, and the held-out rest tell what the policy
really earns on that task, so an advantage can be checked against the truth it estimates.
No model is trained: these claims are about what the estimators compute.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from turngym.agents.scripted import RandomAgent
from turngym.repro.experiments import NoisyOracleAgent, returns_to_go, split_group, task_groups
from turngym.repro.registry import Claim, Measurement
from turngym.trainers.credit import resolve_estimator
from turngym.trainers.credit.types import CreditContext, TurnBatch
from turngym.types import Episode, Group

__all__ = ["MC_GRPO_SIGN_FLIPS", "TRLOO_UNBIASED", "A_GRAE_HARD_FOCUS"]

# A 4x4 lake with a step cost: returns differ between failures (they fall in after more or
# fewer steps), so a baseline can put a failure on the wrong side of what the policy earns.
_LAKE = "turngym/FrozenLake-v0"
_LAKE_OPTIONS = {"difficulty": {"size": 4, "step_penalty": -0.05}}
_TASKS, _REFERENCE = 64, 64


def _episode_returns(episodes: Iterable[Episode]) -> np.ndarray:
    return np.array([sum(t.reward for t in ep.turns) for ep in episodes])


def _flip_rate(estimator: str, params: Mapping[str, Any], groups: list[Group],
               size: int) -> tuple[float, int]:  # fmt: skip
    """Share of non-zero, non-excluded advantages whose sign disagrees with ``R - V``."""
    estimate = resolve_estimator(estimator, params)
    flips = counted = 0
    for group in groups:
        head, rest = split_group(group, size)
        value = float(_episode_returns(rest).mean())
        batch = TurnBatch.from_groups([head])
        credit = estimate(batch, CreditContext())
        first = batch.episode_start  # every turn of an episode carries the same advantage
        adv = credit.advantages[first]
        keep = np.ones(len(adv), bool) if credit.weights is None else credit.weights[first] > 0
        truth = np.sign(_episode_returns(head.episodes) - value)
        nonzero = keep & (np.abs(adv) > 1e-12) & (truth != 0)
        flips += int((np.sign(adv[nonzero]) != truth[nonzero]).sum())
        counted += int(nonzero.sum())
    return (flips / counted if counted else 0.0), counted


def mc_grpo_sign_flips(seed: int) -> Measurement:
    """GRPO at G = 2 vs MC-GRPO at G = 2 (three rollouts, median baseline, pivot dropped)."""
    groups = task_groups(_LAKE, RandomAgent(seed=seed), tasks=_TASKS, episodes=3 + _REFERENCE,
                         seed=seed, options=_LAKE_OPTIONS, max_turns=8)  # fmt: skip
    grpo, n_grpo = _flip_rate("grpo", {"score": "return"}, groups, 2)
    mc, n_mc = _flip_rate("mc_grpo", {}, groups, 3)
    return Measurement(grpo - mc, {"flip_rate_grpo": grpo, "flip_rate_mc_grpo": mc,
                                   "counted_grpo": n_grpo, "counted_mc_grpo": n_mc})  # fmt: skip


MC_GRPO_SIGN_FLIPS = Claim(
    name="mc-grpo-sign-flips",
    method="mc_grpo",
    paper="Kim et al. 2026, Median-Centered GRPO (arXiv 2601.22582), sections 1 and 3",
    statement="With a small group (G = 2) the mean baseline puts advantages on the wrong side "
    "of what the policy really earns; the median of G + 1 rollouts flips fewer signs.",
    experiment="Random policy on 64 FrozenLake 4x4 tasks (step cost -0.05, 8 moves): per task "
    "the first 2 (GRPO) or 3 (MC-GRPO) rollouts form the group, 64 more estimate the task's "
    "expected return V; count advantages whose sign differs from sign(R - V).",
    metric="sign-flip rate: grpo - mc_grpo",
    run="turngym.repro.claims.baselines:mc_grpo_sign_flips",
    kind="mechanism",
    budget="~5 s/seed",
)


def trloo_unbiased(seed: int) -> Measurement:
    """Slope of per-turn advantages on the true per-turn advantage ``G_t - V_t``."""
    size = 4
    groups = task_groups(_LAKE, RandomAgent(seed=seed), tasks=_TASKS, episodes=size + _REFERENCE,
                         seed=seed, options=_LAKE_OPTIONS, max_turns=8)  # fmt: skip
    estimate = resolve_estimator("trloo", {})
    xs, loo, mean_incl = [], [], []
    for group in groups:
        head, rest = split_group(group, size)
        reference: dict[int, list[float]] = {}
        for ep in rest:
            for t, g in enumerate(returns_to_go(ep)):
                reference.setdefault(t, []).append(float(g))
        batch = TurnBatch.from_groups([head])
        adv = estimate(batch, CreditContext()).advantages
        togo = np.concatenate([returns_to_go(ep) for ep in head.episodes])
        for row, (t, g) in enumerate(zip(batch.turn, togo, strict=True)):
            same = togo[batch.turn == t]
            if len(same) < 2 or int(t) not in reference:
                continue  # a turn reached by one rollout keeps its raw return (no baseline)
            xs.append(g - np.mean(reference[int(t)]))
            loo.append(adv[row])
            mean_incl.append(g - same.mean())  # the self-inclusive per-turn GRPO baseline
    x = np.array(xs)
    slope_loo = float(np.dot(x, loo) / np.dot(x, x))
    slope_mean = float(np.dot(x, mean_incl) / np.dot(x, x))
    effect = abs(1.0 - slope_mean) - abs(1.0 - slope_loo)
    return Measurement(effect, {"slope_trloo": slope_loo, "slope_turn_grpo": slope_mean,
                                "turns": float(len(x))})  # fmt: skip


TRLOO_UNBIASED = Claim(
    name="trloo-unbiased",
    method="trloo",
    paper="Dr. Kernel / KernelGYM (hkust-nlp, 2026), TRLOO: turn-level REINFORCE "
    "leave-one-out, the self-inclusion bias of GRPO's per-turn baseline",
    statement="On per-turn rewards, a per-turn baseline that includes the sample itself "
    "shrinks advantages by (N-1)/N; TRLOO's leave-one-out baseline is unbiased.",
    experiment="Random policy on 64 FrozenLake 4x4 tasks with per-turn rewards (step cost "
    "-0.05), groups of 4; regress each turn's advantage on G_t - V_t, V_t from 64 held-out "
    "rollouts of the task; compare |1 - slope| of TRLOO and of the self-inclusive turn mean.",
    metric="|1 - slope|: turn-mean GRPO - trloo",
    run="turngym.repro.claims.baselines:trloo_unbiased",
    kind="mechanism",
    budget="~5 s/seed",
)


def _hard_share(estimator: str, params: Mapping[str, Any], groups: list[Group]) -> float:
    """Share of the batch's advantage mass on hard groups (group accuracy below 1/2)."""
    batch = TurnBatch.from_groups(groups)
    credit = resolve_estimator(estimator, params)(batch, CreditContext())
    first = batch.episode_start
    adv = np.abs(credit.advantages[first])
    accuracy = np.array([np.mean([ep.success for ep in g.episodes]) for g in groups])
    hard = accuracy[batch.episode_group] < 0.5
    return float(adv[hard].sum() / adv.sum()) if adv.sum() > 0 else 0.0


def a_grae_hard_focus(seed: int) -> Measurement:
    """Change, from a weak to a strong policy, of A-GRAE's hard-group share relative to GRPO."""
    details: dict[str, float] = {}
    relative = {}
    # epsilon 0.9: mostly random moves, few groups solved; 0.3: most groups solved.
    for name, epsilon in (("weak", 0.9), ("strong", 0.3)):
        groups = task_groups(_LAKE, NoisyOracleAgent(epsilon, seed=seed), tasks=_TASKS,
                             episodes=8, seed=seed, options=_LAKE_OPTIONS, max_turns=8)  # fmt: skip
        grpo = _hard_share("grpo", {}, groups)
        agrae = _hard_share("a_grae", {}, groups)
        relative[name] = agrae - grpo
        accuracy = float(np.mean([ep.success for g in groups for ep in g.episodes]))
        details |= {f"{name}_accuracy": accuracy, f"{name}_hard_share_grpo": grpo,
                    f"{name}_hard_share_a_grae": agrae}  # fmt: skip
    return Measurement(relative["strong"] - relative["weak"], details)


A_GRAE_HARD_FOCUS = Claim(
    name="a-grae-hard-focus",
    method="a_grae",
    paper="A-GRAE (arXiv 2602.05548), asymmetric group-relative advantages with a "
    "difficulty curriculum",
    statement="As the batch accuracy rises, A-GRAE shifts its advantage weight from easy "
    "prompts towards hard ones (a curriculum GRPO does not have).",
    experiment="A noisy oracle at two strengths (90% and 30% random moves) on 64 FrozenLake "
    "4x4 tasks, groups of 8; at each strength, the share of total |advantage| on groups with "
    "accuracy below 1/2 under A-GRAE minus the same share under GRPO.",
    metric="(a_grae - grpo hard share) at the strong policy - the same at the weak policy",
    run="turngym.repro.claims.baselines:a_grae_hard_focus",
    kind="mechanism",
    budget="~10 s/seed",
)
