"""Benchmark tables: Env | Agent | Metric | Mean | ±95% CI | n, from results files only.

A table is a view of ``results.json`` files (never of live objects), so anyone can rebuild it
from a run directory. Rows come per env entry, then one aggregate row per (agent, metric):
the macro mean over the envs (each env counts once) with the interval of
:func:`turngym.evals.stats.macro_mean`. Formats: Markdown, CSV, LaTeX (booktabs) and HTML.

Multi-agent games have one row per env, seat and agent, the env labelled with the seat and the
opponent (``turngym/TicTacToe-v0 [player_0 vs minimax]``); their macro means are taken per
opponent (``every seat vs minimax (macro mean)``), never together with single-agent envs.

The ``±`` column is half the width of the 95% interval. Wilson intervals of rates are not
symmetric around the mean; CSV carries both ends (``ci_low``, ``ci_high``) for exact use.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from turngym.evals.results import SEAT_METRICS, EntryResult, RunResults, load_results
from turngym.evals.seats import seat_label
from turngym.evals.stats import MetricSummary, macro_mean

__all__ = ["TableRow", "FORMATS", "table_rows", "render", "load_tables", "entry_label",
           "interval_text", "default_metrics"]  # fmt: skip

FORMATS = ("markdown", "csv", "latex", "html")
AGGREGATE = "all envs (macro mean)"
_HEADER = ("Env", "Agent", "Metric", "Mean", "±95% CI", "n")


@dataclass(frozen=True)
class TableRow:
    """One line of a table."""

    env: str
    agent: str
    metric: str
    summary: MetricSummary

    @property
    def aggregate(self) -> bool:
        """Whether this is a macro-mean row over envs (or over the games of one opponent)."""
        return self.env.endswith("(macro mean)")


def interval_text(ci95: tuple[float, float], digits: int = 3) -> str:
    """An interval as ``[low, high]`` (Wilson intervals are asymmetric: no ``±``).

    Example:
        >>> interval_text((0.0123, 0.0987))
        '[0.012, 0.099]'
    """
    low, high = ci95
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def entry_label(entry: EntryResult) -> str:
    """``env_id`` plus non-default kwargs/options, e.g. ``turngym/Sokoban-v0 (level=2)``.

    A seat result also names its seat and opponent: ``turngym/TicTacToe-v0 [player_0 vs
    minimax]``.
    """
    extras = [f"{k}={v}" for k, v in sorted({**entry.env_kwargs, **entry.options}.items())]
    label = f"{entry.env_id} ({', '.join(extras)})" if extras else entry.env_id
    return label + seat_label(entry.seat, entry.opponent)


def default_metrics(results: Sequence[RunResults], base: Sequence[str]) -> list[str]:
    """``base``, plus win, draw and loss when the results hold multi-agent games.

    Example:
        >>> default_metrics([], ("success",))
        ['success']
    """
    games = any(e.seat is not None for r in results for e in r.entries)
    return [*base, *(m for m in SEAT_METRICS if games and m not in base)]


def load_tables(paths: Sequence[str | Path]) -> list[tuple[str, RunResults]]:
    """Load results files (or run directories) as ``(run name, results)`` pairs."""
    return [(Path(p).name if Path(p).is_dir() else Path(p).parent.name, load_results(p))
            for p in paths]  # fmt: skip


def table_rows(
    runs: Sequence[tuple[str, RunResults]],
    metrics: Sequence[str] = ("success",),
    *,
    aggregate: bool = True,
) -> list[TableRow]:
    """Rows for every (env entry, agent, metric) of the runs, then the aggregate rows.

    When two runs evaluated the same agent spec, agents are labelled ``agent [run]``.

    Raises:
        ValueError: A metric that no entry carries (with the ones available).
    """
    pairs = [(name, e) for name, res in runs for e in res.entries]
    available = sorted({m for _, e in pairs for m in e.metrics})
    unknown = [m for m in metrics if m not in available]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; these results have {available}")
    runs_of: dict[str, set[str]] = {}
    for name, entry in pairs:
        runs_of.setdefault(entry.agent, set()).add(name)

    def agent_label(name: str, entry: EntryResult) -> str:
        return entry.agent if len(runs_of[entry.agent]) == 1 else f"{entry.agent} [{name}]"

    made = [(TableRow(entry_label(e), agent_label(n, e), m, e.metrics[m]), e.opponent)
            for n, e in pairs for m in metrics if m in e.metrics]  # fmt: skip
    rows = [row for row, _ in made]
    if aggregate:  # single-agent envs together, multi-agent games per opponent
        for opponent in dict.fromkeys(o for _, o in made):
            label = AGGREGATE if opponent is None else f"every seat vs {opponent} (macro mean)"
            rows += _macro_rows([row for row, o in made if o == opponent], label)
    return rows


def _macro_rows(rows: Sequence[TableRow], label: str) -> list[TableRow]:
    """One macro-mean row per (agent, metric) over ``rows``' envs (none for a single env)."""
    if len({r.env for r in rows}) < 2:
        return []
    groups: dict[tuple[str, str], list[MetricSummary]] = {}
    for row in rows:
        groups.setdefault((row.agent, row.metric), []).append(row.summary)
    return [TableRow(label, agent, metric, macro_mean(s)) for (agent, metric), s in groups.items()]


def _cells(row: TableRow, digits: int) -> tuple[str, ...]:
    s = row.summary
    return (row.env, row.agent, row.metric, f"{s.mean:.{digits}f}", f"{s.half_width:.{digits}f}",
            str(s.n))  # fmt: skip


def render(rows: Sequence[TableRow], fmt: str = "markdown", digits: int = 3) -> str:
    """Render rows in one of :data:`FORMATS`.

    Example:
        >>> s = MetricSummary(0.5, 0.5, 4, (0.15, 0.85), "wilson")
        >>> print(render([TableRow("Env-v0", "oracle", "success", s)]))
        | Env | Agent | Metric | Mean | ±95% CI | n |
        |---|---|---|---:|---:|---:|
        | Env-v0 | oracle | success | 0.500 | 0.350 | 4 |
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}")
    return {"markdown": _markdown, "csv": _csv, "latex": _latex, "html": _html}[fmt](rows, digits)


def _markdown(rows: Sequence[TableRow], digits: int) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [line(_HEADER), "|---|---|---|---:|---:|---:|"]
    for row in rows:
        cells = _cells(row, digits)
        out.append(line((f"**{cells[0]}**", *cells[1:]) if row.aggregate else cells))
    return "\n".join(out)


def _csv(rows: Sequence[TableRow], digits: int) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["env", "agent", "metric", "mean", "ci95_half_width", "ci_low", "ci_high",
                     "n", "method"])  # fmt: skip
    for row in rows:
        s = row.summary
        writer.writerow([row.env, row.agent, row.metric, f"{s.mean:.{digits}f}",
                         f"{s.half_width:.{digits}f}", f"{s.ci95[0]:.{digits}f}",
                         f"{s.ci95[1]:.{digits}f}", s.n, s.method])  # fmt: skip
    return buf.getvalue()


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}  # fmt: skip


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(rows: Sequence[TableRow], digits: int) -> str:
    out = [r"\begin{tabular}{lllrrr}", r"\toprule",
           r"Env & Agent & Metric & Mean & $\pm$95\% CI & $n$ \\", r"\midrule"]  # fmt: skip
    for i, row in enumerate(rows):
        if row.aggregate and (i == 0 or not rows[i - 1].aggregate):
            out.append(r"\midrule")
        env, agent, metric, mean, half, n = (_tex(c) for c in _cells(row, digits))
        out.append(f"{env} & {agent} & {metric} & {mean} & {half} & {n} \\\\")
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out)


def _html(rows: Sequence[TableRow], digits: int) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _HEADER)
    body = []
    for row in rows:
        cls = ' class="aggregate"' if row.aggregate else ""
        cells = "".join(f"<td>{html.escape(c)}</td>" for c in _cells(row, digits))
        body.append(f"  <tr{cls}>{cells}</tr>")
    return "\n".join(['<table class="turngym-table">', f"  <thead><tr>{head}</tr></thead>",
                      "  <tbody>", *body, "  </tbody>", "</table>"])  # fmt: skip
