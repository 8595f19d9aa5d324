"""The files a bench leaves: merged episodes and results, curves, Markdown and HTML reports.

``report.html`` is one self-contained page (the curves PNG inlined as a data URI) with the
head-to-head table, every agent's table, the configuration and the provenance.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from turngym.evals.results import RunResults, read_jsonl

if TYPE_CHECKING:
    from turngym.evals.bench import BenchSpec

__all__ = ["write_outputs"]


def write_outputs(spec: BenchSpec, out: Path, jobs: list[dict], done: list[dict],
                  results: RunResults, table: str, baseline_dir: Path | None) -> None:  # fmt: skip
    """Write episodes.jsonl, results.json, curves.png, bench.md and report.html."""
    from turngym.evals.plots import plot_curves
    from turngym.evals.tables import entry_label, render, table_rows

    episodes = [ep for d in done for ep in d["episodes"]]
    if baseline_dir is not None:
        episodes += [r for _, r in read_jsonl(baseline_dir / "episodes.jsonl")]
    tmp = out / "episodes.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in episodes))
    os.replace(tmp, out / "episodes.jsonl")
    results.save(out / "results.json")
    curves: dict[str, dict[str, list]] = {}
    for entry in results.entries:
        if entry.curve is None:
            continue
        estimator = entry.agent.split(":", 1)[1]
        curves.setdefault(entry_label(entry), {})[entry.agent] = [
            d["curve"] for j, d in zip(jobs, done, strict=True)
            if j["estimator"] == estimator and j["entry"] == entry.key
        ]  # fmt: skip
    png = plot_curves(curves, out / "curves.png", metric=spec.metric, threshold=spec.threshold)
    full = table_rows([(out.name, results)], (spec.metric, "return"))
    (out / "bench.md").write_text(f"{table}\n\n{render(full)}\n")
    (out / "report.html").write_text(_report_html(spec, results, table, render(full, "html"),
                                                  png))  # fmt: skip


def _markdown_table_to_html(table: str) -> str:
    lines = table.splitlines()
    notes = "".join(f"<p>{html.escape(line)}</p>" for line in lines
                    if line.strip() and not line.startswith("|"))  # fmt: skip
    rows = [line.strip("|").split("|") for line in lines
            if line.startswith("|") and not line.startswith("|--")]  # fmt: skip
    head = "".join(f"<th>{html.escape(c.strip())}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>"
                   for r in rows[1:])  # fmt: skip
    return (f'<table class="turngym-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>{notes}")


def _report_html(spec: BenchSpec, results: RunResults, table: str, full_html: str,
                 png: Path) -> str:  # fmt: skip
    image = base64.b64encode(png.read_bytes()).decode()
    prov = html.escape(json.dumps({k: v for k, v in results.provenance.items() if k != "bench"},
                                  indent=2))  # fmt: skip
    config = html.escape(json.dumps(spec.to_dict(), indent=2))
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
             "padding:4px 8px;text-align:right}td:first-child,td:nth-child(2),th{text-align:left}"
             "tr.aggregate{font-weight:bold}pre{background:#f6f6f6;padding:1em;overflow:auto}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>turngym bench</title>
<style>{style}</style></head><body>
<h1>turngym bench</h1>
<p>{len(spec.estimators)} estimators x {len(spec.envs)} envs x {len(spec.seeds)} seeds,
{spec.env_steps:,} env steps per run; test-split {html.escape(spec.metric)} (95% intervals).</p>
<h2>Head to head</h2>
{_markdown_table_to_html(table)}
<h2>Learning curves</h2>
<p>Mean over seeds; the band spans the lowest to the highest seed.</p>
<img alt="learning curves" src="data:image/png;base64,{image}">
<h2>All agents (trained policies and scripted baselines)</h2>
{full_html}
<h2>Configuration</h2><pre>{config}</pre>
<h2>Provenance</h2><pre>{prov}</pre>
</body></html>
"""
