"""The ``turngym`` command line.

``list``, ``check``, ``rollout`` and ``train`` live here, ``play`` in :mod:`turngym._cli_play`;
``eval``, ``table`` and ``bench`` in :mod:`turngym.evals.cli`, ``leaderboard`` in
:mod:`turngym.leaderboard.cli`.

``main(argv)`` returns the exit code, so every subcommand is testable in-process. Exit codes
are stable: 0 success, 1 a check or run failed, 2 bad usage (unknown names, bad options).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import turngym
from turngym._cli_play import cmd_play
from turngym._cliargs import ArgumentParser, mapping_arg
from turngym.agents import agent_registry, make_agent
from turngym.envs.multiagent.registry import (
    is_multiagent,
    make_multiagent,
    multiagent_ids,
    multiagent_registry,
)
from turngym.evals.cli import add_parsers as add_eval_parsers
from turngym.evals.suites import suite_registry
from turngym.leaderboard.cli import add_parser as add_leaderboard_parser
from turngym.registry import Registry, UnknownNameError, env_registry
from turngym.repro.cli import add_parser as add_repro_parser
from turngym.rollout import collect, summarize
from turngym.server.cli import add_parser as add_serve_parser
from turngym.testing import CHECKS, check_env
from turngym.trainers.config import add_config_arguments, config_from_args
from turngym.trainers.credit import estimator_registry

__all__ = ["main"]

_REGISTRIES: dict[str, Registry[Any]] = {
    "envs": env_registry, "estimators": estimator_registry, "agents": agent_registry,
    "suites": suite_registry,
}  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="turngym",
        description="Multi-turn text envs, credit assignment and benchmarks for LLM agents.",
    )
    parser.add_argument("--version", action="version", version=f"turngym {turngym.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registered envs, estimators, agents, suites or plugins")
    p.add_argument("what", nargs="?", default="envs", choices=[*_REGISTRIES, "plugins"])
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--by-family", action="store_true", help="envs --json: {family: [ids]}, not a flat list"
    )

    p = sub.add_parser("check", help="run the conformance checks on envs (exit 1 on failure)")
    p.add_argument("env_ids", nargs="*", help="env ids (default with --all: every registered env)")
    p.add_argument("--all", action="store_true", help="check every registered env")
    p.add_argument("--split", default="test")
    p.add_argument("--fuzz-examples", type=int, default=100, help="fuzzed actions per env")
    p.add_argument("--only", nargs="+", choices=list(CHECKS), help="run only these checks")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("play", help="play an env interactively (for debugging envs)")
    p.add_argument("env_id")
    _task_options(p)
    p.add_argument("--agent", default="human", help="'human' (type actions) or an agent name")

    p = sub.add_parser("rollout", help="collect groups of episodes and write them as JSONL")
    p.add_argument("env_id")
    _task_options(p)
    p.add_argument("--agent", default="random", help="agent spec: random, oracle, replay:FILE")
    p.add_argument("--opponent", default=None,
                   help="multi-agent envs: agent spec for the other seats, e.g. minimax, "
                   "minimax:2, negotiator (default: --agent plays every seat, self-play)")
    p.add_argument("--seat", default=None,
                   help="multi-agent envs: the seat --agent plays against --opponent "
                   "(default: the first seat, player_0)")  # fmt: skip
    p.add_argument("--tasks", type=int, default=10, help="number of tasks (seeds seed..seed+N-1)")
    p.add_argument("--group-size", type=int, default=1, help="episodes per task (G)")
    p.add_argument("--max-turns", type=int, default=None, help="turn cap (default: env spec)")
    p.add_argument("--agent-seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write episodes here (JSONL)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p = sub.add_parser(
        "train", help="train a policy with a credit estimator (needs the train extra)"
    )
    p.add_argument("--config", type=Path, default=None, help="YAML or JSON TrainConfig file")
    add_config_arguments(p)
    add_eval_parsers(sub)
    add_leaderboard_parser(sub)
    add_serve_parser(sub)
    add_repro_parser(sub)
    return parser


def _task_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument("--seed", type=int, default=0, help="first task seed")
    p.add_argument("--level", type=int, default=None, help="difficulty preset")
    p.add_argument(
        "--difficulty",
        type=mapping_arg,
        default=None,
        help="knob overrides as JSON or YAML, e.g. '{\"size\": 5}' or '{size: 5}'",
    )


def _reset_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.level is not None:
        options["level"] = args.level
    if args.difficulty:
        options["difficulty"] = args.difficulty
    return options


# --- list -------------------------------------------------------------------------------------
def _cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    for registry in _REGISTRIES.values():
        registry.load_plugins()
    if args.what == "plugins":
        rows = [
            {"group": s.group, "name": s.name, "value": s.value, "ok": s.ok, "error": s.error}
            for registry in _REGISTRIES.values()
            for s in registry.plugin_status
        ]
        if args.json:
            print(json.dumps(rows, indent=2), file=out)
        for row in [] if args.json else rows:
            status = "ok" if row["ok"] else f"FAILED ({row['error']})"
            print(f"{row['group']:20} {row['name']:20} {row['value']:40} {status}", file=out)
        if not rows and not args.json:
            print("(no plugins installed)", file=out)
        return 0
    if args.what == "envs":
        return _list_envs(args, out)
    if args.what == "estimators":
        return _list_estimators(args, out)
    names = _REGISTRIES[args.what].names()
    print(json.dumps(names) if args.json else "\n".join(names) or "(none registered)", file=out)
    return 0


def _list_estimators(args: argparse.Namespace, out: TextIO) -> int:
    """Estimators: what each needs (context, critic/strategy/schedule), status, UNVERIFIED."""
    from turngym.trainers.credit import method_of

    rows = []
    for name in estimator_registry.names():
        try:
            fn = estimator_registry.get(name)
            method = method_of(name).describe()
        except Exception as err:  # a broken plugin still gets its row
            rows.append({"name": name, "requires": [], "method": "", "status": f"error: {err}",
                         "unverified": []})  # fmt: skip
            continue
        status = re.search(r"Status:\s*([A-Z][A-Z-]*)", inspect.getdoc(fn) or "")
        rows.append({"name": name, "requires": sorted(getattr(fn, "requires", ())),
                     "method": "; ".join(p for p in method.split("; ")
                                         if not p.startswith("requires")),
                     "status": status.group(1) if status else "-",
                     "unverified": list(getattr(fn, "unverified", ()))})  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2), file=out)
        return 0
    print(f"{'estimator':12} {'requires':14} {'status':14} {'method parts':32} "
          "UNVERIFIED options", file=out)  # fmt: skip
    for r in rows:
        print(f"{r['name']:12} {','.join(r['requires']) or '-':14} {r['status']:14} "
              f"{r['method'] or '-':32} {', '.join(r['unverified']) or '-'}", file=out)  # fmt: skip
    return 0


def _env_family(module: str, env_id: str) -> str:
    """The family of an env: its subpackage of ``turngym.envs``, else its id's namespace."""
    parts = module.split(".")
    if len(parts) > 2 and parts[:2] == ["turngym", "envs"]:
        return parts[2]
    return env_id.split("/")[0] if "/" in env_id else parts[0] or "other"


def _list_envs(args: argparse.Namespace, out: TextIO) -> int:
    """Envs grouped by family (text), a flat id list (``--json``) or ``{family: ids}``."""
    families: dict[str, list[str]] = {}
    for env_id in env_registry.names():
        entry = env_registry.get(env_id).entry_point
        module = entry.partition(":")[0] if isinstance(entry, str) else entry.__module__
        families.setdefault(_env_family(module, env_id), []).append(env_id)
    for env_id in multiagent_ids():
        module = multiagent_registry.get(env_id).module
        families.setdefault(_env_family(module, env_id), []).append(env_id)
    if args.json:
        flat = sorted(i for ids in families.values() for i in ids)
        by_family = {family: sorted(ids) for family, ids in sorted(families.items())}
        print(json.dumps(by_family if args.by_family else flat), file=out)
        return 0
    for family, ids in sorted(families.items()):
        print(family, *(f"  {env_id}" for env_id in sorted(ids)), sep="\n", file=out)
    if not families:
        print("(none registered)", file=out)
    return 0


# --- check ------------------------------------------------------------------------------------
def _cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    env_ids = args.env_ids or (env_registry.names() + multiagent_ids() if args.all else [])
    if not env_ids:
        print("turngym check: name env ids or pass --all", file=sys.stderr)
        return 2
    for env_id in env_ids:
        if not is_multiagent(env_id):
            env_registry.get(env_id)  # unknown ids: usage error with suggestions, before any work
    reports = [_check_one(e, args) for e in env_ids]
    if args.json:
        data = [
            {"env_id": r.env_id, "ok": r.ok, "checks": [dataclasses.asdict(c) for c in r.results]}
            for r in reports
        ]
        print(json.dumps(data, indent=2), file=out)
    else:
        for report in reports:
            print(f"{report.env_id}: {'PASS' if report.ok else 'FAIL'}", file=out)
            for result in report.results:
                mark = "ok  " if result.ok else "FAIL"
                print(
                    f"  {mark} {result.name}{'  ' + result.message if result.message else ''}",
                    file=out,
                )
    return 0 if all(r.ok for r in reports) else 1


def _check_one(env_id: str, args: argparse.Namespace) -> Any:
    """Gymnasium's and turngym's checks, or PettingZoo's ``api_test`` and ours (multi-agent)."""
    if not is_multiagent(env_id):
        return check_env(env_id, split=args.split, fuzz_examples=args.fuzz_examples,
                         only=args.only)  # fmt: skip
    from turngym.envs.multiagent.testing import MULTIAGENT_CHECKS, check_multiagent_env

    # --only names the single-agent checks; "gymnasium" means the API check, PettingZoo's here.
    only = None if args.only is None else [
        "pettingzoo" if c == "gymnasium" else c for c in args.only
        if c == "gymnasium" or c in MULTIAGENT_CHECKS
    ]  # fmt: skip
    return check_multiagent_env(env_id, split=args.split, fuzz_examples=args.fuzz_examples,
                                only=only or None)  # fmt: skip


# --- rollout ----------------------------------------------------------------------------------
def _cmd_rollout(args: argparse.Namespace, out: TextIO) -> int:
    if args.tasks < 1 or args.group_size < 1:
        print("turngym rollout: --tasks and --group-size must be >= 1", file=sys.stderr)
        return 2
    multi = is_multiagent(args.env_id)
    if not multi:
        env_registry.get(args.env_id)  # unknown ids: usage error with suggestions
        if args.opponent is not None or args.seat is not None:
            raise ValueError(f"--opponent and --seat apply to multi-agent envs, not {args.env_id}")
    agent = make_agent(args.agent, seed=args.agent_seed)
    seat_specs, my_seat = _seat_specs(args) if multi else ({}, "")
    agents: Any = agent
    if args.opponent is not None:
        opponent = make_agent(args.opponent, seed=args.agent_seed + 1)
        agents = {seat: agent if seat == my_seat else opponent for seat in seat_specs}
    groups = collect(
        args.env_id,
        agents,
        tasks=list(range(args.seed, args.seed + args.tasks)),
        group_size=args.group_size,
        split=args.split,
        options=_reset_options(args),
        max_turns=args.max_turns,
        progress=args.progress,
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w") as fh:
            for group in groups:
                for episode in group.episodes:
                    fh.write(json.dumps(episode.to_dict()) + "\n")
    summary = {"env_id": args.env_id, "agent": args.agent, "split": args.split, **summarize(groups)}
    if multi:
        summary = _seat_summary(args, groups, seat_specs, my_seat)
    if args.json:
        print(json.dumps(summary, indent=2), file=out)
    else:
        _print_rollout(summary, out)
        if args.out is not None:
            print(f"  episodes written to {args.out}", file=out)
    return 0 if summary["errors"] == 0 else 1


def _seat_specs(args: argparse.Namespace) -> tuple[dict[str, str], str]:
    """Which agent spec plays each seat of a multi-agent env, and the seat of ``--agent``."""
    seats = list(make_multiagent(args.env_id).possible_agents)
    seat = args.seat if args.seat is not None else seats[0]
    if seat not in seats:
        raise ValueError(f"--seat {seat!r} is not a seat of {args.env_id}; seats: {seats}")
    if args.opponent is None:
        if args.seat is not None:
            raise ValueError("--seat needs --opponent (without one, --agent plays every seat)")
        return dict.fromkeys(seats, args.agent), seat
    return {s: args.agent if s == seat else args.opponent for s in seats}, seat


def _seat_summary(
    args: argparse.Namespace, groups: list[Any], seat_specs: dict[str, str], my_seat: str
) -> dict[str, Any]:
    """Top-level numbers for ``--agent``'s seat(s) (all in self-play), one block per seat."""
    by_seat = {s: [g for g in groups if g.episodes and g.episodes[0].seat == s] for s in seat_specs}
    mine = list(seat_specs) if args.opponent is None else [my_seat]
    return {
        "env_id": args.env_id,
        "agent": args.agent,
        "opponent": args.opponent,
        "seat": None if args.opponent is None else my_seat,
        "split": args.split,
        **summarize([g for s in mine for g in by_seat[s]]),
        "games": args.tasks * args.group_size,
        "seats": {s: {"agent": spec, **summarize(by_seat[s])} for s, spec in seat_specs.items()},
    }


def _print_rollout(s: dict[str, Any], out: TextIO) -> None:
    """The human-readable rollout summary (one block per seat for multi-agent envs)."""
    low, high = s["success_ci95"]
    if "seats" not in s:
        print(
            f"{s['env_id']} | agent {s['agent']} | split {s['split']} | {s['episodes']} episodes",
            f"  success      {s['success_rate']:.3f}  (95% CI {low:.3f}-{high:.3f})",
            f"  mean outcome {s['mean_outcome']:.3f}   mean return {s['mean_return']:.3f}",
            f"  mean turns   {s['mean_turns']:.2f}   invalid actions "
            f"{s['invalid_action_rate']:.3f}   errors {s['errors']}",
            sep="\n",
            file=out,
        )
        return
    players = " vs ".join(f"{b['agent']} ({seat})" for seat, b in s["seats"].items())
    print(f"{s['env_id']} | {players} | split {s['split']} | {s['games']} games", file=out)
    for seat, b in s["seats"].items():
        low, high = b["success_ci95"]
        print(
            f"  {seat:10} {b['agent']:12} success {b['success_rate']:.3f} "
            f"(95% CI {low:.3f}-{high:.3f})  mean outcome {b['mean_outcome']:.3f}  mean return "
            f"{b['mean_return']:.3f}  mean turns {b['mean_turns']:.2f}  invalid actions "
            f"{b['invalid_action_rate']:.3f}",
            file=out,
        )
    print(f"  errors {s['errors']}", file=out)


# --- train ------------------------------------------------------------------------------------
def _cmd_train(args: argparse.Namespace, out: TextIO) -> int:
    config = config_from_args(args)  # bad values fail here, before torch is even imported
    try:
        from turngym.trainers.trainer import Trainer
    except ImportError as err:
        print(f"turngym train needs the train extra: pip install 'turngym[train]' ({err})",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        trainer = Trainer(config)
    except OSError as err:  # transformers: "not a local folder and not a valid model id"
        if config.model == "tiny":
            raise
        raise ValueError(f"--model {config.model}: no model there: not a local model directory "
                         "(turngym never downloads); pass the directory of a saved model, e.g. "
                         "the checkpoint/ folder of a `turngym train` run, or 'tiny'") from err
    rows = trainer.train()
    final = rows[-1] if rows else {}
    keys = ("iteration", "env_steps", "success", "eval_success", "eval_return")
    print(json.dumps({k: final[k] for k in keys if k in final}), file=out)
    print(f"metrics: {Path(config.out_dir) / 'metrics.jsonl'}", file=out)
    return 0


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stdin: TextIO | None = None
) -> int:
    """Run the CLI and return its exit code (0 ok, 1 failure, 2 usage error).

    Every failure the user can fix is one line on stderr saying what was wrong and what to do
    (exit 2); a broken plugin's warning is one line too.
    """
    out = stdout or sys.stdout
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on usage errors and 0 on --help
        return int(exit_.code or 0)
    shown = warnings.showwarning
    warnings.showwarning = _plain_warnings(shown)
    try:
        return _dispatch(args, out, stdin)
    except UnknownNameError as err:
        return _usage_error(args, str(err))
    except (ValueError, FileNotFoundError) as err:
        return _usage_error(args, str(err))
    except ModuleNotFoundError as err:  # an optional extra that is not installed
        extra = _EXTRA_OF.get((err.name or "").split(".")[0])
        if extra is None:
            raise
        return _usage_error(args, f"this needs {err.name}, which is not installed: "
                            f"pip install 'turngym[{extra}]'")  # fmt: skip
    except KeyboardInterrupt:
        print(f"turngym {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `turngym ... | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        warnings.showwarning = shown


def _dispatch(args: argparse.Namespace, out: TextIO, stdin: TextIO | None) -> int:
    if hasattr(args, "handler"):  # subcommands defined in their own modules
        return int(args.handler(args, out))
    if args.command == "list":
        return _cmd_list(args, out)
    if args.command == "check":
        return _cmd_check(args, out)
    if args.command == "play":
        return cmd_play(args, _reset_options(args), out, stdin or sys.stdin)
    if args.command == "train":
        return _cmd_train(args, out)
    return _cmd_rollout(args, out)


def _usage_error(args: argparse.Namespace, message: str) -> int:
    print(f"turngym {args.command}: {message}", file=sys.stderr)
    return 2


# Top-level module of an optional dependency -> the extra that installs it.
_EXTRA_OF = {"torch": "train", "transformers": "train", "matplotlib": "bench",
             "sqlalchemy": "bench", "pandas": "bench", "psycopg": "harness",
             "fastapi": "serve", "uvicorn": "serve", "websockets": "serve", "httpx": "serve",
             "pydantic": "serve", "pettingzoo": "multiagent", "docker": "docker",
             "yaml": "dev"}  # fmt: skip


def _plain_warnings(fallback: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints turngym's own warnings as one plain line."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:  # fmt: skip
        text = str(message)
        if text.startswith("turngym:"):  # no file:line and source line: the text says it all
            print(text.replace("turngym:", "turngym: warning:", 1), file=file or sys.stderr)
        else:
            fallback(message, category, filename, lineno, file, line)

    return show


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
