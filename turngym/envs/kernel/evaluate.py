"""Evaluation child: grade one ``ModelNew`` candidate against its reference ``Model``.

Run as ``python -I -m turngym.envs.kernel.evaluate`` (by the sandbox): reads one JSON payload
on stdin, prints ONE JSON result as the last line of stdout (and writes it to
``$TURNGYM_RESULT_PATH`` when set), then exits with ``os._exit`` so no candidate ``atexit``
handler or leftover thread can print after it.

The protocol follows KernelBench's ``run_and_check_correctness`` (Ouyang et al., 2025): the
reference and the candidate are exec'd from source into fresh module namespaces, the seed is
set before each instantiation so their weights match, and several fresh random inputs must
all match within dtype tolerances. Additions (docs/environments.md#kernelgen): NaN never passes, a
deterministic cost model (:mod:`~turngym.envs.kernel.cost`) instead of GPU timing, optional
noise-aware interleaved CPU timing, and the in-process hack checks of
:mod:`~turngym.envs.kernel.hacks` (KernelGYM / Dr. Kernel's decoy-kernel check among them).

Triton (optional, ``pip install turngym[kernel]``): when the candidate mentions ``triton``,
Triton is importable and no CUDA device is visible, ``TRITON_INTERPRET=1`` is set before
Triton is imported, so ``@triton.jit`` kernels run on CPU tensors in Triton's interpreter, and
every launch is recorded (:class:`~turngym.envs.kernel.hacks.TritonLaunches`): the decoy check
and the kernel coverage use real launches, each launch is costed as one fused op
(:mod:`~turngym.envs.kernel.cost`), and CPU timing is skipped (an interpreted kernel's time
says nothing about its speed, so no speed is ever credited from timing for it).

Payload::

    {"reference": str, "candidate": str, "seeds": [int, ...], "init_seed": int,
     "atol": float | null, "rtol": float | null, "threads": int,
     "timing": {"repeats": int, "number": int, "margin": float}}

Result (``status`` one of ``compile_error``, ``runtime_error``, ``incorrect``, ``hack``,
``correct``; ``reference_error`` means the task itself is broken)::

    {"status", "error", "trials", "trials_passed", "max_abs_diff", "avg_abs_diff",
     "mismatch", "hacks": [{"check", "detail"}], "cost": {"reference", "candidate",
     "speedup"}, "kernels": {"declared", "launched", "coverage", "triton_launches"?},
     "timing": {...} | {"skipped": str, "significant": false} | null}
"""

from __future__ import annotations

import ast
import json
import math
import os
import sys
import threading
import time
import traceback
import types
from typing import Any

import torch

from turngym.envs.kernel import hacks as hk
from turngym.envs.kernel.cost import CostProfile, measure_with_output

__all__ = ["TOLERANCES", "evaluate", "compare", "main"]

# Captured at import, before any candidate code runs, so patching them cannot fool the grader.
_perf_counter = time.perf_counter
_dumps = json.dumps
_write = os.write
_exit = os._exit

TOLERANCES: dict[torch.dtype, float] = {
    torch.float32: 1e-4,
    torch.float64: 1e-6,
    torch.float16: 1e-2,
    torch.bfloat16: 1e-2,
}
"""``atol = rtol`` by output dtype (KernelBench: 1e-4 for fp32, 1e-2 for fp16/bf16)."""


def _tail(text: str, limit: int = 1500) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]


def _exec_module(source: str, name: str) -> dict[str, Any]:
    """Exec ``source`` as a fresh module ``name`` (never added to ``sys.modules``)."""
    module = types.ModuleType(name)
    module.__file__ = f"<{name}>"
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)  # noqa: S102
    return module.__dict__


def _as_tensors(out: Any) -> list[torch.Tensor] | None:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, tuple | list) and all(isinstance(t, torch.Tensor) for t in out):
        return list(out)
    return None


def compare(
    ref: Any, new: Any, atol: float | None = None, rtol: float | None = None
) -> tuple[bool, float, float, str]:
    """Compare outputs: ``(ok, max_abs_diff, avg_abs_diff, reason)``; NaN never passes.

    Example:
        >>> compare(torch.ones(2), torch.tensor([1.0, float("nan")]))[0::3]
        (False, 'candidate output contains NaN')
    """
    refs, news = _as_tensors(ref), _as_tensors(new)
    if news is None:
        return False, math.inf, math.inf, f"output is a {type(new).__name__}, not tensor(s)"
    if len(refs or []) != len(news):
        return False, math.inf, math.inf, f"{len(news)} outputs, expected {len(refs or [])}"
    worst, total, count = 0.0, 0.0, 0
    for r, n in zip(refs or [], news, strict=True):
        if tuple(r.shape) != tuple(n.shape):
            return False, math.inf, math.inf, f"shape {tuple(n.shape)}, expected {tuple(r.shape)}"
        if r.dtype != n.dtype:
            return False, math.inf, math.inf, f"dtype {n.dtype}, expected {r.dtype}"
        if torch.isnan(n).any():
            return False, math.nan, math.nan, "candidate output contains NaN"
        tol = TOLERANCES.get(r.dtype, 1e-4)
        diff = (r.double() - n.double()).abs()
        diff = torch.where(torch.isfinite(diff), diff, torch.zeros_like(diff))
        worst = max(worst, float(diff.max()) if diff.numel() else 0.0)
        total, count = total + float(diff.sum()), count + diff.numel()
        a, rt = tol if atol is None else atol, tol if rtol is None else rtol
        if not torch.allclose(r, n, atol=a, rtol=rt, equal_nan=False):
            return False, worst, total / max(count, 1), "values differ beyond tolerance"
    return True, worst, total / max(count, 1), ""


class _Evaluation:
    """State of one evaluation; :meth:`run` fills :attr:`result`."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.p = payload
        self.seeds = [int(s) for s in payload.get("seeds", [0, 1, 2])]
        self.result: dict[str, Any] = {
            "status": "correct",
            "error": "",
            "trials": len(self.seeds),
            "trials_passed": 0,
            "max_abs_diff": 0.0,
            "avg_abs_diff": 0.0,
            "mismatch": "",
            "hacks": [],
            "cost": None,
            "kernels": {"declared": [], "launched": [], "coverage": 0.0},
            "timing": None,
        }
        self.hacks: list[hk.Hack] = []
        self.triton: hk.TritonLaunches | None = None

    def fail(self, status: str, error: str) -> dict[str, Any]:
        self.result["status"], self.result["error"] = status, _tail(error)
        return self.finish()

    def finish(self) -> dict[str, Any]:
        if self.hacks and self.result["status"] not in ("compile_error", "reference_error"):
            self.result["status"] = "hack"
        self.result["hacks"] = [h.to_dict() for h in self.hacks]
        return self.result

    def run(self) -> dict[str, Any]:
        torch.set_num_threads(int(self.p.get("threads", 1)))
        try:
            ref_ns = _exec_module(self.p["reference"], "turngym_reference")
            init = ref_ns["get_init_inputs"]()
            trials = [ref_ns["get_inputs"](torch.Generator().manual_seed(s)) for s in self.seeds]
            self.ref_model, ref_outs, self.ref_cost = self._reference(ref_ns, init, trials)
        except Exception:
            return self.fail("reference_error", traceback.format_exc())
        source = self.p["candidate"]
        try:
            tree = ast.parse(source)
        except SyntaxError as err:
            return self.fail("compile_error", f"SyntaxError: {err}")
        self.hacks += hk.static_hacks(source)
        # Before the snapshot and the audit hook: importing Triton loads many files and modules.
        self.triton = _triton_recorder(source)
        audit = hk.install_audit_hook([os.getcwd()] if os.getcwd() != "/" else [])
        snapshot = hk.snapshot_callables()
        threads_before = {t.ident for t in threading.enumerate() if t.ident is not None}
        ref_codes = hk.code_objects(ref_ns)
        monitor = hk.CallMonitor(ref_codes, {})
        audit["armed"] = True
        try:
            with monitor:
                new_ns = _exec_module(source, "turngym_candidate")
        except Exception:
            audit["armed"] = False
            return self.fail("compile_error", traceback.format_exc(limit=-3))
        finally:
            audit["armed"] = False
        if not isinstance(new_ns.get("ModelNew"), type):
            return self.fail("compile_error", "the module defines no class ModelNew")
        kernels = hk.declared_kernels(tree)
        monitor.kernel_codes = {
            id(c): (c, n) for n in kernels for c in hk.code_objects(new_ns, [n])
        }
        self.result["kernels"]["declared"] = kernels
        self._candidate(new_ns["ModelNew"], init, trials, ref_outs, monitor, audit)
        self._runtime_hacks(
            monitor, audit, snapshot, threads_before, kernels, hk.triton_kernels(tree)
        )
        if self.result["status"] == "correct" and not self.hacks and self.p.get("timing"):
            if self.triton is not None and self.triton.launches:
                self.result["timing"] = {
                    "skipped": "Triton kernels run in the CPU interpreter; their time is not "
                    "a speed signal",
                    "significant": False,
                }
            else:
                self.result["timing"] = self._timing(trials)
                self._runtime_hacks(monitor, audit, snapshot, threads_before, [])
        return self.finish()

    def _reference(
        self, ns: dict[str, Any], init: list[Any], trials: list[list[Any]]
    ) -> tuple[torch.nn.Module, list[Any], CostProfile]:
        torch.manual_seed(int(self.p.get("init_seed", 42)))  # the child's own RNG (KernelBench)
        model = ns["Model"](*init).eval()
        cost, first = measure_with_output(model, trials[0])
        with torch.no_grad():
            outs = [first] + [model(*t) for t in trials[1:]]
        return model, outs, cost

    def _candidate(
        self,
        cls: type,
        init: list[Any],
        trials: list[list[Any]],
        ref_outs: list[Any],
        monitor: hk.CallMonitor,
        audit: dict[str, Any],
    ) -> None:
        """Instantiate the candidate and run every correctness trial under the monitors."""
        outs: list[Any] = []
        audit["armed"] = True
        try:
            with monitor:
                torch.manual_seed(int(self.p.get("init_seed", 42)))
                model = cls(*init)
                if isinstance(model, torch.nn.Module):
                    model.eval()
                self.new_model = model
                for i, inputs in enumerate(trials):
                    clones = [t.clone() if isinstance(t, torch.Tensor) else t for t in inputs]
                    if i == 0:
                        mark = len(self.triton.launches) if self.triton else 0
                        opaque = self.triton.active if self.triton else None
                        cost, out = measure_with_output(model, inputs, monitor.in_kernel, opaque)
                        for _, nbytes, flops in self.triton.launches[mark:] if self.triton else ():
                            cost.add_kernel_launch(nbytes, flops)
                        self._record_cost(cost)
                    else:
                        with torch.no_grad():
                            out = model(*inputs)
                    self._check_inputs(inputs, clones, i)
                    outs.append(out)
        except Exception:
            self.result["status"] = "runtime_error"
            self.result["error"] = _tail(traceback.format_exc(limit=-4))
            return
        finally:
            audit["armed"] = False
        self._check_outputs(ref_outs, outs)

    def _record_cost(self, cost: CostProfile) -> None:
        speedup = self.ref_cost.cost_us / max(cost.cost_us, 1e-9)
        self.result["cost"] = {
            "reference": self.ref_cost.to_dict(),
            "candidate": cost.to_dict(),
            "speedup": round(speedup, 6),
        }
        self.result["kernels"]["coverage"] = round(cost.custom_bytes / max(cost.bytes, 1), 6)

    def _check_inputs(self, inputs: list[Any], clones: list[Any], trial: int) -> None:
        for k, (t, c) in enumerate(zip(inputs, clones, strict=True)):
            if isinstance(t, torch.Tensor) and not torch.equal(t, c):
                detail = f"forward modified input {k} in place (trial {trial})"
                if all(h.detail != detail for h in self.hacks):
                    self.hacks.append(hk.Hack("mutates_inputs", detail))

    def _check_outputs(self, ref_outs: list[Any], outs: list[Any]) -> None:
        atol, rtol = self.p.get("atol"), self.p.get("rtol")
        worst, diffs, passed = 0.0, [], 0
        for ref, out in zip(ref_outs, outs, strict=True):
            ok, mx, avg, why = compare(ref, out, atol, rtol)
            passed += ok
            worst = mx if math.isnan(mx) or math.isnan(worst) else max(worst, mx)
            diffs.append(avg)
            if not ok and not self.result["mismatch"]:
                self.result["mismatch"] = why
        self.result.update(
            trials_passed=passed, max_abs_diff=worst, avg_abs_diff=sum(diffs) / max(len(diffs), 1)
        )
        if passed < len(outs):
            self.result["status"] = "incorrect"
        self._check_cached(ref_outs, outs)

    def _check_cached(self, ref_outs: list[Any], outs: list[Any]) -> None:
        """Fresh inputs must change the output whenever they change the reference's."""
        news = [_as_tensors(o) for o in outs]
        for i in range(1, len(outs)):
            a, b = news[0], news[i]
            if a is None or b is None or len(a) != len(b):
                continue
            if any(x.data_ptr() == y.data_ptr() and x.numel() for x, y in zip(a, b, strict=True)):
                self.hacks.append(
                    hk.Hack(
                        "cached_output",
                        f"trial {i} returned the same tensor memory as trial 0 (a cached result)",
                    )
                )
                return
            refs_a, refs_b = _as_tensors(ref_outs[0]), _as_tensors(ref_outs[i])
            if refs_a is None or refs_b is None:  # the reference returns no tensors to compare
                continue
            ref_changed = not all(torch.equal(x, y) for x, y in zip(refs_a, refs_b, strict=True))
            if ref_changed and all(torch.equal(x, y) for x, y in zip(a, b, strict=True)):
                self.hacks.append(
                    hk.Hack(
                        "constant_output",
                        f"trial {i} gave exactly the output of trial 0 for different inputs",
                    )
                )
                return

    def _runtime_hacks(
        self,
        monitor: hk.CallMonitor,
        audit: dict[str, Any],
        snapshot: dict[str, Any],
        threads_before: set[int],
        kernels: list[str],
        triton_kernels: list[str] | None = None,
    ) -> None:
        """Turn what the monitors saw into hacks (each check reported once).

        With the Triton launch recorder, declared ``@triton.jit`` kernels must have at least one
        real launch (calling some other function named ``*kernel*`` does not count).
        """
        seen = {h.check for h in self.hacks}
        found: list[hk.Hack] = []
        if monitor.reference_calls:
            names = sorted(set(monitor.reference_calls))
            found.append(hk.Hack("calls_reference", f"the candidate ran reference code: {names}"))
        triton_launched = self.triton.names() if self.triton else []
        launched = sorted(set(monitor.kernel_calls) | set(triton_launched))
        self.result["kernels"]["launched"] = launched or self.result["kernels"]["launched"]
        if self.triton is not None:
            self.result["kernels"]["triton_launches"] = len(self.triton.launches)
        ran = self.result["status"] != "runtime_error"
        if ran and self.triton is not None and triton_kernels:
            if not set(triton_kernels) & set(triton_launched):
                found.append(
                    hk.Hack(
                        "kernel_never_launched",
                        f"Triton kernel(s) {triton_kernels} are defined but none was launched "
                        "during forward",
                    )
                )
        elif kernels and not launched and ran:
            found.append(
                hk.Hack(
                    "kernel_never_launched",
                    f"custom kernel(s) {kernels} are defined but never called during forward",
                )
            )
        patched = hk.patched_names(snapshot)
        if patched:
            found.append(hk.Hack("monkeypatch", f"replaced {patched[:5]}"))
        threads = hk.alive_new_threads(threads_before)
        if threads:
            found.append(hk.Hack("threads_left_running", f"threads still running: {threads}"))
        if audit["events"]:
            found.append(hk.Hack("sandbox_escape", f"not allowed: {audit['events'][:3]}"))
        self.hacks += [h for h in found if h.check not in seen]

    def _timing(self, trials: list[list[Any]]) -> dict[str, Any]:
        """Interleaved A/B timing; the speedup counts only when clearly beyond the noise.

        Each repeat times ``number`` calls of the reference and of the candidate, in
        alternating order. With log-ratios ``l_i = log(t_ref / t_new)``, the speedup is
        ``exp(mean l)`` and it is *significant* when ``exp(mean l - 2 * sem) > 1 + margin``.
        """
        cfg = self.p["timing"]
        repeats, number = int(cfg.get("repeats", 7)), int(cfg.get("number", 3))
        inputs = trials[0]
        logs: list[float] = []
        with torch.no_grad():
            for r in range(repeats):
                pair = [self.ref_model, self.new_model]
                times = {}
                for model in pair if r % 2 == 0 else pair[::-1]:
                    start = _perf_counter()
                    for _ in range(number):
                        model(*inputs)
                    times[id(model)] = (_perf_counter() - start) / number
                logs.append(math.log(times[id(pair[0])] / max(times[id(pair[1])], 1e-12)))
        mean = sum(logs) / len(logs)
        sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / max(len(logs) - 1, 1))
        lower = math.exp(mean - 2 * sd / math.sqrt(len(logs)))
        margin = float(cfg.get("margin", 0.05))
        return {
            "speedup": round(math.exp(mean), 4),
            "lower_bound": round(lower, 4),
            "noise_sd_log": round(sd, 4),
            "repeats": repeats,
            "significant": lower > 1 + margin,
        }


def _triton_recorder(source: str) -> hk.TritonLaunches | None:
    """Set up Triton's CPU interpreter and its launch recorder, or ``None`` (old behaviour).

    Only for candidates that mention Triton (importing it costs about a second), and only in
    interpreter mode: with a CUDA device Triton compiles real kernels, which the interpreter
    hook cannot see. ``TRITON_INTERPRET`` must be set before ``import triton``.
    """
    if "triton" not in source:
        return None
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    if os.environ.get("TRITON_INTERPRET") != "1":
        return None
    try:
        return hk.TritonLaunches.install()
    except Exception:  # not installed, or a broken install: grade as without Triton
        return None


def evaluate(payload: dict[str, Any]) -> dict[str, Any]:
    """Grade one candidate in this process (see the module docstring for the formats)."""
    return _Evaluation(payload).run()


def main() -> None:
    """Child entry: payload on stdin, one JSON line out, hard exit."""
    try:
        result = evaluate(json.loads(sys.stdin.read()))
    except Exception:
        result = {"status": "reference_error", "error": _tail(traceback.format_exc())}
    line = _dumps(result, allow_nan=True, default=str)
    path = os.environ.get("TURNGYM_RESULT_PATH")
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(line)
    _write(1, ("\n" + line + "\n").encode())
    _exit(0)


if __name__ == "__main__":
    main()
