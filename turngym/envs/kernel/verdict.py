"""Checks the kernel grader applies to what its children send (issue 17 item 1).

:func:`compare` (outputs against the reference's), the strict readers of a child's replies
(:func:`expect_tensors`, :func:`candidate_report`, :func:`cost_profile`) and :class:`ChildLink`,
the grader's end of one sandboxed child: requests with deadlines and the child's CPU time per
request, measured from ``/proc`` (outside the child). See :mod:`~turngym.envs.kernel.grader`.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import torch

from turngym.envs.kernel import channel as ch
from turngym.envs.kernel import forkserver as fs
from turngym.envs.kernel.cost import cost_us
from turngym.envs.kernel.sandbox import SandboxLimits

__all__ = ["TOLERANCES", "Verdict", "ChildLink", "blank_result", "compare", "fresh_seed",
           "expect_tensors", "candidate_report", "cost_profile"]

TOLERANCES: dict[torch.dtype, float] = {
    torch.float32: 1e-4,
    torch.float64: 1e-6,
    torch.float16: 1e-2,
    torch.bfloat16: 1e-2,
}
"""``atol = rtol`` by output dtype (KernelBench: 1e-4 for fp32, 1e-2 for fp16/bf16)."""
_TARGET = "turngym.envs.kernel.harness:serve"


class Verdict(Exception):
    """Ends an evaluation early with a status and an error text."""

    def __init__(self, status: str, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error


def blank_result(status: str = "correct", error: str = "") -> dict[str, Any]:
    """A result dict with every key the env and the reward read."""
    return {"status": status, "error": error, "trials": 0, "trials_passed": 0,
            "max_abs_diff": None, "avg_abs_diff": None, "mismatch": "", "hacks": [],
            "cost": None, "kernels": {"declared": [], "launched": [], "coverage": 0.0},
            "timing": None, "sandbox": {}}  # fmt: skip


def _as_list(out: Any) -> list[torch.Tensor] | None:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, tuple | list) and all(isinstance(t, torch.Tensor) for t in out):
        return list(out)
    return None


def compare(ref: Any, new: Any, atol: float | None = None,
            rtol: float | None = None) -> tuple[bool, float, float, str]:
    """Compare outputs: ``(ok, max_abs_diff, avg_abs_diff, reason)``; NaN never passes.

    ``ref`` and ``new`` are a tensor or a list of tensors (what the channel decodes).

    Example:
        >>> compare(torch.ones(2), torch.tensor([1.0, float("nan")]))[0::3]
        (False, 'candidate output contains NaN')
    """
    ref, news = _as_list(ref) or [], _as_list(new)
    if news is None:
        return False, math.inf, math.inf, f"output is a {type(new).__name__}, not tensor(s)"
    new = news
    if len(ref) != len(new):
        return False, math.inf, math.inf, f"{len(new)} outputs, expected {len(ref)}"
    worst, total, count = 0.0, 0.0, 0
    for r, n in zip(ref, new, strict=True):
        if tuple(r.shape) != tuple(n.shape):
            return False, math.inf, math.inf, f"shape {tuple(n.shape)}, expected {tuple(r.shape)}"
        if r.dtype != n.dtype:
            return False, math.inf, math.inf, f"dtype {n.dtype}, expected {r.dtype}"
        if n.is_floating_point() and torch.isnan(n).any():
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


def fresh_seed() -> int:
    """An unpredictable 63-bit seed (``os.urandom``), never from a global RNG."""
    return int.from_bytes(os.urandom(8), "little") >> 1


class ChildLink:
    """One sandboxed child seen from the grader: requests with deadlines, CPU per request."""

    def __init__(self, role: str, server: fs.ForkServer, limits: SandboxLimits,
                 deadline: float, lease: tuple[int, int] | None = None) -> None:  # fmt: skip
        self.role, self.deadline, self.pid = role, deadline, 0
        self.server, self.limits = server, limits
        self.proc = server.spawn(_TARGET, {"role": role}, limits, lease)
        self.cpu: dict[str, list[float]] = {}
        self.init: list = []
        self.init_seed = 0

    def hello(self) -> None:
        """Read the child's first byte: the kernel says its pid (for the CPU readings)."""
        self.pid = ch.read_hello(self.proc.channel, max(0.1, self.deadline - time.monotonic()))
        self.cpu["hello"] = [ch.cpu_time(self.pid) or 0.0]

    def ask(self, header: dict, tensors: list[torch.Tensor] | None = None, *,
            max_bytes: int = 64 << 20, label: str = "") -> tuple[dict, bytearray]:
        """Send one request and read its reply; CPU time spent on it goes to ``label``."""
        before = ch.cpu_time(self.pid)
        try:  # a child that stops reading must not block the grader: sends have a deadline too
            self.proc.channel.settimeout(max(0.01, self.deadline - time.monotonic()))
            ch.send_message(self.proc.channel, header, tensors)
        except OSError as err:
            raise ch.ProtocolViolation(f"cannot reach the child ({err.strerror or err})") from None
        left = self.deadline - time.monotonic()
        reply, blob = ch.read_message(self.proc.channel, max_bytes=max_bytes, timeout=max(left, 0))
        after = ch.cpu_time(self.pid)
        if label and before is not None and after is not None:
            self.cpu.setdefault(label, []).append(after - before)
        return reply, blob

    def close(self) -> Any:
        """Say bye and collect the child's :class:`~turngym.envs.kernel.sandbox.SandboxResult`."""
        try:
            ch.send_message(self.proc.channel, {"kind": "bye"})
        except OSError:
            pass
        return self.proc.finish(timed_out=time.monotonic() > self.deadline)


def expect_tensors(reply: dict, blob: bytearray, max_tensors: int, who: str,
                   exact: int | None = None) -> list[torch.Tensor]:
    """The tensors of an ``outputs``/``inputs`` reply (an ``error`` reply becomes a Verdict)."""
    if reply["kind"] == "error":
        raise Verdict("runtime_error" if who == "candidate" else "reference_error",
                      str(reply.get("error", ""))[-1500:])
    if reply["kind"] not in ("outputs", "inputs"):
        raise ch.ProtocolViolation(f"expected outputs, got {str(reply['kind'])[:40]!r}")
    out = ch.decode_tensors(reply, blob, max_tensors=max_tensors)
    if exact is not None and len(out) != exact:
        raise ch.ProtocolViolation(f"{len(out)} tensors, expected {exact}")
    return out


def candidate_report(reply: dict) -> dict:
    """The candidate's in-process report, strictly shaped (it only ever adds hacks)."""
    rep = reply.get("report")
    if rep is None:
        return {"hacks": [], "kernels": {}}
    ok = isinstance(rep, dict) and isinstance(rep.get("hacks"), list) and len(rep["hacks"]) <= 20
    ok = ok and all(isinstance(h, dict) and isinstance(h.get("check"), str)
                    and isinstance(h.get("detail"), str) for h in rep["hacks"])
    if not ok or not isinstance(rep.get("kernels"), dict):
        raise ch.ProtocolViolation("the candidate's report is malformed")
    hacks = [{"check": h["check"][:40], "detail": h["detail"][:400]} for h in rep["hacks"]]
    kernels = {k: [str(x)[:80] for x in v][:20] for k, v in rep["kernels"].items()
               if k in ("launched",) and isinstance(v, list)}
    if isinstance(rep["kernels"].get("triton_launches"), int):
        kernels["triton_launches"] = rep["kernels"]["triton_launches"]
    return {"hacks": hacks, "kernels": kernels}


def cost_profile(value: Any) -> dict:
    """A cost profile from a child, type-checked; ``cost_us`` recomputed by the grader."""
    keys = ("flops", "bytes", "ops", "custom_bytes", "kernel_launches")
    if not isinstance(value, dict) or not all(type(value.get(k)) is int for k in keys):
        raise ch.ProtocolViolation("cost profile malformed")
    names = value.get("op_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names[:100000]):
        raise ch.ProtocolViolation("cost profile op names malformed")
    out = {k: max(0, value[k]) for k in keys}
    out["op_names"] = [n[:40] for n in names[:200]]
    out["cost_us"] = round(cost_us(out["flops"], out["bytes"], out["ops"]), 3)
    return out
