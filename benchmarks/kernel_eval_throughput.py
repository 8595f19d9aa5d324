"""KernelGen evaluations per minute: cold child per evaluation (before) vs the warm grader (after).

Rows, each run ``--rounds`` times (the table shows medians; the machine may be shared):

* ``bare``: a sandboxed ``python -I`` that reads the payload and answers (interpreter and
  walls only), through ``run_in_sandbox`` and a ``SandboxPool``;
* ``torch``: the same child importing torch and running one tiny op;
* ``before``: a real level-1 task graded the issue-8 way, one fresh sandboxed ``python -I``
  per evaluation that imports torch and grades in its own process
  (``_cold_kernel_child.py``);
* ``after``: the same task through :func:`turngym.envs.kernel.grader.grade`: reference,
  candidate and replay children forked from the warm template behind the same walls (plus
  seccomp and the minimal root), with the warm reference pool; no result cache.

"start-up" is the median wall time of one evaluation run alone; "evaluations / min" uses a pool
of ``--workers`` concurrent evaluations over ``--n`` candidates. For ``after`` the template's
own start (torch import, warm-up) is paid once before timing, as in a long training run.

    python benchmarks/kernel_eval_throughput.py [--n 16] [--workers 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import turngym
from turngym.envs.kernel.grader import grade
from turngym.envs.kernel.sandbox import SandboxLimits, SandboxPool, run_in_sandbox
from turngym.envs.kernel.tasks import generate_task

HERE = str(Path(__file__).resolve().parent)
# The cold child is a fresh interpreter: an editable install's import hook does not reach it
# inside the sandbox's minimal root, so the package's own directory is bound and searched.
PACKAGE_ROOT = str(Path(turngym.__file__).resolve().parent.parent)
LIMITS = SandboxLimits(cpu_seconds=60, wall_seconds=120)
TASK = generate_task(np.random.default_rng(0), {"levels": [1], "families": []})


def _python_alone(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cold(entry: str, payload: dict, n: int, workers: int) -> tuple[float, float, int, str]:
    """One cold row: (start-up s, evaluations/min, ok count, isolation)."""
    alone = run_in_sandbox(entry, payload, LIMITS, sys_path=[HERE, PACKAGE_ROOT])
    if not alone.ok:
        raise RuntimeError(f"{entry} failed in the sandbox: {alone.stderr_tail[-800:]}")
    start = time.perf_counter()
    with SandboxPool(max_workers=workers) as pool:
        results = list(pool.map(entry, [payload] * n, LIMITS, sys_path=[HERE, PACKAGE_ROOT]))
    per_min = 60 * n / (time.perf_counter() - start)
    ok = sum(r.ok and r.result.get("ok", True) for r in results)
    return alone.wall_seconds, per_min, ok, alone.notes[0].removeprefix("isolation: ")


def _warm(n: int, workers: int) -> tuple[float, float, int, str]:
    """The grader row (template already started by the caller)."""
    start = time.perf_counter()
    alone = grade(TASK["reference"], TASK["oracle"])
    alone_s = time.perf_counter() - start
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda _: grade(TASK["reference"], TASK["oracle"]), range(n)))
    per_min = 60 * n / (time.perf_counter() - start)
    ok = sum(r["status"] == "correct" for r in results)
    notes = alone["sandbox"].get("notes", ["isolation: ?"])
    return alone_s, per_min, ok, notes[0].removeprefix("isolation: ")


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="candidates per pooled run")
    parser.add_argument("--workers", type=int, default=2, help="concurrent evaluations (cores)")
    parser.add_argument("--rounds", type=int, default=3, help="repeats; medians are shown")
    args = parser.parse_args()
    payload = {"reference": TASK["reference"], "candidate": TASK["oracle"], "seeds": [0, 1, 2]}
    rows = {"bare": lambda: _cold("_sandbox_child", {"torch": False}, args.n, args.workers),
            "torch": lambda: _cold("_sandbox_child", {"torch": True}, args.n, args.workers),
            "before: cold child per evaluation": lambda: _cold("_cold_kernel_child", payload,
                                                               args.n, args.workers),
            "after: warm grader (3 children)": lambda: _warm(args.n, args.workers)}
    grade(TASK["reference"], TASK["oracle"])  # start the template and the reference pool
    print(f"# {platform.node()} | {os.cpu_count()} cores | python {platform.python_version()} "
          f"| {args.workers} workers | {args.n} candidates per row | medians of {args.rounds} "
          f"| task {TASK['family']} {TASK['shapes']} | load {os.getloadavg()[0]:.1f}")
    print(f"python alone (python -I -c pass): {_python_alone(5) * 1000:.0f} ms\n")
    print("| workload | start-up per evaluation (ms) | evaluations / min | ok | isolation |")
    print("|---|---:|---:|---:|---|")
    per_min = {}
    for name, measure in rows.items():
        runs = [measure() for _ in range(args.rounds)]
        per_min[name] = statistics.median(r[1] for r in runs)
        print(f"| {name} | {statistics.median(r[0] for r in runs) * 1000:.0f} "
              f"| {per_min[name]:.0f} | {runs[-1][2]}/{args.n} | {runs[-1][3]} |")
    before, after = per_min["before: cold child per evaluation"], per_min[
        "after: warm grader (3 children)"]
    print(f"\nafter / before: {after / before:.1f}x (load at the end {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
