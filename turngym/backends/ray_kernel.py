"""KernelGen's evaluator on Ray: sandboxed evaluations as tasks on the cluster's workers.

:func:`evaluate_candidates` grades many ``(reference, candidate)`` pairs with
:func:`turngym.envs.kernel.runner.evaluate_candidate`, either here (a thread per evaluation;
each evaluation is its own sandboxed process, so threads only wait) or as Ray tasks. A task
asks for one CPU (the evaluation child runs one torch thread) and runs on whichever node has
one free, where it starts its sandboxed child: every node grades with its own sandbox, and a
worker process keeps its result cache across the tasks it runs. The results are the same dicts
either way (timing off, the evaluation is a pure function of its inputs).

Rollouts of ``turngym/KernelGen-v0`` with ``backend="ray"`` need none of this: the env is
marked slow, so each instance steps in an actor of its own (see
:mod:`turngym.backends.ray_envs`). This is for grading outside an episode — a dataset of
candidates, a reward service — at cluster scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from turngym.backends import check_backend

__all__ = ["evaluate_candidates"]


def evaluate_candidates(
    requests: Sequence[Mapping[str, Any]],
    *,
    backend: str = "local",
    max_workers: int | None = None,
) -> list[dict[str, Any]]:
    """Grade every request; results in request order.

    Args:
        requests: Keyword arguments of
            :func:`~turngym.envs.kernel.runner.evaluate_candidate`, one dict per evaluation
            (``reference`` and ``candidate`` required; ``seeds``, ``atol``, ``rtol``,
            ``timing``, ``timeout_s`` optional).
        backend: ``local`` (threads here) or ``ray`` (one task per evaluation, one CPU each).
        max_workers: Local backend: evaluations at once (default: the machine's CPUs).

    Returns:
        One result dict per request (see :mod:`turngym.envs.kernel.evaluate`).

    Example:
        >>> evaluate_candidates([{"reference": "x = 1", "candidate": "def f(:"}])[0]["status"]
        'compile_error'
    """
    from turngym.envs.kernel.runner import evaluate_candidate

    for index, request in enumerate(requests):
        missing = {"reference", "candidate"} - set(request)
        if missing:
            raise ValueError(f"request {index} lacks {', '.join(sorted(missing))}")
    if check_backend(backend) == "local":
        with ThreadPoolExecutor(max_workers) as pool:
            return list(pool.map(lambda r: evaluate_candidate(**r), requests))
    from turngym.backends.ray_cluster import init_ray
    from turngym.backends.ray_envs import release_warm

    ray = init_ray()
    release_warm()  # env actors kept warm by earlier rollouts hold the CPUs these tasks need
    task = ray.remote(num_cpus=1)(evaluate_candidate)
    return ray.get([task.remote(**request) for request in requests])
