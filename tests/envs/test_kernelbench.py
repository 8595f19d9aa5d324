"""KernelGen loads a KernelBench checkout (files generated here in KernelBench's layout)."""

from __future__ import annotations

import pytest

from turngym.envs.kernel.env import KernelGen
from turngym.envs.kernel.kernelbench import adapt_reference, find_level_dirs, load_kernelbench

PROBLEM = '''import torch
import torch.nn as nn


class Model(nn.Module):
    """Simple model that performs a ReLU activation."""

    def __init__(self):
        super(Model, self).__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


batch_size = 16
dim = {dim}


def get_inputs():
    x = torch.randn(batch_size, dim)
    return [x]


def get_init_inputs():
    return []  # No special initialization inputs needed
'''


@pytest.fixture()
def checkout(tmp_path):
    for level, count in ((1, 12), (2, 3)):
        folder = tmp_path / "KernelBench" / f"level{level}"
        folder.mkdir(parents=True)
        for i in range(1, count + 1):
            (folder / f"{i}_ReLU_{level}.py").write_text(PROBLEM.format(dim=64 + i))
    return tmp_path


def test_levels_and_splits_from_the_layout(checkout):
    assert sorted(find_level_dirs(checkout)) == [1, 2]
    assert find_level_dirs(checkout / "KernelBench") == find_level_dirs(checkout)
    by_split = load_kernelbench(checkout, [1])
    tasks = [t for split in by_split.values() for t in split]
    assert len(tasks) == 12 and {t["level"] for t in tasks} == {1}
    assert all("def get_inputs(generator=None)" in t["reference"] for t in tasks)


def test_adapted_get_inputs_is_seeded_by_the_generator():
    import torch

    namespace: dict = {}
    exec(adapt_reference(PROBLEM.format(dim=8)), namespace)  # noqa: S102 - our own test file
    first = namespace["get_inputs"](torch.Generator().manual_seed(3))[0]
    again = namespace["get_inputs"](torch.Generator().manual_seed(3))[0]
    other = namespace["get_inputs"](torch.Generator().manual_seed(4))[0]
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.slow  # one sandboxed child evaluation (~3 s, more on a busy machine)
def test_kernelgen_plays_a_kernelbench_problem(checkout):
    env = KernelGen(kernelbench_dir=str(checkout), level=1, trials=1)
    split = next(s for s, tasks in load_kernelbench(checkout, [1]).items() if tasks)
    obs, info = env.reset(seed=0, options={"split": split})
    assert "class Model(nn.Module)" in obs and env.task["family"] == "kernelbench"
    _, reward, _, _, info = env.step(env.oracle_action())
    assert info["metrics"]["status"] == "correct" and reward == 0.5


def test_bad_checkouts_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="no KernelBench level folders"):
        KernelGen(kernelbench_dir=str(tmp_path))
    (tmp_path / "level1").mkdir()
    (tmp_path / "level1" / "1_x.py").write_text("print('not a problem')\n")
    with pytest.raises(ValueError, match="1_x.py"):
        KernelGen(kernelbench_dir=str(tmp_path))
