"""Parent side of kernel evaluation: pre-screen, run the child in the sandbox, cache results.

:func:`evaluate_candidate` builds the payload of :mod:`turngym.envs.kernel.evaluate` and
answers at once, without a process, for candidates that cannot run (a syntax error, no
``ModelNew``) or that the static hack checks reject (try/except, forbidden imports, naming the
reference; :func:`turngym.envs.kernel.hacks.static_hacks`). It runs the rest in
:func:`turngym.envs.kernel.sandbox.run_in_sandbox` and folds what the sandbox itself caught
(files written outside its directory, processes left running) into the result: a sandbox
violation is a ``sandbox_violation`` hack (reward 0).

Results are cached in memory by the SHA-256 of the payload: the evaluation is a pure function of
the payload when timing is off, and an env's determinism check, a group of rollouts of one task
and repeated submissions all reuse it.

Example:
    >>> evaluate_candidate("x = 1", "def broken(:")["status"]
    'compile_error'
"""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from typing import Any

from turngym.envs.kernel.hacks import static_hacks

__all__ = ["ENTRY", "prescreen", "evaluate_candidate", "clear_cache"]

ENTRY = "turngym.envs.kernel.evaluate"
"""The child entry module."""

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


def _run_child(payload: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run the evaluation child in the sandbox (or a plain subprocess if it is missing)."""
    try:
        from turngym.envs.kernel.sandbox import SandboxLimits, run_in_sandbox
    except ImportError:
        return _run_plain(payload, timeout_s)
    # triton_interpret: Triton kernels, when a candidate has them, run in the CPU interpreter
    # (the child also sets it itself before importing Triton; harmless without Triton).
    limits = SandboxLimits(
        cpu_seconds=int(timeout_s), wall_seconds=timeout_s * 1.5, triton_interpret=True
    )
    outcome = run_in_sandbox(ENTRY, payload, limits)
    result = outcome.result if isinstance(outcome.result, dict) else None
    if result is None or "status" not in result:
        why = "timed out" if outcome.timed_out else f"exit code {outcome.exit_code}"
        result = _blank(
            "runtime_error",
            f"the evaluation process {why}, no result:\n{outcome.stderr_tail[-1200:]}",
        )
    if outcome.violations:
        result["hacks"] = [
            *result.get("hacks", []),
            {"check": "sandbox_violation", "detail": "; ".join(outcome.violations)[:500]},
        ]
        if result["status"] != "compile_error":
            result["status"] = "hack"
    return result


def _run_plain(payload: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Fallback without the sandbox: a plain ``python -I -m`` child in a temporary dir."""
    env = {
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "TRITON_INTERPRET": "1",
    }
    with tempfile.TemporaryDirectory(prefix="turngym-kernel-") as cwd:
        try:
            proc = subprocess.run(
                [sys.executable, "-I", "-m", ENTRY],
                input=json.dumps(payload),
                text=True,
                capture_output=True,
                timeout=timeout_s,
                cwd=cwd,
                env=env,
            )
        except subprocess.TimeoutExpired:
            return _blank("runtime_error", f"the evaluation timed out after {timeout_s:.0f} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.strip():
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    return _blank(
        "runtime_error", f"no result (exit code {proc.returncode}):\n{proc.stderr[-1200:]}"
    )


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
        seeds: One correctness trial per seed (fresh inputs each).
        atol: Absolute tolerance; ``None`` = by dtype (:data:`evaluate.TOLERANCES`).
        rtol: Relative tolerance; ``None`` = by dtype.
        timing: ``{"repeats", "number", "margin"}`` to also time on the CPU, or ``None``.
        timeout_s: CPU-seconds budget of the child (wall clock gets 1.5x).

    Returns:
        The child's result dict (see :mod:`turngym.envs.kernel.evaluate`).
    """
    early = prescreen(candidate) or _static_rejection(candidate)
    if early is not None:
        return early
    payload = {
        "reference": reference,
        "candidate": candidate,
        "seeds": list(seeds),
        "init_seed": 42,
        "atol": atol,
        "rtol": rtol,
        "threads": 1,
        "timing": timing,
    }
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    with _LOCK:
        cached = _CACHE.get(key)
    if cached is not None and not timing:
        return json.loads(json.dumps(cached))
    result = _run_child(payload, timeout_s)
    with _LOCK:
        _CACHE[key] = result
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return json.loads(json.dumps(result))
