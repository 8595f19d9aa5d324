"""Claims of the methods that remember across steps or iterations, and of UFO's reward.

SLEA-RL's experience clusters, PIPO's verification window, R³'s replay buffer, Skill-R1's
skills and UFO's multi-attempt reward.

Each is measured on rollouts of reference agents through the methods' own hooks and
estimators (no training), so a seed takes seconds to a minute on one core.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import gymnasium
import numpy as np

from turngym.agents.base import ActionResult
from turngym.agents.scripted import EpisodeSeededAgent
from turngym.core import TextEnv
from turngym.repro.claims.structured import NoisyOracle
from turngym.repro.registry import Claim, Measurement
from turngym.rollout import collect
from turngym.trainers.credit import CreditContext, TurnBatch, resolve_estimator
from turngym.trainers.hooks import RolloutHooks, hooks_for
from turngym.types import Conversation, Episode, Group, Turn

__all__ = ["SLEA_RL", "PIPO", "R3", "SKILL_R1", "UFO"]


def _seeds(seed: int, n: int, salt: int) -> list[int]:
    return [int(s) for s in np.random.default_rng([seed, salt]).integers(0, 10**6, n)]


# --- SLEA-RL ------------------------------------------------------------------------------------
def slea_step_groups(seed: int) -> Measurement:
    """Share of turns in a step group of two or more: structural clusters vs exact states."""
    groups = collect("turngym/ToolUse-v0", NoisyOracle(0.5, seed), _seeds(seed, 8, 1), 6,
                     split="train", max_turns=8)  # fmt: skip
    batch = TurnBatch.from_groups(groups)
    slea = resolve_estimator("slea_rl", {})(batch, CreditContext()).metrics["cluster_turn_frac"]
    gigpo = resolve_estimator("gigpo", {})(batch, CreditContext()).metrics["anchor_turn_frac"]
    return Measurement(slea - gigpo, {"slea_cluster_frac": slea, "gigpo_anchor_frac": gigpo})


SLEA_RL = Claim(
    name="slea-rl-step-clusters",
    method="slea_rl",
    paper="arXiv 2603.18079 (SLEA-RL), abstract: clustering structurally equivalent "
          "observations for step-level credit assignment",
    statement="Clustering observations by structure puts many more steps into comparable step "
              "groups than exact state matching does, so more turns get a step-level baseline.",
    experiment="ToolUse, noisy-oracle rollouts (p=0.5), 8 tasks x 6: share of turns in a step "
               "group of two or more (numbers masked, same turn index) vs GiGPO's exact keys.",
    metric="step-grouped turn share: slea_rl - gigpo",
    run=slea_step_groups, kind="mechanism", budget="~40 s/seed",
)  # fmt: skip


# --- PIPO ---------------------------------------------------------------------------------------
def _iteration(rng: np.random.Generator, it: int, p: float) -> list[Group]:
    """16 tasks x 8 Bernoulli(p) outcomes, one turn each (a policy of success rate p)."""
    groups = []
    for k in range(16):
        episodes = []
        for i in range(8):
            ok = bool(rng.random() < p)
            turn = Turn(0, "agent", "o", "a", float(ok), True, False, None, True)
            episodes.append(Episode(f"train/{k}@{it}/{i}", "sim", f"t{k}", k, "train", (turn,),
                                    float(ok), ok))  # fmt: skip
        groups.append(Group(f"t{k}@{it}", f"t{k}", tuple(episodes)))
    return groups


def pipo_verdict(seed: int) -> Measurement:
    """Correlation of PIPO's verdict ``xi_t`` with the true change of the success rate."""
    rng = np.random.default_rng([seed, 3])
    steps = rng.normal(0.0, 0.06, 40)  # the (unobserved) effect of each update
    p = np.clip(0.5 + np.cumsum(steps), 0.05, 0.95)
    estimate = resolve_estimator("pipo", {})
    hooks, ctx = hooks_for(estimate), CreditContext()
    xi = []
    for it, rate in enumerate(p):
        groups = hooks.after_collect(_iteration(rng, it, float(rate)), ctx)
        xi.append(estimate(TurnBatch.from_groups(groups), ctx).metrics["pipo_xi"])
    window = 5  # xi_t compares mu_t with the last 5 means: the true change over that span
    true = p[window:] - np.array([p[t - window : t].mean() for t in range(window, len(p))])
    corr = float(np.corrcoef(np.asarray(xi[window:]), true)[0, 1])
    return Measurement(corr, {"iterations": float(len(p)),
                              "xi_abs_mean": float(np.mean(np.abs(xi)))})  # fmt: skip


PIPO = Claim(
    name="pipo-verifies-updates",
    method="pipo",
    paper="Wang et al. 2026, Policy Improvement RL (arXiv 2604.00860): verify each update "
          "against a sliding-window baseline, then reinforce or suppress it",
    statement="The retrospective verdict tracks whether performance really improved, so the "
              "reinforce/suppress decision follows true progress rather than batch noise.",
    experiment="40 simulated iterations of a policy whose success rate drifts (16 tasks x 8 "
               "Bernoulli outcomes each) through PIPO's hooks and estimator: correlation of "
               "xi_t with the true change over the window.",
    metric="corr(xi_t, true improvement)",
    run=pipo_verdict, kind="mechanism", budget="~3 s/seed",
)  # fmt: skip


# --- R³ -----------------------------------------------------------------------------------------
def r3_replay(seed: int) -> Measurement:
    """Zero-advantage group share over revisits of hard tasks: GRPO minus R³ with replay."""
    estimate = resolve_estimator("r3", {})
    hooks, ctx = hooks_for(estimate), CreditContext()
    tasks = _seeds(seed, 8, 5)
    options = {"level": 4}  # one attempt at hard puzzles: groups often all fail
    zero: dict[str, list[float]] = {"grpo": [], "r3": []}
    for visit in range(4):
        groups = collect("turngym/TryAgain-v0", NoisyOracle(0.15, seed * 10 + visit), tasks, 4,
                         split="train", options=options, round_index=visit)  # fmt: skip
        plain = resolve_estimator("grpo", {})(TurnBatch.from_groups(groups), CreditContext())
        replayed = hooks.after_collect(groups, ctx)
        credit = estimate(TurnBatch.from_groups(replayed), ctx)
        if visit:  # the first visit has nothing to replay yet
            zero["grpo"].append(plain.metrics["zero_adv_group_frac"])
            zero["r3"].append(credit.metrics["zero_adv_group_frac"])
    g, r = float(np.mean(zero["grpo"])), float(np.mean(zero["r3"]))
    return Measurement(g - r, {"zero_grpo": g, "zero_r3": r})


R3 = Claim(
    name="r3-replay-restores-gaps",
    method="r3",
    paper="Jiang et al. 2026, R^3 (arXiv 2601.19620): cross-context replay keeps intra-group "
          "advantages alive when every rollout of a query fails",
    statement="Replaying a past success of the same query into an all-failed group (and "
              "ranking failures by entropy) leaves fewer groups without any advantage.",
    experiment="TryAgain level 4 (one attempt), 8 tasks revisited 4 times by a noisy oracle "
               "(p=0.15), 4 rollouts each, through R^3's hooks: zero-advantage group share on "
               "revisits.",
    metric="zero_adv_group_frac: grpo - r3",
    run=r3_replay, kind="mechanism", budget="~10 s/seed",
)  # fmt: skip


# --- Skill-R1 -----------------------------------------------------------------------------------
class SkillFollower(EpisodeSeededAgent):
    """Replays the first step of a skill that worked; otherwise a noisy oracle (p=0.15).

    A stand-in for a policy that conditions on the skill text in its prompt: the prompt is
    rewritten by the method's hooks before this agent reads it.
    """

    def __init__(self, hooks: RolloutHooks, ctx: CreditContext, seed: int = 0) -> None:
        """Read prompts through ``hooks.augment(conversation, ctx)``."""
        super().__init__(seed)
        self.hooks, self.ctx, self.base = hooks, ctx, NoisyOracle(0.15, seed)

    def act_batch_with_envs(self, conversations: Sequence[Conversation],
                            envs: Sequence[gymnasium.Env]) -> list[ActionResult]:  # fmt: skip
        """Follow the skill's step 1 when the skill says it worked."""
        out = self.base.act_batch_with_envs(conversations, envs)
        for k, conversation in enumerate(conversations):
            seen = self.hooks.augment(conversation, self.ctx)
            step = re.search(r"follow the steps that worked\.\n1\. (.+)", seen.instructions)
            if step and self._rng(conversation).random() < 0.9:
                out[k] = ActionResult(step.group(1))
        return out


def skill_generations(seed: int) -> Measurement:
    """Mean outcome of the third generation minus the first under revised skills."""
    estimate = resolve_estimator("skill_r1", {})
    hooks, ctx = hooks_for(estimate), CreditContext()
    tasks = _seeds(seed, 12, 7)
    means, gains = [], []
    for generation in range(3):
        groups = collect("turngym/TryAgain-v0", SkillFollower(hooks, ctx, seed), tasks, 4,
                         split="train", options={"level": 4}, round_index=generation)
        means.append(float(np.mean([e.outcome for g in groups for e in g.episodes])))
        credit = estimate(TurnBatch.from_groups(hooks.after_collect(groups, ctx)), ctx)
        gains.append(credit.metrics["inter_gain_mean"])
    return Measurement(means[2] - means[0], {"gen1": means[0], "gen2": means[1],
                                             "gen3": means[2], "inter_gain_gen2": gains[1]})


SKILL_R1 = Claim(
    name="skill-r1-recurrent-skills",
    method="skill_r1",
    paper="Vishe et al. 2026, Skill-R1 (arXiv 2605.09359): skills revised from verified "
          "outcomes steer the policy better over generations",
    statement="Revising a per-task skill from each generation's verified rollouts raises the "
              "success of a policy that follows its skill, and the inter-generation term "
              "credits that improvement.",
    experiment="TryAgain level 4, 12 tasks x 4 rollouts over 3 generations; the policy is a "
               "skill follower (replays a skill's worked step with p=0.9, else a noisy oracle "
               "right with p=0.15).",
    metric="mean outcome: generation 3 - generation 1",
    run=skill_generations, kind="mechanism", budget="~10 s/seed",
)  # fmt: skip


# --- UFO ----------------------------------------------------------------------------------------
class Guesser(EpisodeSeededAgent):
    """Right with probability ``p`` per attempt; wrong guesses repeat or vary."""

    def __init__(self, p: float, repeat: bool, seed: int = 0) -> None:
        """``repeat``: wrong guesses are always the same answer (else a new one each time)."""
        super().__init__(seed)
        self.p, self.repeat = float(p), bool(repeat)

    def act_batch_with_envs(self, conversations: Sequence[Conversation],
                            envs: Sequence[gymnasium.Env]) -> list[ActionResult]:  # fmt: skip
        """The gold answer, or a wrong number."""
        out = []
        for conversation, env in zip(conversations, envs, strict=True):
            base = env.unwrapped
            assert isinstance(base, TextEnv), "the oracle action is a TextEnv's"
            if self._rng(conversation).random() < self.p:
                out.append(ActionResult(base.oracle_action()))
                continue
            wrong = 10_007 if self.repeat else 10_007 + len(conversation.turns)
            out.append(ActionResult(f"<answer>{wrong}</answer>"))
        return out


def ufo_repetition(seed: int) -> Measurement:
    """UFO return of a guesser that varies wrong answers minus one that repeats them."""
    tasks = _seeds(seed, 40, 9)
    options = {"difficulty": {"puzzle_types": ["arithmetic", "sequence"]}}
    estimate = resolve_estimator("ufo", {})
    returns = {}
    for repeat in (False, True):
        groups = collect("turngym/TryAgain-v0", Guesser(0.3, repeat, seed), tasks, 4,
                         split="train", options=options)  # fmt: skip
        returns[repeat] = estimate(TurnBatch.from_groups(groups),
                                   CreditContext()).metrics["ufo_return_mean"]  # fmt: skip
    return Measurement(returns[False] - returns[True],
                       {"return_varied": returns[False], "return_repeated": returns[True]})


UFO = Claim(
    name="ufo-penalises-repeats",
    method="ufo",
    paper="Liu et al. 2025, A Simple 'Try Again' Can Elicit Multi-Turn LLM Reasoning (arXiv "
          "2507.14295): the repetition penalty rewards revising answers after unary feedback",
    statement="With only 'try again' as feedback, UFO's reward prefers an agent that changes "
              "its wrong answer to one that repeats it, at equal per-attempt accuracy.",
    experiment="TryAgain (5 attempts), 40 tasks x 4, two guessers right with p=0.3 per attempt "
               "whose wrong answers vary or repeat: mean UFO return.",
    metric="UFO return: varied - repeated",
    run=ufo_repetition, kind="outcome", budget="~10 s/seed",
)  # fmt: skip
