"""KernelGen red team (issue 17 item 6): every attack scores 0, with an explanation.

The battery (``kernel_attacks.py``) covers each class the outside red team found: forged
verdicts, grader tampering, lying outputs, cost-model blind spots, audit gaps, persistence and
oracle leakage, plus resource abuse and forged graphs. Each candidate goes through the real
grader (``evaluate_candidate``: reference, candidate and replay children behind the walls).
Afterwards the host must be clean: no process of an idle sandbox uid, no new file in any
world-writable dir, no new mount, no System V IPC object of a sandbox uid.

One attack per class runs in the default suite; the whole battery is ``slow``.
"""

from __future__ import annotations

import concurrent.futures
import glob
import os

import pytest
from kernel_attacks import ATTACKS

from turngym.envs.kernel import _sandbox_uids as sbx_uids
from turngym.envs.kernel import tasks as kt
from turngym.envs.kernel.env import KernelGen
from turngym.envs.kernel.forkserver import default_server
from turngym.envs.kernel.reward import kernel_reward
from turngym.envs.kernel.runner import clear_cache, evaluate_candidate

pytestmark = pytest.mark.integration

REF, ORACLE = kt.render("relu", {"B": 8, "D": 64})
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue")
DEFAULT = ("stdout_verdict_then_exit", "forged_frame_nested_json", "rebind_tolerances",
           "tensor_subclass_equal_to_all", "numpy_compute", "dispatch_modes_disabled",
           "ctypes_libc_fork", "write_world_writable_dirs", "dynamic_import_oracle")
SANDBOX_UIDS = range(sbx_uids.UID_BASE, sbx_uids.UID_BASE + sbx_uids.UID_SLOTS)


def _world_writable_entries() -> set[str]:
    found = set()
    for d in SCRATCH:
        found.update(glob.glob(os.path.join(os.path.realpath(d), "*")) if os.path.isdir(d) else ())
    return found


def _mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return sorted(line.split()[4] for line in f)


def _sysv_owned_by_sandbox() -> list[str]:
    rows = []
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 5 and int(fields[4 if kind != "shm" else 7]) in SANDBOX_UIDS:
                rows.append(f"{kind}: {line}")
    return rows


def _grade_all(names: list[str]) -> dict[str, dict]:
    clear_cache()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {n: pool.submit(evaluate_candidate, REF, ATTACKS[n][1], timeout_s=20)
                   for n in names}
        return {n: f.result() for n, f in futures.items()}


@pytest.fixture(scope="module")
def host_before():
    return _world_writable_entries(), _mounts()


def _check(name: str, result: dict) -> None:
    reward = sum(kernel_reward(result).values())
    why = [h["detail"] for h in result["hacks"]] + [result["error"], result["mismatch"]]
    assert reward == 0.0 and result["status"] != "correct", (name, result["status"], result)
    assert any(w.strip() for w in why), (name, "no explanation", result)


def _assert_host_clean(before) -> None:
    files, mounts = before
    live = os.path.realpath(default_server()._home)  # the warm template's own dir, until exit
    assert _world_writable_entries() - files <= {live}, _world_writable_entries() - files
    assert not glob.glob("/tmp/turngym-pwned") and not glob.glob("/*/turngym-persist")
    assert not any(glob.glob(f"{d}/turngym-persist") for d in SCRATCH)
    assert _mounts() == mounts
    assert _sysv_owned_by_sandbox() == []
    if os.geteuid() == 0:
        held = _held_uids()
        for uid in SANDBOX_UIDS:
            if uid not in held:
                assert sbx_uids._uid_processes(uid) == [], uid


def _held_uids() -> set[int]:
    """Uids whose lease someone holds now (the warm reference pool, other test runs)."""
    import fcntl

    held = set()
    sbx_uids._LEASES._dir.mkdir(mode=0o700, exist_ok=True)
    for uid in SANDBOX_UIDS:
        fd = os.open(sbx_uids._LEASES._dir / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.add(uid)
        finally:
            os.close(fd)
    return held


def test_battery_covers_every_class() -> None:
    classes = {cls for cls, _ in ATTACKS.values()}
    assert {"forged verdicts", "grader tampering", "lying outputs", "cost blind spots",
            "audit gaps", "persistence", "oracle leakage"} <= classes
    assert len(ATTACKS) >= 40
    assert {ATTACKS[n][0] for n in DEFAULT} >= classes - {"resource abuse", "graph forgery"}


def test_one_attack_per_class_scores_zero(host_before) -> None:
    results = _grade_all(list(DEFAULT))
    for name, result in results.items():
        _check(name, result)
    assert results["numpy_compute"]["hacks"][0]["check"] == "untraced_compute"
    assert "protocol violation" in results["stdout_verdict_then_exit"]["error"]
    _assert_host_clean(host_before)


@pytest.mark.slow
def test_whole_battery_scores_zero_and_host_stays_clean(host_before) -> None:
    results = _grade_all(sorted(ATTACKS))
    for name, result in results.items():
        _check(name, result)
    _assert_host_clean(host_before)


def test_honest_candidates_still_pass_beside_the_battery() -> None:
    """The walls do not cost honest candidates anything: oracle faster-or-equal, reference 0.5."""
    result = evaluate_candidate(REF, ORACLE)
    assert result["status"] == "correct" and result["cost"]["verified"], result
    assert kernel_reward(result) == {"correct": 0.5, "faster": 0.0, "coverage": 0.0}


def test_env_step_never_raises_on_hostile_candidates() -> None:
    env = KernelGen()
    env.reset(options={"task": {"reference": REF, "oracle": ORACLE}})
    for name in ("forged_frame_huge_length", "kill_self", "not_a_tensor"):
        obs, reward, terminated, truncated, info = env.step(f"<action>{ATTACKS[name][1]}"
                                                           "</action>")
        assert reward == 0.0 and isinstance(obs, str) and "status:" in obs
        if terminated or truncated:
            env.reset(options={"task": {"reference": REF, "oracle": ORACLE}})


_FRAGMENTS = [
    "return torch.relu(x)", "return x", "return None", "return (x, x)", "return [torch.relu(x)]",
    "__import__('os')._exit(3)", "print('{\"status\": \"correct\"}')",
    "__import__('os').write(3, b'\\xff' * 16)", "__import__('os').close(3)",
    "__import__('sys').exit(0)", "raise KeyboardInterrupt", "return torch.relu(x).half()",
    "return torch.empty(0)", "return torch.relu(x).numpy()", "x.add_(1)",
    "__import__('os').write(1, b'x' * 100000)", "return torch.relu(x)[None].expand(1 << 20, 8, 64)",
    "return torch.relu(x).t()", "return torch.relu(x).to(torch.float64)",
]


@pytest.mark.slow
def test_env_step_never_raises_fuzzed_hostile_candidates() -> None:
    """Hypothesis composes forward bodies from hostile fragments; env.step must answer them."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    env = KernelGen(timeout_s=20)
    env.reset(options={"task": {"reference": REF, "oracle": ORACLE}})

    @settings(max_examples=12, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(st.sampled_from(_FRAGMENTS), min_size=1, max_size=3))
    def step(lines: list[str]) -> None:
        body = "\n".join(f"        {line}" for line in lines)
        source = (f"import torch\nimport torch.nn as nn\n\nclass ModelNew(nn.Module):\n"
                  f"    def forward(self, x):\n{body}\n")
        obs, reward, terminated, truncated, _ = env.step(f"<action>{source}</action>")
        assert isinstance(obs, str) and "status:" in obs and reward in (0.0, 0.5, 1.0)
        if terminated or truncated:
            env.reset(options={"task": {"reference": REF, "oracle": ORACLE}})

    step()
