"""``turngym repro``: run registered claims over their seeds and call a verdict on each.

Every (claim, seed) runs once in a worker process and leaves ``<out>/<claim>/seed-<s>.json``;
a rerun skips what is there, so an interrupted reproduction resumes without repeating or
losing a seed. The report (``repro.json``, ``repro.md``, ``repro.html``) has one row per claim:
the mean effect over seeds with its 95% Student-t interval, the verdict, the seeds and the
wall time.

Verdicts, with ``[low, high]`` the 95% interval of the mean effect (positive supports):

* ``shown``: ``low > 0``, the interval lies entirely on the side of the claim;
* ``refuted``: ``high < 0``, entirely on the other side;
* ``not shown``: the interval contains 0 (or fewer than two seeds ran).
"""

from __future__ import annotations

import html
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from turngym.evals.results import provenance, write_json_atomic
from turngym.evals.stats import mean_interval
from turngym.repro.registry import Claim, claim_registry, get_claim

__all__ = ["ClaimResult", "verdict", "run_claims", "render_markdown", "render_html"]

VERDICTS = ("shown", "not shown", "refuted")


def verdict(effects: Sequence[float]) -> tuple[str, float, tuple[float, float]]:
    """Mean effect, its 95% t-interval over seeds, and the verdict (module docstring).

    Example:
        >>> verdict([0.2, 0.3, 0.25])[0]
        'shown'
        >>> verdict([0.2, -0.3, 0.25])[0]
        'not shown'
    """
    if not effects:
        return "not shown", float("nan"), (float("nan"), float("nan"))
    mean = statistics.fmean(effects)
    if len(effects) < 2:
        return "not shown", mean, (float("-inf"), float("inf"))
    low, high = mean_interval(mean, statistics.stdev(effects), len(effects))
    if low > 0:
        return "shown", mean, (low, high)
    if high < 0:
        return "refuted", mean, (low, high)
    return "not shown", mean, (low, high)


@dataclass(frozen=True)
class ClaimResult:
    """One claim's row of the reproduction table."""

    claim: Claim
    seeds: tuple[int, ...]
    effects: tuple[float, ...]
    details: tuple[dict[str, float], ...]
    wall_s: float

    @property
    def summary(self) -> tuple[str, float, tuple[float, float]]:
        """``(verdict, mean effect, (low, high))``."""
        return verdict(self.effects)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``repro.json``)."""
        name, mean, (low, high) = self.summary
        return {"claim": self.claim.to_dict(), "seeds": list(self.seeds),
                "effects": list(self.effects), "details": list(self.details),
                "mean_effect": mean, "ci95": [low, high], "verdict": name,
                "wall_s": self.wall_s}  # fmt: skip


def _run_seed(job: dict[str, Any]) -> dict[str, Any]:
    """Worker: run one (claim, seed) unless its file exists; return the stored record."""
    path = Path(job["path"])
    if path.exists():
        return json.loads(path.read_text())
    if job.get("threads"):
        import torch

        torch.set_num_threads(job["threads"])
    started = time.monotonic()
    measurement = get_claim(job["claim"]).measure(job["seed"])
    record = {"claim": job["claim"], "seed": job["seed"], **measurement.to_dict(),
              "wall_s": time.monotonic() - started}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, record)
    return record


def run_claims(
    names: Sequence[str] | None = None,
    out: str | Path = "runs/repro",
    *,
    seeds: Sequence[int] | None = None,
    workers: int | None = None,
    log: Callable[[str], None] | None = None,
) -> list[ClaimResult]:
    """Run claims (default: every registered one) and write the report into ``out``.

    Args:
        names: Claim names; unknown names fail before anything runs.
        out: Output directory (per-seed files, ``repro.json``, ``repro.md``, ``repro.html``).
        seeds: Override every claim's seeds.
        workers: Seeds run at once (default: 2, or 1 on a 1-core machine).
        log: Progress messages.

    Returns:
        One result per claim, in the order asked.
    """
    say = log or (lambda msg: None)
    claims = [get_claim(n) for n in (names or claim_registry.names())]
    out = Path(out)
    cpus = os.cpu_count() or 1
    workers = max(1, workers or min(2, cpus))
    jobs = [{"claim": c.name, "seed": s, "threads": max(1, cpus // workers),
             "path": str(out / c.name / f"seed-{s}.json")}
            for c in claims for s in (tuple(seeds) if seeds else c.seeds)]  # fmt: skip
    say(f"repro: {len(claims)} claims, {len(jobs)} (claim, seed) runs, {workers} at once -> {out}")
    records = _run_jobs(jobs, workers, say)
    results = []
    for claim in claims:
        mine = [r for r in records if r["claim"] == claim.name]
        results.append(ClaimResult(
            claim, tuple(r["seed"] for r in mine), tuple(float(r["effect"]) for r in mine),
            tuple(r["details"] for r in mine), sum(r["wall_s"] for r in mine),
        ))  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "repro.json", {"provenance": provenance(),
                                          "claims": [r.to_dict() for r in results]})  # fmt: skip
    (out / "repro.md").write_text(render_markdown(results) + "\n")
    (out / "repro.html").write_text(render_html(results))
    return results


def _run_jobs(jobs: list[dict], workers: int, say: Callable[[str], None]) -> list[dict]:
    def announce(record: dict) -> dict:
        say(f"  {record['claim']} seed {record['seed']}: effect {record['effect']:+.4f} "
            f"({record['wall_s']:.0f} s)")  # fmt: skip
        return record

    if workers == 1:
        return [announce(_run_seed(j)) for j in jobs]
    # "spawn": torch's thread pools do not survive fork; each worker starts clean.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_run_seed, j) for j in jobs]
        return [announce(f.result()) for f in futures]


def _columns(result: ClaimResult) -> list[str]:
    name, mean, (low, high) = result.summary
    claim = result.claim
    return [claim.name, claim.method, claim.statement, claim.metric,
            f"{mean:+.4f}", f"[{low:+.4f}, {high:+.4f}]", name,
            ", ".join(map(str, result.seeds)), f"{result.wall_s:.0f} s"]  # fmt: skip


_HEADER = ["Claim", "Method", "Statement", "Effect measured", "Mean effect", "95% CI", "Verdict",
           "Seeds", "Wall time"]  # fmt: skip


def render_markdown(results: Sequence[ClaimResult]) -> str:
    """The reproduction table in Markdown (``|`` in cells escaped)."""
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for result in results:
        cells = [c.replace("|", "\\|") for c in _columns(result)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_html(results: Sequence[ClaimResult]) -> str:
    """One self-contained page: the table, then each claim's paper, experiment and seeds."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _HEADER)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _columns(r)) + "</tr>"
                   for r in results)  # fmt: skip
    notes = "".join(
        f"<h3>{html.escape(r.claim.name)}</h3><p><b>Paper:</b> {html.escape(r.claim.paper)}</p>"
        f"<p><b>Experiment:</b> {html.escape(r.claim.experiment)}</p>"
        f"<p><b>Per seed:</b> {html.escape(_per_seed(r))}</p>"
        for r in results
    )
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>turngym reproduction table</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:80em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "vertical-align:top}</style></head><body><h1>Reproduction table</h1>"
        "<p>Verdict: <i>shown</i> when the 95% interval of the mean effect over seeds lies "
        "above 0, <i>refuted</i> when it lies below 0, <i>not shown</i> otherwise.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{notes}"
        "</body></html>\n"
    )


def _per_seed(result: ClaimResult) -> str:
    parts = []
    for seed, effect, details in zip(result.seeds, result.effects, result.details, strict=True):
        extra = ", ".join(f"{k}={v:.4g}" for k, v in details.items())
        parts.append(f"seed {seed}: {effect:+.4f}" + (f" ({extra})" if extra else ""))
    return "; ".join(parts)
