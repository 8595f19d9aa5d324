"""Claims of the critic, tree and update-order methods, in miniature.

Training claims train the tiny model head to head with a critic-free baseline on a 4x4
FrozenLake with a step cost (a longer horizon than the bench's 3x3) and compare the final
success at temperature 1 on the test split. Mechanism claims measure what a method says it
changes on rollouts, without training. Budgets are small (2 CPU cores), so effects are
measured on tiny models after a few iterations: a "not shown" says exactly that.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from turngym.agents.base import ActionResult, EnvAwareAgent
from turngym.repro.registry import Claim, Measurement
from turngym.types import Conversation

__all__ = ["PPO_GAE_LONG_HORIZON", "BILEVEL_GAE_VS_TURN_GAE", "ODYSSEUS_LIGHT_CRITIC",
           "ARCHER_VS_GRPO", "SEEUPO_VS_GRPO", "HIPER_SEGMENT_VARIANCE", "TREE_MORE_EPISODES",
           "TREE_ZERO_ADVANTAGE"]  # fmt: skip

_ENV = "turngym/FrozenLake-v0"
_OPTIONS = {"difficulty": {"size": 4, "step_penalty": -0.02}}
_CRITIC = {"d_model": 32, "layers": 1}
_CLAIM_STEPS = 16_000  # per arm; the bench recipe with the horizon suite's env


def _params(estimator: str) -> dict[str, Any]:
    from turngym.trainers.credit import method_of

    params = dict(_CRITIC) if method_of(estimator).critic is not None else {}
    if estimator == "archer":
        params["steps"] = 4
    return params


def _train(estimator: str, seed: int, **overrides: Any) -> dict[str, Any]:
    """Train the tiny model with ``estimator`` on the horizon suite's env and evaluate it."""
    from turngym.evals.bench import HORIZON_ENV, HORIZON_OPTIONS, HORIZON_TURNS
    from turngym.repro.experiments import train_and_evaluate

    params = {"score": "return"} if estimator in ("grpo", "rloo") else None
    return train_and_evaluate(
        estimator, env=HORIZON_ENV, options=HORIZON_OPTIONS, max_turns=HORIZON_TURNS,
        seed=seed, env_steps=overrides.pop("env_steps", _CLAIM_STEPS), params=params,
        recipe={"critic_params": _params(estimator), **overrides}, history=True,
    )  # fmt: skip


def _compare(method: str, baseline: str, seed: int) -> Measurement:
    ours, theirs = _train(method, seed), _train(baseline, seed)
    a, b = ours["success"], theirs["success"]
    return Measurement(a - b, {f"success_{method}": a, f"success_{baseline}": b,
                               f"return_{method}": ours["return"],
                               f"return_{baseline}": theirs["return"]})  # fmt: skip


def ppo_gae_vs_grpo(seed: int) -> Measurement:
    """Final test success: ppo_gae - grpo."""
    return _compare("ppo_gae", "grpo", seed)


def bilevel_vs_turn_gae(seed: int) -> Measurement:
    """Final test success: bilevel_gae - ppo_gae."""
    return _compare("bilevel_gae", "ppo_gae", seed)


def archer_vs_grpo(seed: int) -> Measurement:
    """Final test success: archer - grpo."""
    return _compare("archer", "grpo", seed)


def seeupo_vs_grpo(seed: int) -> Measurement:
    """Final test success: seeupo - grpo."""
    return _compare("seeupo", "grpo", seed)


def odysseus_critic(seed: int) -> Measurement:
    """Explained variance of the observation-only critic over the last three iterations."""
    rows = _train("odysseus", seed, env_steps=_CLAIM_STEPS // 2)["rows"]
    ev = [r["critic_explained_var"] for r in rows]
    return Measurement(float(np.mean(ev[-3:])), {"explained_var_first": ev[0],
                                                 "explained_var_last3": float(np.mean(ev[-3:])),
                                                 "value_loss_first": rows[0]["critic_value_loss"],
                                                 "value_loss_last": rows[-1]["critic_value_loss"]})


# --- HiPER: variance of HAE vs flat GAE on hierarchical Household rollouts ----------------------
_ADMISSIBLE = re.compile(r"Admissible actions: (.*)")


class _HierarchicalOracle(EnvAwareAgent):
    """The Household oracle with epsilon-random admissible actions, written in HiPER's format.

    A ``go to`` starts a new subgoal (``SWITCH``, subgoal = its destination); other actions
    keep it. Used to produce segment structure without a trained hierarchical policy.
    """

    def __init__(self, epsilon: float, seed: int) -> None:
        self.epsilon, self.rng = epsilon, np.random.default_rng(seed)

    def act_batch_with_envs(self, conversations: Sequence[Conversation],
                            envs: Sequence[Any]) -> list[ActionResult]:  # fmt: skip
        out = []
        for conv, env in zip(conversations, envs, strict=True):
            action = env.unwrapped.oracle_action()
            listed = _ADMISSIBLE.search(conv.observation)
            if listed and self.rng.random() < self.epsilon:
                options = [a.strip() for a in listed.group(1).split("|")]
                action = f"<action>{options[self.rng.integers(len(options))]}</action>"
            command = action.removeprefix("<action>").removesuffix("</action>")
            switch = "SWITCH" if command.startswith("go to") else "KEEP"
            subgoal = command[6:] if switch == "SWITCH" else "continue"
            out.append(ActionResult(f"<switch>{switch}</switch><subgoal>{subgoal}</subgoal>"
                                    f"{action}"))  # fmt: skip
        return out

    def act_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        """Needs the envs (the oracle reads them)."""
        raise TypeError("run through turngym.rollout.collect")


def hiper_variance(seed: int) -> Measurement:
    """Relative variance reduction of turn advantages: 1 - var(HAE A_low) / var(flat GAE).

    Both use the same tabular critic fitted on the batch itself (mean reward-to-go of every
    state key), so the only difference is HAE's bootstrapping at segment boundaries.
    """
    from turngym.rollout import collect
    from turngym.trainers.credit import CreditContext, TurnBatch, resolve_estimator
    from turngym.trainers.credit._common import discounted_returns
    from turngym.trainers.credit.values import FixedCritic

    rng = np.random.default_rng(seed)
    tasks = [int(s) for s in rng.integers(0, 2**31 - 1, 12)]
    groups = collect("turngym/Household-v0", _HierarchicalOracle(0.5, seed), tasks, 8,
                     split="train", options={"level": 0}, max_turns=20)  # fmt: skip
    batch = TurnBatch.from_groups(groups)
    togo = discounted_returns(batch, 1.0)
    key = batch.group * (int(batch.state.max()) + 2) + batch.state
    codes, inverse = np.unique(key, return_inverse=True)
    value = (np.bincount(inverse, togo) / np.bincount(inverse))[inverse]
    critic = FixedCritic({"low": value, "high": value})
    ctx = CreditContext(critic=critic)
    credit = resolve_estimator("hiper", {}, {"critic"})(batch, ctx)
    flat = togo - value  # GAE(lambda = 1) over one segment per episode, same critic
    var_hae, var_flat = float(np.var(credit.advantages)), float(np.var(flat))
    return Measurement(1.0 - var_hae / var_flat if var_flat else 0.0,
                       {"var_hae": var_hae, "var_flat_gae": var_flat, "states": float(codes.size),
                        "segments_per_episode": credit.metrics["segments_per_episode"],
                        "turns_per_episode": batch.n_turns / max(batch.n_episodes, 1),
                        "success": float(batch.episode_outcome.mean())})  # fmt: skip


# --- Trees ------------------------------------------------------------------------------------
def _tiny_agent(seed: int) -> Any:
    import torch

    from turngym.agents.hf import HFAgent
    from turngym.agents.tiny import build_tiny

    torch.set_num_threads(1)
    model, tokenizer = build_tiny(_ENV, seed=seed, d_model=32, n_layers=1)
    return HFAgent(model, tokenizer, max_new_tokens=1, response_prefix="<action>",
                   response_suffix="</action>", stop=(), history=0,
                   include_instructions=False, seed=seed)  # fmt: skip


def _tree_vs_plain(seed: int) -> tuple[dict[str, float], dict[str, float]]:
    from turngym.rollout import collect
    from turngym.rollout_tree import collect_tree
    from turngym.trainers.credit import CreditContext, TurnBatch, resolve_estimator

    tasks = list(range(seed * 100, seed * 100 + 24))
    agent = _tiny_agent(seed)
    plain = collect(_ENV, agent, tasks, 8, split="train", options=_OPTIONS, max_turns=10)
    tree = collect_tree(_ENV, agent, tasks, 4, branches=4, rounds=2, select="uncertainty",
                        split="train", options=_OPTIONS, max_turns=10, seed=seed)  # fmt: skip
    out = []
    for groups, name in ((plain, "grpo"), (tree, "tree_grpo")):
        batch = TurnBatch.from_groups(groups)
        credit = resolve_estimator(name, {})(batch, CreditContext())
        fresh = batch.n_turns if credit.weights is None else float(credit.weights.sum())
        out.append({"episodes": float(batch.n_episodes), "env_steps": float(fresh),
                    "zero_adv": credit.metrics["zero_adv_group_frac"]})  # fmt: skip
    return out[0], out[1]


def tree_more_episodes(seed: int) -> Measurement:
    """Episodes per env step, tree / plain - 1 (shared prefixes are not replayed)."""
    plain, tree = _tree_vs_plain(seed)
    rate_plain = plain["episodes"] / plain["env_steps"]
    rate_tree = tree["episodes"] / tree["env_steps"]
    return Measurement(rate_tree / rate_plain - 1.0, {"episodes_per_step_plain": rate_plain,
                                                      "episodes_per_step_tree": rate_tree})


def tree_zero_advantage(seed: int) -> Measurement:
    """Zero-advantage group share: plain groups (grpo) - trees (tree_grpo), same episodes."""
    plain, tree = _tree_vs_plain(seed)
    return Measurement(plain["zero_adv"] - tree["zero_adv"],
                       {"zero_adv_plain": plain["zero_adv"], "zero_adv_tree": tree["zero_adv"]})


_FL = (f"horizon suite's env (4x4 FrozenLake, goal reward only, 12 moves), tiny model "
       f"restricted to the moves, bench recipe, {_CLAIM_STEPS:,} env steps per arm")

PPO_GAE_LONG_HORIZON = Claim(
    name="ppo-gae-vs-grpo-long-horizon", method="ppo_gae",
    paper="Shi et al. 2026, Odysseus, arXiv 2605.00347 (abstract); Wang et al. 2025, RAGEN, "
          "arXiv 2504.20073",
    statement="PPO with a learned turn-level critic (turn-level GAE) trains long-horizon agents "
              "better than critic-free GRPO.",
    experiment=f"Train ppo_gae and grpo (score=return) with the same budget on the {_FL}; "
               "final test success at temperature 1 over 100 tasks.",
    metric="final success: ppo_gae - grpo", run=ppo_gae_vs_grpo, budget="~4 min/seed",
)  # fmt: skip
BILEVEL_GAE_VS_TURN_GAE = Claim(
    name="bilevel-gae-vs-turn-gae", method="bilevel_gae",
    paper="Wang et al. 2025, RAGEN, arXiv 2504.20073; RAGEN:docs/updates.md, 2025-05-06",
    statement="Bi-level GAE (turn-level GAE, then token-level GAE inside each turn) improves on "
              "plain turn-level GAE.",
    experiment=f"Train bilevel_gae and ppo_gae with the same budget on the {_FL}.",
    metric="final success: bilevel_gae - ppo_gae", run=bilevel_vs_turn_gae, budget="~4 min/seed",
)  # fmt: skip
ODYSSEUS_LIGHT_CRITIC = Claim(
    name="odysseus-light-critic", method="odysseus",
    paper="Shi et al. 2026, Odysseus, arXiv 2605.00347 (abstract: a lightweight turn-level "
          "critic)",
    statement="A small separate critic that sees only the current observation (Odysseus' frame "
              "critic) learns useful turn values.",
    experiment=f"Train odysseus for half the budget on the {_FL}; mean explained variance "
               "of the critic's returns over the last three iterations.",
    metric="critic explained variance (last 3 iterations)", run=odysseus_critic,
    kind="mechanism", budget="~2 min/seed",
)  # fmt: skip
ARCHER_VS_GRPO = Claim(
    name="archer-vs-grpo", method="archer",
    paper="Zhou et al. 2024, ArCHer, arXiv 2402.19446, Sec. 6 (sample efficiency)",
    statement="An off-policy utterance-level critic (twin Q/V, target network, replay) makes "
              "the token policy learn faster than on-policy critic-free training.",
    experiment=f"Train archer and grpo with the same budget on the {_FL}.",
    metric="final success: archer - grpo", run=archer_vs_grpo, budget="~4 min/seed",
)  # fmt: skip
SEEUPO_VS_GRPO = Claim(
    name="seeupo-vs-grpo", method="seeupo",
    paper="SeeUPO, arXiv 2602.06554 (reverse-order sequential updates, monotone improvement)",
    statement="Updating turns in reverse order with the clipped sequence-ratio correction "
              "trains multi-turn agents better than a joint GRPO update.",
    experiment=f"Train seeupo and grpo with the same budget on the {_FL}.",
    metric="final success: seeupo - grpo", run=seeupo_vs_grpo, budget="~4 min/seed",
)  # fmt: skip
HIPER_SEGMENT_VARIANCE = Claim(
    name="hiper-segment-variance", method="hiper",
    paper="HiPER, arXiv 2602.16165 (HAE lowers the variance of advantage estimates)",
    statement="Bootstrapping from the high-level value at subgoal boundaries (HAE) gives turn "
              "advantages with lower variance than flat GAE with the same critic.",
    experiment="Household level 0, 12 tasks x 8 episodes of the oracle with 50% random "
               "admissible actions, written in the switch/subgoal format (a go-to opens a "
               "subgoal); a tabular critic fitted on the batch (mean reward-to-go per state "
               "key) serves both estimators.",
    metric="1 - var(A_low of HAE) / var(flat GAE)", run=hiper_variance, kind="mechanism",
    budget="~20 s/seed",
)  # fmt: skip
TREE_MORE_EPISODES = Claim(
    name="tree-more-episodes-per-step", method="tree_grpo",
    paper="Ji et al. 2025, Tree-GRPO, arXiv 2509.21240 (more rollouts for the same budget)",
    statement="Branching episodes from env snapshots yields more episodes per env step than "
              "independent rollouts, because shared prefixes are not replayed.",
    experiment="Untrained tiny model on 24 tasks of 4x4 FrozenLake: groups of 8 independent "
               "episodes vs trees of 4 roots + 4 branches at the least certain turns.",
    metric="episodes per env step: tree / plain - 1", run=tree_more_episodes, kind="mechanism",
    budget="~30 s/seed",
)  # fmt: skip
TREE_ZERO_ADVANTAGE = Claim(
    name="tree-zero-advantage-groups", method="tree_grpo",
    paper="Ji et al. 2025, Tree-GRPO, arXiv 2509.21240; Wu et al. 2025, DeepSearch, arXiv "
          "2509.25454 (search finds learning signal where sampling does not)",
    statement="Tree groups (branching at uncertain turns, advantages compared among siblings) "
              "leave fewer groups without any learning signal than plain groups of the same "
              "size.",
    experiment="As tree-more-episodes-per-step; zero-advantage group share under grpo (plain) "
               "and tree_grpo (trees).",
    metric="zero-advantage group share: plain - tree", run=tree_zero_advantage,
    kind="mechanism", budget="~30 s/seed",
)  # fmt: skip
