"""turngym's trainer and TRL's GRPOTrainer (through turngym.adapters.trl), side by side.

Both train the same tiny model (``build_tiny(env, seed)``, the same initial weights) on the same
env and seed, with the same estimator, iterations, episodes per iteration (tasks x group size),
turn cap, decoding (one token per turn from the env's moves, inside ``<action>...</action>``),
learning rate and two policy epochs per batch. Reported from one run of each: env steps per
second, wall time per iteration, and test success at the end (``--eval-tasks`` test-split
episodes at temperature 1, each model prompted the way it was trained), with TRL / turngym
ratios.

What differs by design: turngym's trainer prompts each turn with the current observation
(``history=0``) and trains on one sequence per turn; TRL's multi-turn GRPO trains on one
sequence per episode (the whole conversation, env tokens masked), so its prompts grow with the
turns. TRL's own options (optimizer, schedule) stay at GRPOConfig's defaults except those named.

    python benchmarks/trainer_vs_trl.py [--iterations 10] [--estimator gigpo] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

ENV = "turngym/FrozenLake-v0"
RECIPE = dict(max_new_tokens=1, decoding="actions", response_prefix="<action>",
              response_suffix="</action>", stop=(), history=0, include_instructions=False,
              learning_rate=1e-3, ppo_epochs=2, entropy_coef=0.0)  # fmt: skip


def run_turngym(args: argparse.Namespace, out: str) -> dict[str, float]:
    from turngym.trainers.config import TrainConfig
    from turngym.trainers.trainer import Trainer

    config = TrainConfig(env=ENV, seed=args.seed, estimator=args.estimator,
                         iterations=args.iterations, tasks_per_iteration=args.tasks,
                         group_size=args.group, max_turns=args.max_turns,
                         eval_every=0, eval_tasks=args.eval_tasks, eval_temperature=1.0,
                         out_dir=out, progress="off", minibatch_size=256,
                         **RECIPE)  # type: ignore[arg-type]  # fmt: skip
    trainer = Trainer(config)
    started = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - started
    success = trainer.evaluate(temperature=1.0)["eval_success"]
    return {"wall_s": elapsed, "env_steps": float(trainer.env_steps), "success": success,
            "rollouts": float(trainer.iteration)}


def run_trl(args: argparse.Namespace, out: str) -> dict[str, float]:
    from trl import GRPOConfig

    from turngym.adapters.trl import TurngymGRPOTrainer, TurngymRollout, task_dataset
    from turngym.agents.tiny import build_tiny
    from turngym.envs.games.frozen_lake import FrozenLake

    model, tokenizer = build_tiny(ENV, seed=args.seed)

    def rollout(split: str, seed: int) -> TurngymRollout:
        return TurngymRollout(ENV, split=split, max_turns=args.max_turns,
                              response_prefix="<action>", response_suffix="</action>",
                              allowed_actions=FrozenLake.action_vocabulary(),
                              include_instructions=False, seed=seed)  # fmt: skip

    train = rollout("train", args.seed)
    config = GRPOConfig(output_dir=out, use_cpu=True, bf16=False,
                        per_device_train_batch_size=args.tasks * args.group,
                        num_generations=args.group, max_completion_length=4096,
                        # one rollout per num_iterations optimizer steps, as turngym's
                        # ppo_epochs passes over one batch (a minibatch holds it whole)
                        max_steps=args.iterations * RECIPE["ppo_epochs"],
                        num_iterations=RECIPE["ppo_epochs"],
                        learning_rate=RECIPE["learning_rate"], beta=0.0, report_to=[],
                        logging_steps=1, save_strategy="no", seed=args.seed,
                        disable_tqdm=True)  # fmt: skip
    trainer = TurngymGRPOTrainer(model=model, processing_class=tokenizer, args=config,
                                 train_dataset=task_dataset(range(10_000)), rollout=train,
                                 estimator=args.estimator)  # fmt: skip
    started = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - started
    plays = rollout("test", args.seed + 1).play(range(args.eval_tasks), model, tokenizer)
    success = sum(bool(p.info.get("success", False)) for p in plays) / len(plays)
    return {"wall_s": elapsed, "env_steps": float(train.env_steps), "success": success,
            "rollouts": float(train.rounds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=4, help="tasks per iteration")
    parser.add_argument("--group", type=int, default=4, help="episodes per task")
    parser.add_argument("--max-turns", type=int, default=8)
    parser.add_argument("--estimator", default="gigpo")
    parser.add_argument("--eval-tasks", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in (("turngym Trainer", run_turngym), ("TRL GRPOTrainer", run_trl)):
            rows[name] = run(args, os.path.join(tmp, name.split()[0]))
            print(f"  {name}: {rows[name]}", flush=True)

    print(f"\n{ENV}, tiny model, estimator {args.estimator}, seed {args.seed}, "
          f"{args.iterations} iterations x {args.tasks} tasks x {args.group} episodes, "
          f"max {args.max_turns} turns; one run each, {os.cpu_count()} cores\n")  # fmt: skip
    print("| trainer | rollouts | env steps | env steps/s | wall s / iteration | test success |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['rollouts']:.0f} | {r['env_steps']:.0f} | "
              f"{r['env_steps'] / r['wall_s']:.1f} | "
              f"{r['wall_s'] / args.iterations:.2f} | {r['success']:.3f} |")  # fmt: skip
    base, trl = rows["turngym Trainer"], rows["TRL GRPOTrainer"]
    print(f"| TRL / turngym | | {trl['env_steps'] / base['env_steps']:.2f} | "
          f"{(trl['env_steps'] / trl['wall_s']) / (base['env_steps'] / base['wall_s']):.2f} | "
          f"{trl['wall_s'] / base['wall_s']:.2f} | "
          f"{trl['success'] / base['success'] if base['success'] else float('nan'):.2f} |")


if __name__ == "__main__":
    main()
