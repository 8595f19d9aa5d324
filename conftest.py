"""Repository-level pytest configuration: doctests of modules that need optional extras."""

from __future__ import annotations

import importlib.util

# Modules that import torch/transformers at module level; their doctests run only when the
# `train` extra is installed, so the core suite stays runnable with `pip install -e .[dev]`.
collect_ignore_glob: list[str] = []
if importlib.util.find_spec("torch") is None:
    collect_ignore_glob += [
        "turngym/trainers/losses.py",
        "turngym/trainers/policy.py",
        "turngym/trainers/tokens.py",
        "turngym/trainers/trainer.py",
        "turngym/agents/hf.py",
        "turngym/agents/tiny.py",
    ]

# The training-framework adapters import their framework at module level (the `verl` and
# `trl` extras); without it their modules have nothing to run.
if importlib.util.find_spec("verl") is None:
    collect_ignore_glob += ["turngym/adapters/verl/*.py"]
if importlib.util.find_spec("trl") is None:
    collect_ignore_glob += ["turngym/adapters/trl.py"]

# The compiled backends (the `fast` extra) import numba at module level; the modules that use
# them fall back to Python without it.
if importlib.util.find_spec("numba") is None:
    collect_ignore_glob += [
        "turngym/retrieval/_numba.py",
        "turngym/envs/games/_minesweeper_numba.py",
        "turngym/envs/games/_rng_numba.py",
    ]
