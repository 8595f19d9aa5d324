"""Candidate evaluations per minute through the kernel sandbox, and its start-up cost.

Three workloads, each run serially (one sandbox at a time) and through a ``SandboxPool``:

* ``bare``: a child that reads the payload and answers (interpreter + sandbox set-up only);
* ``torch``: the same child importing torch and running one tiny op;
* ``kernel``: a real level-1 task of ``turngym.envs.kernel`` (its oracle candidate graded by
  ``turngym.envs.kernel.evaluate``: correctness trials + cost model), if that module exists.

The "start-up" column is the median wall time of one sandboxed run done alone, i.e. what
each evaluation pays for process creation, namespaces, privilege drop and imports; compare
``bare`` with a plain ``python -I -c pass`` (printed as ``python alone``) for the sandbox's
own share. Throughput is evaluations per minute over ``--n`` candidates.

    python benchmarks/kernel_eval_throughput.py [--n 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from turngym.envs.kernel.sandbox import SandboxLimits, SandboxPool, run_in_sandbox

HERE = str(Path(__file__).resolve().parent)
LIMITS = SandboxLimits(cpu_seconds=60, wall_seconds=120)


def _kernel_workload() -> tuple[str, dict] | None:
    """Entry module and payload of one real small kernel task, or ``None`` if not built yet."""
    try:
        import numpy as np

        from turngym.envs.kernel import evaluate  # noqa: F401 - presence check (imports torch)
        from turngym.envs.kernel.tasks import generate_task
    except ImportError:
        return None
    task = generate_task(np.random.default_rng(0), {"levels": [1], "families": []})
    payload = {"reference": task["reference"], "candidate": task["oracle"], "seeds": [0, 1, 2],
               "init_seed": 42, "atol": None, "rtol": None, "threads": 1, "timing": None}
    return "turngym.envs.kernel.evaluate", payload


def _python_alone(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _measure(entry: str, payload: dict, n: int, workers: int) -> dict:
    """Serial start-up (median of 3) and pooled throughput over ``n`` runs."""
    serial = []
    for _ in range(3):
        res = run_in_sandbox(entry, payload, LIMITS, sys_path=[HERE])
        if not res.ok:
            raise RuntimeError(f"{entry} failed in the sandbox: {res.stderr_tail[-800:]}")
        serial.append(res.wall_seconds)
    start = time.perf_counter()
    with SandboxPool(max_workers=workers) as pool:
        results = list(pool.map(entry, [payload] * n, LIMITS, sys_path=[HERE]))
    elapsed = time.perf_counter() - start
    return {"startup": statistics.median(serial), "per_min": 60 * n / elapsed,
            "ok": sum(r.ok for r in results), "n": n,
            "isolation": results[0].notes[0].removeprefix("isolation: ")}


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="candidates per pooled run")
    parser.add_argument("--workers", type=int, default=2, help="pool size (cores)")
    args = parser.parse_args()
    workloads = {"bare": ("_sandbox_child", {"torch": False}),
                 "torch": ("_sandbox_child", {"torch": True})}
    kernel = _kernel_workload()
    if kernel is not None:
        workloads["kernel (level 1)"] = kernel
    print(f"# {platform.node()} | {os.cpu_count()} cores | python {platform.python_version()} "
          f"| pool of {args.workers} | {args.n} candidates per row")
    print(f"python alone (python -I -c pass): {_python_alone(5) * 1000:.0f} ms\n")
    print("| workload | start-up per evaluation (ms) | evaluations / min (pool) | ok |")
    print("|---|---:|---:|---:|")
    isolation = ""
    for name, (entry, payload) in workloads.items():
        row = _measure(entry, payload, args.n, args.workers)
        isolation = row["isolation"]
        print(f"| {name} | {row['startup'] * 1000:.0f} | {row['per_min']:.0f} "
              f"| {row['ok']}/{row['n']} |")
    if kernel is None:
        print("\n(kernel row skipped: turngym.envs.kernel.evaluate is not available)")
    print(f"\nisolation: {isolation}")


if __name__ == "__main__":
    main()
