"""Joining or starting the Ray cluster the ``ray`` backend runs on.

:func:`init_ray` connects to the cluster named by ``RAY_ADDRESS`` when it is set (``ray start
--head`` on a head node, then ``RAY_ADDRESS=<head>:6379`` on the driver), and otherwise starts
a local single-node cluster on this machine's CPUs. An already initialised Ray session (a
test fixture, a notebook that called ``ray.init`` itself) is used as it is.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

__all__ = ["require_ray", "init_ray", "cluster_cpus"]


def require_ray() -> ModuleType:
    """Import Ray, or fail with the one line that says how to install it."""
    try:
        import ray
    except ImportError as err:  # pragma: no cover - the extra is installed in CI
        raise ImportError(
            "the ray backend needs Ray: pip install 'turngym[ray]' (ray>=2.9)"
        ) from err
    return ray


def init_ray(**kwargs: Any) -> ModuleType:
    """Make sure a Ray session is up and return the ``ray`` module.

    Args:
        **kwargs: Extra ``ray.init`` arguments for a *local* cluster (e.g. ``num_cpus=2``);
            ignored when a session exists or ``RAY_ADDRESS`` names a cluster.
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        # No dashboard: it is a web server the rollout engine never uses, and it slows startup.
        ray.init(**{"include_dashboard": False, "log_to_driver": False, **kwargs})
    return ray


def cluster_cpus() -> float:
    """CPUs the cluster declares in total (every node's ``num_cpus``)."""
    ray = init_ray()
    return float(ray.cluster_resources().get("CPU", 0.0))
