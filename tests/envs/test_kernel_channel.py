"""The grader's channel and graph decoders never fail except with ProtocolViolation (issue 17).

Hypothesis feeds them random bytes, mutated valid frames and hostile headers; a decoder that
raised anything else (or returned a tensor that is not plain, dense, on the CPU, of an allowed
dtype and the announced shape) would let a child crash the grader or smuggle an object past
it.
"""

from __future__ import annotations

import json
import socket
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from turngym.envs.kernel import channel as ch
from turngym.envs.kernel import graph as gr

SETTINGS = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


def _roundtrip(raw: bytes, cap: int = 1 << 16) -> tuple[dict, bytearray]:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(raw)
        a.shutdown(socket.SHUT_WR)
        return ch.read_message(b, max_bytes=cap, timeout=2)


def _frame(header: dict | bytes, blob: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<QI", 4 + len(raw) + len(blob), len(raw)) + raw + blob


def test_known_answers() -> None:
    tensors = [torch.arange(6.0).reshape(2, 3), torch.tensor([True, False]),
               torch.zeros(0, 4, dtype=torch.bfloat16)]
    a, b = socket.socketpair()
    with a, b:
        ch.send_message(a, {"kind": "outputs"}, tensors)
        header, blob = ch.read_message(b, max_bytes=1 << 16, timeout=2)
    out = ch.decode_tensors(header, blob, max_tensors=3)
    assert all(type(t) is torch.Tensor and t.device.type == "cpu" for t in out)
    assert [torch.equal(x, y) for x, y in zip(out, tensors, strict=True)] == [True] * 3
    bad = [
        (_frame({"kind": "x"}, b"1"), None),  # fine frame, decoding its tensors fails below
        (struct.pack("<QI", 1 << 40, 2) + b"{}", "exceeds the cap"),
        (_frame(b"[" * 5000 + b"]" * 5000), "not valid JSON"),
        (_frame(b'"just a string"'), "not an object"),
        (_frame(b"\xff\xfe"), "not valid JSON"),
        (_frame({"kind": "x"})[:-1], "closed the channel"),
    ]
    for raw, why in bad[1:]:
        with pytest.raises(ch.ProtocolViolation, match=why):
            _roundtrip(raw)
    header, blob = _roundtrip(bad[0][0])
    with pytest.raises(ch.ProtocolViolation, match="not a list"):
        ch.decode_tensors(header, blob, max_tensors=4)
    for spec, blob, why in [
        ([{"dtype": "float32", "shape": [2]}], b"\0" * 7, "blob has 7 bytes"),
        ([{"dtype": "object", "shape": [1]}], b"\0" * 8, "not allowed"),
        ([{"dtype": "float32", "shape": [-1]}], b"", "bad size"),
        ([{"dtype": "float32", "shape": [1.5]}], b"", "non-integer"),
        ([{"dtype": "bool", "shape": [1]}], b"\x07", "bool tensor"),
        ([{"dtype": "float32", "shape": [1], "strides": [1]}], b"\0" * 4, "dtype', 'shape'"),
        ([{"dtype": "float32", "shape": [1] * 9}], b"\0" * 4, "at most 8"),
    ]:
        with pytest.raises(ch.ProtocolViolation, match=why):
            ch.decode_tensors({"tensors": spec}, blob, max_tensors=4)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_are_a_violation_or_a_frame(raw: bytes) -> None:
    try:
        header, blob = _roundtrip(raw)
    except ch.ProtocolViolation:
        return
    assert isinstance(header, dict)
    try:
        out = ch.decode_tensors(header, blob, max_tensors=8)
    except ch.ProtocolViolation:
        return
    assert all(type(t) is torch.Tensor for t in out)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c,
                                                                         max_size=4),
                     max_leaves=20)
_spec = st.fixed_dictionaries({"dtype": st.sampled_from([*ch.DTYPES, "object", 3]),
                               "shape": st.lists(st.integers(-2, 6), max_size=4) | _json})


@SETTINGS
@given(st.lists(_spec | _json, max_size=4), st.binary(max_size=600), st.integers(0, 8))
def test_hostile_tensor_headers(specs: list, blob: bytes, max_tensors: int) -> None:
    try:
        out = ch.decode_tensors({"tensors": specs}, blob, max_tensors=max_tensors)
    except ch.ProtocolViolation:
        return
    assert len(out) == len(specs) <= max_tensors
    for t, spec in zip(out, specs, strict=True):
        assert type(t) is torch.Tensor and t.dtype == ch.DTYPES[spec["dtype"]]
        assert list(t.shape) == spec["shape"] and t.is_contiguous() and t.device.type == "cpu"


_arg = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=5)
    | st.fixed_dictionaries({"ref": st.lists(st.sampled_from(["in", "const", "node", "x", 0]),
                                             max_size=3)})
    | st.fixed_dictionaries({"ref": st.tuples(st.sampled_from(["in", "node"]),
                                              st.integers(-1, 3)).map(list)})
    | st.fixed_dictionaries({"dtype": st.sampled_from(["float32", "int64", "evil"])}),
    lambda c: st.fixed_dictionaries({"list": st.lists(c, max_size=3)}), max_leaves=10)
_op = st.sampled_from(["aten.relu.default", "aten.add.Tensor", "aten.set_.source_Tensor",
                       "aten.empty_like.default", "getitem", "os.system", "aten.relu", 7,
                       "aten.__class__.default", "aten.mm.default", "aten.from_file.default"])
_node = st.fixed_dictionaries({"op": _op, "args": _arg, "kwargs": st.dictionaries(
    st.sampled_from(["alpha", "dim", "__x"]), _arg, max_size=2)})


@SETTINGS
@given(st.lists(_node, max_size=5), _arg, st.integers(-1, 3))
def test_hostile_graphs_are_rejected_or_replay_safely(nodes: list, output, n_in: int) -> None:
    spec = {"inputs": n_in, "nodes": nodes, "output": output}
    try:
        graph = gr.deserialize(spec, [torch.ones(2)])
    except ch.ProtocolViolation:
        return
    # What the decoder accepts only ever calls allowed ATen ops on decoded values; the replay
    # child reports any exception they raise as the candidate's failure.
    try:
        gr.replay(graph, [torch.ones(2)] * graph.n_inputs)
    except Exception:  # noqa: BLE001 - ATen rejecting bad arguments is fine
        pass


def test_graph_roundtrip_reproduces_and_costs() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    x = [torch.randn(5, 4)]
    out, spec, consts = gr.capture(model, x)
    graph = gr.deserialize(json.loads(json.dumps(spec)), consts)
    x2 = [torch.randn(5, 4)]
    outs, profile, mutated = gr.replay(graph, x2, cost=True)
    assert torch.allclose(outs[0], model(*x2)) and not mutated
    assert profile.op_names[-2:] == ["addmm", "relu"] and profile.flops == 2 * 5 * 4 * 3
