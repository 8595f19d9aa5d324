"""The leaderboard document: :func:`render_page` and everything it draws.

:func:`render_page` turns the dict that ``LeaderboardStore.page_data(metric)`` returns into one
HTML document (the page is a view of the store's data; it never recomputes a score): one
sortable table per env set (rows are ranked in aggregate only against rows evaluated on the
same envs, see :mod:`turngym.leaderboard.ranking`), the per-env breakdown with each env's own
ranks, and the learning-curve charts, drawn here in Python as inline SVG. Its CSS and the few
lines of JavaScript that sort the tables (:mod:`turngym.leaderboard.assets`) are inline too, so
the document works offline, from ``file://`` or any static host; a Content-Security-Policy
allows exactly those two by hash.

Everything shown comes from users (run and agent names, env labels), so every piece of text goes
through :func:`html.escape`, and the script reads only ``data-*`` attributes, never the data as
code.

This module needs nothing beyond the standard library; the app that serves the page and the
static export are in :mod:`turngym.leaderboard.web`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from turngym.leaderboard.assets import CSS, JS, content_security_policy
from turngym.leaderboard.ranking import rank_rows
from turngym.leaderboard.views import higher_is_better

__all__ = ["render_page"]

_PAGE_KEYS = ("title", "generated", "metric", "metrics", "envs", "rows", "curves")

# Okabe-Ito colours (distinguishable with the common colour-vision deficiencies), then greys.
_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
            "#000000", "#999999", "#666666")  # fmt: skip

# Chart geometry in SVG user units; the SVG scales to the page width through its viewBox.
_W, _H = 560, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 60, 16, 14, 44
_MAX_MARKERS = 40  # points per curve above which dots would only clutter the line


# --- Small formatting helpers ------------------------------------------------------------------
def _num(value: Any) -> float | None:
    """``value`` as a finite float, or None for missing, NaN and infinite values."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _fmt(value: Any) -> str:
    """A metric value for people: 3 decimals for small numbers, fewer for large ones."""
    number = _num(value)
    if number is None:
        return "–"
    return f"{number:.3f}" if abs(number) < 100 else f"{number:,.1f}"


def _half_width(ci95: Any) -> float | None:
    """Half the width of a ``[lo, hi]`` interval (shown as ``±``), or None if it is missing."""
    if not isinstance(ci95, Sequence) or len(ci95) != 2:
        return None
    lo, hi = _num(ci95[0]), _num(ci95[1])
    return None if lo is None or hi is None else (hi - lo) / 2


def _ci_title(ci95: Any) -> str:
    """The exact interval as a tooltip, since intervals (Wilson, bootstrap) may be asymmetric."""
    if _half_width(ci95) is None:
        return "no interval"
    return f"95% CI [{_fmt(ci95[0])}, {_fmt(ci95[1])}]"


def _attr(value: Any) -> str:
    """``value`` escaped for use inside a double-quoted attribute."""
    return escape(str(value), quote=True)


def _data_value(value: Any) -> str:
    """The exact number the sorting script compares; empty when missing (sorted last)."""
    number = _num(value)
    return "" if number is None else repr(number)


def _label(run: str, agent: str) -> str:
    """How a (run, agent) pair is named in legends."""
    return run if run == agent else f"{run} ({agent})"


# --- Ranking -----------------------------------------------------------------------------------
def _best_first(items: list[Any], mean_of: Callable[[Any], Any], metric: str) -> list[Any]:
    """``items`` sorted best first by ``mean_of(item)``; items without a value go last."""
    sign = -1.0 if higher_is_better(metric) else 1.0

    def key(item: Any) -> tuple[bool, float]:
        mean = _num(mean_of(item))
        return (mean is None, 0.0 if mean is None else sign * mean)

    return sorted(items, key=key)  # stable: ties keep the store's order


# --- Main table --------------------------------------------------------------------------------
def _header(key: str, label: str, kind: str, *, sorted_: bool = False, title: str = "") -> str:
    """One sortable column header; the button makes it reachable from the keyboard."""
    aria = ' aria-sort="ascending"' if sorted_ else ""
    tip = f' title="{_attr(title)}"' if title else ""
    return (
        f'<th scope="col" data-key="{_attr(key)}" data-type="{kind}"{aria}{tip}>'
        f'<button type="button">{escape(label)}</button></th>'
    )


def _value_cell(stats: Any, *, with_ci: bool) -> str:
    """A numeric cell: the mean (± half-width) shown, the exact mean kept for sorting."""
    stats = stats if isinstance(stats, Mapping) else {}
    mean, ci95 = stats.get("mean"), stats.get("ci95")
    text = _fmt(mean)
    half = _half_width(ci95)
    if with_ci and half is not None and _num(mean) is not None:
        text += f' <span class="ci">± {_fmt(half)}</span>'
    return (
        f'<td class="num" data-value="{_data_value(mean)}" title="{_attr(_ci_title(ci95))}">'
        f"{text}</td>"
    )


def _set_table(data: Mapping[str, Any], env_set: Mapping[str, Any], rows: list[dict],
               table_id: str) -> str:  # fmt: skip
    """One sortable table: the rows of one env set, ranked by their mean over its envs."""
    metric = str(data["metric"])
    envs = [str(env) for env in data["envs"] if env in env_set["envs"]]
    arrow = "↑" if higher_is_better(metric) else "↓"
    headers = [
        _header("rank", "#", "num", sorted_=True, title="rank among rows on these envs"),
        _header("run", "run", "text"),
        _header("agent", "agent", "text"),
        _header("kind", "kind", "text"),
        _header("mean", f"{metric} {arrow} ± 95% CI", "num", title="mean over these envs"),
        _header("n", "n", "num", title="episodes"),
        *(_header(f"env:{env}", env, "num", title=f"{metric} on {env}") for env in envs),
    ]
    body = []
    for row in rows:
        per_env = row.get("per_env") or {}
        run, agent = str(row.get("run", "")), str(row.get("agent", ""))
        n, rank = row.get("n", "–"), row.get("rank")
        cells = [
            f'<td class="num rank" data-value="{"" if rank is None else rank}">{rank or "–"}</td>',
            f'<td class="run">{escape(run)}</td>',
            f'<td class="agent">{escape(agent)}</td>',
            f'<td class="kind">{escape(str(row.get("kind", "")))}</td>',
            _value_cell(row, with_ci=True),
            f'<td class="num" data-value="{_data_value(n)}">{escape(str(n))}</td>',
            *(_value_cell(per_env.get(env), with_ci=False) for env in envs),
        ]
        body.append(
            f'<tr class="lb-row" data-run="{_attr(run)}" data-agent="{_attr(agent)}">'
            + "".join(cells)
            + "</tr>"
        )
    return (
        f'<div class="scroll"><table id="{_attr(table_id)}" class="leaderboard" '
        f'data-env-set="{_attr(env_set["id"])}"><thead><tr>{"".join(headers)}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _main_tables(data: Mapping[str, Any]) -> str:
    """The leaderboard: one table per env set (the first is ``#leaderboard``)."""
    rows, env_sets = rank_rows(list(data["rows"]), str(data["metric"]))
    if len(env_sets) == 1:
        return _set_table(data, env_sets[0], rows, "leaderboard")
    parts = ['<p class="note">Rows are ranked only against rows evaluated on the same envs; '
             "each env's own ranks are in the per-env breakdown.</p>"]  # fmt: skip
    for number, env_set in enumerate(env_sets):
        members = [row for row in rows if row["env_set"] == env_set["id"]]
        envs = ", ".join(str(env) for env in env_set["envs"])
        count = len(env_set["envs"])
        parts.append(f'<h3 class="env-set">Evaluated on {count} env{"s" * (count != 1)}: '
                     f"{escape(envs)}</h3>")  # fmt: skip
        table_id = "leaderboard" if number == 0 else f"leaderboard-{env_set['id']}"
        parts.append(_set_table(data, env_set, members, table_id))
    return "".join(parts)


# --- Per-env breakdown -------------------------------------------------------------------------
def _env_mean(row: Mapping[str, Any], env: str) -> Any:
    return row["per_env"][env].get("mean")


def _breakdown(data: Mapping[str, Any]) -> str:
    """One small table per env: the runs that have a score there, best first."""
    metric, sections = str(data["metric"]), []
    ranked, _ = rank_rows(list(data["rows"]), metric)
    for env in (str(env) for env in data["envs"]):
        scored = [row for row in ranked if env in (row.get("per_env") or {})]
        scored = _best_first(scored, functools.partial(_env_mean, env=env), metric)
        lines = []
        for row in scored:
            stats = row["per_env"][env]
            run, agent = str(row.get("run", "")), str(row.get("agent", ""))
            half = _half_width(stats.get("ci95"))
            lines.append(
                f'<tr class="env-row" data-run="{_attr(run)}" data-agent="{_attr(agent)}">'
                f'<td class="num env-rank">{stats.get("rank") or "–"}</td>'
                f"<td>{escape(run)}</td><td>{escape(agent)}</td>"
                f'<td class="num">{_fmt(stats.get("mean"))}</td>'
                f'<td class="num" title="{_attr(_ci_title(stats.get("ci95")))}">'
                f"{'–' if half is None else '± ' + _fmt(half)}</td>"
                f'<td class="num">{escape(str(stats.get("n", "–")))}</td></tr>'
            )
        columns = ("#", "run", "agent", metric, "± 95% CI", "n")
        head = "".join(f'<th scope="col">{escape(c)}</th>' for c in columns)
        table = (
            f'<table class="env-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(lines)}</tbody></table>"
            if lines
            else '<p class="empty">No scores on this env.</p>'
        )
        sections.append(
            f'<section class="env-breakdown" data-env="{_attr(env)}">'
            f"<h3>{escape(env)}</h3>{table}</section>"
        )
    return "".join(sections)


# --- Learning curves (inline SVG) --------------------------------------------------------------
def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2 or 5 × 10^k) covering ``[lo, hi]``."""
    if hi <= lo:  # a flat curve still needs a visible range around its value
        pad = abs(lo) * 0.1 or 0.5
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = [first]
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(first + len(ticks) * step)
    return ticks


def _tick_labels(ticks: list[float]) -> list[str]:
    """Labels for evenly spaced ticks: one unit (k, M) per axis and the decimals the step needs."""
    top = max(abs(t) for t in ticks)
    scale, unit = (1e6, "M") if top >= 1e6 else (1e3, "k") if top >= 1e4 else (1.0, "")
    step = (ticks[1] - ticks[0]) / scale
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return [f"{t / scale:.{decimals}f}{unit if t else ''}" for t in ticks]


def _chart(
    env: str,
    metric: str,
    curves: list[tuple[str, str, list[tuple[float, float]]]],
    colors: Mapping[tuple[str, str], str],
) -> str:
    """One SVG chart: axes with env-step and metric ticks, one polyline per (run, agent)."""
    xs = [x for _, _, points in curves for x, _ in points]
    ys = [y for _, _, points in curves for _, y in points]
    xt, yt = _nice_ticks(min(0.0, min(xs)), max(xs)), _nice_ticks(min(ys), max(ys))
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def sx(x: float) -> float:
        return _LEFT + (x - x0) / (x1 - x0) * (_W - _LEFT - _RIGHT)

    def sy(y: float) -> float:
        return _H - _BOTTOM - (y - y0) / (y1 - y0) * (_H - _TOP - _BOTTOM)

    parts = [
        f'<line class="axis" x1="{_LEFT}" y1="{sy(y0):.1f}" x2="{_W - _RIGHT}" '
        f'y2="{sy(y0):.1f}"/><line class="axis" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" '
        f'y2="{_H - _BOTTOM}"/>'
    ]
    for x, text in zip(xt, _tick_labels(xt), strict=True):
        parts.append(
            f'<line class="grid" x1="{sx(x):.1f}" y1="{_TOP}" x2="{sx(x):.1f}" '
            f'y2="{_H - _BOTTOM}"/><text class="xtick" x="{sx(x):.1f}" '
            f'y="{_H - _BOTTOM + 16}">{text}</text>'
        )
    for y, text in zip(yt, _tick_labels(yt), strict=True):
        parts.append(
            f'<line class="grid" x1="{_LEFT}" y1="{sy(y):.1f}" x2="{_W - _RIGHT}" '
            f'y2="{sy(y):.1f}"/><text class="ytick" x="{_LEFT - 6}" '
            f'y="{sy(y) + 4:.1f}">{text}</text>'
        )
    parts.append(
        f'<text class="xlabel" x="{(_LEFT + _W - _RIGHT) / 2}" y="{_H - 6}">'
        f'env steps</text><text class="ylabel" transform="translate(14 '
        f'{(_TOP + _H - _BOTTOM) / 2}) rotate(-90)">{escape(metric)}</text>'
    )
    for run, agent, points in curves:
        color, label = colors[(run, agent)], escape(_label(run, agent))
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        parts.append(
            f'<g class="series"><title>{label}</title><polyline class="curve" '
            f'data-run="{_attr(run)}" data-agent="{_attr(agent)}" points="{coords}" '
            f'stroke="{color}"/>'
        )
        if len(points) <= _MAX_MARKERS:  # a one-point curve is visible only as its dot
            parts.extend(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"/>'
                for x, y in points
            )
        parts.append("</g>")
    legend = "".join(
        f'<li><svg class="swatch" viewBox="0 0 1 1" aria-hidden="true"><rect width="1" '
        f'height="1" fill="{colors[(run, agent)]}"/></svg>{escape(_label(run, agent))}</li>'
        for run, agent, _ in curves
    )
    title = f"{env} — {metric}"
    return (
        f'<figure class="chart" data-env="{_attr(env)}" data-metric="{_attr(metric)}">'
        f"<figcaption>{escape(title)}</figcaption>"
        f'<svg class="curve-chart" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{_attr("learning curves: " + title)}">{"".join(parts)}</svg>'
        f'<ul class="legend">{legend}</ul></figure>'
    )


def _curves(data: Mapping[str, Any]) -> str:
    """One chart per (env, metric) that has curves, envs in the board's order."""
    groups: dict[tuple[str, str], list[tuple[str, str, list[tuple[float, float]]]]] = {}
    for curve in data["curves"]:
        points = sorted(
            (x, y)
            for x, y in ((_num(p[0]), _num(p[1])) for p in curve["points"])
            if x is not None and y is not None
        )
        if points:
            key = (str(curve["env"]), str(curve.get("metric", data["metric"])))
            groups.setdefault(key, []).append((str(curve["run"]), str(curve["agent"]), points))
    if not groups:
        return '<p class="empty">No learning curves yet: benchmark runs add them.</p>'
    # One colour per (run, agent) across all charts, in leaderboard order, so a run is
    # recognisable from chart to chart.
    pairs = [(str(r.get("run", "")), str(r.get("agent", ""))) for r in data["rows"]]
    pairs += [(run, agent) for series in groups.values() for run, agent, _ in series]
    colors: dict[tuple[str, str], str] = {}
    for pair in pairs:
        colors.setdefault(pair, _PALETTE[len(colors) % len(_PALETTE)])
    order = {str(env): i for i, env in enumerate(data["envs"])}
    keys = sorted(groups, key=lambda key: (order.get(key[0], len(order)), key))
    return "".join(_chart(env, metric, groups[(env, metric)], colors) for env, metric in keys)


# --- The document ------------------------------------------------------------------------------
def _metric_nav(data: Mapping[str, Any]) -> str:
    """Links that reload the served page for another metric (only meaningful when served)."""
    links = []
    for name in (str(m) for m in data["metrics"]):
        current = ' aria-current="page"' if name == data["metric"] else ""
        query = _attr(urlencode({"metric": name}))
        links.append(f'<a href="?{query}"{current}>{escape(name)}</a>')
    return f'<nav class="metrics">switch metric: {"".join(links)}</nav>'


def render_page(data: Mapping[str, Any], *, metric_links: bool = False) -> str:
    """Render the leaderboard page as one self-contained HTML document.

    Args:
        data: Page data in the shape of ``LeaderboardStore.page_data()``: ``title``,
            ``generated``, ``metric``, ``metrics``, ``envs``, ``rows`` (run, agent, kind, mean,
            ci95, n, per_env) and ``curves`` (run, agent, env, metric, points).
        metric_links: Add links that switch the metric (``?metric=...``). Only the served page
            can answer them, so the static export leaves them out.

    Returns:
        The HTML document: the sortable table ``#leaderboard`` (rows ``tr.lb-row`` with
        ``data-run``), the per-env breakdown and the learning curves as inline SVG.

    Raises:
        ValueError: If ``data`` lacks one of the keys above.

    Example:
        >>> page = render_page({"title": "t", "generated": "2025-01-01", "metric": "success",
        ...     "metrics": ["success"], "envs": [], "rows": [], "curves": []})
        >>> "No submissions yet" in page
        True
    """
    missing = [key for key in _PAGE_KEYS if key not in data]
    if missing:
        raise ValueError(f"page data lacks {missing}; build it with LeaderboardStore.page_data()")
    title, metric = escape(str(data["title"])), escape(str(data["metric"]))
    if data["rows"]:
        board = (
            f"<h2>Leaderboard</h2>{_main_tables(data)}"
            f'<h2>Per-env breakdown</h2><div id="breakdown" class="breakdown">'
            f"{_breakdown(data)}</div>"
        )
    else:
        board = (
            '<p id="empty-board" class="empty">No submissions yet. Add one with '
            "<code>turngym leaderboard submit RUN_DIR</code>.</p>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" '
        f'content="{_attr(content_security_policy(header=False))}">'
        f"<title>{title}</title><style>{CSS}</style></head><body>"
        f'<h1>{title}</h1><p class="meta">metric: <strong id="metric">{metric}</strong>'
        f" · generated {escape(str(data['generated']))}</p>"
        f"{_metric_nav(data) if metric_links else ''}{board}"
        f'<h2>Learning curves</h2><div id="curves" class="charts">{_curves(data)}</div>'
        f"<script>{JS}</script></body></html>\n"
    )
