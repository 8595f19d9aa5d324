"""Credit-estimator speed: seconds per call on a 100,000-turn batch, pinned to one core.

The batch has 1,000 groups x 8 episodes with ragged lengths (7 to 18 turns, about 12.5 on
average). Each task is a small grid the agent wanders over, so states repeat within and
across the episodes of a group and GiGPO's anchor groups are not trivial. Every turn also
carries what the structured-reward estimators read (a tool call's similarities to 4 gold
calls, a judge score), and every last turn a 10-item ``rank_hits`` list, F-GRPO's
``phase_rewards`` and 3 sub-problem verdicts, so those estimators do their full work.
Every registered estimator runs with its default parameters (``mc_grpo`` with
``require_odd=False``: the groups have 8 episodes, not G+1 = 9), plus GiGPO's similarity
mode, MAPO reading an ``InfoJudge`` and MatchTIR's Sinkhorn matching for information.
Building the TurnBatch from the Group records is timed separately. Critic methods read
precomputed random critic values (the critic's forward pass is excluded: it is the model's
cost, not the estimator's); probe-based estimators read synthetic probe values, precomputed
(they are pure functions of them; computing them is benchmarks/probe_cost.py's subject).

Target (issue 3): every estimator <= 0.5 s per call (wall time). Prints medians of --repeats
runs, wall and CPU time (the CPU time stays put when other jobs share the machine).

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

from turngym.trainers.credit import (
    CreditContext,
    TurnBatch,
    estimator_registry,
    method_of,
    resolve_estimator,
)
from turngym.trainers.credit.probe_values import normalise_answer, synthetic_probes
from turngym.trainers.credit.values import FixedCritic, TurnValues
from turngym.trainers.hooks import InfoJudge
from turngym.trainers.plugs import critic_heads
from turngym.types import Episode, Group, Turn

TARGET_S = 0.5
EXTRA_PARAMS = {"mc_grpo": {"require_odd": False}}
INFO_ONLY = {
    "gigpo (similarity=True)": ("gigpo", {"similarity": True}),
    "mapo (source=judge, InfoJudge)": ("mapo", {"source": "judge"}),
    "matchtir (matching=ot)": ("matchtir", {"matching": "ot"}),
}


class _Precomputed:
    """A critic whose values are already computed (so its forward pass is not timed)."""

    def __init__(self, values: TurnValues) -> None:
        self._values = values

    def values(self, batch: TurnBatch) -> TurnValues:
        return self._values


def context(name: str, batch: TurnBatch, seed: int) -> CreditContext:
    """A context with a judge, or with random critic values for a critic method."""
    plug = method_of(name).critic
    if plug is None:  # the judge is what EmotionalSupport gives MAPO: the turns' judge scores
        return CreditContext(judge=InfoJudge("judge_score"))
    heads = critic_heads(plug)
    rng = np.random.default_rng(seed)
    values = FixedCritic({h: rng.random(batch.n_turns) for h in heads}).values(batch)
    return CreditContext(critic=_Precomputed(values))


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
            sims = rng.random((length, 4)).round(2).tolist()
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
                    _info(rng, sims[t], t == length - 1),
                )  # fmt: skip
                for t, (r, c) in enumerate(cells.tolist())
            )
            episodes.append(Episode(f"{task}/{i}", "bench/Grid-v0", task, i, "train", turns,
                                    float(success), success))  # fmt: skip
        groups.append(Group(f"{task}@0", task, tuple(episodes)))
    return groups


def _info(rng: np.random.Generator, similarities: list[float], last: bool) -> dict[str, Any]:
    """Per-turn info of the structured estimators (see the module docstring)."""
    info: dict[str, Any] = {
        "call_match": {"call": {"similarities": similarities}},
        "judge_score": float(rng.normal(0, 0.05)),
    }
    if last:
        info["rank_hits"] = rng.integers(0, 2, 10).tolist()
        info["phase_rewards"] = {"generation": float(rng.random()), "ranking": float(rng.random())}
        info["subproblem_correct"] = rng.integers(0, 2, 3).tolist()
    return info


def median_seconds(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median wall time and median CPU time (this thread) of ``repeats`` calls, after a warm-up.

    The CPU time is what the estimator costs; on a machine other jobs share, the wall time
    also counts the time the scheduler gave to the other jobs.
    """
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return statistics.median(wall), statistics.median(cpu)


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
    print("| estimator | median s | median CPU s | turns/s | target ≤ 0.5 s met? |")
    print("|---|---:|---:|---:|---|")
    print(f"| TurnBatch.from_groups (build, reported separately) | {build_s[0]:.4f} | "
          f"{build_s[1]:.4f} | {batch.n_turns / build_s[0]:,.0f} | n/a |")  # fmt: skip
    # Probe-based estimators read precomputed probe values (3 scored texts per episode, 1-4
    # action tokens per turn); computing them is the trainer's job (benchmarks/probe_cost.py).
    probed = CreditContext(probe=synthetic_probes(batch, args.seed, targets=3))
    for label, (name, params) in runs.items():
        estimate = resolve_estimator(name, params, {"critic", "judge", "probe"})
        ctx = probed if "probe" in estimator_registry.get(name).requires else context(
            name, batch, args.seed)  # fmt: skip
        # Cold caches every call: a training batch brings new observations and answers.
        seconds, cpu = median_seconds(
            lambda e=estimate, c=ctx: (normalise_answer.cache_clear(), e(batch, c)), args.repeats
        )
        met = (
            "n/a (information)" if label in INFO_ONLY else ("yes" if seconds <= TARGET_S else "NO")
        )
        shown = label if not params or label in INFO_ONLY else f"{name} ({params})"
        print(f"| {shown} | {seconds:.4f} | {cpu:.4f} | {batch.n_turns / seconds:,.0f} | {met} |")


if __name__ == "__main__":
    main()
