"""The ``turngym repro`` subcommand: run claims of the reproduction table (exit 0 when run)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``repro`` to the CLI's subcommands."""
    p = sub.add_parser(
        "repro", help="run the reproduction table: each method's paper claim in miniature",
        description="Run registered claims (default: all) over their seeds and write "
        "repro.md, repro.json and repro.html: the mean effect with its 95%% interval and a "
        "verdict (shown / not shown / refuted). Finished seeds are reused on a rerun.",
    )  # fmt: skip
    p.add_argument("claims", nargs="*", help="claim names (default: every registered claim)")
    p.add_argument("--list", action="store_true", help="list the claims and exit")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="override every claim's seeds")  # fmt: skip
    p.add_argument("--workers", type=int, default=None, help="seeds run at once")
    p.add_argument("--out", type=Path, default=Path("runs/repro"))
    p.set_defaults(handler=_cmd_repro)


def _cmd_repro(args: argparse.Namespace, out: TextIO) -> int:
    from turngym.repro.registry import claim_registry, get_claim
    from turngym.repro.runner import render_markdown, run_claims

    # An unknown name raises UnknownNameError: the CLI prints it on stderr and exits 2.
    claims = [get_claim(n) for n in (args.claims or claim_registry.names())]
    if args.list:
        for c in claims:
            print(f"{c.name:32} {c.method:12} {c.kind:9} seeds {list(c.seeds)} {c.budget}\n"
                  f"    {c.statement}", file=out)  # fmt: skip
        return 0
    results = run_claims(
        [c.name for c in claims], args.out, seeds=args.seeds, workers=args.workers,
        log=lambda m: print(m, file=out, flush=True),
    )
    print(render_markdown(results), file=out)
    print(f"\nreport: {args.out / 'repro.html'}", file=out)
    return 0
