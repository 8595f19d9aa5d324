"""Capture a forward pass as an ATen graph, ship it as data, and replay it elsewhere (issue 17).

Why: the cost model must only credit work it really measured. A cost profile measured
inside the candidate's own process is whatever that process says it is (it can disable the
dispatch modes, compute in numpy or pure Python, or edit the recorder). So the candidate's
child traces its forward once (:func:`capture`, a ``TorchDispatchMode`` on real tensors, in
the spirit of ``make_fx``: every ATen op that reaches the dispatcher becomes a node, any other
tensor becomes a constant), the graph travels to the grader as plain data (JSON nodes plus
constant tensors), and a *fresh*
replay child that never ran candidate code rebuilds it from a strict decoder
(:func:`deserialize`: ``aten`` operator overloads only, minus :data:`DENIED_OPS`, typed
arguments, references only to earlier values) and runs it on new inputs under the cost
modes (:func:`replay`). The grader compares the replay's outputs with the reference's: work
the graph does not contain (numpy, Python arithmetic on tensor data, disabled modes, state
kept between calls) was baked in as constants and gives wrong outputs on the new inputs,
and the candidate is caught; otherwise the speed credit is the replayed graph's cost,
measured in a process the candidate never touched.

Example:
    >>> m = torch.nn.ReLU()
    >>> out, spec, consts = capture(m, [torch.tensor([-1.0, 2.0])])
    >>> [n["op"] for n in spec["nodes"]]
    ['aten.relu.default']
    >>> graph = deserialize(spec, consts)
    >>> replay(graph, [torch.tensor([3.0, -4.0])])[0][0].tolist()
    [3.0, 0.0]
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from turngym.envs.kernel.channel import ProtocolViolation
from turngym.envs.kernel.cost import CostProfile, measure_with_output

__all__ = ["DENIED_OPS", "MAX_NODES", "capture", "deserialize", "replay", "flatten"]

MAX_NODES = 20_000
MAX_ARGS = 64
DENIED_OPS = frozenset(
    {
        "set_", "as_strided_", "resize_", "resize_as_", "_resize_output_", "from_file",
        "record_stream", "_copy_from", "_copy_from_and_resize", "_make_per_tensor_quantized_tensor",
        "_set_grad_enabled", "_print", "_assert_async", "sym_constrain_range",
    }
)  # fmt: skip
"""ATen ops a replayed graph may not contain (storage swaps, resizes, file reads)."""
_ENUMS: dict[str, tuple[type, dict[str, Any]]] = {
    "dtype": (torch.dtype, {str(d).removeprefix("torch."): d for d in (
        torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32,
        torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64)}),
    "layout": (torch.layout, {"strided": torch.strided}),
    "mf": (torch.memory_format, {"contiguous_format": torch.contiguous_format,
                                 "channels_last": torch.channels_last,
                                 "preserve_format": torch.preserve_format}),
}  # fmt: skip


def flatten(out: Any) -> list[Any]:
    """A forward's output as a flat list (a tensor, or a tuple/list of them)."""
    return list(out) if isinstance(out, tuple | list) else [out]


class _Tracer(TorchDispatchMode):
    """Record every ATen op that reaches the dispatcher, with tensor arguments as references.

    A tensor is known when it is an input or an op's output (an in-place op re-binds its
    result to the new node); any other tensor met as an argument is a *constant*, copied on
    first sight (parameters, and whatever the candidate computed where this mode could not
    see it). Strong references to every tensor seen keep ``id()`` stable while tracing.
    """

    def __init__(self, inputs: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.refs: dict[int, list] = {id(t): ["in", i] for i, t in enumerate(inputs)}
        self.keep: list[Any] = list(inputs)
        self.nodes: list[dict] = []
        self.consts: list[torch.Tensor] = []

    def ref(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            key = id(value)
            if key not in self.refs:
                self.refs[key] = ["const", len(self.consts)]
                self.consts.append(value.detach().clone())
                self.keep.append(value)
            return {"ref": self.refs[key]}
        if isinstance(value, tuple | list):
            return {"list": [self.ref(v) for v in value]}
        return _encode(value, {})

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        """Encode the call, run it, bind its tensor outputs to the new node."""
        kwargs = kwargs or {}
        node = {"op": f"{func.namespace}.{func._opname}.{func._overloadname}",
                "args": self.ref(list(args)), "kwargs": {k: self.ref(v) for k, v in kwargs.items()}}
        out = func(*args, **kwargs)
        index = len(self.nodes)
        self.nodes.append(node)
        if isinstance(out, torch.Tensor):
            self.refs[id(out)] = ["node", index]
            self.keep.append(out)
        elif isinstance(out, tuple | list):
            for j, item in enumerate(out):
                if isinstance(item, torch.Tensor):
                    self.nodes.append({"op": "getitem", "args": {"list": [
                        {"ref": ["node", index]}, j]}, "kwargs": {}})
                    self.refs[id(item)] = ["node", len(self.nodes) - 1]
                    self.keep.append(item)
        return out


def capture(model: Any, inputs: Sequence[torch.Tensor]) -> tuple[Any, dict, list[torch.Tensor]]:
    """Run ``model(*inputs)`` once under the tracer: ``(output, graph spec, constants)``."""
    tracer = _Tracer(inputs)
    with torch.no_grad(), tracer:
        out = model(*inputs)
    output = tracer.ref(flatten(out))
    spec = {"inputs": len(inputs), "nodes": tracer.nodes, "output": output}
    return out, spec, tracer.consts


def _encode(value: Any, refs: dict[Any, list]) -> Any:
    if isinstance(value, tuple | list):
        return {"list": [_encode(v, refs) for v in value]}
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, torch.device):
        return {"device": str(value)}
    for kind, (cls, names) in _ENUMS.items():
        if isinstance(value, cls):
            return {kind: next(k for k, v in names.items() if v == value)}
    raise TypeError(f"cannot ship a {type(value).__name__} argument in a graph")


class Graph:
    """A decoded graph: resolved operators and argument trees with value references."""

    def __init__(self, n_inputs: int, ops: list[Any], args: list[Any], kwargs: list[dict],
                 output: Any, consts: list[torch.Tensor]) -> None:
        self.n_inputs, self.ops, self.args, self.kwargs = n_inputs, ops, args, kwargs
        self.output, self.consts = output, consts


def _resolve(name: Any) -> Any:
    if name == "getitem":
        return operator.getitem
    parts = name.split(".") if isinstance(name, str) and len(name) < 128 else []
    if len(parts) != 3 or parts[0] != "aten" or parts[1] in DENIED_OPS:
        raise ProtocolViolation(f"graph op {str(name)[:80]!r} is not an allowed ATen operator")
    packet = getattr(torch.ops.aten, parts[1], None) if parts[1].isidentifier() else None
    op = getattr(packet, parts[2], None) if packet is not None and parts[2].isidentifier() else None
    if not isinstance(op, torch._ops.OpOverload):
        raise ProtocolViolation(f"graph op {name[:80]!r} does not exist")
    return op


def _check_arg(value: Any, n_inputs: int, n_consts: int, n_nodes: int, depth: int = 0) -> None:
    """Validate one encoded argument (types, reference ranges, nesting)."""
    if depth > 4:
        raise ProtocolViolation("graph argument nested too deeply")
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        return
    if isinstance(value, str):
        if len(value) > 64:
            raise ProtocolViolation("graph string argument too long")
        return
    if not isinstance(value, dict) or len(value) != 1:
        raise ProtocolViolation(f"graph argument {str(value)[:60]} has an unknown form")
    (kind, payload), = value.items()
    if kind == "list":
        if not isinstance(payload, list) or len(payload) > 4096:
            raise ProtocolViolation("graph list argument invalid or too long")
        for v in payload:
            _check_arg(v, n_inputs, n_consts, n_nodes, depth + 1)
    elif kind == "ref":
        bounds = {"in": n_inputs, "const": n_consts, "node": n_nodes}
        ok = (isinstance(payload, list) and len(payload) == 2 and payload[0] in bounds
              and type(payload[1]) is int and 0 <= payload[1] < bounds[payload[0]])
        if not ok:
            raise ProtocolViolation(f"graph reference {str(payload)[:40]} points nowhere")
    elif kind == "float":
        if payload not in ("inf", "-inf", "nan"):
            raise ProtocolViolation("graph float argument invalid")
    elif kind == "device":
        if payload != "cpu":
            raise ProtocolViolation(f"graph device {str(payload)[:20]!r} is not cpu")
    elif kind in _ENUMS:
        if payload not in _ENUMS[kind][1]:
            raise ProtocolViolation(f"graph {kind} {str(payload)[:20]!r} is not allowed")
    else:
        raise ProtocolViolation(f"graph argument kind {kind[:20]!r} is unknown")


def deserialize(spec: Any, consts: list[torch.Tensor]) -> Graph:
    """Strictly decode a graph spec from an untrusted process (ProtocolViolation if bad)."""
    if not isinstance(spec, dict) or set(spec) != {"inputs", "nodes", "output"}:
        raise ProtocolViolation("graph spec is not {'inputs', 'nodes', 'output'}")
    n_inputs, nodes = spec["inputs"], spec["nodes"]
    if type(n_inputs) is not int or not 0 <= n_inputs <= MAX_ARGS:
        raise ProtocolViolation("graph input count invalid")
    if not isinstance(nodes, list) or len(nodes) > MAX_NODES:
        raise ProtocolViolation(f"graph has more than {MAX_NODES} nodes or is not a list")
    ops, args, kwargs = [], [], []
    for i, node in enumerate(nodes):
        if not isinstance(node, dict) or set(node) != {"op", "args", "kwargs"}:
            raise ProtocolViolation("graph node is not {'op', 'args', 'kwargs'}")
        ops.append(_resolve(node["op"]))
        _check_arg(node["args"], n_inputs, len(consts), i)
        if not isinstance(node["args"], dict) or "list" not in node["args"]:
            raise ProtocolViolation("graph node args are not a list")
        if not isinstance(node["kwargs"], dict) or len(node["kwargs"]) > MAX_ARGS:
            raise ProtocolViolation("graph node kwargs are not a small object")
        for key, value in node["kwargs"].items():
            if not key.isidentifier():
                raise ProtocolViolation("graph keyword is not an identifier")
            _check_arg(value, n_inputs, len(consts), i)
        args.append(node["args"])
        kwargs.append(node["kwargs"])
    _check_arg(spec["output"], n_inputs, len(consts), len(nodes))
    return Graph(n_inputs, ops, args, kwargs, spec["output"], consts)


def _decode(value: Any, env: dict[str, list]) -> Any:
    if not isinstance(value, dict):
        return value
    (kind, payload), = value.items()
    if kind == "list":
        return [_decode(v, env) for v in payload]
    if kind == "ref":
        return env[payload[0]][payload[1]]
    if kind == "float":
        return float(payload)
    if kind == "device":
        return torch.device(payload)
    return _ENUMS[kind][1][payload]


def _run(graph: Graph, inputs: Sequence[torch.Tensor]) -> Any:
    env: dict[str, list] = {"in": list(inputs), "const": graph.consts, "node": []}
    for op, args, kwargs in zip(graph.ops, graph.args, graph.kwargs, strict=True):
        call_args = _decode(args, env)
        call_kwargs = {k: _decode(v, env) for k, v in kwargs.items()}
        env["node"].append(op(*call_args, **call_kwargs))
    return _decode(graph.output, env)


def replay(graph: Graph, inputs: Sequence[torch.Tensor],
           cost: bool = False) -> tuple[list[Any], CostProfile | None, bool]:
    """Run ``graph`` on ``inputs``: ``(flat outputs, cost profile or None, inputs mutated)``.

    Ops raise whatever ATen raises for bad arguments; the replay child reports that as the
    candidate's protocol violation.
    """
    if len(inputs) != graph.n_inputs:
        raise ProtocolViolation(f"graph takes {graph.n_inputs} inputs, the task has {len(inputs)}")
    before = [t.clone() for t in inputs]
    with torch.no_grad():
        if cost:
            profile, out = measure_with_output(lambda *xs: _run(graph, xs), list(inputs))
        else:
            profile, out = None, _run(graph, inputs)
    mutated = any(not torch.equal(a, b) for a, b in zip(before, inputs, strict=True))
    return flatten(out), profile, mutated
