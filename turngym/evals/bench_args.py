"""The command-line options of ``turngym bench`` and the spec they build.

Unset options keep the chosen suite's settings (:data:`turngym.evals.bench.BENCH_SUITES`);
``--recipe`` merges TrainConfig overrides into the suite's recipe, except the fields the bench
sets for each run.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from turngym._cliargs import mapping_arg
from turngym.evals.bench import BENCH_SUITES, BenchSpec, bench_suite
from turngym.evals.bench_seats import add_seat_arguments, seat_options
from turngym.evals.suites import EvalEntry

__all__ = ["add_bench_arguments", "bench_spec_from_args"]


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``turngym bench`` (unset options keep the suite's settings)."""
    p.add_argument("--suite", default="quick", choices=list(BENCH_SUITES),
                   help="bench settings: quick (default, ~6-10 min on 2 cores), horizon "
                   "(a longer, sparser task; 3 seeds) or tictactoe (one seat of a two-player "
                   "game trained against random)")  # fmt: skip
    p.add_argument("--estimators", nargs="+", default=None)
    p.add_argument("--envs", nargs="+", default=None,
                   help="env ids (default: the suite's env)")
    p.add_argument("--options", type=mapping_arg, default=None,
                   help='reset options for --envs as JSON, e.g. \'{"level": 1}\'')
    p.add_argument("--seeds", nargs="+", type=int, default=None)
    p.add_argument("--env-steps", type=int, default=None, help="budget per run")
    p.add_argument("--eval-every", type=int, default=None, help="iterations per point")
    p.add_argument("--eval-tasks", type=int, default=None, help="tasks per point")
    p.add_argument("--episodes", type=int, default=None, help="final test episodes per seed")
    p.add_argument("--threshold", type=float, default=None)
    add_seat_arguments(p)
    p.add_argument("--recipe", type=mapping_arg, default=None,
                   help="TrainConfig overrides as JSON, merged into the default recipe")
    p.add_argument("--params", type=mapping_arg, default=None,
                   help='estimator parameters as JSON, e.g. \'{"gigpo": {"omega": 0.5}}\'')
    p.add_argument("--baselines", nargs="*", default=None)
    p.add_argument("--baseline-suite", default=None,
                   help="suite for the baselines besides the bench's envs (default: smoke; "
                   "none: only the bench's envs)")  # fmt: skip
    p.add_argument("--workers", type=int, default=None, help="training runs at once")
    p.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="local process pool, or Ray tasks (joins RAY_ADDRESS when set)")
    p.add_argument("--progress", default="auto", choices=["auto", "bar", "lines", "off"],
                   help="live bars on a terminal (auto), one line per eval point, or nothing")
    p.add_argument("--out", type=Path, default=Path("runs/bench"))
    p.add_argument("--db", default=None, help="leaderboard (default $TURNGYM_LEADERBOARD or "
                   "leaderboard.db)")  # fmt: skip
    p.add_argument("--no-submit", action="store_true", help="do not submit to the leaderboard")


_PER_RUN = ("env", "env_options", "estimator", "estimator_params", "seed", "iterations",
            "max_env_steps", "eval_every", "eval_tasks", "max_turns", "checkpoint_every",
            "out_dir")  # fmt: skip
"""TrainConfig fields the bench sets for each run (its own options), not ``--recipe``."""


def bench_spec_from_args(args: argparse.Namespace) -> BenchSpec:
    """Build the spec from CLI options: the suite's settings, then every option given.

    Raises:
        ValueError: ``--recipe`` sets a field the bench sets per run.
    """
    fixed = sorted(set(args.recipe or {}) & set(_PER_RUN))
    if fixed:
        raise ValueError(f"--recipe cannot set {', '.join(fixed)}: the bench sets them for each "
                         "run; use --envs, --options, --estimators, --params, --seeds, "
                         "--env-steps, --eval-every or --eval-tasks instead")  # fmt: skip
    spec = bench_suite(args.suite)
    envs = spec.envs
    if args.envs:
        episodes = args.episodes or 100
        envs = tuple(EvalEntry(e, options=args.options or {}, episodes=episodes)
                     for e in args.envs)  # fmt: skip
    elif args.episodes:
        envs = tuple(replace(e, episodes=args.episodes) for e in envs)
    given = {
        "estimators": None if args.estimators is None else tuple(args.estimators),
        "seeds": None if args.seeds is None else tuple(args.seeds),
        "env_steps": args.env_steps, "eval_every": args.eval_every,
        "eval_tasks": args.eval_tasks, "threshold": args.threshold,
        "baselines": None if args.baselines is None else tuple(args.baselines),
        "baseline_suite": args.baseline_suite, **seat_options(args),
    }  # fmt: skip
    spec = replace(
        spec, envs=envs, recipe={**spec.recipe, **(args.recipe or {})},
        params={**spec.params, **(args.params or {})},
        **{k: v for k, v in given.items() if v is not None},
    )  # fmt: skip
    return replace(spec, baseline_suite=None) if args.baseline_suite == "none" else spec
