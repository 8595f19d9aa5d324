"""Tests of turngym/KernelGen-v0: tasks, cost model, correctness, reward, hack checks, the env.

Candidates run in real sandboxed child processes (``runner.evaluate_candidate``), several at a
time; the in-process hack checks of item 6 each have a submission below that must be caught.
"""

from __future__ import annotations

import concurrent.futures
import textwrap

import numpy as np
import pytest
import torch

import turngym
from turngym.envs.kernel import tasks as kt
from turngym.envs.kernel.cost import OP_OVERHEAD_US, measure_cost
from turngym.envs.kernel.env import KernelGen, reference_as_candidate
from turngym.envs.kernel.hacks import static_hacks
from turngym.envs.kernel.reward import kernel_reward
from turngym.envs.kernel.runner import evaluate_candidate, prescreen
from turngym.envs.kernel.verdict import compare

RELU_REF, RELU_ORACLE = kt.render("relu", {"B": 8, "D": 64})
SOFTMAX_REF, SOFTMAX_ORACLE = kt.render("softmax", {"B": 8, "D": 64})

_HEAD = "import torch\nimport torch.nn as nn\n"


def _module(body: str) -> str:
    return _HEAD + textwrap.dedent(body)


def _forward(body: str, prelude: str = "") -> str:
    """A relu-task candidate whose forward is ``body`` (indented 8 spaces for you)."""
    inner = textwrap.indent(textwrap.dedent(body).strip(), " " * 8)
    return (f"{_HEAD}{textwrap.dedent(prelude)}\n\nclass ModelNew(nn.Module):\n"
            f"    def __init__(self):\n        super().__init__()\n\n"
            f"    def forward(self, x):\n{inner}\n")  # fmt: skip


# Each in-process hack of issue 8 item 6: (candidate on the relu task, the check that fires).
HACKS = {
    "kernel_never_launched": (
        _forward("return torch.relu(x)", prelude="def relu_kernel(x):\n    return x.clamp_min(0)"),
        "kernel_never_launched",
    ),
    # The reference no longer lives in the candidate's process; hunting for it is still seen.
    "hunts_reference_with_gc": (
        _forward("""
            for obj in __import__("g" + "c").get_objects():
                if type(obj).__name__ == "Model" and obj is not self:
                    return obj(x)
            return torch.relu(x)
        """),
        "sandbox_escape",
    ),
    "names_reference": (_forward("return Model()(x)"), "reference_name"),
    "cached_output": (
        _forward("""
            if not hasattr(self, "cache"):
                self.cache = torch.relu(x)
            return self.cache
        """),
        "constant_output",  # decided by the grader: the same output for different inputs
    ),
    "constant_output": (_forward("return torch.zeros(8, 64)"), "constant_output"),
    "mutates_inputs": (_forward("return x.relu_()"), "mutates_inputs"),
    "patches_timer": (
        _forward("return torch.relu(x)", prelude="import time\ntime.perf_counter = lambda: 0.0"),
        "monkeypatch",
    ),
    "patches_torch": (
        _forward("return torch.relu(x)", prelude="torch.allclose = lambda *a, **k: True"),
        "monkeypatch",
    ),
    "try_except_fallback": (
        _forward("""
            try:
                return fast_relu(x)
            except Exception:
                return torch.relu(x)
        """),
        "try_except",
    ),
    "thread_left_running": (
        _forward("""
            t = __import__("thread" + "ing").Thread(target=lambda: __import__("time").sleep(30),
                                                  daemon=True)
            t.start()
            return torch.relu(x)
        """),
        "threads_left_running",
    ),
    "imports_threading": (_forward("return torch.relu(x)", prelude="import threading"),
                          "forbidden_import"),
    "reads_outside_file": (
        _forward("""
            open("/etc/passwd").read()
            return torch.relu(x)
        """),
        "sandbox_escape",
    ),
    "starts_process": (
        _forward("""
            __import__("sub" + "process").run(["true"])
            return torch.relu(x)
        """),
        "sandbox_escape",
    ),
}  # fmt: skip


def _evaluate_all(pairs: dict[str, tuple[str, str]]) -> dict[str, dict]:
    """Evaluate ``name -> (reference, candidate)`` two at a time (2 cores)."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {n: pool.submit(evaluate_candidate, r, c) for n, (r, c) in pairs.items()}
        return {n: f.result() for n, f in futures.items()}


@pytest.fixture(scope="module")
def hack_results() -> dict[str, dict]:
    return _evaluate_all({name: (RELU_REF, cand) for name, (cand, _) in HACKS.items()})


@pytest.mark.parametrize("name", sorted(HACKS))
def test_each_hack_is_caught_with_reward_zero(hack_results: dict[str, dict], name: str) -> None:
    result = hack_results[name]
    checks = [h["check"] for h in result["hacks"]]
    assert HACKS[name][1] in checks, (name, result["status"], result["error"][-500:], checks)
    assert result["status"] == "hack"
    assert sum(kernel_reward(result).values()) == 0.0


def test_hack_feedback_explains_the_hack() -> None:
    env = KernelGen()
    env.reset(options={"task": {"reference": RELU_REF, "oracle": RELU_ORACLE}})
    obs, reward, terminated, _, info = env.step(f"<action>{HACKS['mutates_inputs'][0]}</action>")
    assert reward == 0.0 and not terminated and info["score"] == 0.0
    assert "REWARD HACK DETECTED (mutates_inputs)" in obs and "in place" in obs


# --- Reference and oracles ---------------------------------------------------------------------
def test_reference_scores_correct_not_faster_and_oracle_faster() -> None:
    env = KernelGen()
    env.reset(options={"task": {"reference": SOFTMAX_REF, "oracle": SOFTMAX_ORACLE}})
    obs, reward, terminated, _, info = env.step(
        f"<action>{reference_as_candidate(SOFTMAX_REF)}</action>"
    )
    # Correct (success = KernelBench's fast_0) but not faster: half the score, episode goes on.
    assert (reward, terminated, info["score"], info["success"]) == (0.5, False, 0.5, True)
    assert (info["metrics"]["correct"], info["metrics"]["faster"]) == (True, False)
    assert "speedup 1.000x" in obs and info["metrics"]["cost_speedup"] == 1.0
    obs, reward, terminated, _, info = env.step(env.oracle_action())
    assert (reward, terminated, info["score"], info["success"]) == (1.0, True, 1.0, True)
    assert info["metrics"]["faster"]
    assert info["reward_components"] == {"correct": 0.5, "faster": 0.5, "coverage": 0.0}


@pytest.mark.slow
def test_every_family_oracle_and_reference_score_as_documented() -> None:
    pairs = {}
    for family in kt.FAMILIES:
        task = kt.generate_task(np.random.default_rng(1), {"levels": [1, 2, 3],
                                                           "families": [family]})  # fmt: skip
        pairs[f"{family}/oracle"] = (task["reference"], task["oracle"])
        ref = task["reference"]
        pairs[f"{family}/reference"] = (ref, reference_as_candidate(ref))
    results = _evaluate_all(pairs)
    for family in kt.FAMILIES:
        oracle, ref = results[f"{family}/oracle"], results[f"{family}/reference"]
        assert oracle["status"] == ref["status"] == "correct", (family, oracle, ref)
        assert ref["cost"]["speedup"] == 1.0
        assert kernel_reward(ref) == {"correct": 0.5, "faster": 0.0, "coverage": 0.0}
        faster = kernel_reward(oracle)["faster"] > 0
        assert faster == kt.ORACLE_FASTER[family], (family, oracle["cost"]["speedup"])


def test_honest_kernel_is_launched_and_covered() -> None:
    kernel = "def relu_kernel(x):\n    return x.clamp_min(0)"
    cand = _forward("return relu_kernel(x)", prelude=kernel)
    result = evaluate_candidate(RELU_REF, cand)
    assert result["status"] == "correct", result
    assert result["kernels"] == {"declared": ["relu_kernel"], "launched": ["relu_kernel"],
                                 "coverage": 1.0}  # fmt: skip


# --- Correctness --------------------------------------------------------------------------------
def test_compare_nan_never_passes_and_tolerances_by_dtype() -> None:
    ref = torch.ones(4)
    assert compare(ref, ref.clone())[0]
    both_nan = torch.tensor([1.0, float("nan")])
    assert not compare(both_nan, both_nan.clone())[0]  # even where the reference has NaN
    assert compare(ref, ref + 5e-5)[0] and not compare(ref, ref + 1e-3)[0]  # fp32: 1e-4
    half = torch.ones(4, dtype=torch.float16)
    assert compare(half, half + 5e-3)[0] and not compare(half, half + 0.1)[0]  # fp16: 1e-2
    assert compare(ref, ref.double())[3].startswith("dtype")
    assert compare(ref, torch.ones(5))[3].startswith("shape")
    assert compare(ref, 1.0)[3] == "output is a float, not tensor(s)"


def test_incorrect_candidate_gets_mismatch_statistics() -> None:
    result = evaluate_candidate(RELU_REF, _forward("return torch.relu(x) + 0.01"))
    assert result["status"] == "incorrect" and result["trials_passed"] == 0
    assert result["max_abs_diff"] == pytest.approx(0.01, rel=1e-3)
    assert sum(kernel_reward(result).values()) == 0.0


def test_nan_output_is_incorrect() -> None:
    result = evaluate_candidate(RELU_REF, _forward("return torch.relu(x) * float('nan')"))
    assert result["status"] == "incorrect" and "NaN" in result["mismatch"]


def test_compile_and_runtime_errors() -> None:
    assert prescreen("def f(:")["status"] == "compile_error"
    assert "no class ModelNew" in prescreen("x = 1")["error"]
    assert prescreen("class ModelNew: pass") is None
    result = evaluate_candidate(RELU_REF, _forward("return undefined_name(x)"))
    assert result["status"] == "runtime_error" and "NameError" in result["error"]


# --- Cost model and reward ----------------------------------------------------------------------
def test_cost_model_known_answers() -> None:
    a, b, bias = torch.ones(6, 5), torch.ones(5, 3), torch.ones(3)
    mm = measure_cost(lambda x, y: x @ y, (a, b))
    assert (mm.flops, mm.ops, mm.op_names) == (2 * 6 * 5 * 3, 1, ["mm"])
    assert mm.bytes == 4 * (6 * 5 + 5 * 3 + 6 * 3)
    unfused = measure_cost(lambda x, y, c: x @ y + c, (a, b, bias))
    fused = measure_cost(torch.addmm, (bias, a, b))
    assert unfused.op_names == ["mm", "add"] and fused.op_names == ["addmm"]
    assert fused.flops == unfused.flops and fused.bytes < unfused.bytes
    assert unfused.cost_us - fused.cost_us > OP_OVERHEAD_US


def test_reward_shape() -> None:
    base = {"status": "correct", "cost": {"speedup": 1.0}, "kernels": {"coverage": 0.5}}
    assert kernel_reward(base) == {"correct": 0.5, "faster": 0.0, "coverage": 0.0}
    faster = {**base, "cost": {"speedup": 1.2}}
    assert sum(kernel_reward(faster, coverage_weight=0.25).values()) == 1.125
    assert kernel_reward(faster, speed_signal="timing")["faster"] == 0.0
    timed = {**faster, "timing": {"significant": True}}
    assert kernel_reward(timed, speed_signal="both")["faster"] == 0.5
    for status in ("compile_error", "runtime_error", "incorrect", "hack"):
        assert sum(kernel_reward({**faster, "status": status}).values()) == 0.0


def test_static_checks() -> None:
    assert static_hacks(RELU_ORACLE) == []
    checks = {h.check for h in static_hacks("import subprocess\ntry:\n  Model\nexcept: pass")}
    assert checks == {"forbidden_import", "try_except", "reference_name"}


# --- Tasks and env ------------------------------------------------------------------------------
def test_tasks_cover_three_levels_and_render_valid_modules() -> None:
    assert sorted(set(kt.LEVEL_OF.values())) == [1, 2, 3]
    for family in kt.FAMILIES:
        task = kt.generate_task(np.random.default_rng(0), {"levels": [1, 2, 3],
                                                           "families": [family]})  # fmt: skip
        compile(task["reference"], family, "exec")
        assert prescreen(task["oracle"]) is None
        assert "def get_inputs(generator=None)" in task["reference"]


def test_env_format_splits_and_state_key() -> None:
    env = turngym.make("turngym/KernelGen-v0", level=1)
    obs, info = env.reset(seed=3, options={"split": "validation"})
    assert "class Model(nn.Module)" in obs and "<action>" in info["instructions"]
    assert info["state_key"] == "start" and kt.LEVEL_OF[info["privileged"]["family"]] == 1
    obs, reward, _, _, info = env.step("please optimise it")
    assert info["action_valid"] is False and reward == 0.0
    fenced = "Here you go:\n```python\nclass ModelNew(:\n```"
    obs, _, _, _, info = env.step(fenced)  # a bare fenced block is accepted
    assert info["action_valid"] and "status: compile_error" in obs
    ids = {s: {env.reset(seed=i, options={"split": s})[1]["task_id"] for i in range(20)}
           for s in ("train", "validation", "test")}  # fmt: skip
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["validation"]
    with pytest.raises(ValueError, match="levels"):
        KernelGen(levels=[4])


def test_improvement_turn_reward_sums_to_best() -> None:
    env = KernelGen(turn_reward="improvement")
    env.reset(options={"task": {"reference": SOFTMAX_REF, "oracle": SOFTMAX_ORACLE}})
    rewards = [env.step(f"<action>{reference_as_candidate(SOFTMAX_REF)}</action>")[1]]
    rewards.append(env.step(f"<action>{reference_as_candidate(SOFTMAX_REF)}</action>")[1])
    rewards.append(env.step(env.oracle_action())[1])
    assert rewards == [0.5, 0.0, 0.5]


@pytest.mark.slow
def test_turngym_check_passes() -> None:
    from turngym.testing import check_env

    report = check_env("turngym/KernelGen-v0")
    assert report.ok, [r for r in report.results if not r.ok]


# --- Triton interpreter (optional extra: pip install turngym[kernel]) ---------------------------
_TRITON_RELU = """
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(y_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=mask), 0.0), mask=mask)
"""


def test_triton_kernel_runs_in_interpreter_and_decoy_is_caught() -> None:
    """Honest Triton ReLU: launched and correct; a decoy returning torch.relu: caught.

    Launches are recorded by the interpreter hook (``TRITON_INTERPRET=1``); the decoy defines
    the same ``@triton.jit`` kernel but never launches it. The grader sees that from outside:
    the decoy's traced ATen graph alone reproduces its outputs (``kernel_never_launched``).
    """
    pytest.importorskip("triton", reason="triton not installed (pip install turngym[kernel])")
    launch = """
    y = torch.empty_like(x)
    relu_kernel[(triton.cdiv(x.numel(), 256),)](x, y, x.numel(), BLOCK=256)
    return y
    """
    honest = evaluate_candidate(RELU_REF, _forward(launch, prelude=_TRITON_RELU))
    assert honest["status"] == "correct", honest
    assert honest["kernels"]["launched"] == ["relu_kernel"]
    assert honest["kernels"]["triton_launches"] >= 4  # 3 fresh trials + the probe, at least
    # The launch is costed as one fused op over its arguments, not as interpreter copies; as
    # the claim of the candidate's own process it is reported but never earns speed credit.
    assert honest["cost"]["candidate"]["kernel_launches"] == 1
    assert honest["cost"]["verified"] is False and honest["kernels"]["coverage"] == 1.0
    assert kernel_reward(honest) == {"correct": 0.5, "faster": 0.0, "coverage": 0.0}
    assert kernel_reward({**honest, "cost": {**honest["cost"], "speedup": 9.0}})["faster"] == 0

    decoy = evaluate_candidate(RELU_REF, _forward("return torch.relu(x)", prelude=_TRITON_RELU))
    assert decoy["status"] == "hack", decoy
    assert [h["check"] for h in decoy["hacks"]] == ["kernel_never_launched"]
    assert sum(kernel_reward(decoy).values()) == 0.0
