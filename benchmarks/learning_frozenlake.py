"""Does it learn? The tiny model trained on FrozenLake with several credit estimators.

Same budget (wall-clock minutes), seeds and hyper-parameters for every estimator; test-split
success (50 tasks, sampling at temperature 1: the stochastic policy that the estimators
optimise) is measured every 10 iterations and printed as a table of success against training
time, and greedy success at the end. Issue 3's target: with ``grpo`` test success rises from
≤ 10% to ≥ 60% within 15 minutes on 2 CPU cores.

    python benchmarks/learning_frozenlake.py                      # grpo, trloo, gigpo; 15 min each
    python benchmarks/learning_frozenlake.py --minutes 5 --estimators grpo
    python benchmarks/learning_frozenlake.py --parallel 2         # two runs at once, 1 thread each

The recipe (see RECIPE below): the model continues ``<action>`` with ONE token and the agent
closes the tag, so the action format is learnable by RL from a random init; prompts hold only
the current board (no instructions, no history); invalid actions cost 0.1 and every move
0.05 (FrozenLake's ``step_penalty`` knob), and the estimators score episodes by their return;
learning rate 1e-3, two PPO epochs per batch, entropy bonus 0.01.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from turngym.evals.bench import DEFAULT_RECIPE

RECIPE = dict(
    DEFAULT_RECIPE,  # the tiny-model recipe `turngym bench` uses, on the default 4x4 lake
    env="turngym/FrozenLake-v0",
    env_options={"difficulty": {"step_penalty": -0.05}},
    iterations=100_000,  # the wall-clock budget ends the run
    tasks_per_iteration=16,
    eval_every=10,
    eval_tasks=50,
    checkpoint_every=0,
    resume=False,
)
PARAMS = {"grpo": {"score": "return"}, "trloo": {}, "gigpo": {}}


def run(estimator: str, minutes: float, seed: int, out: Path, threads: int) -> list[dict]:
    import torch

    from turngym.trainers.config import TrainConfig
    from turngym.trainers.trainer import Trainer

    torch.set_num_threads(threads)
    config = TrainConfig(
        **RECIPE, estimator=estimator, estimator_params=PARAMS.get(estimator, {}), seed=seed,
        out_dir=str(out / f"{estimator}-seed{seed}"), time_budget_s=minutes * 60,
    )  # fmt: skip
    started = time.monotonic()
    trainer = Trainer(config)
    first = trainer.evaluate()  # success before any update
    rows = [{"iteration": 0, "elapsed_s": 0.0, **first}] + trainer.train()
    greedy = trainer.evaluate(temperature=0.0)["eval_success"]
    print(f"{estimator}: done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return [r for r in rows if "eval_success" in r] + [{"greedy_final": greedy}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimators", nargs="+", default=["grpo", "trloo", "gigpo"])
    parser.add_argument("--minutes", type=float, default=15.0, help="budget per estimator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parallel", type=int, default=1, help="runs at once (threads split)")
    parser.add_argument("--out", type=Path, default=Path("runs/learning_frozenlake"))
    args = parser.parse_args()
    threads = max(1, (os.cpu_count() or 2) // args.parallel)
    args.out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(args.parallel) as pool:
        futures = {e: pool.submit(run, e, args.minutes, args.seed, args.out, threads)
                   for e in args.estimators}  # fmt: skip
        curves = {e: f.result() for e, f in futures.items()}
    (args.out / "curves.json").write_text(json.dumps(curves, indent=2))
    greedy = {e: curves[e].pop()["greedy_final"] for e in args.estimators}
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, {args.parallel} run(s) at once "
        f"with {threads} torch thread(s) each; budget {args.minutes:g} min per estimator; "
        f"seed {args.seed}; test split, 50 tasks, sampling at temperature 1\n"
    )
    marks = [m for m in (0, 1, 2, 3, 5, 7.5, 10, 12.5, 15, 20, 30) if m <= args.minutes]
    print("| minutes | " + " | ".join(args.estimators) + " |")
    print("|---:|" + "---:|" * len(args.estimators))
    for mark in marks:
        cells = []
        for e in args.estimators:
            seen = [r for r in curves[e] if r["elapsed_s"] <= mark * 60]
            cells.append(
                f"{seen[-1]['eval_success']:.2f} (it {seen[-1]['iteration']})" if seen else "-"
            )
        print(f"| {mark:g} | " + " | ".join(cells) + " |")
    print(
        "\nfinal (T=1): "
        + ", ".join(f"{e} {curves[e][-1]['eval_success']:.2f}" for e in args.estimators)
    )
    print("final (greedy): " + ", ".join(f"{e} {greedy[e]:.2f}" for e in args.estimators))


if __name__ == "__main__":
    main()
