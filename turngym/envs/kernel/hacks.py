r"""Reward-hack detection for kernel candidates: static checks (host) and in-process monitors.

KernelBench (Ouyang et al., 2025) ships a static checker (``kernel_static_checker.py``: try/except
bypass, threading, timer monkey-patching) and KernelGYM / Dr. Kernel (hkust-nlp/KernelGYM)
rejects "decoy" submissions whose declared Triton kernel is never launched. These checks follow
both, adapted to a CPU without Triton (docs/environments.md#kernelgen). Every finding is a
:class:`Hack` ``(check, detail)``; any finding makes the reward 0.

Static checks (:func:`static_hacks`, on the candidate's AST in the host, before anything runs):

* ``try_except``: any ``try`` statement (KernelBench flags them all: a ``try`` around a kernel
  with the PyTorch path in ``except`` is the classic fallback hack);
* ``forbidden_import``: :data:`FORBIDDEN_IMPORTS` (threads, processes, ctypes, sockets,
  signals, ``gc``, ``inspect`` and ``turngym`` itself, whose oracles a candidate could echo);
* ``reference_name``: the candidate names the reference class ``Model`` or ``get_inputs``.

In-process monitors (run inside the candidate's own sandboxed process, so they are a
*reporting second line*: a candidate can tamper with anything in its process; the grader's
decisions rest on what it checks from outside, see :mod:`~turngym.envs.kernel.grader`):

* ``kernel_never_launched``: a declared Python kernel (a module-level function whose name
  contains ``kernel`` or that is decorated with something named ``*jit``) never ran during
  ``forward`` (:class:`CallMonitor`, ``sys.setprofile``); for ``@triton.jit`` kernels
  :class:`TritonLaunches` records real launches in the CPU interpreter;
* ``monkeypatch``: a timer in :mod:`time`, a callable in ``torch``, ``torch.nn.functional`` or
  ``torch.Tensor``, or ``torch.nn.Module.__call__`` is a different object after the candidate
  ran than before it was imported;
* ``threads_left_running``: a Python thread started by the candidate is alive after it ran;
* ``sandbox_escape``: an audit event (PEP 578) for opening a file outside the Python
  installation, a socket, starting a process, loading a C library, or walking the garbage
  collector's objects. The OS walls (seccomp, the minimal root) already refuse most of these.

Example:
    >>> [h.check for h in static_hacks("class ModelNew:\n  try:\n    x = 1\n  except: pass")]
    ['try_except']
"""

from __future__ import annotations

import ast
import os
import sys
import threading
import time
import types
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeGuard

if sys.version_info >= (3, 11):  # try/except* and code.co_qualname are new in Python 3.11
    _TRY_NODES: tuple[type[ast.AST], ...] = (ast.Try, ast.TryStar)

    def _qualname(code: types.CodeType) -> str:
        return code.co_qualname

else:  # pragma: no cover - Python 3.10
    _TRY_NODES = (ast.Try,)

    def _qualname(code: types.CodeType) -> str:
        return code.co_name

__all__ = [
    "Hack",
    "FORBIDDEN_IMPORTS",
    "static_hacks",
    "declared_kernels",
    "triton_kernels",
    "TritonLaunches",
    "code_objects",
    "CallMonitor",
    "snapshot_callables",
    "patched_names",
    "install_audit_hook",
    "alive_new_threads",
]

FORBIDDEN_IMPORTS = frozenset(
    {
        "threading",
        "_thread",
        "multiprocessing",
        "subprocess",
        "ctypes",
        "socket",
        "signal",
        "concurrent",
        "gc",
        "inspect",
        "turngym",
    }
)
"""Top-level modules a candidate may not import."""


@dataclass(frozen=True, slots=True)
class Hack:
    """One detected reward hack: the check's name and a sentence for the agent."""

    check: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return {"check": self.check, "detail": self.detail}


def _is_kernel_def(node: ast.AST) -> TypeGuard[ast.FunctionDef | ast.AsyncFunctionDef]:
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return False
    names = []
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        names.append(
            target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        )
    return "kernel" in node.name.lower() or any(n.lower().endswith("jit") for n in names)


def declared_kernels(tree: ast.Module) -> list[str]:
    """Names of the module-level functions that count as declared custom kernels."""
    return [n.name for n in tree.body if _is_kernel_def(n)]


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return getattr(node, "id", "")


def triton_kernels(tree: ast.Module) -> list[str]:
    r"""Names of the module-level functions decorated by Triton (``@triton.jit`` and friends).

    A decorator counts when its dotted name starts with an alias of the ``triton`` module
    (``import triton as tr`` -> ``@tr.jit``) or is a name imported from Triton
    (``from triton import jit``), so ``@numba.jit`` is not mistaken for a Triton kernel.

    Example:
        >>> triton_kernels(ast.parse("import triton\n@triton.jit\ndef k(x): pass"))
        ['k']
    """
    modules: set[str] = set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(
                a.asname or a.name for a in node.names if a.name.split(".")[0] == "triton"
            )
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "triton":
            names.update(a.asname or a.name for a in node.names)
    found = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for dec in node.decorator_list:
            name = _dotted(dec)
            if name in names or any(name.startswith(f"{m}.") for m in modules):
                found.append(node.name)
                break
    return found


def static_hacks(source: str) -> list[Hack]:
    """Run the static checks on candidate source (which must parse)."""
    hacks: list[Hack] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, _TRY_NODES):
            hacks.append(
                Hack(
                    "try_except",
                    f"line {node.lineno}: try/except is not allowed "
                    "(a fallback path can hide a failing kernel)",
                )
            )
        elif isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for mod in mods:
                if mod and mod.split(".")[0] in FORBIDDEN_IMPORTS:
                    hacks.append(Hack("forbidden_import", f"line {node.lineno}: import {mod}"))
        elif isinstance(node, ast.Name) and node.id in ("Model", "get_inputs"):
            hacks.append(
                Hack(
                    "reference_name",
                    f"line {node.lineno}: uses the reference's "
                    f"{node.id!r}; ModelNew must not call the reference",
                )
            )
    return list(dict.fromkeys(hacks))  # drop repeats, keep order


def code_objects(namespace: dict[str, Any], names: Iterable[str] | None = None) -> set[Any]:
    """Code objects of the functions and methods defined in an exec'd module namespace.

    Args:
        namespace: The module's globals after ``exec``.
        names: Only these names (default: every function and class defined by the module).
    """
    codes: set[Any] = set()
    module_name = namespace.get("__name__")
    stack = [namespace[n] for n in (names if names is not None else list(namespace))]
    while stack:
        obj = stack.pop()
        obj = getattr(obj, "fn", None) or getattr(obj, "__wrapped__", None) or obj
        if isinstance(obj, types.FunctionType):
            if obj.__module__ == module_name:
                codes.add(obj.__code__)
                codes.update(c for c in obj.__code__.co_consts if isinstance(c, types.CodeType))
        elif isinstance(obj, type) and obj.__module__ == module_name:
            stack.extend(vars(obj).values())
        elif isinstance(obj, staticmethod | classmethod | property):
            inner = (getattr(obj, "__func__", None), getattr(obj, "fget", None))
            stack.extend(f for f in inner if f is not None)
    return codes


class CallMonitor:
    """``sys.setprofile`` hook: which watched code objects ran, and kernel nesting depth.

    Use as a context manager around candidate code. ``reference_calls`` lists the watched
    reference functions that ran (the grader keeps the reference out of the candidate's
    process, so it passes none); ``kernel_calls`` the declared kernels that ran;
    :meth:`in_kernel` is true while a declared kernel is on the stack (for the cost model's
    coverage).
    """

    def __init__(self, reference_codes: set[Any], kernel_codes: dict[Any, str]) -> None:
        """Watch ``reference_codes`` and ``kernel_codes`` (code object -> kernel name).

        Code objects are matched by identity: equal code (the reference pasted into the
        candidate) compiled from another module is the candidate's own.
        """
        self.reference_codes = {id(c): c for c in reference_codes}
        self.kernel_codes = {id(c): (c, n) for c, n in kernel_codes.items()}
        self.reference_calls: list[str] = []
        self.kernel_calls: list[str] = []
        self._depth = 0
        self._previous: Any = None

    def in_kernel(self) -> bool:
        """Whether a declared kernel is running now."""
        return self._depth > 0

    def _hook(self, frame: types.FrameType, event: str, arg: Any) -> None:
        key = id(frame.f_code)
        if event == "call":
            if key in self.kernel_codes:
                self._depth += 1
                self.kernel_calls.append(self.kernel_codes[key][1])
            elif key in self.reference_codes:
                self.reference_calls.append(_qualname(frame.f_code))
        elif event == "return" and key in self.kernel_codes:
            self._depth = max(0, self._depth - 1)

    def __enter__(self) -> CallMonitor:
        self._previous = sys.getprofile()
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(self._previous)


class TritonLaunches:
    """Record every Triton kernel launch run by the CPU interpreter (``TRITON_INTERPRET=1``).

    Wraps ``triton.runtime.interpreter.GridExecutor.__call__`` (one call = one kernel launch
    over its whole grid) and ``InterpreterBuilder.create_dot`` (to count ``tl.dot`` FLOPs).
    Launches are matched by the kernel's function name: the interpreter executes an
    AST-rewritten copy of the kernel, so the code-object identity of :class:`CallMonitor`
    cannot see it. Install it before the candidate is imported (Triton reads
    ``TRITON_INTERPRET`` when a kernel is decorated).

    Attributes:
        launches: ``(kernel name, bytes of its tensor arguments, tl.dot FLOPs)`` per launch.
    """

    _instance: TritonLaunches | None = None

    @classmethod
    def install(cls) -> TritonLaunches:
        """The process-wide recorder, patching the interpreter once.

        Raises ``ImportError`` without Triton. One per process: a second instance would wrap
        the wrapper and count every launch twice.
        """
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def __init__(self) -> None:
        """Patch the interpreter (raises ``ImportError`` without Triton)."""
        from triton.runtime import interpreter

        self.launches: list[tuple[str, int, int]] = []
        self._depth = 0
        self._flops = 0
        recorder = self
        run_grid = interpreter.GridExecutor.__call__
        create_dot = interpreter.InterpreterBuilder.create_dot

        def grid_call(executor: Any, *args: Any, **kwargs: Any) -> Any:
            recorder._depth += 1
            outer_flops, recorder._flops = recorder._flops, 0
            try:
                return run_grid(executor, *args, **kwargs)
            finally:
                recorder._depth -= 1
                name = getattr(executor.fn, "__name__", "?")
                recorder.launches.append((name, _arg_bytes(args, kwargs), recorder._flops))
                recorder._flops = outer_flops

        def dot(builder: Any, a: Any, b: Any, *args: Any, **kwargs: Any) -> Any:
            # One program's (.., M, K) @ (K, N) block product: 2*M*N*K per batch element.
            recorder._flops += 2 * int(a.data.size) * int(b.data.shape[-1])
            return create_dot(builder, a, b, *args, **kwargs)

        interpreter.GridExecutor.__call__ = grid_call
        interpreter.InterpreterBuilder.create_dot = dot

    def active(self) -> bool:
        """Whether a kernel launch is running now (its ATen ops are interpreter plumbing)."""
        return self._depth > 0

    def names(self, since: int = 0) -> list[str]:
        """Kernel names launched since launch index ``since``, in first-launch order."""
        return list(dict.fromkeys(n for n, _, _ in self.launches[since:]))


def _arg_bytes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Bytes of the distinct tensors passed to a launch (each storage view counted once)."""
    import torch

    seen: dict[tuple[int, int], int] = {}
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            key = (value.data_ptr(), value.numel())
            seen[key] = value.numel() * value.element_size()
    return sum(seen.values())


_TIMERS = (
    "perf_counter",
    "perf_counter_ns",
    "time",
    "time_ns",
    "monotonic",
    "monotonic_ns",
    "process_time",
    "process_time_ns",
    "sleep",
)


def snapshot_callables() -> dict[str, Any]:
    """The timers and torch callables a candidate must not replace, by name.

    The objects themselves are kept (compared with ``is``, so ids cannot be recycled).
    ``torch.Tensor`` is read from the class ``__dict__`` of its MRO, because attribute
    lookup creates a fresh bound object for classmethods on every access.
    """
    import torch  # here, so the parent's static checks need no torch

    snap: dict[str, Any] = {f"time.{n}": getattr(time, n) for n in _TIMERS}
    for prefix, owner in (("torch", torch), ("torch.nn.functional", torch.nn.functional)):
        for name in dir(owner):
            value = getattr(owner, name, None)
            if not name.startswith("__") and callable(value) and not isinstance(value, type):
                snap[f"{prefix}.{name}"] = value
    for cls in reversed(torch.Tensor.__mro__):
        for name, value in vars(cls).items():
            snap[f"torch.Tensor.{name}"] = value
    snap["torch.nn.Module.__call__"] = vars(torch.nn.Module)["__call__"]
    snap["torch.nn.Module._call_impl"] = vars(torch.nn.Module)["_call_impl"]
    return snap


def patched_names(before: dict[str, Any]) -> list[str]:
    """Names whose object changed (or vanished) since ``before = snapshot_callables()``."""
    after = snapshot_callables()
    return sorted(n for n, obj in before.items() if after.get(n, _MISSING) is not obj)


_MISSING = object()
_ALLOWED_OPEN_PREFIXES: tuple[str, ...] = ()
_AUDIT_STATE: dict[str, Any] = {"armed": False, "events": []}
_AUDIT_HOOK_INSTALLED = False  # an audit hook cannot be removed: install it once per process
_WATCHED_EVENTS = (
    "socket.connect",
    "socket.bind",
    "subprocess.Popen",
    "os.system",
    "os.fork",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "ctypes.dlopen",
    "ctypes.cdata",
    "os.kill",
    "gc.get_objects",
    "gc.get_referrers",
    "gc.get_referents",
)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _AUDIT_STATE["armed"]:
        return
    if event == "open":
        path = args[0]
        if isinstance(path, int) or path is None:
            return
        path = os.path.abspath(os.fsdecode(path))
        if not path.startswith(_ALLOWED_OPEN_PREFIXES):
            _AUDIT_STATE["events"].append(f"opened {path}")
    elif event in _WATCHED_EVENTS:
        _AUDIT_STATE["events"].append(f"{event} {str(args)[:80]}")


def install_audit_hook(extra_allowed: Iterable[str] = ()) -> dict[str, Any]:
    """Install the (irremovable) audit hook once; return its state dict.

    Set ``state["armed"] = True`` around candidate code; ``state["events"]`` collects what it
    saw. Files under the Python installation (``sys.prefix``, ``sys.base_prefix``, the paths of
    ``sys.path``) and ``/proc/self`` may be opened (lazy imports read them); anything else is an
    event.
    """
    global _ALLOWED_OPEN_PREFIXES, _AUDIT_HOOK_INSTALLED
    roots = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        "/proc/self/",
        "/sys/devices/system/cpu",
        "/dev/null",
        "/dev/urandom",
        *extra_allowed,
    }
    roots.update(p for p in sys.path if p and os.path.isabs(p))
    _ALLOWED_OPEN_PREFIXES = tuple(sorted(os.path.abspath(r) for r in roots))
    if not _AUDIT_HOOK_INSTALLED:
        sys.addaudithook(_audit)
        _AUDIT_HOOK_INSTALLED = True
    return _AUDIT_STATE


def alive_new_threads(before: set[int]) -> list[str]:
    """Names of Python threads alive now that were not in ``before`` (thread idents)."""
    return sorted(t.name for t in threading.enumerate() if t.ident not in before and t.is_alive())
