"""Claims of the probe-based credit methods (IGPO, SIOP, PBSD, InfoPO), tested in miniature.

Each seed collects one batch with a *mixed* policy: every action is the env's oracle action
with probability ``p_oracle`` and the tiny model's own sample otherwise, so a group holds
both solved and failed episodes, as a partly trained agent's would. Oracle actions are
written as token traces of the same tiny model (its prompt, the action's tokens), so the
probes score them like sampled ones. The probe-based estimator and GRPO then assign credit to
the *same* batch, with the trainer's own probe machinery, and the claim compares the two.
These are mechanism claims: what each method changes in the credit, not end performance.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from turngym.agents.base import ActionResult
from turngym.repro.registry import Claim, Measurement
from turngym.rollout import collect
from turngym.types import Conversation, TokenTrace

__all__ = ["IGPO_ZERO_ADVANTAGE", "SIOP_VERIFIER_FREE", "PBSD_DENSE_CREDIT", "INFOPO_GATE"]

_SEARCH = {"env": "turngym/SearchQA-v0", "env_options": {"level": 0}, "response_prefix": "",
           "stop": ("</search>", "</answer>"), "history": None}  # fmt: skip
_GUESS = {"env": "turngym/TwentyQuestions-v0", "env_options": {"level": 0}}


class MixedAgent:
    """The tiny policy, overruled by the env's oracle with probability ``p_oracle`` per action.

    Oracle actions get a :class:`~turngym.types.TokenTrace` from the policy's tokenizer
    (without sampling log-probabilities), so probes and training treat them like samples.
    """

    def __init__(self, policy: Any, p_oracle: float, seed: int) -> None:
        self.policy = policy
        self.p_oracle = p_oracle
        self.rng = np.random.default_rng([seed, 14])

    def act_batch_with_envs(
        self, conversations: Sequence[Conversation], envs: Sequence[Any]
    ) -> list[ActionResult]:
        """One action per conversation: the oracle's or the policy's."""
        sampled = self.policy.act_batch(conversations)
        out = []
        for conversation, env, own in zip(conversations, envs, sampled, strict=True):
            if self.rng.random() >= self.p_oracle:
                out.append(own)
                continue
            text = env.unwrapped.oracle_action()
            prefix = self.policy.response_prefix
            body = text[len(prefix) :] if prefix and text.startswith(prefix) else text
            tokens = self.policy.tokenizer(body, add_special_tokens=False)["input_ids"]
            trace = TokenTrace(tuple(self.policy.prompt_ids(conversation)), tuple(tokens))
            out.append(ActionResult(text, trace))
        return out


def probed_batch(
    estimator: str, seed: int, setting: dict[str, Any], *, p_oracle: float = 0.5,
    tasks: int = 6, group_size: int = 8, **params: Any,
) -> tuple[Any, Any, Any]:  # fmt: skip
    """Collect a mixed-policy batch and probe it for ``estimator``.

    Returns:
        ``(trainer, batch, ctx)``: the trainer (its resolved estimator is ``trainer.estimator``),
        the :class:`~turngym.trainers.credit.types.TurnBatch` and the credit context holding
        the probe values.
    """
    from turngym.trainers.config import TrainConfig
    from turngym.trainers.credit import TurnBatch
    from turngym.trainers.trainer import Trainer

    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(estimator=estimator, estimator_params=params, seed=seed,
                             tasks_per_iteration=tasks, group_size=group_size, max_new_tokens=8,
                             tiny_d_model=32, tiny_layers=1, out_dir=out, resume=False,
                             **setting)  # fmt: skip
        trainer = Trainer(config)
    trainer.agent.reseed(seed)
    seeds = [int(s) for s in np.random.default_rng([seed, 1]).integers(0, 2**31 - 1, tasks)]
    groups = collect(config.env, MixedAgent(trainer.agent, p_oracle, seed), seeds, group_size,
                     split="train", options=config.env_options)  # fmt: skip
    batch = TurnBatch.from_groups(groups)
    trainer.ctx.probe = trainer.prober(batch) if trainer.prober is not None else None
    return trainer, batch, trainer.ctx


def _grpo(batch: Any) -> Any:
    from turngym.trainers.credit import CreditContext, resolve_estimator

    return resolve_estimator("grpo", {})(batch, CreditContext())


def igpo_zero_advantage(seed: int) -> Measurement:
    """Zero-advantage groups: GRPO minus IGPO, on one mixed-policy SearchQA batch."""
    trainer, batch, ctx = probed_batch("igpo", seed, _SEARCH, p_oracle=0.25)
    igpo, grpo = trainer.estimator(batch, ctx), _grpo(batch)
    zero_grpo, zero_igpo = grpo.metrics["zero_adv_group_frac"], igpo.metrics["zero_adv_group_frac"]
    return Measurement(zero_grpo - zero_igpo, {
        "zero_adv_groups_grpo": zero_grpo, "zero_adv_groups_igpo": zero_igpo,
        "success": float(np.mean(batch.episode_outcome)), "ig_mean": igpo.metrics["ig_mean"],
    })  # fmt: skip


def siop_verifier_free(seed: int) -> Measurement:
    """SIOP's first-turn advantage: solved episodes minus failed ones (no verifier used)."""
    trainer, batch, ctx = probed_batch("siop", seed, _SEARCH, p_oracle=0.3)
    credit = trainer.estimator(batch, ctx)
    first = credit.advantages[batch.episode_start[batch.episode_length > 0]]
    solved = batch.episode_outcome[batch.episode_length > 0] > 0.5
    both = solved.any() and (~solved).any()
    gap = float(first[solved].mean() - first[~solved].mean()) if both else 0.0
    return Measurement(gap, {
        "solved_first_turn_adv": float(first[solved].mean()) if solved.any() else 0.0,
        "failed_first_turn_adv": float(first[~solved].mean()) if (~solved).any() else 0.0,
        "clusters_mean": credit.metrics["clusters_mean"], "success": float(solved.mean()),
    })  # fmt: skip


def pbsd_dense_credit(seed: int) -> Measurement:
    """Zero-advantage groups: GRPO minus PBSD, on one mixed-policy TwentyQuestions batch."""
    trainer, batch, ctx = probed_batch("pbsd", seed, _GUESS, p_oracle=0.4)
    pbsd, grpo = trainer.estimator(batch, ctx), _grpo(batch)
    zero_grpo, zero_pbsd = grpo.metrics["zero_adv_group_frac"], pbsd.metrics["zero_adv_group_frac"]
    return Measurement(zero_grpo - zero_pbsd, {
        "zero_adv_groups_grpo": zero_grpo, "zero_adv_groups_pbsd": zero_pbsd,
        "credit_flip_frac": pbsd.metrics["credit_flip_frac"],
        "success": float(np.mean(batch.episode_outcome)),
    })  # fmt: skip


def infopo_gate(seed: int) -> Measurement:
    """Intrinsic share of |A| in groups without outcome spread minus in groups with spread."""
    trainer, batch, ctx = probed_batch("infopo", seed, _SEARCH, p_oracle=0.25)
    credit, grpo = trainer.estimator(batch, ctx), _grpo(batch)
    intrinsic = np.abs(credit.advantages - grpo.advantages)
    flat = np.bincount(batch.group, weights=np.abs(grpo.advantages), minlength=batch.n_groups) == 0
    uniform, spread = flat[batch.group], ~flat[batch.group]
    share_uniform = float(np.mean(intrinsic[uniform] > 1e-9)) if uniform.any() else 0.0
    share_spread = float(np.mean(intrinsic[spread] > 1e-3)) if spread.any() else 0.0
    return Measurement(share_uniform - share_spread, {
        "turns_with_intrinsic_credit_uniform_groups": share_uniform,
        "turns_with_intrinsic_credit_spread_groups": share_spread,
        "uniform_group_frac": float(flat.mean()), "gate_mean": credit.metrics["gate_mean"],
    })  # fmt: skip


IGPO_ZERO_ADVANTAGE = Claim(
    name="igpo-fewer-zero-advantage-groups",
    method="igpo",
    paper="Wang et al. 2025, Information Gain-based Policy Optimization (arXiv 2510.14967), "
    "Sec. 1 and 3: outcome rewards leave whole groups without advantage on multi-hop search",
    statement="Information-gain turn rewards leave fewer zero-advantage groups than GRPO's "
    "outcome-only advantage on multi-hop search.",
    experiment="SearchQA level 0 (2-hop), 6 tasks x G=8, mixed oracle/tiny-policy rollouts "
    "(p=0.25); IGPO (gold probed at every turn) and GRPO credit the same batch.",
    metric="zero-advantage group fraction: grpo - igpo",
    run=igpo_zero_advantage,
    kind="mechanism",
    budget="~60 s/seed",
)

SIOP_VERIFIER_FREE = Claim(
    name="siop-verifier-free-credit",
    method="siop",
    paper="SIOP, Self-Induced Outcome Potential (arXiv 2605.04984; code dl-m9/SIOP): the group's "
    "answer clusters stand in for a verifier",
    statement="Without any verifier, SIOP's turn credit ranks episodes that reach the gold "
    "answer above those that do not.",
    experiment="SearchQA level 0, 6 tasks x G=8, mixed rollouts (p=0.3); SIOP with normalised-"
    "string clusters and a frozen scorer; gold answers are only used to score the result.",
    metric="mean first-turn advantage: solved - failed episodes",
    run=siop_verifier_free,
    kind="mechanism",
    budget="~60 s/seed",
)

PBSD_DENSE_CREDIT = Claim(
    name="pbsd-credit-without-outcome-spread",
    method="pbsd",
    paper="PBSD, Privileged Bayesian Self-Distillation (arXiv 2606.09348), abstract: per-turn "
    "credits expose good steps in failed and bad steps in successful trajectories",
    statement="Teacher/student log-ratio credits give signal in groups whose outcomes are all "
    "equal, where GRPO gives none.",
    experiment="TwentyQuestions level 0, 6 tasks x G=8, mixed rollouts (p=0.4); PBSD (answer-"
    "conditioned teacher = the same model with the secret in its prompt) vs GRPO.",
    metric="zero-advantage group fraction: grpo - pbsd",
    run=pbsd_dense_credit,
    kind="mechanism",
    budget="~60 s/seed",
)

INFOPO_GATE = Claim(
    name="infopo-intrinsic-where-outcomes-tie",
    method="infopo",
    paper="InfoPO (code kfq20/InfoPO, compute_info_grpo_advantage): a variance gate makes the "
    "information-gain term act where the group's outcomes have no spread",
    statement="InfoPO's intrinsic credit reaches turns of groups with tied outcomes and stays "
    "negligible in groups whose outcomes differ.",
    experiment="SearchQA level 0, 6 tasks x G=8, mixed rollouts (p=0.25); the counterfactual "
    "pass replaces each search result by 'No information found.'; InfoPO vs GRPO, same batch.",
    metric="share of turns with intrinsic credit: tied groups - spread groups (> 1e-3)",
    run=infopo_gate,
    kind="mechanism",
    budget="~60 s/seed",
)
