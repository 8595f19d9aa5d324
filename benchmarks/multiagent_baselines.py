"""Scripted opponents against the random agent on the multi-agent envs (test split).

For each multi-agent env, every pairing of the random agent and the env's reference opponent
(``minimax`` for the board games, ``negotiator`` for DealOrNoDeal) plays one game on each of
``--tasks`` test-split tasks, the opponent on either seat. Board games report player_0's
win / draw / loss rates; DealOrNoDeal reports the deal rate, each seat's mean points (of 10)
and how often player_0 ends with more points. Tic-Tac-Toe also reports how often the exact
minimax player reaches the game-theoretic value of the opening it was dealt (it must be 1.0).

    python benchmarks/multiagent_baselines.py [--tasks 200] [--depth N]
"""

from __future__ import annotations

import argparse
import platform
import time

from turngym.agents import make_agent
from turngym.envs.multiagent.registry import multiagent_ids
from turngym.rollout import collect

REFERENCE = {
    "turngym/TicTacToe-v0": "minimax",
    "turngym/ConnectFour-v0": "minimax",
    "turngym/DealOrNoDeal-v0": "negotiator",
}


def play(env_id: str, spec_0: str, spec_1: str, tasks: int) -> tuple[list, float]:
    """One game per task; return player_0's seat views and the wall time."""
    agents = {"player_0": make_agent(spec_0, seed=0), "player_1": make_agent(spec_1, seed=1)}
    start = time.perf_counter()
    groups = collect(env_id, agents, tasks=tasks, split="test", train_seat="player_0")
    return [ep for g in groups for ep in g.episodes], time.perf_counter() - start


def board_row(episodes: list) -> str:
    n = len(episodes)
    wins = sum(ep.seat_outcomes["player_0"].outcome == 1.0 for ep in episodes)
    draws = sum(ep.seat_outcomes["player_0"].outcome == 0.5 for ep in episodes)
    return f"{wins / n:.3f} | {draws / n:.3f} | {(n - wins - draws) / n:.3f}"


def deal_row(episodes: list) -> str:
    n = len(episodes)
    deals = sum(ep.success for ep in episodes) / n
    p0 = sum(ep.seat_outcomes["player_0"].outcome for ep in episodes) * 10 / n
    p1 = sum(ep.seat_outcomes["player_1"].outcome for ep in episodes) * 10 / n
    ahead = sum(
        ep.seat_outcomes["player_0"].outcome > ep.seat_outcomes["player_1"].outcome
        for ep in episodes
    ) / n
    return f"{deals:.3f} | {p0:.2f} | {p1:.2f} | {ahead:.3f}"


def value_reached(episodes: list, seat: str) -> float:
    """Share of TicTacToe games where ``seat`` scored at least its opening's exact value.

    The episodes are player_0's views; ``privileged["value"]`` is player_0's value (+1, 0,
    -1) of the opening under perfect play, so player_1's is its negation.
    """
    sign = 1 if seat == "player_0" else -1
    reached = [
        ep.seat_outcomes[seat].outcome >= (sign * ep.privileged["value"] + 1) / 2
        for ep in episodes
    ]
    return sum(reached) / len(reached)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--depth", type=int, default=None, help="minimax depth (default: env's)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; "
          f"{args.tasks} test-split tasks, one game each\n")  # fmt: skip
    for env_id in multiagent_ids():
        ref = REFERENCE[env_id]
        if ref == "minimax" and args.depth is not None:
            ref = f"minimax:{args.depth}"
        board = ref.startswith("minimax")
        head = "p0 win | draw | p0 loss"
        if not board:
            head = "deal rate | p0 points | p1 points | p0 ahead"
        print(f"### {env_id}\n\n| player_0 | player_1 | {head} | s |")
        print("|---|---|" + "---:|" * (head.count("|") + 2))
        for spec_0, spec_1 in [("random", "random"), (ref, "random"), ("random", ref), (ref, ref)]:
            episodes, seconds = play(env_id, spec_0, spec_1, args.tasks)
            row = board_row(episodes) if board else deal_row(episodes)
            print(f"| {spec_0} | {spec_1} | {row} | {seconds:.1f} |")
            if env_id == "turngym/TicTacToe-v0" and ref in (spec_0, spec_1):
                pairs = (("player_0", spec_0), ("player_1", spec_1))
                seats = [seat for seat, spec in pairs if spec == ref]
                reached = ", ".join(f"{s} {value_reached(episodes, s):.3f}" for s in seats)
                print(f"|  | exact value of the opening reached: {reached} | | | | |")
        print()


if __name__ == "__main__":
    main()
