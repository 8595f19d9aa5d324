"""Credit-estimator speed: seconds per call on a 100,000-turn batch, pinned to one core.

The batch has 1,000 groups x 8 episodes with ragged lengths (7 to 18 turns, about 12.5 on
average). Each task is a small grid the agent wanders over, so states repeat within and
across the episodes of a group and GiGPO's anchor groups are not trivial. Every registered
estimator runs with its default parameters (``mc_grpo`` with ``require_odd=False``: the
groups have 8 episodes, not G+1 = 9), plus GiGPO's similarity mode for information. Building
the TurnBatch from the Group records is timed separately. Probe-based estimators get
synthetic probe values, precomputed (they are pure functions of them).

Target (issue 3): every estimator <= 0.5 s per call. Prints medians of --repeats runs.

    python benchmarks/credit_speed.py [--groups 1000] [--episodes 8] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from turngym.trainers.credit import CreditContext, TurnBatch, estimator_registry, resolve_estimator
from turngym.trainers.credit.probe_values import normalise_answer, synthetic_probes
from turngym.types import Episode, Group, Turn

TARGET_S = 0.5
EXTRA_PARAMS = {"mc_grpo": {"require_odd": False}}
INFO_ONLY = {"gigpo (similarity=True)": ("gigpo", {"similarity": True})}


def make_groups(n_groups: int, n_episodes: int, seed: int) -> list[Group]:
    """Ragged episodes on 5x5 grids: random walks, reward 1 when the goal cell is reached."""
    rng = np.random.default_rng(seed)
    moves = np.array([(0, 1), (1, 0), (0, -1), (-1, 0)])
    groups = []
    for g in range(n_groups):
        task = f"grid{g}"
        episodes = []
        for i in range(n_episodes):
            length = int(rng.integers(7, 19))
            steps = moves[rng.integers(0, 4, size=length)]
            cells = np.clip(np.cumsum(np.vstack([[0, 0], steps[:-1]]), axis=0), 0, 4)
            success = bool(rng.random() < 0.4)
            turns = tuple(
                Turn(
                    t,
                    "agent",
                    f"You are at row {r}, column {c} of grid {g}.",
                    "move",
                    1.0 if success and t == length - 1 else -0.01,
                    t == length - 1,
                    False,
                    f"{task}:{r},{c}",
                    True,
                )  # fmt: skip
                for t, (r, c) in enumerate(cells.tolist())
            )
            episodes.append(Episode(f"{task}/{i}", "bench/Grid-v0", task, i, "train", turns,
                                    float(success), success))  # fmt: skip
        groups.append(Group(f"{task}@0", task, tuple(episodes)))
    return groups


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})  # one core: the numbers must not depend on the machine's

    groups = make_groups(args.groups, args.episodes, args.seed)
    batch = TurnBatch.from_groups(groups)
    build_s = median_seconds(lambda: TurnBatch.from_groups(groups), args.repeats)
    runs = {name: (name, EXTRA_PARAMS.get(name, {})) for name in estimator_registry.names()}
    runs.update(INFO_ONLY)

    print(f"credit estimators on {batch.n_turns:,} turns ({batch.n_groups:,} groups x "
          f"{args.episodes} episodes), pinned to core {core}, median of {args.repeats} runs; "
          f"Python {platform.python_version()}, numpy {np.__version__}\n")  # fmt: skip
    print("| estimator | median s | turns/s | target ≤ 0.5 s met? |")
    print("|---|---:|---:|---|")
    print(f"| TurnBatch.from_groups (build, reported separately) | {build_s:.4f} | "
          f"{batch.n_turns / build_s:,.0f} | n/a |")  # fmt: skip
    # Probe-based estimators read precomputed probe values (3 scored texts per episode, 1-4
    # action tokens per turn); computing them is the trainer's job (benchmarks/probe_cost.py).
    probed = CreditContext(probe=synthetic_probes(batch, args.seed, targets=3))
    for label, (name, params) in runs.items():
        estimate = resolve_estimator(name, params, {"probe"})
        ctx = probed if "probe" in estimator_registry.get(name).requires else CreditContext()
        # Cold caches every call: a training batch brings new observations and answers.
        seconds = median_seconds(
            lambda e=estimate, c=ctx: (normalise_answer.cache_clear(), e(batch, c)), args.repeats
        )
        met = (
            "n/a (information)" if label in INFO_ONLY else ("yes" if seconds <= TARGET_S else "NO")
        )
        shown = label if not params or label in INFO_ONLY else f"{name} ({params})"
        print(f"| {shown} | {seconds:.4f} | {batch.n_turns / seconds:,.0f} | {met} |")


if __name__ == "__main__":
    main()
