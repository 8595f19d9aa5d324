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
