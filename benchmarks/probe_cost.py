"""Probe cost: wall time of one training iteration with and without probes (CPU, tiny model).

One iteration of ``Trainer.step`` on SearchQA level 0 (G = 8 episodes per task, full
history in the prompt, the default tiny Llama): collect, probe, assign credit, update. The
same seed gives the same rollouts whatever the estimator, so the rows differ only by the
probes and the credit (minibatches without signal are updated too, so an untrained policy's
all-zero GRPO advantages do not skip the update the probe rows pay for). Rows:

* ``grpo``: no probes (the baseline);
* ``igpo``: the gold answer probed at every turn's prompt, shared prefix encoded once;
* ``igpo, share_prefix=False``: the same rows, each run in full (what sharing saves);
* ``pbsd`` and ``infopo``: two passes over every action (teacher/student,
  factual/counterfactual).

Target (issue 14): iteration time with probes <= 1.3x without, with prefix sharing. Prints
medians of --repeats fresh trainers, one torch thread; the ratio uses CPU
time (one thread, so it does not count waiting for a busy core), wall time in brackets.

    python benchmarks/probe_cost.py [--tasks 2] [--group-size 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from typing import Any

import torch

from turngym.trainers.config import TrainConfig
from turngym.trainers.trainer import Trainer

TARGET = 1.3
RUNS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "grpo (no probes)": ("grpo", {}, {}),
    "igpo": ("igpo", {}, {}),
    "igpo, share_prefix=False": ("igpo", {}, {"share_prefix": False}),
    "pbsd": ("pbsd", {}, {}),
    "infopo": ("infopo", {}, {}),
}


def one_iteration(args: argparse.Namespace, estimator: str, params: dict, probe: dict) -> dict:
    """Build a fresh trainer and time its first iteration; return its metrics row."""
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            env="turngym/SearchQA-v0", env_options={"level": 0}, estimator=estimator,
            estimator_params=params, probe_options=probe, iterations=1,
            tasks_per_iteration=args.tasks, group_size=args.group_size, max_new_tokens=12,
            response_prefix="", stop=("</search>", "</answer>"), history=None,
            minibatch_size=64, eval_every=0, out_dir=out, resume=False, seed=args.seed,
            skip_without_signal=False,  # grpo's all-zero groups must still pay for the update
        )  # fmt: skip
        trainer = Trainer(config)
        start, cpu = time.perf_counter(), time.process_time()
        row = trainer.step()
        row["iteration_s"] = time.perf_counter() - start
        row["iteration_cpu_s"] = time.process_time() - cpu  # one thread: robust to load
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    results: dict[str, list[dict]] = {label: [] for label in RUNS}
    for _ in range(args.repeats):  # interleaved, so load changes hit every row alike
        for label, (estimator, params, probe) in RUNS.items():
            results[label].append(one_iteration(args, estimator, params, probe))

    def median(label: str, key: str) -> float:
        return statistics.median(float(r.get(key, 0.0)) for r in results[label])

    base = median("grpo (no probes)", "iteration_s")
    base_cpu = median("grpo (no probes)", "iteration_cpu_s")
    first = results["grpo (no probes)"][0]
    print(f"SearchQA level 0, {args.tasks} tasks x G={args.group_size}, "
          f"{first['env_steps']} turns per iteration; tiny Llama (d=64, 2 layers), 1 torch "
          f"thread, median of {args.repeats}; Python {platform.python_version()}, "
          f"torch {torch.__version__}\n")  # fmt: skip
    print("| run | iteration s | iteration CPU s | rollout s | probe s | probe rows | tokens run "
          "| prefix tokens reused | x no-probe: CPU (wall) | target ≤ 1.3x |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for label in RUNS:
        it, cpu = median(label, "iteration_s"), median(label, "iteration_cpu_s")
        ratio = cpu / base_cpu
        met = "n/a" if label.startswith("grpo") or "share_prefix=False" in label else (
            "yes" if ratio <= TARGET else "NO")  # fmt: skip
        print(f"| {label} | {it:.2f} | {cpu:.2f} | {median(label, 'rollout_s'):.2f} | "
              f"{median(label, 'probe_s'):.2f} | {median(label, 'probe_rows'):.0f} | "
              f"{median(label, 'probe_tokens'):,.0f} | {median(label, 'probe_shared_tokens'):,.0f}"
              f" | {ratio:.2f} ({it / base:.2f}) | {met} |")  # fmt: skip
    shared = median("igpo", "probe_s")
    plain = median("igpo, share_prefix=False", "probe_s")
    print(f"\nprefix sharing: igpo probe time {plain:.2f} s -> {shared:.2f} s "
          f"({plain / max(shared, 1e-9):.2f}x faster)")  # fmt: skip

if __name__ == "__main__":
    main()
