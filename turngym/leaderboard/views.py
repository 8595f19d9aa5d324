"""What the leaderboard shows, computed from a store's entries (``LeaderboardStore.entries``).

* :func:`table_rows`: one row per (submission, env entry, agent), best first per env.
* :func:`side_by_side`: two submissions per env entry, agents matched as the gate matches them.
* :func:`page_data`: the page's rows (macro means over each row's envs), env sets and curves.

Pure functions over plain entry dicts: the store reads and checks the metric name, these only
arrange what it read.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from turngym.evals.results import EPISODE_METRICS, HIGHER_IS_BETTER, SEAT_METRICS
from turngym.evals.stats import Z95
from turngym.leaderboard.episodes import match_agents, shown_agent
from turngym.leaderboard.ranking import rank_rows

__all__ = ["table_rows", "side_by_side", "page_data", "higher_is_better"]


def higher_is_better(metric: str) -> bool:
    """Direction of ``metric``; unknown metrics are assumed to be scores (higher is better)."""
    return HIGHER_IS_BETTER.get(metric, True)


def table_rows(entries: list[dict], env_id: str | None, metric: str) -> list[dict[str, Any]]:
    """One row per (submission, env entry, agent) with ``metric``'s mean, 95% CI and n.

    Args:
        entries: The store's entries.
        env_id: Keep only this env (an env id, an entry key or an env label); ``None``: all.
        metric: The metric to show.

    Returns:
        Rows sorted by env label, then best first.
    """
    rows = [{"run": e["run"], "kind": e["kind"], "submitted": e["submitted"],
             "git_sha": e["git_sha"], "env": e["env"], "env_id": e["env_id"],
             "entry": e["key"], "agent": e["agent"], "seat": e["seat"],
             "opponent": e["opponent"], "metric": metric,
             "mean": e["metrics"][metric].mean, "ci95": list(e["metrics"][metric].ci95),
             "n": e["metrics"][metric].n}
            for e in entries if metric in e["metrics"]
            and env_id in (None, e["env_id"], e["key"], e["env"])]  # fmt: skip
    sign = 1 if higher_is_better(metric) else -1
    return sorted(rows, key=lambda r: (r["env"], -sign * r["mean"], r["run"]))


def side_by_side(a_entries: list[dict], b_entries: list[dict], metric: str) -> list[dict]:
    """Two submissions side by side per env entry (agents matched as in the gate).

    Returns:
        Rows with ``env``, ``entry``, ``agent_a``/``agent_b``, ``mean_a``/``mean_b``,
        ``ci95_a``/``ci95_b``, ``n_a``/``n_b`` (``None`` on a missing side) and
        ``diff = mean_b - mean_a``.
    """
    a = {(e["key"], e["agent"]): e for e in a_entries}
    b = {(e["key"], e["agent"]): e for e in b_entries}
    out = []
    for key in sorted({k for k, _ in a} | {k for k, _ in b}):
        pairs, only_a, only_b = match_agents([x for k, x in a if k == key],
                                             [x for k, x in b if k == key])  # fmt: skip
        for agent_a, agent_b in [*pairs, *((x, None) for x in only_a),
                                 *((None, x) for x in only_b)]:  # fmt: skip
            ea = a.get((key, agent_a)) if agent_a else None
            eb = b.get((key, agent_b)) if agent_b else None
            either = ea if ea is not None else eb
            assert either is not None  # every agent came from one side or the other
            row = {"env": either["env"], "entry": key, "agent_a": agent_a, "agent_b": agent_b}
            for suffix, entry in (("a", ea), ("b", eb)):
                s = entry["metrics"].get(metric) if entry else None
                row[f"mean_{suffix}"] = s.mean if s else None
                row[f"ci95_{suffix}"] = list(s.ci95) if s else None
                row[f"n_{suffix}"] = s.n if s else None
            both = row["mean_a"] is not None and row["mean_b"] is not None
            row["diff"] = row["mean_b"] - row["mean_a"] if both else None
            out.append(row)
    return out


def page_data(entries: list[dict], metric: str) -> dict[str, Any]:
    """Everything the leaderboard page shows, as plain JSON-able data.

    Rows are one per (submission, agent) with the macro mean over the envs the row covers.
    Its interval combines the per-env ones as independent estimates:
    ``mean ± 1.96 * sqrt(sum se_i^2) / k`` with ``se_i`` = half-width / 1.96. Rows are
    ranked by it only within their env set (``env_sets``: rows on the same envs), and
    per env in ``per_env[env]["rank"]`` (:func:`~turngym.leaderboard.ranking.rank_rows`).
    Games make rows of their own per opponent (``agent vs opponent``).
    """
    available = {m for e in entries for m in e["metrics"]}
    metrics = [m for m in (*EPISODE_METRICS, *SEAT_METRICS) if m in available]
    metrics += sorted(available - set(metrics))
    groups: dict[tuple[str, str, str | None], list[dict]] = {}
    for e in entries:
        if metric in e["metrics"]:
            groups.setdefault((e["run"], e["agent"], e["opponent"]), []).append(e)
    rows = sorted((_page_row(group, metric) for group in groups.values()),
                  key=lambda r: (r["run"], r["agent"]))  # fmt: skip
    rows, env_sets = rank_rows(rows, metric)
    curves = [{"run": e["run"], "agent": shown_agent(e), "env": e["env"], "metric": metric,
               "points": [[p["env_steps"], p[metric]] for p in e["curve"] if metric in p]}
              for e in entries if e["curve"]]  # fmt: skip
    return {
        "title": "turngym leaderboard",
        "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "metric": metric,
        "metrics": metrics,
        "envs": sorted({e["env"] for g in groups.values() for e in g}),
        "env_sets": env_sets,
        "rows": rows,
        "curves": [c for c in curves if c["points"]],
    }


def _page_row(group: list[dict], metric: str) -> dict[str, Any]:
    """One leaderboard row from a submission's entries for one agent."""
    first = group[0]
    per_env = {e["env"]: e["metrics"][metric] for e in group}
    k = len(per_env)
    mean = math.fsum(s.mean for s in per_env.values()) / k
    se = math.sqrt(math.fsum((s.half_width / Z95) ** 2 for s in per_env.values()))
    half = Z95 * se / k
    return {
        "run": first["run"], "agent": shown_agent(first), "kind": first["kind"],
        "submitted": first["submitted"], "git_sha": first["git_sha"],
        "turngym_version": first["turngym_version"], "mean": mean,
        "ci95": [mean - half, mean + half], "n": sum(s.n for s in per_env.values()),
        "per_env": {env: {"mean": s.mean, "ci95": list(s.ci95), "n": s.n}
                    for env, s in sorted(per_env.items())},
    }  # fmt: skip
