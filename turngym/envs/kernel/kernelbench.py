"""Load a KernelBench checkout's problem files as KernelGen tasks.

KernelBench (Ouyang et al., 2025, arXiv:2502.10517; ScalingIntelligence/KernelBench) keeps one
problem per file under ``KernelBench/level1`` ... ``level4``, named ``<n>_<Name>.py``: a
``class Model(nn.Module)``, module-level shape constants, ``get_inputs()`` and
``get_init_inputs()``. ``KernelGen(kernelbench_dir=...)`` plays them instead of its generated
tasks::

    env = KernelGen(kernelbench_dir="~/KernelBench", level=1)

* ``kernelbench_dir`` may be the repository root (holding ``KernelBench/``) or that folder.
* KernelBench's ``get_inputs()`` draws from torch's global RNG and takes no argument, while
  KernelGen's evaluator passes a ``torch.Generator`` per trial. The loader keeps the file as
  it is and appends a ``get_inputs(generator=None)`` that seeds torch's global RNG from the
  generator and calls the original (inside the evaluator's sandboxed child process), so trials
  are reproducible and differ from each other as KernelGen expects.
* Splits come from the hash of each task (:func:`turngym.tasks.split_of`), as for any tasks
  file. There is no hand-written oracle: :func:`reference_oracle` renames ``Model`` to
  ``ModelNew`` everywhere (KernelBench writes ``super(Model, self)``) and drops the input
  functions, which is correct but not faster.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from turngym.tasks import SPLITS, split_of

__all__ = ["find_level_dirs", "adapt_reference", "reference_oracle", "load_kernelbench"]

_LEVEL = re.compile(r"^level(\d+)$")
_GET_INPUTS = re.compile(r"^def get_inputs\(\s*\)\s*:", re.MULTILINE)
_SHIM = '''

# Added by turngym: KernelGen's evaluator passes a torch.Generator per trial.
_kernelbench_get_inputs = get_inputs


def get_inputs(generator=None):
    if generator is not None:
        torch.manual_seed(int(generator.initial_seed()))
    return _kernelbench_get_inputs()
'''


def find_level_dirs(root: str | Path) -> dict[int, Path]:
    """``{level: folder}`` of a KernelBench checkout (its root or its ``KernelBench/`` folder).

    Raises:
        ValueError: No ``levelN`` folder is found.
    """
    base = Path(root).expanduser()
    for candidate in (base / "KernelBench", base):
        levels = {int(m.group(1)): p for p in sorted(candidate.glob("level*"))
                  if p.is_dir() and (m := _LEVEL.match(p.name))}  # fmt: skip
        if levels:
            return levels
    raise ValueError(f"KernelGen: no KernelBench level folders (level1, level2, ...) under "
                     f"{str(base)!r}; pass the KernelBench repository root.")  # fmt: skip


def adapt_reference(source: str) -> str:
    """Make a KernelBench problem file accept ``get_inputs(generator)`` (see the module doc).

    Raises:
        ValueError: The file lacks ``class Model``, ``get_inputs()`` or ``get_init_inputs``.
    """
    if "class Model" not in source or "def get_init_inputs" not in source:
        raise ValueError("not a KernelBench problem (needs class Model and get_init_inputs)")
    if _GET_INPUTS.search(source) is None:
        raise ValueError("not a KernelBench problem (needs a top-level get_inputs())")
    text = source if "import torch\n" in source else "import torch\n" + source
    return text.rstrip() + "\n" + _SHIM


def reference_oracle(source: str) -> str:
    """The problem's module as a correct candidate.

    ``Model`` is renamed ``ModelNew`` and the input functions are dropped (a candidate must not
    define or call the reference's ``get_inputs``).
    """
    tree = ast.parse(source)
    tree.body = [node for node in tree.body if not (
        isinstance(node, ast.FunctionDef) and node.name in ("get_inputs", "get_init_inputs"))]
    return re.sub(r"\bModel\b", "ModelNew", ast.unparse(tree)) + "\n"


def load_kernelbench(root: str | Path, levels: Iterable[int]) -> dict[str, list[dict[str, Any]]]:
    """Every problem of the given levels as KernelGen tasks, grouped by split.

    Raises:
        ValueError: No level folder, a malformed problem file (named), or no problem at all.
    """
    wanted = set(levels)
    by_split: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLITS}
    for level, folder in find_level_dirs(root).items():
        if level not in wanted:
            continue
        for path in sorted(folder.glob("*.py")):
            source = path.read_text(encoding="utf-8")
            try:
                reference, oracle = adapt_reference(source), reference_oracle(source)
            except (ValueError, SyntaxError) as err:
                raise ValueError(f"KernelGen: {path}: {err}.") from err
            task = {"family": "kernelbench", "level": level, "name": path.stem,
                    "reference": reference, "oracle": oracle}  # fmt: skip
            by_split[split_of(task)].append(task)
    if not any(by_split.values()):
        raise ValueError(f"KernelGen: no KernelBench problem of levels {sorted(wanted)} under "
                         f"{str(root)!r}.")  # fmt: skip
    return by_split
