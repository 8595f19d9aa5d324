"""Rollout throughput, local backend vs Ray backend, on a 2-CPU local Ray cluster.

Plays ``--episodes`` episodes with every one live at once (``max_concurrent`` = episodes) and
reports env turns per second, on two agents:

* ``random``: an env-aware reference agent; on Ray it acts inside the env actors, in the same
  round trip as the step;
* ``text``: an agent that answers from the conversation text on the driver (a stand-in for a
  model: cheap, so the table shows the engine, not the model); on Ray every tick ships the
  actions to the actors and the observations back, over the direct driver-actor channel of
  same-node actors (``TURNGYM_RAY_CHANNEL=0``: as Ray actor calls, for comparison).

The cheap env is FrozenLake (microseconds per step); the slow env is KernelGen (every step
grades a candidate module in a sandboxed subprocess; the oracle submits the reference, so an
episode is one or two evaluations). Ray figures are for warm actors (the pool keeps them
between rollouts, as a trainer or an eval with several seeds does); the first rollout's actor
start is shown separately. Local and Ray runs alternate (the load of a shared machine drifts);
turns/s are medians of ``--repeats`` runs, and the Ray overhead column is the median over the
pairs of ``local turns/s / ray turns/s - 1``. A full garbage collection runs before each timed
run: one costs ~40-50 ms in this process (Ray's heap), a third of a 512-episode rollout, and
would otherwise land in whichever run it falls in.

**Tasks.** Each cheap-env figure comes in two regimes, because drawing a task the first time
costs far more than playing it (FrozenLake: generating and solving a map is ~0.4 ms, a reset
of a task already drawn ~0.06 ms, a step ~0.004-0.02 ms), and every process keeps the tasks it
drew (:func:`turngym.task_cache.cached_draw`) and solved maps:

* ``fresh``: every run plays new seeds (both runs of a pair the same ones), as a training
  iteration does and as an eval does in a new process: both backends draw every task;
* ``repeated``: every run plays seeds ``0..episodes-1`` again in the same process, after one
  untimed run on each backend: the local process has drawn them all, and each Ray actor the
  episodes it hosts (warm actors come back in order, so an episode returns to the actor that
  drew its task). What is left is the engines' own cost.

Target (issue 19): Ray's overhead on the cheap env <= 20% at 512 concurrent episodes.

    python benchmarks/ray_backend.py [--episodes 512] [--repeats 3] [--slow-episodes 4 (0: skip)]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
import zlib
from collections.abc import Sequence

from turngym.agents import OracleAgent, RandomAgent
from turngym.agents.base import ActionResult, BaseAgent
from turngym.backends.ray_channel import ENV_SWITCH, channel_enabled
from turngym.rollout import collect
from turngym.types import Conversation

TARGET = 0.20
CHEAP = "turngym/FrozenLake-v0"
SLOW = "turngym/KernelGen-v0"


class TextAgent(BaseAgent):
    """Answers from the text alone: a move chosen by the episode id and the turn number."""

    MOVES = ("<action>down</action>", "<action>right</action>", "<action>left</action>",
             "<action>up</action>")  # fmt: skip

    def act_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        moves = self.MOVES
        return [
            ActionResult(moves[(zlib.crc32(c.episode_id.encode()) + len(c.turns)) % len(moves)])
            for c in conversations
        ]


def turns_per_s(env: str, agent_factory, seeds: Sequence[int], backend: str) -> float:
    # A full collection of this process's heap (Ray's and turngym's modules) takes ~40-50 ms
    # here, a third of a rollout: collected before each run, it falls in neither backend's.
    gc.collect()
    started = time.perf_counter()
    groups = collect(env, agent_factory(), seeds, max_concurrent=len(seeds), backend=backend)
    elapsed = time.perf_counter() - started
    return sum(len(ep.turns) for g in groups for ep in g.episodes) / elapsed


def measure(env: str, agent_factory, episodes: int, repeats: int,
            fresh_from: int | None) -> dict[str, float]:  # fmt: skip
    """Alternated local and Ray runs: new seeds per pair from ``fresh_from`` on, or (``None``)
    seeds ``0..episodes-1`` every time, drawn once by each backend before the timed runs."""
    from turngym.backends.ray_envs import release_warm

    release_warm()
    cold_started = time.perf_counter()
    collect(env, agent_factory(), range(episodes), max_concurrent=episodes, backend="ray")
    cold = time.perf_counter() - cold_started
    if fresh_from is None:
        turns_per_s(env, agent_factory, range(episodes), "local")
    local, ray_ = [], []
    for r in range(repeats):  # alternated: a shared machine's load shifts between runs
        first = 0 if fresh_from is None else fresh_from + r * episodes
        seeds = range(first, first + episodes)
        local.append(turns_per_s(env, agent_factory, seeds, "local"))
        ray_.append(turns_per_s(env, agent_factory, seeds, "ray"))
    overhead = statistics.median(lo / ra - 1 for lo, ra in zip(local, ray_, strict=True))
    return {"local": statistics.median(local), "ray": statistics.median(ray_),
            "overhead": overhead, "cold_s": cold}  # fmt: skip


def _rate(turns_per_s: float) -> str:
    """Whole turns/s, or two decimals for a slow env's few."""
    return f"{turns_per_s:,.0f}" if turns_per_s >= 100 else f"{turns_per_s:.2f}"


FRESH_SEEDS = 10**6
"""Fresh-task rows start at ``FRESH_SEEDS * row`` (no row replays another's seeds)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slow-episodes", type=int, default=4)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()

    import ray

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    print(f"local Ray cluster: {args.cpus} CPUs, started in {time.perf_counter() - started:.1f} s; "
          f"driver-actor channel {'on' if channel_enabled() else 'off'} ({ENV_SWITCH})")
    rows = []
    runs = [
        (CHEAP, "random", lambda: RandomAgent(seed=0), args.episodes, args.repeats, "fresh"),
        (CHEAP, "text", TextAgent, args.episodes, args.repeats, "fresh"),
        (CHEAP, "random", lambda: RandomAgent(seed=0), args.episodes, args.repeats, "repeated"),
        (CHEAP, "text", TextAgent, args.episodes, args.repeats, "repeated"),
        (SLOW, "oracle", OracleAgent, args.slow_episodes, 1, "fresh"),
    ]
    for row, (env, agent, factory, n, repeats, tasks) in enumerate(runs, start=1):
        if n == 0:  # --slow-episodes 0 skips the slow env
            continue
        r = measure(env, factory, n, repeats, FRESH_SEEDS * row if tasks == "fresh" else None)
        rows.append((env, agent, tasks, n, r))
        print(f"  {env} {agent} {tasks}: {r}", flush=True)
    ray.shutdown()

    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores on the host, "
          f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; "
          f"medians of {args.repeats} runs (slow env: 1 run)\n")  # fmt: skip
    print("| env | agent | tasks | live episodes | local turns/s | Ray turns/s | Ray overhead | "
          "first Ray rollout (actor start) |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for env, agent, tasks, n, r in rows:
        print(f"| {env} | {agent} | {tasks} | {n} | {_rate(r['local'])} | {_rate(r['ray'])} | "
              f"{r['overhead']:+.0%} | {r['cold_s']:.1f} s |")  # fmt: skip
    for tasks in ("fresh", "repeated"):
        cheap = [r["overhead"] for env, _, t, _, r in rows if env == CHEAP and t == tasks]
        verdict = "meets" if max(cheap) <= TARGET else "misses"
        print(f"\nTarget: Ray overhead <= {TARGET:.0%} on the cheap env, {tasks} tasks: {verdict} "
              f"(worst {max(cheap):+.0%}).")  # fmt: skip


if __name__ == "__main__":
    main()
