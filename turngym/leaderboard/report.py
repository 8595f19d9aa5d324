"""The regression gate's report: one :class:`GateCheck` per row, gathered in a :class:`GateReport`.

:func:`~turngym.leaderboard.gate.gate` builds the report; this module holds its rows, its
verdict and its JSON and Markdown forms (the Markdown one is what a CI step summary shows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from turngym.evals.stats import MetricSummary

__all__ = ["GateCheck", "GateReport"]


@dataclass(frozen=True)
class GateCheck:
    """One row of a gate report: one env entry, agent and metric (or one missing entry).

    Attributes:
        env: Readable env label (:func:`~turngym.leaderboard.episodes.env_label`).
        entry: Entry key ``env_id#kwargs_hash``.
        agent: The run's agent.
        baseline_agent: The baseline's agent (differs when two sole agents were matched).
        metric: Metric name (all gated metrics, comma-separated, for a missing entry).
        higher_is_better: Direction of the metric.
        baseline: Baseline mean with its 95% interval (``None`` when missing).
        run: Run mean with its 95% interval (``None`` when missing).
        diff: ``run - baseline`` mean (``None`` when not compared).
        diff_ci95: 95% interval of ``diff``.
        p_value: One-sided p-value of a drop.
        method: How ``p_value`` was computed (see :func:`~turngym.leaderboard.gate.compare_values`).
        verdict: ``"pass"``, ``"fail"``, ``"missing"``, ``"untested"`` or ``"env changed"``.
        failed: Whether this row fails the gate.
        note: Why, in words.
    """

    env: str
    entry: str
    agent: str
    baseline_agent: str
    metric: str
    higher_is_better: bool = True
    baseline: MetricSummary | None = None
    run: MetricSummary | None = None
    diff: float | None = None
    diff_ci95: tuple[float, float] | None = None
    p_value: float | None = None
    method: str | None = None
    verdict: str = "pass"
    failed: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for side in ("baseline", "run"):
            data[side] = None if data[side] is None else data[side].to_dict()
        return data


@dataclass(frozen=True)
class GateReport:
    """What :func:`~turngym.leaderboard.gate.gate` found.

    Attributes:
        run: The run directory.
        baseline: What the run was compared with.
        checks: One row per env entry, agent and metric.
        tolerance: Metric -> tolerated drop.
        alpha: Significance level of the one-sided test.
        n_boot: Bootstrap replicates.
        seed: Seed of the bootstrap.
        require_all: Whether missing and untested entries fail.
    """

    run: str
    baseline: str
    checks: tuple[GateCheck, ...]
    tolerance: dict[str, float]
    alpha: float
    n_boot: int
    seed: int
    require_all: bool = False

    @property
    def compared(self) -> int:
        """Rows where the two sides were actually compared."""
        return sum(c.verdict in ("pass", "fail") for c in self.checks)

    @property
    def passed(self) -> bool:
        """No row failed and at least one was compared.

        A gate that compared nothing (no env entry in common) fails: it is misconfigured,
        and passing it would let every change through unchecked.
        """
        return self.compared > 0 and not any(c.failed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"passed": self.passed, "run": self.run, "baseline": self.baseline,
                "tolerance": self.tolerance, "alpha": self.alpha, "n_boot": self.n_boot,
                "seed": self.seed, "require_all": self.require_all,
                "checks": [c.to_dict() for c in self.checks]}  # fmt: skip

    def to_markdown(self) -> str:
        """A Markdown report for a CI step summary: verdict, table, failures, method."""
        counts = {v: sum(c.verdict == v for c in self.checks) for v in _VERDICTS}
        summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        lines = [
            f"## turngym regression gate: {'PASS' if self.passed else 'FAIL'}",
            "",
            f"Run `{self.run}` against baseline `{self.baseline}`: "
            f"{len(self.checks)} checks ({summary or 'none'}).",
        ]
        if self.compared == 0:
            lines += ["", "**Nothing was compared**: the run and the baseline share no env entry "
                      "and agent. Evaluate the same suite as the baseline."]  # fmt: skip
        lines += ["", "| env | agent | metric | baseline | run | diff [95% CI] | p | verdict |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        lines += [_markdown_row(c) for c in self.checks]
        problems = [c for c in self.checks if c.failed or c.verdict != "pass"]
        if problems:
            lines += ["", "Notes:", ""]
            lines += [f"- {_md(c.env)} / {_md(c.agent)} / {c.metric}: {c.verdict.upper()}: "
                      f"{_md(c.note)}" for c in problems]  # fmt: skip
        lines += ["", self._method_text(), ""]
        return "\n".join(lines)

    def _method_text(self) -> str:
        tolerances = ", ".join(f"{m} {t:g}" for m, t in self.tolerance.items())
        missing = "fail (require-all)" if self.require_all else "are listed but do not fail"
        return (
            "Method: for each env entry, agent and metric on both sides, diff = run mean - "
            "baseline mean. A check fails only when the run is worse (against the metric's "
            "direction) by more than the tolerance **and** a one-sided bootstrap test of the "
            f"drop gives p < {self.alpha:g} ({self.n_boot} replicates, seed {self.seed}). "
            "Episodes are paired by task and seed when both sides played the same ones, "
            "otherwise the sides are resampled independently; a side without per-episode "
            "values is compared by a normal approximation from its summary. Means show 95% "
            "intervals (Wilson for rates, Student-t otherwise). Tolerances (metric units): "
            f"{tolerances}. Entries on one side only {missing}."
        )


_VERDICTS = ("pass", "fail", "env changed", "untested", "missing")
_METHOD_SHORT = {"paired bootstrap": "paired", "bootstrap": "unpaired",
                 "normal approximation": "normal approx."}  # fmt: skip


def _markdown_row(c: GateCheck) -> str:
    arrow = "higher is better" if c.higher_is_better else "lower is better"
    metric = c.metric if c.verdict == "missing" else f"{c.metric} ({arrow})"
    agent = c.agent if c.agent == c.baseline_agent else f"{c.agent} (baseline: {c.baseline_agent})"
    diff = "" if c.diff is None else f"{c.diff:+.3f}"
    if c.diff_ci95 is not None:
        diff += f" [{c.diff_ci95[0]:+.3f}, {c.diff_ci95[1]:+.3f}]"
    p = "" if c.p_value is None else ("<0.001" if c.p_value < 0.001 else f"{c.p_value:.3f}")
    if c.method is not None:
        p += f" ({_METHOD_SHORT[c.method]})"
    cells = [c.env, agent, metric, _summary_cell(c.baseline), _summary_cell(c.run), diff, p,
             c.verdict.upper()]  # fmt: skip
    return "| " + " | ".join(_md(x) for x in cells) + " |"


def _summary_cell(s: MetricSummary | None) -> str:
    if s is None:
        return "-"
    return f"{s.mean:.3f} [{s.ci95[0]:.3f}, {s.ci95[1]:.3f}] n={s.n}"


def _md(text: str) -> str:
    """Escape what would break a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
