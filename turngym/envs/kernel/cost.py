"""Deterministic CPU cost model: FLOPs, ATen operator counts and bytes moved.

Wall-clock timing on a small shared CPU is noisy (measured on 2 cores: 9-24 % coefficient of
variation, spurious 1.08x "speedups"), so KernelGym-CPU grades speed primarily by a cost model
that needs no timing at all (docs/environments.md#kernelgen). A forward pass is run under two
PyTorch modes at once:

* :class:`torch.utils.flop_counter.FlopCounterMode` counts FLOPs of the matmul-like ops
  (``mm``, ``addmm``, ``bmm``, convolutions, attention);
* :class:`OpRecorder`, a ``TorchDispatchMode``, sees every ATen operator that actually runs and
  adds up the bytes of its tensor inputs and outputs ("bytes moved").

The modelled time is additive, a simple roofline-style sum (constants are nominal for one CPU
core and only their ratios matter)::

    cost_us = flops / FLOPS_PER_US + bytes / BYTES_PER_US + ops * OP_OVERHEAD_US

so fusing ops (fewer launches, fewer intermediate tensors written and read back) and avoiding
redundant work lower the cost, while a rewrite that computes the same ops costs exactly the
same. ``speedup = cost_ref / cost_new`` is then exactly 1.0 for the reference itself.

Triton kernels run by the CPU interpreter (``TRITON_INTERPRET=1``) are opaque to both modes: the
ATen ops dispatched during a launch are the interpreter's host copies, not the kernel's work,
and interpreted wall-clock time says nothing about GPU speed. So the ATen ops inside a launch
are not costed (:class:`OpRecorder`'s ``opaque``) and each launch is charged as one fused op
by :meth:`CostProfile.add_kernel_launch`: one op overhead, the bytes of its distinct tensor
arguments (every input read and output written once, the ideal of a fused kernel) and the
FLOPs of its ``tl.dot`` calls (elementwise FLOPs are not counted, as for ATen ops).
Compare KernelBench (Ouyang et al., 2025), which times on a GPU with CUDA events, and
KernelGYM / Dr. Kernel (hkust-nlp/KernelGYM), which also uses the PyTorch profiler.

Example:
    >>> import torch
    >>> profile = measure_cost(lambda a, b: a @ b, (torch.ones(4, 8), torch.ones(8, 2)))
    >>> profile.flops, profile.ops, profile.op_names
    (128, 1, ['mm'])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

__all__ = [
    "FLOPS_PER_US",
    "BYTES_PER_US",
    "OP_OVERHEAD_US",
    "FREE_OPS",
    "CostProfile",
    "OpRecorder",
    "measure_cost",
    "cost_us",
]

FLOPS_PER_US = 50_000.0
"""Nominal arithmetic throughput: 50 GFLOP/s, one modern CPU core with SIMD."""
BYTES_PER_US = 10_000.0
"""Nominal memory bandwidth: 10 GB/s per core."""
OP_OVERHEAD_US = 2.0
"""Fixed cost of dispatching one ATen operator (eager-mode overhead), in microseconds."""

FREE_OPS = frozenset(
    {
        "view",
        "_unsafe_view",
        "reshape",
        "t",
        "transpose",
        "permute",
        "expand",
        "unsqueeze",
        "squeeze",
        "as_strided",
        "alias",
        "detach",
        "slice",
        "select",
        "split",
        "unbind",
        "_reshape_alias",
        "lift_fresh",
        "empty",
        "empty_like",
        "empty_strided",
    }
)
"""Metadata-only ops (no data is read or written): counted in ``op_names``, never costed.
``empty`` is free because it writes nothing; a candidate returning uninitialised memory
fails the correctness check instead."""


@dataclass(slots=True)
class CostProfile:
    """What one forward pass did, by the cost model.

    Attributes:
        flops: Floating-point operations (FlopCounterMode).
        bytes: Bytes of tensor inputs plus outputs of every costed op.
        ops: Number of costed (non-metadata) ATen ops.
        op_names: Every ATen op in call order (overload stripped), metadata ops included.
        custom_bytes: Bytes of ops dispatched while a declared custom kernel was running,
            plus the bytes charged to Triton launches.
        kernel_launches: Triton launches charged by :meth:`add_kernel_launch`.
    """

    flops: int = 0
    bytes: int = 0
    ops: int = 0
    op_names: list[str] = field(default_factory=list)
    custom_bytes: int = 0
    kernel_launches: int = 0

    def add_kernel_launch(self, nbytes: int, flops: int = 0) -> None:
        """Charge one opaque custom-kernel launch as a single fused op.

        Example:
            >>> p = CostProfile()
            >>> p.add_kernel_launch(8_000, 100_000)
            >>> p.ops, p.bytes, p.custom_bytes, p.flops, p.cost_us
            (1, 8000, 8000, 100000, 4.8)
        """
        self.ops += 1
        self.kernel_launches += 1
        self.bytes += nbytes
        self.custom_bytes += nbytes
        self.flops += flops

    @property
    def cost_us(self) -> float:
        """The modelled time of the pass (see the module docstring)."""
        return cost_us(self.flops, self.bytes, self.ops)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with ``cost_us`` added."""
        return {**asdict(self), "cost_us": round(self.cost_us, 3)}


def cost_us(flops: float, nbytes: float, ops: int) -> float:
    """The additive roofline-style cost in nominal microseconds.

    Example:
        >>> cost_us(50_000, 10_000, 1)
        4.0
    """
    return flops / FLOPS_PER_US + nbytes / BYTES_PER_US + ops * OP_OVERHEAD_US


def _tensor_bytes(values: Any) -> int:
    leaves, _ = tree_flatten(values)
    return sum(t.numel() * t.element_size() for t in leaves if isinstance(t, torch.Tensor))


class OpRecorder(TorchDispatchMode):
    """Record every ATen op, its bytes moved, and whether a custom kernel was running.

    Args:
        profile: Filled in place.
        in_custom: Called per op; ``True`` when the op runs inside a declared custom kernel
            (the evaluator passes its call monitor's flag), which gives kernel coverage.
        opaque: Called per op; ``True`` skips the op entirely (the host copies of an
            interpreted Triton launch, charged separately as one launch).
    """

    def __init__(
        self,
        profile: CostProfile,
        in_custom: Callable[[], bool] | None = None,
        opaque: Callable[[], bool] | None = None,
    ) -> None:
        """Create the recorder."""
        super().__init__()
        self.profile = profile
        self.in_custom = in_custom
        self.opaque = opaque

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        """Run the op and account for it."""
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.opaque is not None and self.opaque():
            return out
        name = func.overloadpacket.__name__
        self.profile.op_names.append(name)
        if name not in FREE_OPS:
            moved = _tensor_bytes((args, kwargs)) + _tensor_bytes(out)
            self.profile.ops += 1
            self.profile.bytes += moved
            if self.in_custom is not None and self.in_custom():
                self.profile.custom_bytes += moved
        return out


def measure_cost(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    in_custom: Callable[[], bool] | None = None,
) -> CostProfile:
    """Run ``fn(*inputs)`` once under the FLOP counter and :class:`OpRecorder`.

    Args:
        fn: Usually a model instance.
        inputs: Its positional arguments.
        in_custom: See :class:`OpRecorder`.

    Returns:
        The :class:`CostProfile`; the output is discarded (call :func:`measure_cost_and_output`
        style code yourself when you need it).
    """
    profile, _ = measure_with_output(fn, inputs, in_custom)
    return profile


def measure_with_output(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    in_custom: Callable[[], bool] | None = None,
    opaque: Callable[[], bool] | None = None,
) -> tuple[CostProfile, Any]:
    """Like :func:`measure_cost` but also return the output of the pass.

    ``opaque`` skips ops, see :class:`OpRecorder`.
    """
    profile = CostProfile()
    flop_mode = FlopCounterMode(display=False)
    with torch.no_grad(), flop_mode, OpRecorder(profile, in_custom, opaque):
        out = fn(*inputs)
    profile.flops = int(flop_mode.get_total_flops())
    return profile, out
