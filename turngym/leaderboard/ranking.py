"""Ranks on the leaderboard: per env always, in aggregate only among rows on the same envs.

A row's aggregate (the macro mean over the envs it was evaluated on) is comparable only with
rows evaluated on exactly the same envs: an agent run on the two easy envs of a suite would
otherwise outrank one run on all five. So :func:`rank_rows` groups the rows into **env sets**
(rows with the same set of env configurations), ranks each group by its aggregate, and ranks
every env on its own (the same env configuration is always comparable).

Ranks are competition ranks (1, 2, 2, 4): equal means share a rank. Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from turngym.evals.results import HIGHER_IS_BETTER

__all__ = ["rank_rows", "competition_ranks"]


def _value(mean: Any) -> float | None:
    if isinstance(mean, bool) or not isinstance(mean, int | float) or not math.isfinite(mean):
        return None
    return float(mean)


def competition_ranks(means: Sequence[Any], metric: str) -> list[int | None]:
    """Ranks of ``means`` (best first for ``metric``); missing values get ``None``.

    Example:
        >>> competition_ranks([0.5, 0.9, 0.5, None], "success")
        [2, 1, 2, None]
    """
    sign = -1.0 if HIGHER_IS_BETTER.get(metric, True) else 1.0
    keys = [None if (v := _value(m)) is None else sign * v for m in means]
    return [None if k is None else 1 + sum(o is not None and o < k for o in keys) for k in keys]


def rank_rows(rows: Sequence[Mapping[str, Any]], metric: str
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """Group rows by env set and rank them.

    Args:
        rows: Page rows (``mean``, ``per_env: {env: {"mean", ...}}``, run, agent...).
        metric: The metric the means are of (its direction decides "best").

    Returns:
        ``(rows, env_sets)``: copies of the rows with ``env_set`` (the id of their group),
        ``rank`` (within the group) and ``per_env[env]["rank"]`` (among every row with that
        env), ordered by group then rank; and the groups, ``{"id", "envs", "rows"}``, the
        largest first (most rows, then most envs).

    Example:
        >>> rows = [{"mean": 0.5, "per_env": {"a": {"mean": 0.5}}},
        ...         {"mean": 0.9, "per_env": {"a": {"mean": 0.8}, "b": {"mean": 1.0}}}]
        >>> ranked, sets = rank_rows(rows, "success")
        >>> [(r["env_set"], r["rank"], r["per_env"]["a"]["rank"]) for r in ranked]
        [('set-1', 1, 1), ('set-2', 1, 2)]
    """
    copies = [{**row, "per_env": {e: dict(s) for e, s in (row.get("per_env") or {}).items()}}
              for row in rows]  # fmt: skip
    for env in sorted({env for row in copies for env in row["per_env"]}):
        scored = [row for row in copies if env in row["per_env"]]
        ranks = competition_ranks([row["per_env"][env].get("mean") for row in scored], metric)
        for row, rank in zip(scored, ranks, strict=True):
            row["per_env"][env]["rank"] = rank
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in copies:
        groups.setdefault(tuple(sorted(row["per_env"])), []).append(row)
    order = sorted(groups, key=lambda envs: (-len(groups[envs]), -len(envs), envs))
    env_sets, ranked = [], []
    for number, envs in enumerate(order, start=1):
        members = groups[envs]
        ranks = competition_ranks([row.get("mean") for row in members], metric)
        for row, rank in zip(members, ranks, strict=True):
            row["env_set"], row["rank"] = f"set-{number}", rank
        members.sort(key=lambda row: (row["rank"] is None, row["rank"] or 0))
        ranked += members
        env_sets.append({"id": f"set-{number}", "envs": list(envs), "rows": len(members)})
    return ranked, env_sets
