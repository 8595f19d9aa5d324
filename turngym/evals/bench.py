"""``turngym bench``: credit estimators trained head-to-head with one budget, then compared.

Every (estimator, env, seed) run trains the same model recipe with the same budget in env
steps (samples — the fair unit when estimators differ in cost per update), evaluating the
policy on the test split along the way (the learning curve) and at the end (the final score,
``episodes`` test tasks per seed). The scripted baselines (random, oracle) are evaluated on a
suite covering every env family, so each number has a floor and a ceiling next to it.

The bench directory holds ``train/<run>/`` (each trainer's checkpoints and metrics; a finished
run leaves ``done.json`` and is not trained again when the bench is rerun),
``baselines-<hash>/`` (an eval run directory), and the bench's own ``episodes.jsonl`` +
``results.json`` (trained policies as agents ``train:<estimator>``, with their mean learning
curves), ``curves.png``, ``bench.md`` and ``report.html``. Unless told not to, the results go
to the leaderboard.

Reported per (estimator, env): the final score with its 95% interval (episodes pooled over
seeds), the env steps at which the test curve first reaches ``threshold`` (median over the
seeds that reach it, and how many do), and the area under the curve normalised by the span
of env steps (the curve's average height, mean ± 95% t-interval over seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from turngym._cliargs import mapping_arg
from turngym.evals.report import write_outputs
from turngym.evals.results import (
    EntryResult,
    RunResults,
    env_provenance,
    kwargs_hash,
    provenance,
    read_jsonl,
    summarize_episodes,
    write_json_atomic,
)
from turngym.evals.stats import mean_interval
from turngym.evals.suites import EvalEntry

__all__ = ["BenchSpec", "BenchReport", "DEFAULT_RECIPE", "run_bench", "add_bench_arguments",
           "bench_spec_from_args", "steps_to_threshold", "normalised_auc"]  # fmt: skip

DEFAULT_RECIPE: dict[str, Any] = dict(
    tasks_per_iteration=8,
    group_size=8,
    max_new_tokens=1,  # one token after "<action>": the format is learnable from a random init
    response_prefix="<action>",
    response_suffix="</action>",
    stop=(),
    history=0,
    include_instructions=False,
    invalid_action_penalty=-0.1,
    learning_rate=1e-3,
    entropy_coef=0.01,  # without it GRPO's policy entropy collapsed (benchmarks/learning_...)
    ppo_epochs=2,
    minibatch_size=256,
    eval_temperature=1.0,  # the stochastic policy the estimators optimise
)
"""TrainConfig settings shared by every bench run (the tiny-model recipe of
``benchmarks/learning_frozenlake.py``)."""

DEFAULT_PARAMS: dict[str, dict[str, Any]] = {"grpo": {"score": "return"},
                                             "rloo": {"score": "return"}}  # fmt: skip
"""Estimator parameters the default bench passes: GRPO and RLOO score episodes by their
return, so the step penalty of the default env reaches them as it reaches GiGPO's
discounted returns (the same learning signal for all three)."""


def _default_envs() -> tuple[EvalEntry, ...]:
    # A 3x3 lake with a step cost: small enough that the tiny model learns within the quick
    # budget on 2 CPU cores. The untrained model succeeds ~10% of the time (most of its
    # actions are malformed), a uniformly random valid mover ~40%, the oracle 100%.
    return (EvalEntry("turngym/FrozenLake-v0",
                      options={"difficulty": {"size": 3, "step_penalty": -0.05}},
                      episodes=100),)  # fmt: skip


@dataclass(frozen=True)
class BenchSpec:
    """What a bench compares, and with what budget.

    Attributes:
        estimators: Registered credit estimators.
        envs: Env entries; ``episodes`` is the final test evaluation per seed.
        seeds: Training seeds (model init, task sampling, generation).
        env_steps: Training budget per run in env steps.
        eval_every: Iterations between learning-curve points.
        eval_tasks: Test tasks per learning-curve point.
        threshold: Test score that counts as "reached" for steps-to-threshold.
        metric: The curve's metric (``success`` or ``outcome``).
        recipe: TrainConfig settings for every run (:data:`DEFAULT_RECIPE`).
        params: Estimator name -> its parameters.
        baselines: Scripted agents evaluated on ``baseline_suite``.
        baseline_suite: Suite for the baselines (``smoke`` covers every family).
        baseline_episodes: Episodes per env for the baselines (``None``: the suite's).
    """

    estimators: tuple[str, ...] = ("grpo", "rloo", "gigpo")
    envs: tuple[EvalEntry, ...] = field(default_factory=_default_envs)
    seeds: tuple[int, ...] = (0, 1)
    env_steps: int = 24_000
    eval_every: int = 4
    eval_tasks: int = 32
    threshold: float = 0.3
    metric: str = "success"
    recipe: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_RECIPE))
    params: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_PARAMS))
    baselines: tuple[str, ...] = ("random", "oracle")
    baseline_suite: str = "smoke"
    baseline_episodes: int | None = 20

    def to_dict(self) -> dict[str, Any]:
        """JSON form (recorded in the results' provenance)."""
        data = asdict(self)
        data["envs"] = [e.to_dict() for e in self.envs]
        return data


@dataclass
class BenchReport:
    """What a bench produced: paths and the headline table."""

    out: Path
    results: RunResults
    table: str
    submitted: str | None

    def summary(self) -> str:
        """The table plus where everything is."""
        lines = [self.table, "", f"report: {self.out / 'report.html'}",
                 f"results: {self.out / 'results.json'}"]  # fmt: skip
        if self.submitted:
            lines.append(f"leaderboard: {self.submitted}")
        return "\n".join(lines)


# --- Curve statistics -------------------------------------------------------------------------
def steps_to_threshold(curve: Sequence[tuple[float, float]], threshold: float) -> float | None:
    """Env steps at the first curve point at or above ``threshold`` (``None``: never).

    Example:
        >>> steps_to_threshold([(0, 0.1), (100, 0.4), (200, 0.6)], 0.5)
        200
    """
    return next((steps for steps, value in curve if value >= threshold), None)


def normalised_auc(curve: Sequence[tuple[float, float]]) -> float:
    """Area under the curve (trapezoids) divided by its env-step span: the average height.

    Example:
        >>> normalised_auc([(0, 0.0), (100, 1.0)])
        0.5
    """
    if len(curve) < 2:
        return float(curve[0][1]) if curve else 0.0
    pairs = zip(curve, curve[1:], strict=False)
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in pairs)
    span = curve[-1][0] - curve[0][0]
    return area / span if span > 0 else float(curve[-1][1])


# --- One training run (runs in a worker process) ----------------------------------------------
def _train_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train one (estimator, env, seed), or load it when an earlier bench finished it."""
    run_dir = Path(job["out_dir"])
    done = run_dir / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    import torch

    from turngym.rollout import collect
    from turngym.trainers.config import TrainConfig
    from turngym.trainers.trainer import Trainer

    torch.set_num_threads(job["threads"])
    started = time.monotonic()
    config = TrainConfig(**job["config"])
    trainer = Trainer(config)
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
        records.append({"key": key, "entry": job["entry"], "agent": job["agent"],
                        "run_seed": job["seed"], **ep.to_dict()})  # fmt: skip

    collect(config.env, trainer.eval_agent, seeds, 1, split="test", options=config.env_options,
            max_turns=config.max_turns, on_episode=record)  # fmt: skip
    result = {"curve": curve, "episodes": records, "env_steps": trainer.env_steps,
              "elapsed_s": time.monotonic() - started}  # fmt: skip
    write_json_atomic(done, result)
    return result


# --- The bench ----------------------------------------------------------------------------------
def _run_name(estimator: str, entry: EvalEntry, ehash: str, seed: int) -> str:
    env = entry.env_id.split("/")[-1]
    return f"{estimator}__{env}-{ehash[:6]}__s{seed}"


def run_bench(
    spec: BenchSpec,
    out: str | Path = "runs/bench",
    *,
    workers: int | None = None,
    db: str | None = None,
    submit: bool = True,
    log: Callable[[str], None] | None = None,
) -> BenchReport:
    """Run (or finish) a bench and write its report; see the module docstring.

    Everything is validated before training starts: estimator names and parameters, env ids
    and options (a Trainer-style check), baseline agents.

    Args:
        spec: What to compare.
        out: Bench directory.
        workers: Training runs at once (default: 2, or 1 on a 1-core machine); torch threads
            are split between them.
        db: Leaderboard database (path or SQLAlchemy URL); default ``$TURNGYM_LEADERBOARD``
            or ``leaderboard.db``.
        submit: Whether to submit the results to the leaderboard.
        log: Progress messages.
    """
    from turngym.evals.runner import EvalRequest, evaluate
    from turngym.evals.suites import resolve_entries
    from turngym.trainers.config import TrainConfig
    from turngym.trainers.credit import estimator_registry, resolve_estimator
    from turngym.trainers.trainer import _CAPABILITIES

    say = log or (lambda msg: None)
    out = Path(out)
    for name in spec.estimators:  # fail on a typo or a bad parameter before any training
        estimator_registry.get(name)
        resolve_estimator(name, spec.params.get(name, {}), _CAPABILITIES)
    envs = [env_provenance(e.env_id, e.env_kwargs, e.options) for e in spec.envs]
    cpus = os.cpu_count() or 1
    workers = max(1, workers or min(2, cpus))
    jobs: list[dict[str, Any]] = []
    for entry, env in zip(spec.envs, envs, strict=True):
        for estimator in spec.estimators:
            for seed in spec.seeds:
                run_dir = out / "train" / _run_name(estimator, entry, env["env_kwargs_hash"], seed)
                config = TrainConfig(
                    **spec.recipe, env=entry.env_id, env_options=entry.options,
                    estimator=estimator, estimator_params=spec.params.get(estimator, {}),
                    seed=seed, iterations=1_000_000, max_env_steps=spec.env_steps,
                    eval_every=spec.eval_every, eval_tasks=spec.eval_tasks,
                    max_turns=entry.max_turns, checkpoint_every=spec.eval_every,
                    out_dir=str(run_dir),
                )  # fmt: skip
                jobs.append({"config": config.to_dict(), "out_dir": str(run_dir),
                             "threads": max(1, cpus // workers), "metric": spec.metric,
                             "seed": seed, "episodes": entry.episodes,
                             "entry": f"{entry.env_id}#{env['env_kwargs_hash']}",
                             "agent": f"train:{estimator}", "estimator": estimator,
                             "env_index": len(jobs) // (len(spec.estimators) * len(spec.seeds))})
    # Baselines on the bench's own envs (floor and ceiling of the head-to-head table) and on
    # a suite covering every env family.
    own = list(spec.envs)  # as many episodes as the trained policies get
    suite = resolve_entries([spec.baseline_suite], spec.baseline_episodes)
    baseline_request = EvalRequest(
        tuple(own + [e for e in suite if e not in own]), spec.baselines, (0,), "test",
        suites=(spec.baseline_suite,),
    ) if spec.baselines else None  # fmt: skip

    started = time.monotonic()
    say(f"bench: {len(jobs)} training runs ({len(spec.estimators)} estimators x "
        f"{len(spec.envs)} envs x {len(spec.seeds)} seeds), {workers} at once, "
        f"{spec.env_steps} env steps each -> {out}")  # fmt: skip
    done = _run_jobs(jobs, workers, say)
    baselines, baseline_dir = None, None
    if baseline_request is not None:
        say(f"baselines {', '.join(spec.baselines)} on suite {spec.baseline_suite!r}")
        # Named by the request, so a bench rerun with other baselines starts a fresh eval.
        baseline_dir = out / f"baselines-{kwargs_hash(baseline_request.to_dict())}"
        baselines = evaluate(baseline_request, baseline_dir)
    results = _bench_results(spec, envs, jobs, done, baselines, out)
    table = bench_table(spec, jobs, done, results)
    write_outputs(spec, out, jobs, done, results, table, baseline_dir)
    say(f"bench finished in {time.monotonic() - started:.0f} s")
    submitted = _submit(out, db, say) if submit else None
    return BenchReport(out, results, table, submitted)


def _run_jobs(jobs: list[dict], workers: int, say: Callable[[str], None]) -> list[dict]:
    if workers == 1:
        return [_announce(_train_job(j), j, say) for j in jobs]
    # "spawn": torch's thread pools do not survive fork; each worker starts clean.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_train_job, j) for j in jobs]
        return [_announce(f.result(), j, say) for f, j in zip(futures, jobs, strict=True)]


def _announce(result: dict, job: dict, say: Callable[[str], None]) -> dict:
    final = result["curve"][-1][1]
    say(f"  {Path(job['out_dir']).name}: {result['env_steps']} env steps, last curve point "
        f"{final:.2f}, {result['elapsed_s']:.0f} s")  # fmt: skip
    return result


def _bench_results(spec: BenchSpec, envs: list[dict], jobs: list[dict], done: list[dict],
                   baselines: RunResults | None, out: Path) -> RunResults:  # fmt: skip
    from turngym.evals.plots import mean_curve

    entries = []
    for index, env in enumerate(envs):
        for estimator in spec.estimators:
            mine = [(j, d) for j, d in zip(jobs, done, strict=True)
                    if j["env_index"] == index and j["estimator"] == estimator]  # fmt: skip
            steps, mean, _, _ = mean_curve([d["curve"] for _, d in mine])
            entries.append(EntryResult(
                **env, split="test", agent=f"train:{estimator}",
                agent_config={"estimator": estimator, "params": spec.params.get(estimator, {}),
                              "recipe": spec.recipe, "env_steps": spec.env_steps},
                seeds=list(spec.seeds), episodes_per_seed=spec.envs[index].episodes,
                metrics=summarize_episodes(ep for _, d in mine for ep in d["episodes"]),
                curve=[{"env_steps": round(float(s)), spec.metric: float(v)}
                       for s, v in zip(steps, mean, strict=True)],
            ))  # fmt: skip
    if baselines is not None:
        entries += baselines.entries
    return RunResults("bench", {**provenance(), "bench": spec.to_dict()}, entries)


def bench_table(spec: BenchSpec, jobs: list[dict], done: list[dict], results: RunResults) -> str:
    """The headline Markdown table: final score, steps-to-threshold and AUC per estimator."""
    from turngym.evals.stats import format_interval
    from turngym.evals.tables import entry_note, short_label

    lines = [f"| Estimator | Env | final {spec.metric} | 95% CI | n | steps to "
             f"{spec.threshold:g} (median; seeds reaching) | AUC (mean ± 95% CI over seeds) |",
             "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    trained = [e for e in results.entries if e.agent.startswith("train:")]
    for entry in trained:
        estimator = entry.agent.split(":", 1)[1]
        mine = [d for j, d in zip(jobs, done, strict=True)
                if j["estimator"] == estimator and j["entry"] == entry.key]  # fmt: skip
        reach = [steps_to_threshold(d["curve"], spec.threshold) for d in mine]
        hit = [r for r in reach if r is not None]
        steps = f"{statistics.median(hit):,.0f} ({len(hit)}/{len(mine)})" if hit else \
            f"not reached (0/{len(mine)})"  # fmt: skip
        aucs = [normalised_auc(d["curve"]) for d in mine]
        auc_mean = statistics.fmean(aucs)
        std = statistics.stdev(aucs) if len(aucs) > 1 else 0.0
        low, high = mean_interval(auc_mean, std, len(aucs))
        m = entry.metrics[spec.metric]
        lines.append(f"| {estimator} | {short_label(entry)} | {m.mean:.3f} | {format_interval(m)} "
                     f"| {m.n} | {steps} | {auc_mean:.3f} ± {(high - low) / 2:.3f} |")  # fmt: skip
    bench_keys = {e.key for e in trained}
    for entry in results.entries:  # the scripted floor and ceiling on the same envs
        if not entry.agent.startswith("train:") and entry.key in bench_keys:
            m = entry.metrics[spec.metric]
            lines.append(f"| *{entry.agent}* (baseline) | {short_label(entry)} | {m.mean:.3f} "
                         f"| {format_interval(m)} | {m.n} | — | — |")  # fmt: skip
    notes = {f"{short_label(e)}: {entry_note(e)}" for e in trained if entry_note(e)}
    return "\n".join(lines + ([""] + sorted(notes) if notes else []))


def _submit(out: Path, db: str | None, say: Callable[[str], None]) -> str | None:
    """Submit the bench to the leaderboard; a resubmission of the same results is a no-op."""
    try:
        from turngym.leaderboard.store import LeaderboardStore
    except ImportError as err:  # the harness extra is missing
        say(f"leaderboard: not submitted ({err})")
        return None
    url = db or os.environ.get("TURNGYM_LEADERBOARD", "leaderboard.db")
    results = json.loads((out / "results.json").read_text())
    # Named by content: rerunning a finished bench re-derives identical entries -> same name.
    content = {"bench": results["provenance"]["bench"], "entries": results["entries"]}
    name = f"bench-{kwargs_hash(content)}"
    with LeaderboardStore(url) as store:
        if any(s["name"] == name for s in store.submissions()):
            return f"{url} (already there as {name})"
        try:
            store.submit(out, name=name)
        except ValueError as err:
            say(f"leaderboard: not submitted: {err}")
            return None
    return f"{url} as {name}"


# --- CLI ----------------------------------------------------------------------------------------
def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``turngym bench`` (every one defaults to the quick bench)."""
    d = BenchSpec()
    p.add_argument("--estimators", nargs="+", default=list(d.estimators))
    p.add_argument("--envs", nargs="+", default=None,
                   help="env ids (default: a 3x3 FrozenLake with a step cost)")
    p.add_argument("--options", type=mapping_arg, default=None,
                   help='reset options for --envs as JSON, e.g. \'{"level": 1}\'')
    p.add_argument("--seeds", nargs="+", type=int, default=list(d.seeds))
    p.add_argument("--env-steps", type=int, default=d.env_steps, help="budget per run")
    p.add_argument("--eval-every", type=int, default=d.eval_every, help="iterations per point")
    p.add_argument("--eval-tasks", type=int, default=d.eval_tasks, help="tasks per point")
    p.add_argument("--episodes", type=int, default=None, help="final test episodes per seed")
    p.add_argument("--threshold", type=float, default=d.threshold)
    p.add_argument("--recipe", type=mapping_arg, default=None,
                   help="TrainConfig overrides as JSON, merged into the default recipe")
    p.add_argument("--params", type=mapping_arg, default=None,
                   help='estimator parameters as JSON, e.g. \'{"gigpo": {"omega": 0.5}}\'')
    p.add_argument("--baselines", nargs="*", default=list(d.baselines))
    p.add_argument("--baseline-suite", default=d.baseline_suite)
    p.add_argument("--workers", type=int, default=None, help="training runs at once")
    p.add_argument("--out", type=Path, default=Path("runs/bench"))
    p.add_argument("--db", default=None, help="leaderboard (default $TURNGYM_LEADERBOARD or "
                   "leaderboard.db)")  # fmt: skip
    p.add_argument("--no-submit", action="store_true", help="do not submit to the leaderboard")


_PER_RUN = ("env", "env_options", "estimator", "estimator_params", "seed", "iterations",
            "max_env_steps", "eval_every", "eval_tasks", "max_turns", "checkpoint_every",
            "out_dir")  # fmt: skip
"""TrainConfig fields the bench sets for each run (its own options), not ``--recipe``."""


def bench_spec_from_args(args: argparse.Namespace) -> BenchSpec:
    """Build the spec from CLI options (unset options keep the quick defaults).

    Raises:
        ValueError: ``--recipe`` sets a field the bench sets per run.
    """
    d = BenchSpec()
    fixed = sorted(set(args.recipe or {}) & set(_PER_RUN))
    if fixed:
        raise ValueError(f"--recipe cannot set {', '.join(fixed)}: the bench sets them for each "
                         "run; use --envs, --options, --estimators, --params, --seeds, "
                         "--env-steps, --eval-every or --eval-tasks instead")  # fmt: skip
    envs = d.envs
    if args.envs:
        episodes = args.episodes or 100
        envs = tuple(EvalEntry(e, options=args.options or {}, episodes=episodes)
                     for e in args.envs)  # fmt: skip
    elif args.episodes:
        envs = tuple(EvalEntry(e.env_id, e.env_kwargs, e.options, args.episodes, e.max_turns)
                     for e in envs)  # fmt: skip
    return BenchSpec(
        estimators=tuple(args.estimators), envs=envs, seeds=tuple(args.seeds),
        env_steps=args.env_steps, eval_every=args.eval_every, eval_tasks=args.eval_tasks,
        threshold=args.threshold, recipe={**d.recipe, **(args.recipe or {})},
        params={**d.params, **(args.params or {})}, baselines=tuple(args.baselines),
        baseline_suite=args.baseline_suite,
    )  # fmt: skip

