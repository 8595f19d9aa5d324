"""The ``eval``, ``table`` and ``bench`` subcommands of the ``turngym`` CLI.

Each handler takes the parsed arguments and the output stream and returns the exit code
(0 ok, 1 the run failed part-way — finished episodes are kept, rerun to resume —, 2 bad input).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from turngym.evals.results import kwargs_hash

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``eval``, ``table`` and ``bench`` to the CLI's subcommands."""
    p = sub.add_parser(
        "eval", help="evaluate agents on suites/envs into a resumable run directory",
        description="Evaluate agents on suites or env ids. Rerunning the same command resumes "
        "an interrupted run; episodes are never duplicated.",
    )  # fmt: skip
    p.add_argument("targets", nargs="+",
                   help="suite names (smoke, quick, full, multiagent) or env ids")
    p.add_argument("--agents", nargs="+", default=["random"],
                   help="agent specs: random, oracle, replay:FILE, hf:PATH, tiny:ENV, "
                   "openai:MODEL@URL")  # fmt: skip
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="run seeds")
    p.add_argument("--episodes", type=int, default=None, help="episodes per seed per env "
                   "(default: the suite's)")  # fmt: skip
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument("--options", type=json.loads, default=None,
                   help='reset options for the env-id targets as JSON, e.g. '
                   '\'{"difficulty": {"size": 3}}\' (suites keep their own)')  # fmt: skip
    p.add_argument("--max-turns", type=int, default=None,
                   help="turn cap for the env-id targets (default: the env's)")
    p.add_argument("--out", type=Path, default=None,
                   help="run directory (default: runs/eval/<hash of the request>)")
    p.add_argument("--max-concurrent", type=int, default=None, help="live episodes at once")
    p.add_argument("--opponent", default=None,
                   help="multi-agent env-id targets: agent spec in the other seats, e.g. "
                   "minimax, minimax:2, negotiator, random (default: the game's reference "
                   "opponent)")  # fmt: skip
    p.add_argument("--seat", default=None,
                   help="multi-agent env-id targets: the seat the agents play, e.g. player_0, "
                   "or all (default: all, one after the other)")  # fmt: skip
    p.add_argument("--metrics", nargs="+", default=None,
                   help="table metrics (default: success and return, plus win, draw and loss "
                   "for multi-agent games)")  # fmt: skip
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="where envs run: this process (local) or Ray actors (ray: joins "
                   "RAY_ADDRESS when set, else starts a local cluster; turngym[ray])")  # fmt: skip
    p.set_defaults(handler=_cmd_eval)

    p = sub.add_parser("table", help="benchmark table (mean ± 95%% CI) from results files")
    p.add_argument("runs", nargs="+", type=Path, help="run directories or results.json files")
    p.add_argument("--format", default="markdown", choices=["markdown", "csv", "latex", "html"])
    p.add_argument("--metrics", nargs="+", default=None,
                   help="default: success, plus win, draw and loss for multi-agent games")
    p.add_argument("--digits", type=int, default=3)
    p.add_argument("--no-aggregate", action="store_true", help="omit the macro-mean rows")
    p.add_argument("--out", type=Path, default=None, help="write to this file instead of stdout")
    p.set_defaults(handler=_cmd_table)

    from turngym.evals.bench_args import add_bench_arguments

    p = sub.add_parser(
        "bench", help="head-to-head training benchmark of credit estimators (train extra)",
        description="Train each estimator on each env for each seed with one env-step budget, "
        "evaluate on the test split, and write curves, tables and an HTML report. With no "
        "arguments: the quick default (about 6-10 minutes on 2 CPU cores).",
    )  # fmt: skip
    add_bench_arguments(p)
    p.set_defaults(handler=_cmd_bench)


def _cmd_eval(args: argparse.Namespace, out: TextIO) -> int:
    from turngym.evals.runner import EvalRequest, evaluate
    from turngym.evals.suites import resolve_entries
    from turngym.evals.tables import default_metrics, render, table_rows

    entries = resolve_entries(args.targets, episodes=args.episodes)
    if args.options or args.max_turns:  # settings for env-id targets, not suite entries
        ids = {t for t in args.targets if "/" in t}
        entries = [replace(e, options=args.options or e.options,
                           max_turns=args.max_turns or e.max_turns) if e.env_id in ids else e
                   for e in entries]  # fmt: skip
    if args.opponent is not None or args.seat is not None:
        entries = _seated(entries, args)
    suites = tuple(t for t in args.targets if "/" not in t)
    request = EvalRequest(tuple(entries), tuple(args.agents), tuple(args.seeds), args.split,
                          suites=suites)  # fmt: skip
    run_dir = args.out or Path("runs/eval") / kwargs_hash(request.to_dict())
    print(f"run directory: {run_dir}", file=out)
    try:
        results = evaluate(request, run_dir, max_concurrent=args.max_concurrent,
                           progress=args.progress, log=lambda m: print(m, file=out),
                           backend=args.backend)  # fmt: skip
    except (OSError, RuntimeError) as err:
        kept = ""
        if (run_dir / "episodes.jsonl").exists():  # only a run that started has episodes
            kept = f"; finished episodes are kept in {run_dir}: rerun the same command to resume"
        print(f"turngym eval: {type(err).__name__}: {str(err).rstrip('.')}{kept}",
              file=sys.stderr)  # fmt: skip
        return 1
    metrics = args.metrics or default_metrics([results], ("success", "return"))
    print(render(table_rows([(run_dir.name, results)], metrics)), file=out)
    return 0


def _seated(entries: list, args: argparse.Namespace) -> list:
    """``--opponent``/``--seat`` applied to the multi-agent env-id targets.

    Raises:
        ValueError: No target is a multi-agent env id (the flags would be ignored).
    """
    ids = {t for t in args.targets if "/" in t}
    games = [e for e in entries if e.env_id in ids and e.opponent is not None]
    if not games:
        raise ValueError("--opponent and --seat apply to multi-agent env ids given as targets "
                         "(e.g. turngym/TicTacToe-v0); none of the targets is one")  # fmt: skip
    seats = None if args.seat is None else () if args.seat == "all" else (args.seat,)
    return [replace(e, opponent=args.opponent or e.opponent,
                    seats=e.seats if seats is None else seats) if e in games else e
            for e in entries]  # fmt: skip


def _cmd_table(args: argparse.Namespace, out: TextIO) -> int:
    from turngym.evals.tables import (
        default_metrics,
        load_tables,
        missing_aggregate_note,
        render,
        table_rows,
    )

    runs = load_tables(args.runs)
    metrics = args.metrics or default_metrics([r for _, r in runs], ("success",))
    rows = table_rows(runs, metrics, aggregate=not args.no_aggregate)
    note = None if args.no_aggregate else missing_aggregate_note(rows)
    if note:
        print(f"turngym table: {note}", file=sys.stderr)
    text = render(rows, args.format, args.digits)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text if text.endswith("\n") else text + "\n")
        print(f"wrote {args.out}", file=out)
    else:
        print(text.rstrip("\n"), file=out)
    return 0


def _cmd_bench(args: argparse.Namespace, out: TextIO) -> int:
    from turngym.evals.bench import run_bench
    from turngym.evals.bench_args import bench_spec_from_args
    from turngym.evals.bench_jobs import RunProcessDied

    spec = bench_spec_from_args(args)
    try:
        report = run_bench(spec, args.out, workers=args.workers, db=args.db,
                           submit=not args.no_submit, progress=args.progress,
                           log=lambda m: print(m, file=out, flush=True),
                           backend=args.backend)  # fmt: skip
    except RunProcessDied as err:  # finished runs are on disk; a rerun resumes
        print(f"turngym bench: {str(err).rstrip('.')}", file=sys.stderr)
        return 1
    print(report.summary(), file=out)
    return 0

