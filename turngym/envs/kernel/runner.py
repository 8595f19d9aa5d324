"""Host side of kernel evaluation: pre-screen, grade from outside, cache results.

:func:`evaluate_candidate` answers at once, without a process, for candidates that cannot run
(a syntax error, no ``ModelNew``) or that the static hack checks reject (try/except, forbidden
imports, naming the reference; :func:`turngym.envs.kernel.hacks.static_hacks`), and hands
the rest to :func:`turngym.envs.kernel.grader.grade`: reference, candidate and replay each
run in their own walled child forked from the warm template, and the grader decides from
outside. What the sandbox itself caught (files written outside the working dir, processes
left running) is a ``sandbox_violation`` hack (reward 0).

Results are cached in memory by the SHA-256 of (reference, candidate, knobs): every
evaluation draws fresh unpredictable inputs, and the cache keeps an episode's record
stable when the same pair comes back (an env's determinism check, a group of rollouts of one
task, repeated submissions). Timed evaluations are never served from the cache.

Example:
    >>> evaluate_candidate("x = 1", "def broken(:")["status"]
    'compile_error'
"""

from __future__ import annotations

import ast
import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

from turngym.envs.kernel.hacks import declared_kernels, static_hacks, triton_kernels

__all__ = ["prescreen", "evaluate_candidate", "clear_cache"]

_CACHE: OrderedDict[str, dict[str, Any]] = OrderedDict()
_CACHE_SIZE = 1024
_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget every cached evaluation."""
    with _LOCK:
        _CACHE.clear()


def _blank(status: str, error: str) -> dict[str, Any]:
    return {
        "status": status,
        "error": error,
        "trials": 0,
        "trials_passed": 0,
        "max_abs_diff": None,
        "avg_abs_diff": None,
        "mismatch": "",
        "hacks": [],
        "cost": None,
        "kernels": {"declared": [], "launched": [], "coverage": 0.0},
        "timing": None,
        "sandbox": {},
    }


def prescreen(candidate: str) -> dict[str, Any] | None:
    """A ``compile_error`` result if the candidate cannot run at all, else ``None``."""
    try:
        tree = ast.parse(candidate)
    except SyntaxError as err:
        return _blank("compile_error", f"SyntaxError: {err.msg} (line {err.lineno})")
    except (ValueError, RecursionError, MemoryError) as err:  # null bytes, absurd nesting
        return _blank("compile_error", f"{type(err).__name__}: {err}")
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "ModelNew":
            return None
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "ModelNew" for t in node.targets
        ):
            return None
    return _blank("compile_error", "the module defines no class ModelNew at top level")


def _static_rejection(candidate: str) -> dict[str, Any] | None:
    """A ``hack`` result when the static checks fire (KernelBench rejects before running)."""
    found = static_hacks(candidate)
    if not found:
        return None
    result = _blank("hack", "")
    result["hacks"] = [h.to_dict() for h in found]
    return result


def evaluate_candidate(
    reference: str,
    candidate: str,
    *,
    seeds: tuple[int, ...] = (0, 1, 2),
    atol: float | None = None,
    rtol: float | None = None,
    timing: dict[str, Any] | None = None,
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    """Grade ``candidate`` against ``reference`` (both module sources); never raises.

    Args:
        reference: KernelBench-style module source (``Model``, ``get_inputs``,
            ``get_init_inputs``).
        candidate: Module source defining ``ModelNew``.
        seeds: Only its length counts: the number of correctness trials (at least 2), each
            on fresh inputs drawn from ``os.urandom`` seeds (kept for compatibility).
        atol: Absolute tolerance; ``None`` = by dtype (:data:`~turngym.envs.kernel.verdict.
            TOLERANCES`).
        rtol: Relative tolerance; ``None`` = by dtype.
        timing: ``{"repeats", "margin"}`` to also time on the CPU, or ``None``.
        timeout_s: CPU-seconds budget of each child (the evaluation's wall clock gets 1.5x).

    Returns:
        The grader's result dict (see :mod:`turngym.envs.kernel.grader`).
    """
    early = prescreen(candidate) or _static_rejection(candidate)
    if early is not None:
        return early
    knobs = {"reference": reference, "candidate": candidate, "trials": len(seeds),
             "atol": atol, "rtol": rtol, "timing": timing}
    key = hashlib.sha256(json.dumps(knobs, sort_keys=True).encode()).hexdigest()
    with _LOCK:
        cached = _CACHE.get(key)
    if cached is not None and not timing:
        return json.loads(json.dumps(cached))
    from turngym.envs.kernel.grader import grade  # imports torch: only when grading

    tree = ast.parse(candidate)
    result = grade(reference, candidate, trials=len(seeds), atol=atol, rtol=rtol, timing=timing,
                   timeout_s=timeout_s, declared=declared_kernels(tree),
                   triton_declared=triton_kernels(tree))
    result = json.loads(json.dumps(result, default=str))
    with _LOCK:
        _CACHE[key] = result
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return json.loads(json.dumps(result))
