"""Lockstep batched generation vs one episode at a time, with the tiny model on FrozenLake.

Both modes play the same episodes (``--tasks`` x ``--group-size``, 64 by default) through
``turngym.rollout.collect`` with the same agent (``make_agent("tiny:frozenlake")``: a random
2-layer Llama, ``<action>`` prefix, at most 8 new tokens, no history):

* lockstep: every live episode's conversation goes to ONE ``act_batch`` call per tick, so
  the model runs one left-padded prefill and one decode step per token for the whole batch.
  The tiny agent also encodes the prompt prefix the batch shares (the instructions, about
  150 of the 184 prompt tokens) once (``share_prefix=True``); a second row shows lockstep
  without it;
* sequential: ``collect(..., max_concurrent=1)``, so ``act_batch`` gets one conversation
  (prefix sharing has nothing to share there).

torch is pinned to 2 threads (``torch.set_num_threads(2)``). Target (issue): lockstep >= 5x
the turns/s of sequential. Prints a Markdown table of medians over ``--repeats`` runs.

    python benchmarks/rollout_batching.py [--repeats 3] [--tasks 32] [--group-size 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Sequence

import torch

from turngym.agents import ActionResult, make_agent
from turngym.rollout import collect
from turngym.types import Conversation

ENV_ID = "turngym/FrozenLake-v0"
THREADS = 2


class CountingAgent:
    """Forwards to an agent and counts ``act_batch`` calls and conversations."""

    def __init__(self, agent) -> None:
        self.agent = agent
        self.calls = 0
        self.conversations = 0

    def act_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        self.calls += 1
        self.conversations += len(conversations)
        return self.agent.act_batch(conversations)

    async def aact_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        return self.act_batch(conversations)


def run(agent, tasks: int, group_size: int, max_concurrent: int | None, share: bool) -> dict:
    """One collection: turns/s plus the number of generation calls."""
    agent.share_prefix = share
    counting = CountingAgent(agent)
    start = time.perf_counter()
    groups = collect(
        ENV_ID, counting, tasks=tasks, group_size=group_size, max_concurrent=max_concurrent
    )
    elapsed = time.perf_counter() - start
    turns = sum(ep.num_turns for g in groups for ep in g.episodes)
    traced = sum(turn.trace is not None for g in groups for ep in g.episodes for turn in ep.turns)
    assert traced == turns, "every turn must carry a TokenTrace"
    return {"rate": turns / elapsed, "turns": turns, "calls": counting.calls, "s": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--group-size", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    agent = make_agent("tiny:frozenlake", seed=0)
    n_params = sum(p.numel() for p in agent.model.parameters())
    run(agent, 2, 2, None, True)  # warm up: first forward passes, env task cache
    modes = {  # name: (max_concurrent, share_prefix)
        "lockstep, shared prefix encoded once (tiny default)": (None, True),
        "lockstep, every prompt encoded whole": (None, False),
        "one episode at a time": (1, True),
    }
    results: dict[str, list[dict]] = {name: [] for name in modes}
    for _ in range(args.repeats):  # modes interleaved so that machine load hits all alike
        for name, (max_concurrent, share) in modes.items():
            results[name].append(run(agent, args.tasks, args.group_size, max_concurrent, share))
    episodes = args.tasks * args.group_size
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"torch {torch.__version__} pinned to torch.set_num_threads({THREADS}), "
        f"Python {platform.python_version()}"
    )
    print(
        f"workload: {ENV_ID}, {episodes} episodes ({args.tasks} tasks x {args.group_size}), "
        f"tiny:frozenlake ({n_params:,} parameters, vocab {len(agent.tokenizer)}, "
        f"max_new_tokens=8, history=0), median of {args.repeats} runs\n"
    )
    print("| Mode | act_batch calls | Turns | Median turns/s | Median wall s |")
    print("|---|---:|---:|---:|---:|")
    medians = {}
    for name, runs in results.items():
        medians[name] = statistics.median(r["rate"] for r in runs)
        wall = statistics.median(r["s"] for r in runs)
        print(
            f"| {name} | {runs[0]['calls']} | {runs[0]['turns']} | "
            f"{medians[name]:,.0f} | {wall:.2f} |"
        )
    shared, whole, sequential = medians.values()
    print(
        f"\nlockstep / one-at-a-time: {shared / sequential:.1f}x (target >= 5x); "
        f"without prefix sharing {whole / sequential:.1f}x"
    )


if __name__ == "__main__":
    main()
