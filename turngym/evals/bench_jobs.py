"""The training runs of ``turngym bench``: one job per (estimator, env, seed), in worker processes.

A job trains one run (or loads it when an earlier bench finished it: ``done.json``), records
its learning curve (the untrained policy is the first point) and evaluates the final policy on
``episodes`` test tasks. Workers are spawned processes with their share of the torch threads;
they send progress events to the parent, which shows every run at once
(:class:`~turngym.trainers.progress.MultiRunDisplay`).
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from turngym.evals.results import read_jsonl, write_json_atomic

__all__ = ["train_job", "run_jobs", "RunProcessDied"]


class RunProcessDied(RuntimeError):
    """A training run's worker process died (killed, out of memory); finished runs are kept."""


def train_job(job: dict[str, Any], progress_queue: Any = None) -> dict[str, Any]:
    """Train one (estimator, env, seed), or load it when an earlier bench finished it."""
    run_dir = Path(job["out_dir"])
    done = run_dir / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    import torch

    from turngym.rollout import collect
    from turngym.trainers.config import TrainConfig
    from turngym.trainers.progress import QueueReporter
    from turngym.trainers.trainer import Trainer

    torch.set_num_threads(job["threads"])
    started = time.monotonic()
    config = TrainConfig(**job["config"])
    reporter = QueueReporter(progress_queue) if progress_queue is not None else None
    trainer = Trainer(config, on_progress=reporter)
    metric = f"eval_{job['metric']}"
    first = run_dir / "curve_start.json"
    if not first.exists():  # the untrained policy is the curve's first point
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(first, {"env_steps": 0, "value": trainer.evaluate()[metric]})
    trainer.train()
    rows = [r for _, r in read_jsonl(run_dir / "metrics.jsonl") if metric in r]
    start = json.loads(first.read_text())
    curve = [(0, start["value"])] + [(r["env_steps"], r[metric]) for r in rows]
    seeds = [job["seed"] * job["episodes"] + i for i in range(job["episodes"])]
    trainer.eval_agent.reseed(job["seed"])
    records: list[dict[str, Any]] = []

    def record(ep: Any) -> None:
        key = f"{job['entry']}|{job['agent']}|{job['seed']}|{ep.seed}"
        rival = {"opponent": job["opponent"]} if job.get("opponent") else {}  # a seat's rival
        records.append({"key": key, "entry": job["entry"], "agent": job["agent"],
                        "run_seed": job["seed"], **rival, **ep.to_dict()})  # fmt: skip

    players: Any = trainer.eval_agent
    seat = None
    if trainer.seats is not None:  # a multi-agent game: its seat against the eval opponent
        players, seat = trainer.seats.evaluation(players)
    collect(config.env, players, seeds, 1, split="test", options=config.env_options,
            max_turns=config.max_turns, on_episode=record, train_seat=seat)  # fmt: skip
    result = {"curve": curve, "episodes": records, "env_steps": trainer.env_steps,
              "elapsed_s": time.monotonic() - started}  # fmt: skip
    write_json_atomic(done, result)
    return result


def run_jobs(jobs: list[dict], workers: int, say: Callable[[str], None],
             progress: str = "auto", backend: str = "local") -> list[dict]:  # fmt: skip
    """Run every job (``workers`` at once) and return their results in job order.

    Args:
        jobs: Job dicts (see :func:`train_job`).
        workers: Runs at once; 1 runs them in this process.
        say: Prints a line (one per finished run, and progress lines in ``lines`` mode).
        progress: ``TrainConfig.progress`` mode for the runs' progress.
        backend: ``local`` (a process pool here) or ``ray`` (one Ray task per run, placed by
            its declared CPU/GPU needs: :mod:`turngym.backends.ray_bench`).
    """
    from turngym.trainers.progress import MultiRunDisplay

    display = MultiRunDisplay(progress, say)
    try:
        if backend == "ray":
            from turngym.backends.ray_bench import run_jobs_ray

            def announce(result: dict, job: dict) -> dict:
                return _announce(result, job, say)

            return run_jobs_ray(jobs, train_job, display, announce)
        if workers == 1:  # events go straight to the display (it has the queue's `put`)
            return [_announce(train_job(j, display), j, say) for j in jobs]
        return _run_pool(jobs, workers, say, display)
    finally:
        display.close()


def _run_pool(jobs: list[dict], workers: int, say: Callable[[str], None], display: Any,
              job_fn: Callable[[dict, Any], dict] = train_job) -> list[dict]:  # fmt: skip
    # "spawn": torch's thread pools do not survive fork; each worker starts clean. A manager
    # queue carries the workers' progress events to a thread that shows them.
    with multiprocessing.Manager() as manager:
        queue = manager.Queue()

        def pump() -> None:
            while True:
                item = queue.get()
                if item is None:
                    return
                display(item)

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        try:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                futures = [pool.submit(job_fn, j, queue) for j in jobs]
                return [_announce(f.result(), j, say) for f, j in zip(futures, jobs, strict=True)]
        except BrokenProcessPool as err:  # a worker was killed (signal, out of memory)
            raise RunProcessDied(
                "a training run's process died (killed, or out of memory); finished runs and "
                "the others' checkpoints are kept: rerun the same command to resume"
            ) from err
        finally:
            queue.put(None)
            thread.join(timeout=10)


def _announce(result: dict, job: dict, say: Callable[[str], None]) -> dict:
    final = result["curve"][-1][1]
    say(f"  {Path(job['out_dir']).name}: {result['env_steps']} env steps, last curve point "
        f"{final:.2f}, {result['elapsed_s']:.0f} s")  # fmt: skip
    return result
