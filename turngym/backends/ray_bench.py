"""``turngym bench --backend ray``: the bench's training runs as Ray tasks.

Each (estimator, env, seed) run is one task running
:func:`turngym.evals.bench_jobs.train_job`, declaring what it needs: ``num_cpus`` = the torch
threads the bench gives a run, ``num_gpus`` = 1 when its recipe trains on a CUDA device. Ray
places the tasks where those resources are free, so a cluster runs as many at once as it can
hold. Progress events travel through a Ray queue (an actor that takes no CPU) to the driver,
which shows every run as the local backend does. Runs write their checkpoints and ``done.json``
under the bench directory, so on a multi-node cluster that directory must be on storage every
node mounts (a local cluster always shares it); a rerun skips finished runs either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from turngym.backends.ray_cluster import init_ray

__all__ = ["job_resources", "run_jobs_ray"]


def job_resources(job: dict[str, Any]) -> dict[str, float]:
    """The Ray resources one training job declares.

    Example:
        >>> job_resources({"threads": 2, "config": {"device": "cuda:0"}})
        {'num_cpus': 2.0, 'num_gpus': 1.0}
    """
    device = str(job["config"].get("device", "cpu"))
    return {
        "num_cpus": float(job["threads"]),
        "num_gpus": 1.0 if device.startswith("cuda") else 0.0,
    }


def run_jobs_ray(
    jobs: list[dict[str, Any]],
    train_job: Callable[[dict[str, Any], Any], dict[str, Any]],
    display: Callable[[Any], None],
    done: Callable[[dict, dict], dict],
) -> list[dict[str, Any]]:
    """Run every job as a Ray task; return their results in job order.

    Args:
        jobs: Job dicts (see :func:`turngym.evals.bench_jobs.train_job`).
        train_job: Runs one job, sending progress events to its second argument (the bench
            passes :func:`turngym.evals.bench_jobs.train_job`; handed in, so this module does
            not import the bench back).
        display: Receives the runs' progress events (on a driver thread).
        done: Called with ``(result, job)`` as each result arrives, in job order.
    """
    ray = init_ray()
    from ray.util.queue import Queue

    from turngym.backends.ray_envs import release_warm

    release_warm()  # env actors kept warm by earlier rollouts hold the CPUs these tasks need

    queue = Queue(actor_options={"num_cpus": 0})

    def pump() -> None:
        while True:
            item = queue.get()
            if item is None:
                return
            display(item)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    task = ray.remote(train_job)
    try:
        refs = [task.options(**job_resources(job)).remote(job, queue) for job in jobs]
        return [done(ray.get(ref), job) for ref, job in zip(refs, jobs, strict=True)]
    finally:
        queue.put(None)
        thread.join(timeout=10)
        queue.shutdown()
