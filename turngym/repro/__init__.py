"""Reproduction of the papers' claims in miniature: a claim registry and ``turngym repro``.

See :mod:`turngym.repro.registry` (what a claim is) and :mod:`turngym.repro.runner` (how
claims are run and judged).
"""

from __future__ import annotations

from turngym.repro.registry import Claim, Measurement, claim_registry, get_claim, register_claim

__all__ = ["Claim", "Measurement", "claim_registry", "get_claim", "register_claim"]
