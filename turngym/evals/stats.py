"""Confidence intervals for eval metrics: Wilson for rates, Student-t for means.

Kept dependency-free (no SciPy): the t quantiles for small samples are the standard table
values, and above 30 degrees of freedom a Cornish-Fisher expansion around the normal quantile
(Abramowitz & Stegun 26.7.5) is accurate to better than 1e-3.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "MetricSummary",
    "wilson_interval",
    "t_quantile",
    "mean_interval",
    "summarize_values",
    "macro_mean",
    "standard_error",
    "format_interval",
]

Z95 = 1.959964
"""The 97.5% quantile of the standard normal."""

# Two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30 (standard tables).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """Mean of a metric over episodes with its 95% interval.

    Attributes:
        mean: Sample mean.
        std: Sample standard deviation (ddof=1; 0 for n < 2).
        n: Number of episodes.
        ci95: ``(low, high)`` 95% confidence interval of the mean.
        method: ``"wilson"`` (0/1 metrics) or ``"t"`` (Student-t).
    """

    mean: float
    std: float
    n: int
    ci95: tuple[float, float]
    method: str

    def to_dict(self) -> dict[str, object]:
        """JSON form (as stored in ``results.json``)."""
        return {"mean": self.mean, "std": self.std, "n": self.n, "ci95": list(self.ci95),
                "method": self.method}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> MetricSummary:
        """Inverse of :meth:`to_dict`."""
        low, high = data["ci95"]
        return cls(float(data["mean"]), float(data["std"]), int(data["n"]),
                   (float(low), float(high)), str(data["method"]))  # fmt: skip

    @property
    def half_width(self) -> float:
        """Half the interval's width (the ``±`` of a table), for symmetric display."""
        return (self.ci95[1] - self.ci95[0]) / 2


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (good coverage at small n).

    Example:
        >>> [round(x, 3) for x in wilson_interval(8, 10)]
        [0.49, 0.943]
    """
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def t_quantile(df: int) -> float:
    """The two-sided 95% Student-t quantile ``t_{0.975, df}``.

    Example:
        >>> t_quantile(10), round(t_quantile(1000), 3)
        (2.228, 1.962)
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = Z95
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def mean_interval(mean: float, std: float, n: int) -> tuple[float, float]:
    """Student-t 95% interval of a mean from its sample std (a point when n < 2)."""
    if n < 2:
        return (mean, mean)
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return (mean - half, mean + half)


def summarize_values(values: Sequence[float], binary: bool | None = None) -> MetricSummary:
    """Summarise per-episode values: Wilson interval when they are all 0/1, Student-t otherwise.

    Args:
        values: One number per episode.
        binary: Force (True) or forbid (False) the Wilson interval; default: detect.

    Example:
        >>> s = summarize_values([1, 0, 1, 1])
        >>> s.mean, s.method, s.n
        (0.75, 'wilson', 4)
    """
    n = len(values)
    if n == 0:
        return MetricSummary(0.0, 0.0, 0, (0.0, 0.0), "t")
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    if binary is None:
        binary = all(v in (0, 1) for v in values)
    if binary:
        return MetricSummary(mean, std, n, wilson_interval(mean * n, n), "wilson")
    return MetricSummary(mean, std, n, mean_interval(mean, std, n), "t")


def standard_error(summary: MetricSummary) -> float:
    """The standard error implied by a summary's interval (half-width over its quantile).

    For a Student-t interval this is exactly ``std / sqrt(n)``; for a Wilson interval it is the
    interval's own scale, which stays positive at 0% and 100% where ``std`` is zero.
    """
    if summary.n < 2:
        return 0.0
    quantile = t_quantile(summary.n - 1) if summary.method == "t" else Z95
    return summary.half_width / quantile


def macro_mean(summaries: Sequence[MetricSummary]) -> MetricSummary:
    """Unweighted mean over envs of per-env means, with a normal 95% interval.

    Each env counts once whatever its episode count (the usual "average over tasks" of
    benchmark tables). The envs are independent samples, so the standard error of the macro
    mean is ``sqrt(sum_i se_i^2) / k`` with ``se_i`` from :func:`standard_error`. Rates
    (all-Wilson inputs) keep their interval inside [0, 1].

    Example:
        >>> a = MetricSummary(0.8, 0.4, 100, (0.7, 0.9), "wilson")
        >>> b = MetricSummary(0.4, 0.5, 100, (0.3, 0.5), "wilson")
        >>> m = macro_mean([a, b])
        >>> round(m.mean, 2), m.n, [round(x, 3) for x in m.ci95]
        (0.6, 200, [0.529, 0.671])
    """
    used = [s for s in summaries if s.n > 0]
    if not used:
        return MetricSummary(0.0, 0.0, 0, (0.0, 0.0), "macro")
    k = len(used)
    n = sum(s.n for s in used)
    mean = math.fsum(s.mean for s in used) / k
    se = math.sqrt(math.fsum(standard_error(s) ** 2 for s in used)) / k
    low, high = mean - Z95 * se, mean + Z95 * se
    if all(s.method == "wilson" for s in used):
        low, high = max(0.0, low), min(1.0, high)
    return MetricSummary(mean, se * math.sqrt(n), n, (low, high), "macro")


def format_interval(summary: MetricSummary, digits: int = 3) -> str:
    """The 95% interval as shown in tables: ``± h`` if symmetric, else ``[low, high]``.

    Symmetric means both ends are equally far from the mean at the shown precision (Student-t
    intervals). Wilson intervals of rates are not, and a ``±`` would suggest a bound outside
    [0, 1] (``0.067 ± 0.097``), so they show their ends.

    Example:
        >>> format_interval(MetricSummary(0.5, 0.5, 20, (0.266, 0.734), "t"))
        '± 0.234'
        >>> format_interval(summarize_values([1] + [0] * 14))
        '[0.012, 0.298]'
    """
    low, high = summary.ci95
    below, above = summary.mean - low, high - summary.mean
    if abs(below - above) <= 0.5 * 10.0**-digits:
        return f"± {summary.half_width:.{digits}f}"
    return f"[{low:.{digits}f}, {high:.{digits}f}]"
