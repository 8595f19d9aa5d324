"""Benchmark tables: Env | Agent | Metric | Mean | 95% CI | n, from results files only.

A table is a view of ``results.json`` files (never of live objects), so anyone can rebuild it
from a run directory; :func:`turngym.evals.load` gives the same data as pandas DataFrames.
Rows come per env entry, then one aggregate row per (agent, metric): the macro mean over envs
(each env counts once) with the interval of :func:`turngym.evals.stats.macro_mean`.

Multi-agent games have one row per env, seat and agent, the env labelled with the seat and the
opponent (``turngym/TicTacToe-v0 as player_0 vs minimax``). Their aggregates are taken per
opponent (``every seat vs minimax (macro mean)``), never together with single-agent envs or
with games against another opponent.

Aggregates never mix env sets: they average only the envs *every* agent of the table was
evaluated on. When that is every env, the row is "all envs (macro mean)"; when some agent
lacks an env, it is "k of n envs (macro mean)" with the averaged envs in a note; with fewer
than two envs in common there is no aggregate row (:func:`missing_aggregate_note` says why).

Env labels stay short: the env id plus ``level=N``; any other option or constructor argument
(a difficulty dict, say) shows as a tag ``[a1b2c3]`` (its kwargs hash) and is spelled out in
a note under the table (a tooltip in HTML, the ``note`` column in CSV).

The interval column shows ``± h`` when the 95% interval is symmetric at the shown precision
(Student-t), and ``[low, high]`` when it is not (Wilson intervals of rates, clipped macro
means), so no bound outside the metric's range is ever suggested. CSV carries both ends
(``ci_low``, ``ci_high``) and the half width for exact use. Formats: Markdown, CSV, LaTeX
(booktabs) and HTML. Rendering needs no extra package, so ``turngym eval`` prints its table
on the core install.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from turngym.evals.results import SEAT_METRICS, EntryResult, RunResults, load_results
from turngym.evals.seats import seat_label
from turngym.evals.stats import MetricSummary, format_interval, macro_mean

__all__ = ["TableRow", "FORMATS", "table_rows", "render", "load_tables", "entry_label",
           "short_label", "entry_note", "missing_aggregate_note", "default_metrics"]  # fmt: skip

FORMATS = ("markdown", "csv", "latex", "html")
AGGREGATE = "all envs (macro mean)"
_HEADER = ("Env", "Agent", "Metric", "Mean", "95% CI", "n")


@dataclass(frozen=True)
class TableRow:
    """One line of a table.

    Attributes:
        env: The short env label (or the aggregate's label).
        agent: The agent (``agent [run]`` when two runs evaluated the same spec).
        metric: The metric name.
        summary: Mean, interval and n.
        note: What the short label leaves out: the env's full options, or the envs an
            aggregate averages when they are not all of the table's.
        aggregate: Whether this is a macro-mean row over envs.
    """

    env: str
    agent: str
    metric: str
    summary: MetricSummary
    note: str = ""
    aggregate: bool = False


def entry_label(entry: EntryResult) -> str:
    """``env_id`` plus every non-default kwarg/option, e.g. ``turngym/Sokoban-v0 (level=2)``.

    A seat result also names its seat and opponent: ``turngym/TicTacToe-v0 as player_0 vs
    minimax``.
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


def short_label(entry: EntryResult) -> str:
    """``env_id`` plus ``level=N`` and the seat; other options become a tag ``[hash]`` (notes).

    Example:
        >>> from turngym.evals.stats import summarize_values
        >>> e = EntryResult("turngym/FrozenLake-v0", 0, {}, {"difficulty": {"size": 3}},
        ...                 "a1b2c3d4e5f6", "f", "test", "random", {}, [0], 10, {})
        >>> short_label(e), entry_note(e)
        ('turngym/FrozenLake-v0 [a1b2c3]', 'difficulty={"size": 3}')
    """
    options = {**entry.env_kwargs, **entry.options}
    level = options.pop("level", None)
    label = entry.env_id if level is None else f"{entry.env_id} (level={level})"
    label += seat_label(entry.seat, entry.opponent)
    return f"{label} [{entry.env_kwargs_hash[:6]}]" if options else label


def entry_note(entry: EntryResult) -> str:
    """The options :func:`short_label` leaves out, in full (empty when there are none)."""
    options = {**entry.env_kwargs, **entry.options}
    options.pop("level", None)
    return ", ".join(f"{k}={json.dumps(v, sort_keys=True, default=str)}"
                     for k, v in sorted(options.items()))  # fmt: skip


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

    When two runs evaluated the same agent spec, agents are labelled ``agent [run]``. The
    aggregates average only the envs every agent was evaluated on, single-agent envs
    together and multi-agent games per opponent (module docstring).

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

    made = [(TableRow(short_label(e), agent_label(n, e), m, e.metrics[m], entry_note(e)),
             e.opponent) for n, e in pairs for m in metrics if m in e.metrics]  # fmt: skip
    rows = [row for row, _ in made]
    if aggregate:  # single-agent envs together (opponent None), games per opponent
        for opponent in dict.fromkeys(o for _, o in made):
            label = None if opponent is None else f"every seat vs {opponent}"
            rows += _aggregate_rows([row for row, o in made if o == opponent], label)
    return rows


def _common_envs(rows: Sequence[TableRow]) -> tuple[list[str], list[str]]:
    """(envs every agent has for every metric, every env of the table), in table order."""
    envs = list(dict.fromkeys(r.env for r in rows))
    have: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        have.setdefault((row.agent, row.metric), set()).add(row.env)
    common = set.intersection(*have.values()) if have else set()
    return [e for e in envs if e in common], envs


def _aggregate_rows(rows: Sequence[TableRow], games: str | None = None) -> list[TableRow]:
    """Macro means over ``rows``' envs; ``games`` names the seat rows of one opponent."""
    common, envs = _common_envs(rows)
    if len(envs) < 2 or len(common) < 2:
        return []
    if games is not None:
        label = f"{games} (macro mean)" if len(common) == len(envs) else \
            f"{games}, {len(common)} of {len(envs)} (macro mean)"  # fmt: skip
    else:
        label = AGGREGATE if len(common) == len(envs) else \
            f"{len(common)} of {len(envs)} envs (macro mean)"  # fmt: skip
    note = "" if len(common) == len(envs) else "averages " + "; ".join(common)
    groups: dict[tuple[str, str], list[MetricSummary]] = {}
    for row in rows:
        if row.env in common:
            groups.setdefault((row.agent, row.metric), []).append(row.summary)
    return [TableRow(label, agent, metric, macro_mean(s), note, aggregate=True)
            for (agent, metric), s in groups.items()]  # fmt: skip


def missing_aggregate_note(rows: Sequence[TableRow]) -> str | None:
    """Why a table of several envs has no aggregate rows (``None`` when it needs no note)."""
    if any(r.aggregate for r in rows):
        return None
    common, envs = _common_envs(rows)
    if len(envs) < 2 or len(common) >= 2:
        return None
    return (f"no macro mean: the agents were evaluated on different envs ({len(common)} of "
            f"{len(envs)} in common; an aggregate needs at least 2 shared by every agent)")


def _notes(rows: Sequence[TableRow]) -> list[str]:
    """The lines under a table: each tagged env's options, then each partial aggregate's envs."""
    notes = {}
    for row in rows:
        if row.note and not row.aggregate and "[" in row.env:
            tag = row.env.rsplit(" ", 1)[-1]
            notes[tag] = f"{tag} {row.env.rsplit(' ', 1)[0]}: {row.note}"
    notes.update({row.env: f"{row.env}: {row.note}" for row in rows if row.aggregate and row.note})
    return list(notes.values())


def _cells(row: TableRow, digits: int) -> tuple[str, ...]:
    s = row.summary
    return (row.env, row.agent, row.metric, f"{s.mean:.{digits}f}", format_interval(s, digits),
            str(s.n))  # fmt: skip


def render(rows: Sequence[TableRow], fmt: str = "markdown", digits: int = 3) -> str:
    """Render rows in one of :data:`FORMATS`.

    Example:
        >>> t = MetricSummary(0.5, 0.5, 20, (0.2, 0.8), "t")
        >>> w = MetricSummary(0.9, 0.3, 10, (0.6, 0.98), "wilson")
        >>> print(render([TableRow("Env-v0", "me", "return", t),
        ...               TableRow("Env-v0", "me", "success", w)]))
        | Env | Agent | Metric | Mean | 95% CI | n |
        |---|---|---|---:|---:|---:|
        | Env-v0 | me | return | 0.500 | ± 0.300 | 20 |
        | Env-v0 | me | success | 0.900 | [0.600, 0.980] | 10 |
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
    notes = _notes(rows)
    return "\n".join(out + ([""] + notes if notes else []))


def _csv(rows: Sequence[TableRow], digits: int) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["env", "agent", "metric", "mean", "ci95_half_width", "ci_low", "ci_high",
                     "n", "method", "note"])  # fmt: skip
    for row in rows:
        s = row.summary
        writer.writerow([row.env, row.agent, row.metric, f"{s.mean:.{digits}f}",
                         f"{s.half_width:.{digits}f}", f"{s.ci95[0]:.{digits}f}",
                         f"{s.ci95[1]:.{digits}f}", s.n, s.method, row.note])  # fmt: skip
    return buf.getvalue()


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "±": r"$\pm$"}  # fmt: skip


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(rows: Sequence[TableRow], digits: int) -> str:
    out = [r"\begin{tabular}{lllrrr}", r"\toprule",
           r"Env & Agent & Metric & Mean & 95\% CI & $n$ \\", r"\midrule"]  # fmt: skip
    for i, row in enumerate(rows):
        if row.aggregate and (i == 0 or not rows[i - 1].aggregate):
            out.append(r"\midrule")
        env, agent, metric, mean, half, n = (_tex(c) for c in _cells(row, digits))
        out.append(f"{env} & {agent} & {metric} & {mean} & {half} & {n} \\\\")
    out.append(r"\bottomrule")
    out += [rf"\multicolumn{{6}}{{l}}{{\footnotesize {_tex(note)}}} \\" for note in _notes(rows)]
    out.append(r"\end{tabular}")
    return "\n".join(out)


def _html(rows: Sequence[TableRow], digits: int) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _HEADER)
    body = []
    for row in rows:
        cls = ' class="aggregate"' if row.aggregate else ""
        env, *rest = (html.escape(c) for c in _cells(row, digits))
        title = f' title="{html.escape(row.note)}"' if row.note else ""  # the tooltip
        cells = f"<td{title}>{env}</td>" + "".join(f"<td>{c}</td>" for c in rest)
        body.append(f"  <tr{cls}>{cells}</tr>")
    notes = "".join(f'<tr><td colspan="6">{html.escape(n)}</td></tr>' for n in _notes(rows))
    foot = [f"  <tfoot>{notes}</tfoot>"] if notes else []
    return "\n".join(['<table class="turngym-table">', f"  <thead><tr>{head}</tr></thead>",
                      "  <tbody>", *body, "  </tbody>", *foot, "</table>"])  # fmt: skip
