"""Child side of the kernel grader: one sandboxed process per role, serving the grader's requests.

Every process here is forked from the warm template (:mod:`~turngym.envs.kernel.forkserver`)
behind the sandbox's walls and talks to the grader only over its private channel
(:mod:`~turngym.envs.kernel.channel`). Three roles, never mixed in one process:

* ``reference``: execs the task's reference module; ``load`` instantiates ``Model`` (seeded),
  ``inputs`` draws inputs from a seed with ``get_inputs(generator)``, ``forward`` returns the
  reference outputs (``trace``: also its ATen graph and that graph's replayed cost). It never
  sees candidate code.
* ``candidate``: execs the candidate module and instantiates ``ModelNew`` with the seed and
  init arguments the grader sends; ``forward`` returns outputs for the inputs it is sent
  (``trace``: also its ATen graph; ``cost``: the in-process cost claim, Triton only) plus what
  the in-process monitors saw (:mod:`~turngym.envs.kernel.hacks`: a *reporting* second line; the
  candidate can tamper with anything in its own process, so the grader decides nothing on
  these numbers alone). It never holds the reference, its outputs, the tolerances, the
  reference's cost or the verdict.
* ``replay``: rebuilds a candidate's graph from data (:func:`~turngym.envs.kernel.graph.
  deserialize`) and runs it on fresh inputs, under the cost modes or plain. It never runs
  candidate Python code and never sees reference outputs.

Each request is answered with exactly one message; a Python exception becomes an ``error``
reply with the traceback's tail. What a candidate prints goes to stderr/stdout, which the
grader only keeps as a tail for feedback.
"""

from __future__ import annotations

import ast
import os
import socket
import threading
import traceback
import types
from collections.abc import Callable
from typing import Any

import torch

from turngym.envs.kernel import channel as ch
from turngym.envs.kernel import graph as gr
from turngym.envs.kernel import hacks as hk
from turngym.envs.kernel.cost import measure_with_output

__all__ = ["ROLES", "serve", "warm", "plain_outputs"]

ROLES = ("reference", "candidate", "replay")
_MAX_REQUEST = 1 << 31
_JSON_SCALARS = (bool, int, float, str, type(None))


def _tail(text: str, limit: int = 1500) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]


def _exec_module(source: str, name: str) -> dict[str, Any]:
    """Exec ``source`` as a fresh module ``name`` (never added to ``sys.modules``)."""
    module = types.ModuleType(name)
    module.__file__ = f"<{name}>"
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)  # noqa: S102
    return module.__dict__


def plain_outputs(out: Any) -> list[torch.Tensor]:
    """A forward's output as plain tensors; anything else (a subclass too) is refused.

    Example:
        >>> plain_outputs((torch.ones(1), torch.zeros(2)))[1].shape
        torch.Size([2])
    """
    items = gr.flatten(out)
    for item in items:
        if type(item) is not torch.Tensor:
            raise TypeError(f"forward returned a {type(item).__name__}, not a torch.Tensor")
    return [t.detach() for t in items]


def _json_plain(value: Any, depth: int = 0) -> bool:
    if isinstance(value, list | tuple):
        return depth < 4 and all(_json_plain(v, depth + 1) for v in value)
    return isinstance(value, _JSON_SCALARS)


# --- Roles ------------------------------------------------------------------------------------
class _Reference:
    def __init__(self) -> None:
        self.ns: dict[str, Any] = {}
        self.model: Any = None

    def load(self, header: dict, _: list) -> tuple[dict, list]:
        self.ns = _exec_module(header["source"], "turngym_reference")
        init = list(self.ns["get_init_inputs"]())
        if not _json_plain(init):
            raise TypeError("get_init_inputs() must return plain numbers, strings or lists")
        torch.manual_seed(int(header["init_seed"]))
        self.model = self.ns["Model"](*init).eval()
        return {"kind": "ok", "init": init}, []

    def inputs(self, header: dict, _: list) -> tuple[dict, list]:
        inputs = list(self.ns["get_inputs"](torch.Generator().manual_seed(int(header["seed"]))))
        if not all(type(t) is torch.Tensor for t in inputs):
            raise TypeError("get_inputs() must return tensors only")
        return {"kind": "inputs"}, inputs

    def forward(self, header: dict, inputs: list) -> tuple[dict, list]:
        if header.get("mode") != "trace":
            with torch.no_grad():
                return {"kind": "outputs"}, plain_outputs(self.model(*inputs))
        out, spec, consts = gr.capture(self.model, inputs)
        graph = gr.deserialize(spec, consts)
        _, profile, _ = gr.replay(graph, inputs, cost=True)
        assert profile is not None  # cost=True always measures
        return {"kind": "outputs", "cost": profile.to_dict()}, plain_outputs(out)


class _Candidate:
    def __init__(self) -> None:
        self.model: Any = None
        self.kernels: list[str] = []
        self.triton_kernels: list[str] = []
        self.triton: hk.TritonLaunches | None = None
        self.monitor = hk.CallMonitor(set(), {})
        self.audit: dict[str, Any] = {"armed": False, "events": []}
        self.snapshot: dict[str, Any] = {}
        self.threads: set[int] = set()
        self.mutated: list[int] = []  # indices of inputs forward() modified in place

    def _armed(self, fn: Callable[[], Any], monitor: bool = False) -> Any:
        self.audit["armed"] = True
        try:
            if monitor:
                with self.monitor:
                    return fn()
            return fn()
        finally:
            self.audit["armed"] = False

    def load(self, header: dict, _: list) -> tuple[dict, list]:
        source = header["source"]
        tree = ast.parse(source)
        self.kernels, self.triton_kernels = hk.declared_kernels(tree), hk.triton_kernels(tree)
        self.triton = _triton_recorder(source)  # before the audit hook: Triton reads many files
        self.audit = hk.install_audit_hook([os.getcwd()])
        self.snapshot = hk.snapshot_callables()
        # enumerate() lists started threads only, and a started thread has an ident.
        self.threads = {t.ident for t in threading.enumerate() if t.ident is not None}
        ns = self._armed(lambda: _exec_module(source, "turngym_candidate"), monitor=True)
        cls = ns.get("ModelNew")
        if not isinstance(cls, type):
            raise TypeError("the module defines no class ModelNew")
        self.monitor.kernel_codes = {
            id(c): (c, n) for n in self.kernels for c in hk.code_objects(ns, [n])
        }

        def build() -> Any:
            torch.manual_seed(int(header["init_seed"]))
            model = cls(*header["init"])
            return model.eval() if isinstance(model, torch.nn.Module) else model

        self.model = self._armed(build, monitor=True)
        return {"kind": "ok", "report": self.report()}, []

    def forward(self, header: dict, inputs: list) -> tuple[dict, list]:
        clones = [t.clone() for t in inputs]
        mode, extra = header.get("mode"), []
        reply: dict[str, Any] = {"kind": "outputs"}
        if mode == "trace":
            try:
                out, spec, consts = self._armed(lambda: gr.capture(self.model, inputs),
                                                monitor=True)
                reply["graph"], reply["n_outputs"] = spec, len(gr.flatten(out))
                extra = consts
            except Exception as exc:  # noqa: BLE001 - untraceable: no speed credit, still graded
                reply["trace_error"] = _tail(f"{type(exc).__name__}: {exc}", 300)
                for t, c in zip(inputs, clones, strict=True):
                    t.copy_(c)
                with torch.no_grad():
                    out = self._armed(lambda: self.model(*inputs), monitor=True)
        elif mode == "cost":
            opaque = self.triton.active if self.triton else None
            mark = len(self.triton.launches) if self.triton else 0
            profile, out = self._armed(
                lambda: measure_with_output(self.model, inputs, self.monitor.in_kernel, opaque),
                monitor=True,
            )
            for _, nbytes, flops in self.triton.launches[mark:] if self.triton else ():
                profile.add_kernel_launch(nbytes, flops)
            reply["cost"] = profile.to_dict()
        else:
            with torch.no_grad():
                out = self._armed(lambda: self.model(*inputs))
        outputs = plain_outputs(out)
        for k, (t, c) in enumerate(zip(inputs, clones, strict=True)):
            if not torch.equal(t, c) and k not in self.mutated:
                self.mutated.append(k)
        reply["report"] = self.report()
        reply.setdefault("n_outputs", len(outputs))
        return reply, outputs + extra

    def report(self) -> dict[str, Any]:
        """What the in-process monitors saw so far (the grader treats it as a claim)."""
        found = []
        patched = hk.patched_names(self.snapshot) if self.snapshot else []
        if patched:
            found.append(hk.Hack("monkeypatch", f"replaced {patched[:5]}").to_dict())
        threads = hk.alive_new_threads(self.threads)
        if threads:
            found.append(hk.Hack("threads_left_running", f"threads still running: {threads}")
                         .to_dict())
        if self.audit["events"]:
            found.append(hk.Hack("sandbox_escape", f"not allowed: {self.audit['events'][:3]}")
                         .to_dict())
        if self.mutated:
            found.append(hk.Hack("mutates_inputs", f"forward modified input(s) {self.mutated} "
                                 "in place").to_dict())
        launched = sorted(set(self.monitor.kernel_calls)
                          | set(self.triton.names() if self.triton else []))
        kernels: dict[str, Any] = {"declared": self.kernels, "launched": launched,
                                   "triton_declared": self.triton_kernels}
        if self.triton is not None:
            kernels["triton_launches"] = len(self.triton.launches)
        return {"hacks": found, "kernels": kernels}


class _Replay:
    def __init__(self) -> None:
        self.graph: gr.Graph | None = None

    def graph_(self, header: dict, consts: list) -> tuple[dict, list]:
        self.graph = gr.deserialize(header["graph"], consts)
        return {"kind": "ok"}, []

    def replay(self, header: dict, inputs: list) -> tuple[dict, list]:
        assert self.graph is not None, "no graph loaded"
        outs, profile, mutated = gr.replay(self.graph, inputs, cost=bool(header.get("cost")))
        reply = {"kind": "outputs", "mutated": mutated}
        if profile is not None:
            reply["cost"] = profile.to_dict()
        return reply, plain_outputs(outs)


def _triton_recorder(source: str) -> hk.TritonLaunches | None:
    """Triton's CPU interpreter with its launch recorder, for candidates that mention Triton.

    Only in interpreter mode (no CUDA device): with a GPU, Triton compiles real kernels the
    interpreter hook cannot see. ``TRITON_INTERPRET`` must be set before ``import triton``.
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


_HANDLERS: dict[str, dict[str, str]] = {
    "reference": {"load": "load", "inputs": "inputs", "forward": "forward"},
    "candidate": {"load": "load", "forward": "forward"},
    "replay": {"graph": "graph_", "replay": "replay"},
}


def serve(fd: int, role: str) -> None:
    """Answer the grader's requests on channel ``fd`` until ``bye`` or end of channel."""
    sock = socket.socket(fileno=fd)
    torch.set_num_threads(1)
    ch.send_hello(sock)
    state = {"reference": _Reference, "candidate": _Candidate, "replay": _Replay}[role]()
    while True:
        try:
            header, blob = ch.read_message(sock, max_bytes=_MAX_REQUEST, timeout=3600)
        except ch.ProtocolViolation:
            return
        kind = header["kind"]
        if kind == "bye":
            return
        try:
            tensors = ch.decode_tensors(header, blob, max_tensors=1 << 16) if blob else []
            handler = getattr(state, _HANDLERS[role][kind])
            reply, out = handler(header, tensors)
        except BaseException as exc:  # noqa: BLE001 - every failure is an answer
            if isinstance(exc, KeyboardInterrupt | SystemExit) and role != "candidate":
                raise
            reply = {"kind": "error", "error": _tail(traceback.format_exc(limit=-6))}
            if isinstance(state, _Candidate):
                reply["report"] = state.report()
            out = []
        ch.send_message(sock, reply, out)


def warm() -> None:
    """Import and exercise everything the roles use, once, in the template process."""
    torch.set_num_threads(1)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GELU())
    x = [torch.randn(2, 4)]
    _, spec, consts = gr.capture(model, x)
    gr.replay(gr.deserialize(spec, consts), x, cost=True)
    specs, blob = ch.encode_tensors(x)
    ch.decode_tensors({"tensors": specs}, blob, max_tensors=1)
    ast.parse("x = 1")
    hk.snapshot_callables()
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    try:  # importing Triton takes a second: pay it once here, not in every child
        import triton  # noqa: F401
        from triton.runtime import interpreter  # noqa: F401
    except Exception:  # noqa: BLE001 - optional
        pass
