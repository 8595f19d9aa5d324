"""``turngym leaderboard``: submit, show, compare, export, serve and gate.

:func:`add_parser` adds the subcommand to the ``turngym`` parser; every sub-subcommand sets a
``handler(args, out) -> exit code``: 0 ok, 1 the gate failed, 2 bad input (a refused
submission, missing files, an unknown name), with the message on stderr.

The database is ``--db``, else ``$TURNGYM_LEADERBOARD``, else ``leaderboard.db``: a SQLite
file path or a SQLAlchemy URL.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from turngym.evals.results import EPISODE_METRICS, HIGHER_IS_BETTER, SEAT_METRICS

if TYPE_CHECKING:
    from turngym.leaderboard.store import LeaderboardStore

__all__ = ["add_parser", "DB_ENV"]

DB_ENV = "TURNGYM_LEADERBOARD"
"""Environment variable naming the default leaderboard database."""

_PREFIX = "turngym leaderboard:"
Handler = Callable[[argparse.Namespace, TextIO], int]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``leaderboard`` and its sub-subcommands to a subparsers object.

    Args:
        sub: What ``parser.add_subparsers()`` returned for the ``turngym`` parser.
    """
    p = sub.add_parser("leaderboard", help="leaderboard store and CI regression gate",
                       description=__doc__.split("\n\n")[0])  # fmt: skip
    lb = p.add_subparsers(dest="leaderboard_command", required=True, metavar="COMMAND")

    s = lb.add_parser("submit", help="add finished runs to the leaderboard")
    s.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run directories")
    s.add_argument("--name", help="submission name (one run only; default: the directory name)")
    _db_option(s)
    s.set_defaults(handler=_handler(_submit))

    s = lb.add_parser("show", help="print the leaderboard")
    _db_option(s)
    s.add_argument("--env", help="only this env (id, entry key or label)")
    _metric_option(s)
    s.add_argument("--json", action="store_true", help="print JSON rows")
    s.set_defaults(handler=_handler(_show))

    s = lb.add_parser("compare", help="two submissions side by side per env")
    s.add_argument("a", metavar="A", help="first submission")
    s.add_argument("b", metavar="B", help="second submission (diff = B - A)")
    _db_option(s)
    _metric_option(s)
    s.set_defaults(handler=_handler(_compare))

    s = lb.add_parser("export", help="write the leaderboard page as static HTML")
    s.add_argument("out", type=Path, metavar="OUT.html")
    _db_option(s)
    _metric_option(s)
    s.set_defaults(handler=_handler(_export))

    s = lb.add_parser("serve", help="serve the leaderboard page over HTTP")
    _db_option(s)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.set_defaults(handler=_handler(_serve))

    s = lb.add_parser("gate", help="fail (exit 1) when a run is significantly worse than a "
                      "baseline", description="Compare RUN with a baseline run directory or "
                      "leaderboard submission; exit 1 only on a significant drop beyond the "
                      "tolerance.")  # fmt: skip
    s.add_argument("run", type=Path, metavar="RUN", help="run directory under test")
    s.add_argument("--baseline", required=True,
                   help="baseline run directory, or a submission name on --db")  # fmt: skip
    _db_option(s)
    s.add_argument("--metric", nargs="+", default=["success"], choices=list(HIGHER_IS_BETTER),
                   dest="metrics", help="metrics to gate (default: success)")  # fmt: skip
    s.add_argument("--tolerance", action="append", default=[], metavar="[METRIC=]VALUE",
                   help="drop that never fails, in metric units (default 0.02); repeat with "
                   "METRIC=VALUE for per-metric values")  # fmt: skip
    s.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    s.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates (2000)")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    s.add_argument("--report", type=Path, help="also write the Markdown report here")
    s.add_argument("--require-all", action="store_true",
                   help="fail when an env entry is on one side only or cannot be tested")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(handler=_handler(_gate))


def _db_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, help=f"SQLite file or SQLAlchemy URL (default: "
                   f"${DB_ENV} or leaderboard.db)")  # fmt: skip


def _metric_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metric", default="success", choices=[*EPISODE_METRICS, *SEAT_METRICS])


def _handler(fn: Handler) -> Handler:
    """Turn bad input into a one-line message on stderr and exit code 2."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace, out: TextIO) -> int:
        try:
            return fn(args, out)
        except (ValueError, OSError) as err:  # ResultsError, LeaderboardError, SubmissionError
            print(f"{_PREFIX} {err}", file=sys.stderr)
        except ImportError as err:
            print(f"{_PREFIX} {err}; install the harness extra: pip install 'turngym[harness]'",
                  file=sys.stderr)  # fmt: skip
        except Exception as err:
            if not type(err).__module__.startswith("sqlalchemy"):
                raise
            print(f"{_PREFIX} database error: {err}", file=sys.stderr)
        return 2

    return run


def _db(args: argparse.Namespace) -> str:
    return args.db or os.environ.get(DB_ENV) or "leaderboard.db"


def _open(args: argparse.Namespace, *, must_exist: bool = True) -> LeaderboardStore:
    """The store named by ``--db``; refuses to create an empty SQLite file for a read."""
    from turngym.leaderboard.store import LeaderboardError, LeaderboardStore

    db = _db(args)
    if must_exist and "://" not in db and not Path(db).exists():
        raise LeaderboardError(f"no leaderboard at {db}: submit runs first (turngym leaderboard "
                               f"submit RUN --db {db}), or pass --db or set ${DB_ENV}")  # fmt: skip
    return LeaderboardStore(db)


# --- Handlers ---------------------------------------------------------------------------------
def _submit(args: argparse.Namespace, out: TextIO) -> int:
    from turngym.leaderboard.store import SubmissionError

    if args.name is not None and len(args.runs) > 1:
        raise ValueError("--name names one run; submit several runs without it (each takes "
                         "its directory's name)")  # fmt: skip
    refused = 0
    with _open(args, must_exist=False) as store:
        for run in args.runs:
            try:
                s = store.submit(run, name=args.name)
            except SubmissionError as err:
                print(f"{_PREFIX} {run}: refused: {err}", file=sys.stderr)
                refused += 1
                continue
            print(f"submitted {s.name}: {s.entries} entries, {s.episodes} episodes "
                  f"({s.kind}) to {store.url}", file=out)  # fmt: skip
    return 2 if refused else 0


def _show(args: argparse.Namespace, out: TextIO) -> int:
    with _open(args) as store:
        rows = store.rows(env_id=args.env, metric=args.metric)
        if args.json:
            print(json.dumps(rows, indent=2), file=out)
            return 0
        if not rows:
            where = f" for {args.env}" if args.env else ""
            print(f"(no {args.metric} results{where} on {store.url}: submit runs with "
                  "`turngym leaderboard submit RUN`)", file=out)  # fmt: skip
            return 0
    body = [[r["env"], r["agent"], r["run"], _mean_ci(r["mean"], r["ci95"]), str(r["n"]),
             r["submitted"]] for r in rows]  # fmt: skip
    print(_table(["env", "agent", "run", args.metric, "n", "submitted"], body), file=out)
    return 0


def _compare(args: argparse.Namespace, out: TextIO) -> int:
    with _open(args) as store:
        rows = store.compare(args.a, args.b, metric=args.metric)
    body = []
    for r in rows:
        agent = r["agent_a"] if r["agent_a"] == r["agent_b"] else (
            f"{r['agent_a'] or '-'} / {r['agent_b'] or '-'}")
        body.append([r["env"], agent,
                     _mean_ci(r["mean_a"], r["ci95_a"]), _mean_ci(r["mean_b"], r["ci95_b"]),
                     "-" if r["diff"] is None else f"{r['diff']:+.3f}"])  # fmt: skip
    print(_table(["env", "agent", f"{args.a}", f"{args.b}", "diff (B-A)"], body), file=out)
    return 0


def _export(args: argparse.Namespace, out: TextIO) -> int:
    from turngym.leaderboard.web import export_html

    with _open(args) as store:
        path = export_html(store, args.out, metric=args.metric)
    print(f"wrote {path}", file=out)
    return 0


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    from turngym.leaderboard.store import database_url
    from turngym.leaderboard.web import serve

    _open(args).close()  # fail here, with a clear message, when the board does not exist
    print(f"serving the leaderboard on http://{args.host}:{args.port}", file=out)
    try:
        serve(database_url(_db(args)), args.host, args.port)
    except KeyboardInterrupt:  # Ctrl-C is how a user stops a server: not an error
        pass
    return 0


def _gate(args: argparse.Namespace, out: TextIO) -> int:
    from turngym.leaderboard.gate import gate

    kwargs: dict[str, Any] = {
        "metrics": args.metrics, "tolerance": _tolerances(args.tolerance, args.metrics),
        "alpha": args.alpha, "n_boot": args.n_boot, "seed": args.seed,
        "require_all": args.require_all,
    }  # fmt: skip
    if Path(args.baseline).is_dir():
        report = gate(args.run, args.baseline, **kwargs)
    else:
        from turngym.leaderboard.store import LeaderboardError

        db = _db(args)
        if "://" not in db and not Path(db).exists():
            raise LeaderboardError(f"--baseline {args.baseline!r} is not a run directory, and "
                                   f"there is no leaderboard at {db} to find it in (pass "
                                   f"--db or set ${DB_ENV})")  # fmt: skip
        with _open(args) as store:
            report = gate(args.run, args.baseline, store=store, **kwargs)
    markdown = report.to_markdown()
    if args.report is not None:
        args.report.write_text(markdown)
    print(json.dumps(report.to_dict(), indent=2) if args.json else markdown, file=out)
    return 0 if report.passed else 1


# --- Formatting -------------------------------------------------------------------------------
def _tolerances(values: Sequence[str], metrics: Sequence[str]) -> dict[str, float]:
    """``["0.05", "turns=1"]`` -> one tolerance per gated metric."""
    from turngym.leaderboard.gate import DEFAULT_TOLERANCE

    default, specific = DEFAULT_TOLERANCE, {}
    for value in values:
        metric, _, number = value.rpartition("=")
        try:
            parsed = float(number)
        except ValueError:
            raise ValueError(f"--tolerance {value!r}: expected a number or METRIC=NUMBER, "
                             "e.g. 0.02 or turns=1") from None  # fmt: skip
        if metric:
            specific[metric] = parsed
        else:
            default = parsed
    unknown = sorted(set(specific) - set(metrics))
    if unknown:
        raise ValueError(f"--tolerance for {', '.join(unknown)}, which is not gated "
                         f"(--metric {' '.join(metrics)})")  # fmt: skip
    return {m: specific.get(m, default) for m in metrics}


def _mean_ci(mean: float | None, ci: Sequence[float] | None) -> str:
    if mean is None or ci is None:
        return "-"
    return f"{mean:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned plain-text columns (readable in a terminal and in CI logs)."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)  # fmt: skip
