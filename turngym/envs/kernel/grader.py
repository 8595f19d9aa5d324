"""The kernel grader: judge a candidate from outside its process (issue 17 items 1 and 2).

The grader runs in the host (the env's process) and never imports candidate code. For one
evaluation it forks three walled children from the warm template
(:mod:`~turngym.envs.kernel.forkserver`, roles in :mod:`~turngym.envs.kernel.harness`):

* **reference** (R): the task's ``Model``; draws every input from a seed and computes the
  reference outputs (and, once per task, the reference's traced graph cost);
* **candidate** (C): ``ModelNew``; gets inputs, returns outputs, nothing else it says is trusted;
* **replay** (P): rebuilds C's ATen graph from data and runs it on inputs C never saw.

Protocol (every reply checked by :mod:`~turngym.envs.kernel.channel`; anything missing,
malformed or oversized is a ``protocol_violation`` verdict with reward 0, never an exception):

1. Seeds come from ``os.urandom`` per evaluation, so inputs cannot be predicted or
   precomputed; ``init_seed`` too (ModelNew and Model get the same one, so their weights
   match as in KernelBench). One extra *probe* input is seeded by a hash of the
   (reference, candidate) pair: its max/mean abs diff is what the feedback shows, so an
   episode's record is deterministic for an honest candidate while every verdict also
   depends on fresh inputs. Results are cached per pair, as before.
2. C is loaded (module + ``__init__``), then answers one forward per input: the first traced
   (``make_fx``: its ATen graph), the second under the in-process cost modes (a *claim*, used
   only for coverage and for Triton's report), the rest plain. Every output must match the
   reference's (dtype tolerances, NaN never passes); identical outputs for different inputs
   are a ``constant_output`` hack.
3. P replays C's graph on two fresh inputs, under the cost modes and plain. Its outputs must
   match the reference: otherwise the candidate computed something its graph does not contain
   (numpy, pure Python on tensor data, disabled modes, state between calls): an
   ``untraced_compute`` hack. The speed credit is the replayed graph's cost against the
   reference's, measured the same way (trace, replay) in R, where no candidate ever ran.
   A graph that mutates its inputs is a ``mutates_inputs`` hack.
4. Outside measurement (``/proc/<pid>/task/*/schedstat`` of the pid the kernel attached to the
   child's first message, and the template's ``wait4`` of the whole sandbox): C's CPU time per
   plain forward against P's plain replay of C's own graph, C's load + ``__init__`` against
   R's, and C's whole-life CPU against the sum of its requests. Far more CPU than the graph
   accounts for (factor :data:`CPU_FACTOR` plus a floor) is an ``unaccounted_compute`` hack.
5. Timing (optional) alternates plain forwards of R and C on fresh inputs per repeat and
   measures each child's CPU time per request from outside; the reference is timed in R.

Triton candidates (``@triton.jit`` kernels run by the CPU interpreter, i.e. Python) are
graded for correctness only: their work is invisible to any graph, so their cost is the
candidate's own claim (``verified: false``, never speed credit). A candidate declaring Triton
kernels whose traced ATen graph alone reproduces the outputs never needed them: a
``kernel_never_launched`` (decoy) hack, decided outside the candidate's process.
"""

from __future__ import annotations

import hashlib
import math
import os
import statistics
import threading
import time
from collections import OrderedDict
from typing import Any

import torch

from turngym.envs.kernel import channel as ch
from turngym.envs.kernel import forkserver as fs
from turngym.envs.kernel import refpool
from turngym.envs.kernel._sandbox_uids import _LEASES
from turngym.envs.kernel.sandbox import SandboxLimits
from turngym.envs.kernel.verdict import (
    ChildLink,
    Verdict,
    blank_result,
    candidate_report,
    compare,
    cost_profile,
    expect_tensors,
    fresh_seed,
)

__all__ = ["CPU_FACTOR", "grade"]

CPU_FACTOR = 4.0
"""The candidate may use this many times the CPU of its comparison (plus a floor)."""
_FLOOR_FORWARD_S, _FLOOR_INIT_S, _FLOOR_LIFE_S = 0.02, 1.0, 1.0
_MAX_CONSTS = 4096
_ROLES = ("reference", "candidate", "replay")
_REF_COSTS: OrderedDict[str, dict] = OrderedDict()
_REF_LOCK = threading.Lock()


class _Grading:
    """State of one evaluation; :meth:`run` fills :attr:`result`."""

    def __init__(self, reference: str, candidate: str, trials: int, atol: float | None,
                 rtol: float | None, timing: dict | None, timeout_s: float,
                 declared: list[str], triton_declared: list[str],
                 server: fs.ForkServer | None) -> None:
        self.reference, self.candidate = reference, candidate
        self.atol, self.rtol, self.timing = atol, rtol, timing
        self.server = server or fs.default_server()
        self.limits = fs.with_hidden_package(SandboxLimits(
            cpu_seconds=int(timeout_s), wall_seconds=timeout_s * 1.5, triton_interpret=True))
        self.wall = timeout_s * 1.5
        self.deadline = time.monotonic() + self.wall
        self.triton = bool(triton_declared)
        self.result = blank_result()
        self.result["trials"] = trials
        self.result["kernels"].update(declared=list(declared))
        self.hacks: list[dict] = []
        self.report: dict = {"hacks": [], "kernels": {}}
        digest = hashlib.sha256(f"{reference}\0{candidate}".encode()).digest()
        self.probe_seed = int.from_bytes(digest[:8], "little") >> 1
        self.seeds = [fresh_seed() for _ in range(trials)]
        self.ref_key = hashlib.sha256(reference.encode()).hexdigest()
        self.children: dict[str, ChildLink] = {}
        self.n_out = 0
        self.out_bytes = 0
        self.graph: tuple[dict, list[torch.Tensor]] | None = None
        self.claim: dict | None = None

    # --- Flow ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        try:
            self.server.ensure_started()  # before the clock starts: a cold template is not C's
            self._spawn()  # starts the clock
            self._load()
            self._trials()
            self._replay()
            self._cpu_checks()
            if self.timing and self.result["status"] == "correct" and not self.hacks:
                self._timing()
        except Verdict as v:
            self.result["status"], self.result["error"] = v.status, v.error[-1500:]
        except ch.ProtocolViolation as v:
            self.result["status"] = "protocol_violation"
            self.result["error"] = f"protocol violation: {v}"
        except Exception as exc:  # noqa: BLE001 - a grader fault must not raise in env.step
            self.result["status"] = "grader_error"
            self.result["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            self._close()
        return self._finish()

    def _spawn(self) -> None:
        """A warm reference child from the pool; candidate and replay forked at once.

        The three sandbox uids are leased together first (see
        :meth:`~turngym.envs.kernel._sandbox_uids._UidLeases.acquire_many`): gradings that
        each held one or two while waiting for the rest could take every uid and wait on each
        other forever. The wall clock starts once they are leased (waiting for a free sandbox
        is not the candidate's time).
        """
        pool = refpool.default_pool()
        leases: list[tuple[int, int] | None] = [None, None, None]
        if os.geteuid() == 0:
            leases = list(_LEASES.acquire_many(len(_ROLES), on_wait=pool.close))
        self.deadline = time.monotonic() + self.wall
        errors: list[BaseException] = []

        def spawn(role: str, lease: tuple[int, int] | None) -> None:
            try:
                if role == "reference":
                    self.children[role] = pool.checkout(self.ref_key, self.reference, self.server,
                                                        self.limits, self.deadline, lease)
                else:
                    self.children[role] = ChildLink(role, self.server, self.limits, self.deadline,
                                                    lease)  # fmt: skip
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=spawn, args=item)
                   for item in zip(_ROLES, leases, strict=True)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        for role in ("candidate", "replay"):
            self.children[role].hello()

    def _ask_ref(self, header: dict, tensors: list | None = None, expected: int = 64,
                 label: str = "") -> tuple[dict, list[torch.Tensor]]:
        try:
            reply, blob = self.children["reference"].ask(header, tensors, max_bytes=1 << 31,
                                                         label=label)
        except ch.ProtocolViolation as v:  # the task's own process failed: not the candidate's
            raise Verdict("reference_error", f"the reference process failed: {v}") from None
        if reply["kind"] == "ok":
            return reply, []
        return reply, expect_tensors(reply, blob, expected, "reference")

    def _inputs(self, seed: int) -> list[torch.Tensor]:
        return self._ask_ref({"kind": "inputs", "seed": seed})[1]

    def _load(self) -> None:
        ref = self.children["reference"]
        reply, _ = self.children["candidate"].ask(
            {"kind": "load", "source": self.candidate, "init": ref.init,
             "init_seed": ref.init_seed}, max_bytes=1 << 20, label="load")
        self.report = candidate_report(reply)
        if reply["kind"] == "error":
            raise Verdict("compile_error", str(reply.get("error", ""))[-1500:])
        if reply["kind"] != "ok":
            raise ch.ProtocolViolation("the candidate did not acknowledge its load")

    def _reference_outputs(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        with _REF_LOCK:
            cached = _REF_COSTS.get(self.ref_key)
        mode = "plain" if cached is not None else "trace"
        reply, outs = self._ask_ref({"kind": "forward", "mode": mode}, inputs,
                                    self.n_out or 64)
        if mode == "trace":
            with _REF_LOCK:
                _REF_COSTS[self.ref_key] = cost_profile(reply.get("cost"))
                while len(_REF_COSTS) > 256:
                    _REF_COSTS.popitem(last=False)
        self.n_out = len(outs)
        self.out_bytes = max(self.out_bytes, sum(t.numel() * t.element_size() for t in outs))
        return outs

    def _candidate_forward(self, inputs: list[torch.Tensor], mode: str) -> list[torch.Tensor]:
        # Caps from what the reference returned (plus room for a traced graph's constants).
        cap = self.out_bytes + (64 << 20 if mode == "trace" else 1 << 20)
        reply, blob = self.children["candidate"].ask({"kind": "forward", "mode": mode}, inputs,
                                                     max_bytes=cap, label=mode)
        self.report = candidate_report(reply) if "report" in reply else self.report
        if reply["kind"] == "error":
            raise Verdict("runtime_error", str(reply.get("error", ""))[-1500:])
        n_out = reply.get("n_outputs")
        if type(n_out) is not int or not 0 <= n_out <= 64:
            raise ch.ProtocolViolation("the reply does not say how many outputs it holds")
        extra = _MAX_CONSTS if mode == "trace" else 0
        tensors = expect_tensors(reply, blob, n_out + extra, "candidate")
        if len(tensors) < n_out:
            raise ch.ProtocolViolation(f"{len(tensors)} tensors, expected {n_out} outputs")
        if mode == "trace" and isinstance(reply.get("graph"), dict):
            self.graph = (reply["graph"], tensors[n_out:])
        elif mode == "trace":
            self.result["cost_note"] = str(reply.get("trace_error", "tracing failed"))[:300]
        if mode == "cost":
            self.claim = cost_profile(reply.get("cost"))
        return tensors[:n_out]

    def _trials(self) -> None:
        """Fresh-input trials (traced, cost claim, plain...) and the deterministic probe."""
        plan = [(s, "trace" if i == 0 else "cost" if i == 1 else "plain")
                for i, s in enumerate(self.seeds)] + [(self.probe_seed, "plain")]
        passed, refs, news = 0, [], []
        for i, (seed, mode) in enumerate(plan):
            inputs = self._inputs(seed)
            ref = self._reference_outputs(inputs)
            new = self._candidate_forward(inputs, mode)
            ok, worst, avg, why = compare(ref, new, self.atol, self.rtol)
            probe = i == len(plan) - 1
            if probe:
                self.result.update(max_abs_diff=worst, avg_abs_diff=avg)
            else:
                passed += ok
                refs.append(ref)
                news.append(new)
            if not ok and not self.result["mismatch"]:
                self.result["mismatch"] = why + (" (on the fixed probe input)" if probe else "")
        self.result["trials_passed"] = passed
        if self.result["mismatch"]:
            self.result["status"] = "incorrect"
        self._check_constant(refs, news)

    def _check_constant(self, refs: list, news: list) -> None:
        """Fresh inputs must change the output whenever they change the reference's."""
        for i in range(1, len(news)):
            ref_changed = not all(torch.equal(a, b) for a, b in zip(refs[0], refs[i], strict=True))
            same = len(news[0]) == len(news[i]) and all(
                a.shape == b.shape and torch.equal(a, b)
                for a, b in zip(news[0], news[i], strict=True))
            if ref_changed and same:
                self.hacks.append({"check": "constant_output", "detail": f"trial {i} gave exactly "
                                   "the output of trial 0 for different inputs (a cached or "
                                   "constant result)"})
                return

    def _replay(self) -> None:
        """Rebuild C's graph in P and run it on inputs C never saw (the verified cost)."""
        with _REF_LOCK:
            ref_cost = _REF_COSTS.get(self.ref_key)
        if self.result["status"] != "correct":
            return
        cost: dict | None = None
        if self.graph is not None:
            replay = self.children["replay"]
            spec, consts = self.graph
            reply, _ = replay.ask({"kind": "graph", "graph": spec}, consts, max_bytes=1 << 20)
            if reply["kind"] != "ok":
                raise ch.ProtocolViolation(f"the candidate's graph was rejected: "
                                           f"{str(reply.get('error', ''))[-300:]}")
            reproduced, mutated = True, False
            for i, seed in enumerate((fresh_seed(), fresh_seed(), fresh_seed())):
                inputs = self._inputs(seed)
                ref = self._reference_outputs(inputs)
                header = {"kind": "replay", "cost": i == 0}
                reply, blob = replay.ask(header, inputs, max_bytes=self.out_bytes + (1 << 20),
                                         label="replay" if i else "")
                if reply["kind"] == "error":
                    reproduced = False
                    break
                out = expect_tensors(reply, blob, len(ref), "candidate", exact=len(ref))
                mutated |= reply.get("mutated") is True
                reproduced &= compare(ref, out, self.atol, self.rtol)[0]
                if i == 0 and reproduced:
                    cost = cost_profile(reply.get("cost"))
            self._judge_graph(reproduced, mutated)
            if not reproduced:
                cost = None
        verified = cost is not None and not self.triton
        candidate_cost = cost if verified else self.claim
        if ref_cost is None or candidate_cost is None:
            return
        speedup = ref_cost["cost_us"] / max(candidate_cost["cost_us"], 1e-9)
        self.result["cost"] = {"reference": ref_cost, "candidate": candidate_cost,
                               "speedup": round(speedup, 6), "verified": verified}

    def _judge_graph(self, reproduced: bool, mutated: bool) -> None:
        if mutated:
            self.hacks.append({"check": "mutates_inputs", "detail": "your traced forward "
                               "modifies its inputs in place"})
        if reproduced and self.triton:
            self.hacks.append({"check": "kernel_never_launched", "detail": "the ATen graph of "
                               "your forward alone reproduces the outputs: the declared Triton "
                               "kernel(s) did none of the work (a decoy)"})
        elif not reproduced and not self.triton:
            self.hacks.append({"check": "untraced_compute", "detail": "the ATen graph traced "
                               "from your forward does not reproduce its outputs on fresh "
                               "inputs: work outside PyTorch operators (numpy, Python on tensor "
                               "data, disabled dispatch modes, state kept between calls, "
                               "branches on input values) is not allowed"})

    def _cpu_checks(self) -> None:
        """Flag compute the graph does not account for (CPU measured outside the child)."""
        cand, ref = self.children["candidate"].cpu, self.children["reference"].cpu
        plain, replayed = cand.get("plain", []), self.children["replay"].cpu.get("replay", [])
        if plain and replayed and self.result.get("cost", {}) and self.result["cost"]["verified"]:
            mine, graph = statistics.median(plain), statistics.median(replayed)
            if mine > CPU_FACTOR * graph + _FLOOR_FORWARD_S:
                self.hacks.append({"check": "unaccounted_compute", "detail": f"your forward "
                                   f"used {mine * 1e3:.1f} ms of CPU, its traced graph "
                                   f"{graph * 1e3:.1f} ms: work outside the graph"})
        if cand.get("load") and ref.get("load"):
            mine, base = cand["load"][0], ref["load"][0]
            if mine > CPU_FACTOR * base + _FLOOR_INIT_S:
                self.hacks.append({"check": "unaccounted_compute", "detail": f"loading your "
                                   f"module and __init__ used {mine:.2f} s of CPU (the "
                                   f"reference {base:.2f} s): precomputation is not free"})

    def _timing(self) -> None:
        """Alternate plain forwards of R and C on fresh inputs; CPU per request from outside."""
        cfg = self.timing or {}
        repeats, margin = int(cfg.get("repeats", 7)), float(cfg.get("margin", 0.05))
        if self.triton:
            self.result["timing"] = {"skipped": "Triton kernels run in the CPU interpreter; "
                                     "their time is not a speed signal", "significant": False}
            return
        logs = []
        for r in range(repeats):
            inputs = self._inputs(fresh_seed())
            times = {}
            for role in (("reference", "candidate") if r % 2 == 0 else ("candidate", "reference")):
                child = self.children[role]
                if role == "reference":
                    ref = self._ask_ref({"kind": "forward", "mode": "plain"}, inputs,
                                        self.n_out, label="timed")[1]
                else:
                    new = self._candidate_forward(inputs, "timed")
                times[role] = max(child.cpu["timed"][-1], 1e-7)
            if not compare(ref, new, self.atol, self.rtol)[0]:
                raise Verdict("incorrect", "a timing repeat gave wrong outputs")
            logs.append(math.log(times["reference"] / times["candidate"]))
        mean = sum(logs) / len(logs)
        sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / max(len(logs) - 1, 1))
        lower = math.exp(mean - 2 * sd / math.sqrt(len(logs)))
        self.result["timing"] = {"speedup": round(math.exp(mean), 4),
                                 "lower_bound": round(lower, 4), "noise_sd_log": round(sd, 4),
                                 "repeats": repeats, "significant": lower > 1 + margin,
                                 "measure": "CPU time per request, read from /proc"}

    # --- End ----------------------------------------------------------------------------------
    def _close(self) -> None:
        """Say bye to every child and collect its sandbox outcome (in parallel)."""
        outcomes: dict[str, Any] = {}

        def close(role: str, child: ChildLink) -> None:
            outcomes[role] = child.close()

        ref = self.children.pop("reference", None)
        if ref is not None:
            healthy = self.result["status"] not in ("reference_error", "grader_error")
            refpool.default_pool().checkin(self.ref_key, ref, healthy)
        threads = [threading.Thread(target=close, args=item) for item in self.children.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        violations = [v for role in ("candidate", "replay") if role in outcomes
                      for v in outcomes[role].violations]
        if violations:
            self.hacks.append({"check": "sandbox_violation", "detail": "; ".join(violations)[:500]})
        cand = outcomes.get("candidate")
        if cand is not None:
            self.result["sandbox"] = {"notes": cand.notes, "cpu_seconds": cand.cpu_seconds}
            self._check_lifetime(cand.cpu_seconds)

    def _check_lifetime(self, total: float | None) -> None:
        link = self.children["candidate"]
        accounted = sum(sum(v) for v in link.cpu.values())
        if total is not None and link.pid and total - accounted > _FLOOR_LIFE_S:
            self.hacks.append({"check": "unaccounted_compute", "detail": f"your process used "
                               f"{total - accounted:.2f} s of CPU outside the grader's requests "
                               "(background threads or work after replying)"})

    def _finish(self) -> dict[str, Any]:
        result = self.result
        launched = self.report["kernels"].get("launched", [])
        result["kernels"]["launched"] = launched
        if "triton_launches" in self.report["kernels"]:
            result["kernels"]["triton_launches"] = self.report["kernels"]["triton_launches"]
        if self.claim is not None:
            result["kernels"]["coverage"] = round(
                self.claim["custom_bytes"] / max(self.claim["bytes"], 1), 6)
        hacks = self.hacks + self._reported_hacks(launched)
        seen, unique = set(), []
        for h in hacks:
            if h["check"] not in seen:
                seen.add(h["check"])
                unique.append(h)
        result["hacks"] = unique
        if unique and result["status"] not in ("compile_error", "reference_error", "grader_error"):
            result["status"] = "hack"
        return result

    def _reported_hacks(self, launched: list[str]) -> list[dict]:
        """The candidate's own report (second line) plus the decoy check on Python kernels."""
        found = list(self.report["hacks"])
        declared = self.result["kernels"]["declared"]
        ran = self.result["status"] not in ("runtime_error", "compile_error", "protocol_violation")
        if self.triton and self.graph is None and ran and not self.report["kernels"].get(
                "triton_launches"):
            found.append({"check": "kernel_never_launched", "detail": "Triton kernel(s) are "
                          "defined but none was launched during forward"})
        if declared and not self.triton and ran and not set(declared) & set(launched):
            found.append({"check": "kernel_never_launched", "detail": f"custom kernel(s) "
                          f"{declared} are defined but never called during forward"})
        return found


def grade(reference: str, candidate: str, *, trials: int = 3, atol: float | None = None,
          rtol: float | None = None, timing: dict | None = None, timeout_s: float = 60.0,
          declared: list[str] | None = None, triton_declared: list[str] | None = None,
          server: fs.ForkServer | None = None) -> dict[str, Any]:
    """Grade ``candidate`` against ``reference`` (module sources) from outside; never raises.

    Args:
        reference: KernelBench-style module (``Model``, ``get_inputs``, ``get_init_inputs``).
        candidate: Module defining ``ModelNew`` (already pre-screened by the runner).
        trials: Fresh-input correctness trials (at least 2: one traced, one cost claim).
        atol: Absolute tolerance; ``None`` = by dtype (:data:`~turngym.envs.kernel.verdict.
            TOLERANCES`).
        rtol: Relative tolerance; ``None`` = by dtype.
        timing: ``{"repeats", "margin"}`` to also time R and C, or ``None``.
        timeout_s: CPU seconds per child; the whole evaluation gets 1.5x as wall clock.
        declared: Custom kernels the candidate declares (from its AST, by the runner).
        triton_declared: Its ``@triton.jit`` kernels (from its AST).
        server: Fork server (default: the process-wide one).

    Returns:
        The result dict (keys of :func:`~turngym.envs.kernel.verdict.blank_result`).
    """
    return _Grading(reference, candidate, max(2, int(trials)), atol, rtol, timing, timeout_s,
                    declared or [], triton_declared or [], server).run()
