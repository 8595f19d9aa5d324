"""Learning-curve figures (PNG via matplotlib's non-interactive Agg backend).

One panel per env; per agent a line for the mean over seeds and a band from the lowest to the
highest seed, so the spread of a two- or three-seed benchmark stays visible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_curves", "mean_curve"]

Curve = Sequence[tuple[float, float]]
"""``(env_steps, value)`` points of one run."""


def mean_curve(curves: Sequence[Curve]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Align seed curves by evaluation index: (mean steps, mean, min, max) over the seeds.

    Runs of one benchmark evaluate at the same iterations, so the k-th points of two seeds are
    comparable; the x value is their mean env-step count. Longer curves are cut to the
    shortest.
    """
    length = min(len(c) for c in curves)
    steps = np.array([[p[0] for p in c[:length]] for c in curves], dtype=float)
    values = np.array([[p[1] for p in c[:length]] for c in curves], dtype=float)
    return steps.mean(0), values.mean(0), values.min(0), values.max(0)


def plot_curves(
    curves: Mapping[str, Mapping[str, Sequence[Curve]]],
    path: str | Path,
    *,
    metric: str = "success",
    threshold: float | None = None,
    levels: Mapping[str, Mapping[str, float]] | None = None,
) -> Path:
    """Draw ``{env label: {agent: [curve per seed]}}`` into one PNG with a panel per env.

    ``levels`` (``{env label: {name: value}}``) are drawn as dashed horizontal lines, e.g. the
    random and oracle baselines' scores on that env.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'turngym[harness]'``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never needs a display
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(
            "learning-curve plots need matplotlib: pip install 'turngym[harness]'"
        ) from err
    envs = list(curves)
    fig, axes = plt.subplots(1, len(envs), figsize=(5.5 * len(envs), 4), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        for agent, seed_curves in curves[env].items():
            if not seed_curves:
                continue
            x, mean, low, high = mean_curve(seed_curves)
            (line,) = ax.plot(x, mean, marker="o", markersize=3, label=agent)
            ax.fill_between(x, low, high, alpha=0.2, color=line.get_color(), linewidth=0)
        for name, value in sorted((levels or {}).get(env, {}).items()):
            ax.axhline(value, color="black" if name == "oracle" else "dimgrey", linestyle="--",
                       linewidth=1, alpha=0.7)  # fmt: skip
            ax.annotate(f"{name} {value:.2f}", (0.01, value), xycoords=("axes fraction", "data"),
                        fontsize=7, va="bottom", color="dimgrey")  # fmt: skip
        if threshold is not None:
            ax.axhline(threshold, color="grey", linestyle=":", linewidth=1, label="threshold")
        ax.set_title(env, fontsize=10)
        ax.set_xlabel("env steps")
        ax.set_ylabel(f"test {metric}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
