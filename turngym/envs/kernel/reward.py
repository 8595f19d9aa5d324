"""KernelGYM-shaped reward for one evaluated candidate.

KernelGYM / Dr. Kernel (hkust-nlp/KernelGYM, ``rewards/reward_client.py:
calculate_reward_weighted``) scores a kernel as::

    R = 0.5 * correct + 0.5 * 1[speedup >= 1 + eps]  (+ 0.25 * coverage if enabled)

with a failed task or a decoy kernel scored 0. KernelBench (Ouyang et al., 2025) reports the
same two events as ``fast_0`` (correct) and ``fast_1`` (correct and faster). We keep that shape
(docs/environments.md#kernelgen):

* ``R = 0`` unless the status is ``correct`` (compile or runtime errors, a mismatch on any
  trial, and every detected hack score 0);
* ``correct``: ``correct_weight`` (0.5);
* ``faster``: ``speed_weight`` (0.5) if the candidate is faster, judged by ``speed_signal``:
  ``"cost"`` (default, deterministic): the *verified* cost-model speedup (the candidate's
  traced graph replayed outside its process, :mod:`~turngym.envs.kernel.grader`) is
  ``>= speedup_threshold`` (1.05: a rewrite that only reshuffles the same ops is exactly
  1.0); ``"timing"``: the interleaved timing speedup is significant (its lower confidence
  bound beats ``1 + margin``); ``"both"``: both must hold;
* ``coverage``: ``coverage_weight`` (0 by default; KernelGYM uses 0.25) times the share of the
  candidate's bytes moved inside its declared custom kernels. This share is measured inside
  the candidate's own process (as KernelGYM's profiler does), so it is the candidate's claim:
  keep ``coverage_weight`` at 0 against adversarial policies.

Example:
    >>> ok = {"status": "correct", "cost": {"speedup": 1.3}, "kernels": {"coverage": 0.0}}
    >>> kernel_reward(ok)
    {'correct': 0.5, 'faster': 0.5, 'coverage': 0.0}
    >>> kernel_reward({"status": "hack"})
    {'correct': 0.0, 'faster': 0.0, 'coverage': 0.0}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SPEED_SIGNALS", "is_faster", "kernel_reward"]

SPEED_SIGNALS = ("cost", "timing", "both")
"""Accepted values of ``speed_signal``."""


def is_faster(
    result: Mapping[str, Any], *, speedup_threshold: float = 1.05, speed_signal: str = "cost"
) -> bool:
    """Whether an evaluated candidate counts as faster than the reference.

    Args:
        result: The evaluation child's result dict.
        speedup_threshold: Minimum cost-model speedup.
        speed_signal: One of :data:`SPEED_SIGNALS`.
    """
    if speed_signal not in SPEED_SIGNALS:
        raise ValueError(f"speed_signal={speed_signal!r}; use one of {SPEED_SIGNALS}.")
    cost = result.get("cost") or {}
    # Only a cost the grader measured itself counts (a replayed graph); a Triton candidate's
    # in-process claim is reported with ``verified: False`` and never earns speed credit.
    verified = cost.get("verified", True) is True
    by_cost = verified and float(cost.get("speedup") or 0.0) >= speedup_threshold
    timing = result.get("timing") or {}
    by_timing = bool(timing.get("significant", False))
    if speed_signal == "cost":
        return by_cost
    if speed_signal == "timing":
        return by_timing
    return by_cost and by_timing


def kernel_reward(
    result: Mapping[str, Any],
    *,
    correct_weight: float = 0.5,
    speed_weight: float = 0.5,
    coverage_weight: float = 0.0,
    speedup_threshold: float = 1.05,
    speed_signal: str = "cost",
) -> dict[str, float]:
    """The reward components of one evaluated candidate; their sum is the reward.

    Args:
        result: The evaluation child's result dict.
        correct_weight: Reward for a correct candidate.
        speed_weight: Extra reward for a correct and faster one.
        coverage_weight: Weight of the custom-kernel share of bytes moved.
        speedup_threshold: Minimum cost-model speedup for ``faster``.
        speed_signal: See the module docstring.

    Returns:
        ``{"correct", "faster", "coverage"}``.
    """
    if result.get("status") != "correct":
        return {"correct": 0.0, "faster": 0.0, "coverage": 0.0}
    faster = is_faster(result, speedup_threshold=speedup_threshold, speed_signal=speed_signal)
    coverage = float((result.get("kernels") or {}).get("coverage") or 0.0)
    return {
        "correct": float(correct_weight),
        "faster": float(speed_weight) if faster else 0.0,
        "coverage": float(coverage_weight) * coverage,
    }
