"""The claim registry behind ``turngym repro``: what each method's paper claims, in miniature.

A :class:`Claim` is one sentence from a paper (GiGPO beats GRPO on long horizons; MC-GRPO
flips fewer advantage signs at G = 2; ...) paired with a small experiment that tests it on
this machine: ``run(seed)`` returns a :class:`Measurement` whose ``effect`` is positive when
the seed's outcome supports the claim. :mod:`turngym.repro.runner` runs the seeds, puts a
95% interval around the mean effect and calls the verdict (``shown``, ``not shown`` or
``refuted``).

Claims are registered by name. Built-in claims live in :mod:`turngym.repro.claims` modules
and are registered as lazy ``"module:attr"`` strings, so importing this module imports no
experiment; third-party packages add theirs through the ``turngym.claims`` entry-point group.

Example:
    >>> claim = Claim(name="toy", method="grpo", paper="-", statement="s", experiment="e",
    ...               metric="m", run=lambda seed: Measurement(1.0))
    >>> claim.measure(0).effect
    1.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from turngym.registry import Registry, import_string

__all__ = ["Claim", "Measurement", "claim_registry", "register_claim", "get_claim"]


@dataclass(frozen=True)
class Measurement:
    """What one seed of a claim's experiment measured.

    Attributes:
        effect: Signed effect; positive supports the claim (e.g. ``success(gigpo) -
            success(grpo)``, or ``flips(grpo) - flips(mc_grpo)``).
        details: Named numbers behind the effect (both arms' values, counts, ...), kept in
            the report.
    """

    effect: float
    details: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"effect": float(self.effect),
                "details": {str(k): float(v) for k, v in self.details.items()}}  # fmt: skip


@dataclass(frozen=True)
class Claim:
    """A paper's claim and the miniature experiment that tests it.

    Attributes:
        name: Registry key, lowercase with dashes (``"gigpo-long-horizon"``).
        method: The turngym method the claim is about (an estimator name, usually).
        paper: Citation: authors, year, title or arXiv id, and where the claim is made.
        statement: The claim in one sentence, in our words.
        experiment: What the miniature experiment does, in one or two sentences.
        metric: What ``effect`` measures, e.g. ``"final success: gigpo - grpo"``.
        run: ``seed -> Measurement``, or a lazy ``"module:function"`` string. Must be
            deterministic for a seed and must not use global RNGs.
        seeds: Seeds run by default (at least three for a verdict with an interval).
        kind: ``"outcome"`` (success, return) or ``"mechanism"`` (zero-advantage groups,
            sign flips, entropy: what the method says it changes).
        budget: Rough wall time per seed on 2 CPU cores, shown by ``turngym repro --list``.
    """

    name: str
    method: str
    paper: str
    statement: str
    experiment: str
    metric: str
    run: Callable[[int], Measurement] | str
    seeds: tuple[int, ...] = (0, 1, 2)
    kind: Literal["outcome", "mechanism"] = "outcome"
    budget: str = ""

    def measure(self, seed: int) -> Measurement:
        """Run the experiment for one seed."""
        run = import_string(self.run) if isinstance(self.run, str) else self.run
        result = run(seed)
        if not isinstance(result, Measurement):
            raise TypeError(
                f"claim {self.name!r}: run({seed}) returned {type(result).__name__}, "
                "expected a Measurement"
            )
        return result

    def to_dict(self) -> dict[str, Any]:
        """JSON form (without the callable)."""
        run = self.run
        if not isinstance(run, str):
            run = f"{run.__module__}:{run.__qualname__}"
        return {"name": self.name, "method": self.method, "paper": self.paper,
                "statement": self.statement, "experiment": self.experiment,
                "metric": self.metric, "run": run, "seeds": list(self.seeds),
                "kind": self.kind, "budget": self.budget}  # fmt: skip


claim_registry: Registry[Claim] = Registry("claim", group="turngym.claims")
"""Claims by name (built-ins are registered lazily below)."""

# Built-in claims: name -> "module:attr" of a Claim object. Each method family keeps its
# claims in one module of turngym.repro.claims.
_BUILTINS: dict[str, str] = {
    "mc-grpo-sign-flips": "turngym.repro.claims.baselines:MC_GRPO_SIGN_FLIPS",
    "trloo-unbiased": "turngym.repro.claims.baselines:TRLOO_UNBIASED",
    "a-grae-hard-focus": "turngym.repro.claims.baselines:A_GRAE_HARD_FOCUS",
    "gigpo-long-horizon": "turngym.repro.claims.training:GIGPO_LONG_HORIZON",
    "epo-entropy": "turngym.repro.claims.training:EPO_ENTROPY",
    "ppo-gae-vs-grpo-long-horizon": "turngym.repro.claims.critic:PPO_GAE_LONG_HORIZON",
    "bilevel-gae-vs-turn-gae": "turngym.repro.claims.critic:BILEVEL_GAE_VS_TURN_GAE",
    "odysseus-light-critic": "turngym.repro.claims.critic:ODYSSEUS_LIGHT_CRITIC",
    "archer-vs-grpo": "turngym.repro.claims.critic:ARCHER_VS_GRPO",
    "seeupo-vs-grpo": "turngym.repro.claims.critic:SEEUPO_VS_GRPO",
    "hiper-segment-variance": "turngym.repro.claims.critic:HIPER_SEGMENT_VARIANCE",
    "tree-more-episodes-per-step": "turngym.repro.claims.critic:TREE_MORE_EPISODES",
    "tree-zero-advantage-groups": "turngym.repro.claims.critic:TREE_ZERO_ADVANTAGE",
    # Structured rewards, judges and memory across iterations (issue 16).
    "rank-grpo-item-credit": "turngym.repro.claims.structured:RANK_GRPO",
    "f-grpo-phase-credit": "turngym.repro.claims.structured:F_GRPO",
    "matchtir-turn-signal": "turngym.repro.claims.structured:MATCHTIR",
    "mapo-judged-turns": "turngym.repro.claims.structured:MAPO",
    "scrl-partial-progress": "turngym.repro.claims.structured:SCRL",
    "pre-grpo-peak-credit": "turngym.repro.claims.structured:PRE_GRPO",
    "slea-rl-step-clusters": "turngym.repro.claims.memory:SLEA_RL",
    "pipo-verifies-updates": "turngym.repro.claims.memory:PIPO",
    "r3-replay-restores-gaps": "turngym.repro.claims.memory:R3",
    "skill-r1-recurrent-skills": "turngym.repro.claims.memory:SKILL_R1",
    "ufo-penalises-repeats": "turngym.repro.claims.memory:UFO",
    "igpo-fewer-zero-advantage-groups": "turngym.repro.claims.probes:IGPO_ZERO_ADVANTAGE",
    "siop-verifier-free-credit": "turngym.repro.claims.probes:SIOP_VERIFIER_FREE",
    "pbsd-credit-without-outcome-spread": "turngym.repro.claims.probes:PBSD_DENSE_CREDIT",
    "infopo-intrinsic-where-outcomes-tie": "turngym.repro.claims.probes:INFOPO_GATE",
}


def register_claim(claim: Claim) -> Claim:
    """Register ``claim`` under ``claim.name`` (a different claim under a taken name raises)."""
    claim_registry.register(claim.name, claim)
    return claim


def get_claim(name: str) -> Claim:
    """The claim registered as ``name``.

    Raises:
        turngym.registry.UnknownNameError: Unknown name (did-you-mean and the known names).
    """
    return claim_registry.get(name)


for _name, _target in _BUILTINS.items():
    claim_registry.register(_name, _target)
