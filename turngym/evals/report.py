"""The files a bench leaves: merged episodes and results, curves, Markdown and HTML reports.

``report.html`` is one self-contained page (the curves PNG inlined as a data URI) with the
setup, the head-to-head table, every agent's table, the configuration and the provenance.
This module knows nothing about how a bench runs: it renders what it is given.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from turngym.evals.results import EntryResult, RunResults
from turngym.evals.seats import seat_label

__all__ = ["write_outputs", "short_env_labels"]

_MARKERS = "¹²³⁴⁵⁶⁷⁸⁹"


def short_env_labels(entries: Sequence[EntryResult]) -> dict[str, tuple[str, str]]:
    """``{entry key: (short label, footnote)}``: the env name, its settings in a footnote.

    Entries with settings (kwargs, reset options, a turn cap) get a marker and a footnote such
    as ``¹ FrozenLake-v0: difficulty={'size': 3}; at most 6 turns``; the footnote is ``""`` for
    an env at its defaults.

    Example:
        >>> from turngym.evals.stats import MetricSummary
        >>> e = EntryResult("turngym/Maze-v0", 0, {}, {"level": 2}, "h", "f", "test", "a", {},
        ...                 [0], 1, {})
        >>> short_env_labels([e])
        {'turngym/Maze-v0#h': ('Maze-v0 ¹', '¹ Maze-v0: level=2')}
    """
    out: dict[str, tuple[str, str]] = {}
    for entry in entries:
        if entry.key in out:
            continue
        name = entry.env_id.split("/")[-1] + seat_label(entry.seat, entry.opponent)
        settings = [f"{k}={v}" for k, v in sorted({**entry.env_kwargs, **entry.options}.items())]
        if entry.max_turns is not None:
            settings.append(f"at most {entry.max_turns} turns")
        if not settings:
            out[entry.key] = (name, "")
            continue
        marker = _MARKERS[sum(1 for _, note in out.values() if note) % len(_MARKERS)]
        out[entry.key] = (f"{name} {marker}", f"{marker} {name}: {'; '.join(settings)}")
    return out


def write_outputs(
    out: Path,
    *,
    results: RunResults,
    table: str,
    setup: Sequence[str],
    curves: Mapping[str, Mapping[str, Any]],
    metric: str,
    threshold: float | None,
    config: Mapping[str, Any],
    episodes: Sequence[Mapping[str, Any]],
) -> None:
    """Write episodes.jsonl, results.json, curves.png, bench.md and report.html.

    Args:
        out: The bench directory.
        results: The merged results (trained policies and baselines).
        table: The head-to-head Markdown table (footnotes after a blank line).
        setup: One sentence per knob of the setup (starting policy, decoding, budget...).
        curves: ``{key: {"label", "runs": {agent: [curve per seed]}, "levels": {agent: v}}}``;
            levels are drawn as horizontal lines (the scripted baselines).
        metric: The curves' metric.
        threshold: Drawn as a dotted line when given.
        config: The bench's settings (shown on the page).
        episodes: Every episode record (trained policies' final evals and baselines).
    """
    from turngym.evals.plots import plot_curves
    from turngym.evals.tables import default_metrics, render, table_rows

    tmp = out / "episodes.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in episodes))
    os.replace(tmp, out / "episodes.jsonl")
    results.save(out / "results.json")
    png = plot_curves({c["label"]: c["runs"] for c in curves.values()}, out / "curves.png",
                      metric=metric, threshold=threshold,
                      levels={c["label"]: c["levels"] for c in curves.values()})  # fmt: skip
    full = table_rows([(out.name, results)], default_metrics([results], (metric, "return")))
    setup_md = "\n".join(f"- {line}" for line in setup)
    (out / "bench.md").write_text(f"{setup_md}\n\n{table}\n\n{render(full)}\n")
    page = _report_html(results, table, setup, render(full, "html"), png, config)
    (out / "report.html").write_text(page)


def _markdown_table_to_html(table: str) -> str:
    """A Markdown table (plus footnote lines after it) as HTML; every cell is escaped text."""
    lines = table.splitlines()
    rows = [line.strip("|").split("|") for line in lines
            if line.startswith("|") and not line.startswith("|--")]  # fmt: skip
    notes = [line for line in lines if line.strip() and not line.startswith("|")]
    head = "".join(f"<th>{html.escape(c.strip())}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>"
                   for r in rows[1:])  # fmt: skip
    foot = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    return (f'<table class="turngym-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>{foot}")


def _report_html(results: RunResults, table: str, setup: Sequence[str], full_html: str,
                 png: Path, config: Mapping[str, Any]) -> str:  # fmt: skip
    image = base64.b64encode(png.read_bytes()).decode()
    prov = html.escape(json.dumps({k: v for k, v in results.provenance.items() if k != "bench"},
                                  indent=2))  # fmt: skip
    settings = html.escape(json.dumps(dict(config), indent=2))
    items = "".join(f"<li>{html.escape(line)}</li>" for line in setup)
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
             "padding:4px 8px;text-align:right}td:first-child,td:nth-child(2),th{text-align:left}"
             "tr.aggregate{font-weight:bold}pre{background:#f6f6f6;padding:1em;overflow:auto}"
             "p.note{font-size:90%;color:#444;margin:0.2em 0}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>turngym bench</title>
<style>{style}</style></head><body>
<h1>turngym bench</h1>
<h2>Setup</h2>
<ul>{items}</ul>
<h2>Head to head</h2>
{_markdown_table_to_html(table)}
<h2>Learning curves</h2>
<p>Mean over seeds; the band spans the lowest to the highest seed; dashed lines are the
scripted baselines on the same env.</p>
<img alt="learning curves" src="data:image/png;base64,{image}">
<h2>All agents (trained policies and scripted baselines)</h2>
{full_html}
<h2>Configuration</h2><pre>{settings}</pre>
<h2>Provenance</h2><pre>{prov}</pre>
</body></html>
"""
