"""Rollout-engine overhead: turns/s of ``collect`` vs. a bare ``env.step`` loop.

Both drive the same env (``turngym/FrozenLake-v0`` made through ``turngym.make``, so with the
same Gymnasium wrappers) with uniformly random example actions, pinned to one core. The
engine's extra work per turn is building the Conversation, calling the agent once per tick,
stripping privileged info and recording the Turn.

Target (issue 2): collect >= 20,000 turns/s on one core. Prints medians of --repeats runs.

    python benchmarks/rollout_overhead.py [--repeats 5] [--tasks 256] [--group-size 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time

import turngym
from turngym.agents import RandomAgent
from turngym.core import clear_task_cache
from turngym.rollout import collect

ENV_ID = "turngym/FrozenLake-v0"


def bare_loop(n_turns: int, seed: int) -> float:
    """Turns/s of a plain reset/step loop with random example actions."""
    env = turngym.make(ENV_ID)
    rng = random.Random(seed)
    examples = env.action_space.examples
    task_seed = 0
    env.reset(seed=task_seed, options={"split": "test"})
    start = time.perf_counter()
    for _ in range(n_turns):
        _, _, terminated, truncated, _ = env.step(rng.choice(examples))
        if terminated or truncated:
            task_seed += 1
            env.reset(seed=task_seed, options={"split": "test"})
    return n_turns / (time.perf_counter() - start)


def engine(tasks: int, group_size: int, seed: int) -> tuple[float, int]:
    """Turns/s of ``collect`` with the random agent (resets included, as in the bare loop)."""
    start = time.perf_counter()
    groups = collect(ENV_ID, RandomAgent(seed=seed), tasks=tasks, group_size=group_size)
    elapsed = time.perf_counter() - start
    turns = sum(ep.num_turns for g in groups for ep in g.episodes)
    return turns / elapsed, turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=256)
    parser.add_argument("--group-size", type=int, default=8)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    engine(8, 2, 0)  # warm up imports and caches
    engine_rates, bare_rates = [], []
    for r in range(args.repeats):
        clear_task_cache()  # both loops start cold: every task is drawn anew
        rate, turns = engine(args.tasks, args.group_size, r)
        engine_rates.append(rate)
        clear_task_cache()
        bare_rates.append(bare_loop(turns, r))
    collect_rate = statistics.median(engine_rates)
    bare_rate = statistics.median(bare_rates)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus "
        f"(pinned to 1), Python {platform.python_version()}"
    )
    print(
        f"workload: {ENV_ID}, {args.tasks} tasks x {args.group_size} episodes, "
        f"~{turns} turns per run, median of {args.repeats} runs\n"
    )
    print("| loop | turns/s (median) | min | max |")
    print("|---|---:|---:|---:|")
    print(f"| bare env.step | {bare_rate:,.0f} | {min(bare_rates):,.0f} | {max(bare_rates):,.0f} |")
    print(
        f"| collect (random agent) | {collect_rate:,.0f} | {min(engine_rates):,.0f} | "
        f"{max(engine_rates):,.0f} |"
    )
    print(
        f"\ncollect / bare = {collect_rate / bare_rate:.2f}   target collect >= 20,000 turns/s: "
        f"{'met' if collect_rate >= 20_000 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
