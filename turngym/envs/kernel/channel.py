"""The private channel between the kernel grader and its sandboxed children (issue 17 item 1).

Each child gets one end of a ``socketpair`` (``AF_UNIX``, ``SOCK_STREAM``) that only the
grader reads; stdout and stderr are never parsed. A message is a frame::

    u64 length | u32 header length | header (UTF-8 JSON object) | blob

and tensors travel in the blob in a strict hand-written format: the header lists
``{"dtype", "shape"}`` per tensor, the blob is their C-contiguous bytes back to back. The
decoder (:func:`read_message`, :func:`decode_tensors`) accepts only what it was told to
expect: a frame over the size cap is never read, the header must be a small flat JSON
object, every dtype must be one of :data:`DTYPES`, shapes must be lists of non-negative ints
whose byte sizes add up *exactly* to the blob, and the result is a list of plain dense CPU
``torch.Tensor`` that own their memory (``torch.frombuffer`` on a private copy). Anything
else raises :class:`ProtocolViolation`, which the grader turns into a verdict; nothing a
child sends can raise anything else here.

The child's first byte is read with ``recvmsg`` under ``SO_PASSCRED``, so the kernel, not
the child, says which process is on the other end (:func:`read_hello`): the grader measures
that pid's CPU time from ``/proc`` (:func:`cpu_time`). File descriptors a child tries to pass
are closed on arrival (plain ``recv`` drops them; the hello's ancillary data is scanned).

Example:
    >>> import socket
    >>> a, b = socket.socketpair()
    >>> send_message(a, {"kind": "outputs"}, [torch.arange(3.0)])
    >>> header, blob = read_message(b, max_bytes=1 << 20, timeout=5)
    >>> decode_tensors(header, blob, max_tensors=4)[0].tolist()
    [0.0, 1.0, 2.0]
"""

from __future__ import annotations

import array
import json
import os
import socket
import struct
import time
from typing import Any

import torch

__all__ = [
    "DTYPES",
    "ProtocolViolation",
    "send_message",
    "read_message",
    "encode_tensors",
    "decode_tensors",
    "read_hello",
    "send_hello",
    "cpu_time",
]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
"""The only tensor dtypes that cross the channel."""
_NAMES = {v: k for k, v in DTYPES.items()}
MAX_HEADER = 256 * 1024
MAX_DIMS = 8
_LEN = struct.Struct("<QI")


class ProtocolViolation(Exception):
    """A child's reply was missing, malformed, oversized or not what was asked for."""


def encode_tensors(tensors: list[torch.Tensor]) -> tuple[list[dict[str, Any]], bytes]:
    """``(specs, blob)`` for plain tensors (detached, on the CPU, made contiguous)."""
    specs, parts = [], []
    for t in tensors:
        t = t.detach().cpu().contiguous()
        specs.append({"dtype": _NAMES[t.dtype], "shape": list(t.shape)})
        parts.append(t.view(torch.uint8).reshape(-1).numpy().tobytes() if t.numel() else b"")
    return specs, b"".join(parts)


def send_message(sock: socket.socket, header: dict[str, Any],
                 tensors: list[torch.Tensor] | None = None, blob: bytes = b"") -> None:
    """Send one frame; ``tensors`` are encoded into the header (``tensors``) and the blob."""
    header = dict(header)
    if tensors is not None:
        header["tensors"], blob = encode_tensors(tensors)
    raw = json.dumps(header, allow_nan=False).encode()
    sock.sendall(_LEN.pack(4 + len(raw) + len(blob), len(raw)) + raw)
    if blob:
        sock.sendall(blob)


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytearray:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProtocolViolation("no complete reply before the deadline")
        sock.settimeout(left)
        try:
            k = sock.recv_into(view[got:], n - got)
        except TimeoutError:
            raise ProtocolViolation("no complete reply before the deadline") from None
        except OSError as err:
            raise ProtocolViolation(f"channel error: {err.strerror or err}") from None
        if k == 0:
            raise ProtocolViolation("the child closed the channel (exited or crashed)")
        got += k
    return buf


def read_message(sock: socket.socket, *, max_bytes: int,
                 timeout: float) -> tuple[dict[str, Any], bytearray]:
    """Read one frame within ``timeout`` seconds; ``(header, blob)`` or ProtocolViolation."""
    deadline = time.monotonic() + timeout
    total, hlen = _LEN.unpack(bytes(_recv_exact(sock, _LEN.size, deadline)))
    if total > max_bytes + 4 + MAX_HEADER:
        raise ProtocolViolation(f"reply of {total} bytes exceeds the cap of {max_bytes}")
    if hlen > min(total - 4, MAX_HEADER):
        raise ProtocolViolation(f"header length {hlen} is invalid")
    raw = _recv_exact(sock, total - 4, deadline)
    try:
        header = json.loads(bytes(raw[:hlen]).decode("utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError) as err:
        raise ProtocolViolation(f"header is not valid JSON ({type(err).__name__})") from None
    if not isinstance(header, dict) or not isinstance(header.get("kind"), str):
        raise ProtocolViolation("header is not an object with a 'kind'")
    return header, raw[hlen:]


def _shape(value: Any) -> list[int]:
    if not isinstance(value, list) or len(value) > MAX_DIMS:
        raise ProtocolViolation(f"shape {str(value)[:60]} is not a list of at most {MAX_DIMS}")
    for d in value:
        if type(d) is not int or not 0 <= d < 1 << 40:
            raise ProtocolViolation(f"shape {str(value)[:60]} has a non-integer or bad size")
    return value


def decode_tensors(header: dict[str, Any], blob: bytes | bytearray, *, max_tensors: int,
                   key: str = "tensors") -> list[torch.Tensor]:
    """The tensors listed in ``header[key]``, decoded from ``blob`` (exact size, own memory)."""
    specs = header.get(key)
    if not isinstance(specs, list) or len(specs) > max_tensors:
        raise ProtocolViolation(f"'{key}' is not a list of at most {max_tensors} tensors")
    sizes, dtypes, shapes = [], [], []
    for spec in specs:
        if not isinstance(spec, dict) or set(spec) != {"dtype", "shape"}:
            raise ProtocolViolation("a tensor spec is not {'dtype', 'shape'}")
        dtype = DTYPES.get(spec["dtype"]) if isinstance(spec["dtype"], str) else None
        if dtype is None:
            raise ProtocolViolation(f"dtype {str(spec['dtype'])[:40]!r} is not allowed")
        shape = _shape(spec["shape"])
        numel = 1
        for d in shape:
            numel *= d
        sizes.append(numel * torch.empty((), dtype=dtype).element_size())
        dtypes.append(dtype)
        shapes.append(shape)
    if sum(sizes) != len(blob):
        raise ProtocolViolation(f"blob has {len(blob)} bytes, the specs need {sum(sizes)}")
    out, offset = [], 0
    for size, dtype, shape in zip(sizes, dtypes, shapes, strict=True):
        chunk = bytearray(blob[offset : offset + size])
        offset += size
        if dtype is torch.bool and any(b > 1 for b in chunk):
            raise ProtocolViolation("a bool tensor holds bytes other than 0 and 1")
        flat = torch.frombuffer(chunk, dtype=dtype) if size else torch.empty(0, dtype=dtype)
        out.append(flat.reshape(shape))
    return out


def send_hello(sock: socket.socket) -> None:
    """The child's first byte; the grader reads the kernel-attached credentials with it."""
    sock.sendall(b"H")


def read_hello(sock: socket.socket, timeout: float) -> int:
    """The pid of the process that sent the first byte (``SO_PASSCRED``); closes passed fds."""
    sock.settimeout(timeout)
    try:
        data, ancdata, _, _ = sock.recvmsg(1, socket.CMSG_SPACE(64))
    except TimeoutError:
        raise ProtocolViolation("the child never said hello") from None
    except OSError as err:
        raise ProtocolViolation(f"channel error: {err}") from None
    pid = None
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            for fd in fds:
                os.close(fd)
        elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
    if data != b"H" or pid is None:
        raise ProtocolViolation("the child's hello was malformed")
    return pid


def cpu_time(pid: int) -> float | None:
    """CPU seconds of every live thread of ``pid`` (``/proc/<pid>/task/*/schedstat``, ns)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9
