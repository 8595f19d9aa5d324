"""Kernel tasks in KernelBench's shape, with shapes drawn per task, plus hand-written oracles.

A task is a reference PyTorch module in KernelBench's file format (Ouyang et al., 2025,
ScalingIntelligence/KernelBench): ``class Model(nn.Module)`` with ``__init__``/``forward``,
module-level shape constants, ``get_inputs()`` and ``get_init_inputs()``. We write our own
families at KernelBench's three levels, sized for one CPU thread (docs/environments.md#kernelgen):

* level 1, single ops: ``matmul``, ``relu``, ``softmax``, ``layernorm``, ``gelu``, ``conv2d``;
* level 2, fused sequences: ``linear_gelu`` (matmul + bias + GELU), ``conv_relu_pool``,
  ``matmul_scale_residual``;
* level 3, small blocks: ``mlp_block`` (LayerNorm, MLP, residual), ``attention_block``
  (multi-head self-attention).

``get_inputs(generator=None)`` takes an optional ``torch.Generator`` so the evaluator can
draw fresh inputs without the global RNG (KernelBench's takes none and seeds globally).

Each family also has an **oracle**: a hand-written, correct ``ModelNew``. Where the reference
does avoidable work (a hand-rolled softmax/LayerNorm/GELU, an unfused bias add, ReLU before
a max-pool, attention written out op by op) the oracle is cheaper by the cost model
(:mod:`turngym.envs.kernel.cost`); for ``matmul``, ``relu`` and ``conv2d`` there is nothing to
save with PyTorch ops, and the oracle is correct at equal cost. :data:`ORACLE_FASTER` records
which is which.

Example:
    >>> import numpy as np
    >>> task = generate_task(np.random.default_rng(0), {"levels": [1], "families": ["matmul"]})
    >>> task["family"], "class Model(nn.Module)" in task["reference"]
    ('matmul', True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["FAMILIES", "LEVEL_OF", "ORACLE_FASTER", "generate_task", "render"]

_HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"

# Each family: (level, shape choices, init args, forward/init body of Model, get_inputs body,
# oracle ModelNew body). Shapes are filled in with str.format; literal braces are doubled.
_FAMILIES: dict[str, dict[str, Any]] = {
    "matmul": {
        "level": 1,
        "shapes": {"M": (48, 64, 80, 96), "K": (64, 96, 128), "N": (32, 48, 64, 72)},
        "model": """
class Model(nn.Module):
    \"\"\"Matrix multiplication C = A @ B.\"\"\"

    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A, B)
""",
        "inputs": (
            "[torch.randn(M, K, generator=generator), torch.randn(K, N, generator=generator)]"
        ),
        "init": "[]",
        "oracle": """
class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.mm(A, B)
""",
    },
    "relu": {
        "level": 1,
        "shapes": {"B": (16, 32, 48), "D": (256, 384, 512)},
        "model": """
class Model(nn.Module):
    \"\"\"Elementwise ReLU.\"\"\"

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.relu(x)
""",
        "inputs": "[torch.randn(B, D, generator=generator)]",
        "init": "[]",
        "oracle": """
class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.clamp_min(x, 0.0)
""",
    },
    "softmax": {
        "level": 1,
        "shapes": {"B": (16, 32, 48), "D": (128, 256, 384)},
        "model": """
class Model(nn.Module):
    \"\"\"Row softmax written out (max-subtracted exp over the sum).\"\"\"

    def __init__(self):
        super().__init__()

    def forward(self, x):
        shifted = x - x.max(dim=1, keepdim=True).values
        e = torch.exp(shifted)
        return e / e.sum(dim=1, keepdim=True)
""",
        "inputs": "[torch.randn(B, D, generator=generator)]",
        "init": "[]",
        "oracle": """
class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.softmax(x, dim=1)
""",
    },
    "layernorm": {
        "level": 1,
        "shapes": {"B": (16, 32, 48), "D": (128, 256, 384)},
        "model": """
class Model(nn.Module):
    \"\"\"LayerNorm over the last dimension, written out, with an affine transform.\"\"\"

    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-5) * self.weight + self.bias
""",
        "inputs": "[torch.randn(B, D, generator=generator)]",
        "init": "[D]",
        "oracle": """
class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, 1e-5)
""",
    },
    "gelu": {
        "level": 1,
        "shapes": {"B": (16, 32, 48), "D": (256, 384, 512)},
        "model": """
class Model(nn.Module):
    \"\"\"GELU, tanh approximation, written out.\"\"\"

    def __init__(self):
        super().__init__()

    def forward(self, x):
        inner = 0.7978845608028654 * (x + 0.044715 * torch.pow(x, 3.0))
        return 0.5 * x * (1.0 + torch.tanh(inner))
""",
        "inputs": "[torch.randn(B, D, generator=generator)]",
        "init": "[]",
        "oracle": """
class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return F.gelu(x, approximate="tanh")
""",
    },
    "conv2d": {
        "level": 1,
        "shapes": {"B": (2, 4), "C": (3, 8), "O": (8, 16), "H": (16, 24, 32)},
        "model": """
class Model(nn.Module):
    \"\"\"2-D convolution, 3x3 kernel, padding 1.\"\"\"

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x):
        return self.conv(x)
""",
        "inputs": "[torch.randn(B, C, H, H, generator=generator)]",
        "init": "[C, O]",
        "oracle": """
class ModelNew(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x):
        return F.conv2d(x, self.conv.weight, self.conv.bias, padding=1)
""",
    },
}
_FAMILIES.update(
    {
        "linear_gelu": {
            "level": 2,
            "shapes": {"B": (32, 48, 64), "K": (64, 96, 128), "N": (32, 64, 96)},
            "model": """
class Model(nn.Module):
    \"\"\"Matmul, bias add, then exact GELU.\"\"\"

    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * 0.05)
        self.bias = nn.Parameter(torch.randn(out_features) * 0.05)

    def forward(self, x):
        y = torch.matmul(x, self.weight.t())
        y = y + self.bias
        return F.gelu(y)
""",
            "inputs": "[torch.randn(B, K, generator=generator)]",
            "init": "[K, N]",
            "oracle": """
class ModelNew(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * 0.05)
        self.bias = nn.Parameter(torch.randn(out_features) * 0.05)

    def forward(self, x):
        return F.gelu(torch.addmm(self.bias, x, self.weight.t()))
""",
        },
        "conv_relu_pool": {
            "level": 2,
            "shapes": {"B": (2, 4), "C": (3, 8), "O": (8, 16), "H": (16, 24, 32)},
            "model": """
class Model(nn.Module):
    \"\"\"3x3 convolution, ReLU, then 2x2 max-pooling.\"\"\"

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return F.max_pool2d(y, 2)
""",
            "inputs": "[torch.randn(B, C, H, H, generator=generator)]",
            "init": "[C, O]",
            "oracle": """
class ModelNew(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x):
        # ReLU is monotone, so it commutes with max-pooling: apply it to 4x fewer values.
        return torch.relu(F.max_pool2d(self.conv(x), 2))
""",
        },
        "matmul_scale_residual": {
            "level": 2,
            "shapes": {"B": (32, 48, 64), "D": (64, 96, 128)},
            "model": """
class Model(nn.Module):
    \"\"\"y = (x @ W) * scale + x.\"\"\"

    def __init__(self, dim, scale):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim, dim) * 0.05)
        self.scale = scale

    def forward(self, x):
        y = torch.matmul(x, self.weight)
        y = y * self.scale
        return y + x
""",
            "inputs": "[torch.randn(B, D, generator=generator)]",
            "init": "[D, 0.5]",
            "oracle": """
class ModelNew(nn.Module):
    def __init__(self, dim, scale):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim, dim) * 0.05)
        self.scale = scale

    def forward(self, x):
        return torch.addmm(x, x, self.weight, alpha=self.scale)
""",
        },
        "mlp_block": {
            "level": 3,
            "shapes": {"B": (16, 32), "D": (32, 64, 96), "H": (64, 128)},
            "model": """
class Model(nn.Module):
    \"\"\"Pre-norm transformer MLP block: x + fc2(gelu(fc1(layernorm(x)))), GELU written out.\"\"\"

    def __init__(self, dim, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        h = self.fc1(self.norm(x))
        h = 0.5 * h * (1.0 + torch.erf(h / 1.4142135623730951))
        return x + self.fc2(h)
""",
            "inputs": "[torch.randn(B, D, generator=generator)]",
            "init": "[D, H]",
            "oracle": """
class ModelNew(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        h = F.gelu(self.fc1(self.norm(x)))
        return torch.addmm(x + self.fc2.bias, h, self.fc2.weight.t())
""",
        },
        "attention_block": {
            "level": 3,
            "shapes": {"B": (1, 2), "T": (16, 24, 32), "D": (32, 64), "NH": (2, 4)},
            "model": """
class Model(nn.Module):
    \"\"\"Multi-head self-attention (no mask): qkv projection, softmax(QK^T/sqrt(d))V, output
    projection, written out op by op.\"\"\"

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        hd = d // self.heads
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / hd ** 0.5)
        att = torch.softmax(att, dim=-1)
        y = torch.matmul(att, v).transpose(1, 2).reshape(b, t, d)
        return self.proj(y)
""",
            "inputs": "[torch.randn(B, T, D, generator=generator)]",
            "init": "[D, NH]",
            "oracle": """
class ModelNew(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(y.transpose(1, 2).reshape(b, t, d))
""",
        },
    }
)

FAMILIES: tuple[str, ...] = tuple(sorted(_FAMILIES))
"""Every task family name."""
LEVEL_OF: dict[str, int] = {name: spec["level"] for name, spec in _FAMILIES.items()}
"""KernelBench-style level (1 single op, 2 fused sequence, 3 block) of each family."""
ORACLE_FASTER: dict[str, bool] = {
    name: name not in ("matmul", "relu", "conv2d") for name in FAMILIES
}
"""Whether the family's oracle is faster than its reference by the cost model."""


def render(family: str, shapes: Mapping[str, int]) -> tuple[str, str]:
    """Return ``(reference_source, oracle_source)`` of ``family`` at ``shapes``.

    Both are complete modules; the oracle repeats the shape constants and the input
    generators so it can be evaluated on its own.
    """
    spec = _FAMILIES[family]
    consts = "".join(f"{k} = {int(v)}\n" for k, v in sorted(shapes.items()))
    io = (
        "\n\ndef get_inputs(generator=None):\n"
        f"    return {spec['inputs']}\n\n\n"
        "def get_init_inputs():\n"
        f"    return {spec['init']}\n"
    )
    reference = f"{_HEADER}\n{consts}\n{spec['model'].rstrip()}\n{io}"
    oracle = f"{_HEADER}\n\n{spec['oracle'].strip()}\n"
    return reference, oracle


def generate_task(rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict[str, Any]:
    """Draw a task: a family among ``difficulty["families"]`` at ``difficulty["levels"]``.

    Args:
        rng: The only source of randomness.
        difficulty: ``levels`` (list of 1-3) and ``families`` (list of names, or empty for all).

    Returns:
        ``{"family", "level", "shapes", "reference", "oracle"}`` (JSON-ready).
    """
    allowed = [
        f
        for f in FAMILIES
        if LEVEL_OF[f] in difficulty["levels"]
        and (not difficulty["families"] or f in difficulty["families"])
    ]
    if not allowed:
        raise ValueError(
            f"No task family matches levels={difficulty['levels']} and "
            f"families={difficulty['families']}."
        )
    family = allowed[int(rng.integers(len(allowed)))]
    shapes = {k: int(rng.choice(v)) for k, v in sorted(_FAMILIES[family]["shapes"].items())}
    reference, oracle = render(family, shapes)
    return {
        "family": family,
        "level": LEVEL_OF[family],
        "shapes": shapes,
        "reference": reference,
        "oracle": oracle,
    }
