"""``turngym bench``: credit estimators trained head-to-head with one budget, then compared.

Every (estimator, env, seed) run trains the same model recipe with the same budget in env
steps (samples — the fair unit when estimators differ in cost per update), evaluating the
policy on the test split along the way (the learning curve) and at the end (the final score,
``episodes`` test tasks per seed). The scripted baselines (random, oracle) are evaluated on the
bench's own envs (the floor and ceiling of the head-to-head table) and on a suite covering
every env family.

Suites of settings (:data:`BENCH_SUITES`): ``quick`` (the default: ~6-10 minutes on 2 CPU
cores), ``horizon`` (a longer, sparser task where step-level credit should matter; 3 seeds)
and ``tictactoe`` (one seat of a two-player game). Command-line options override a suite's
settings.

A multi-agent game as a bench env trains one seat, against a fixed opponent or in self-play,
and is scored in that seat against a named opponent (:mod:`turngym.evals.bench_seats`).

The bench directory holds ``train/<run>/`` (each trainer's checkpoints and metrics; a finished
run leaves ``done.json`` and is not trained again when the bench is rerun),
``baselines-<hash>/`` (an eval run directory), and the bench's own ``episodes.jsonl`` +
``results.json`` (trained policies as agents ``train:<estimator>``, with their mean learning
curves), ``curves.png``, ``bench.md`` and ``report.html``. Unless told not to, the results go
to the leaderboard.

Reported per (estimator, env): the final score with its 95% interval (episodes pooled over
seeds), whether that interval lies above the random baseline's, the env steps at which the
test curve first reaches ``threshold`` (median over the seeds that reach it, and how many do),
and the area under the curve normalised by the span of env steps (the curve's average height,
mean ± 95% t-interval over seeds).

Determinism: the same command on the same machine gives the same tables (seeded tasks, model
initialisation, sampling and minibatch order). Across machines or torch thread counts, float
summation order in the matrix kernels differs, sampled actions can diverge, and the numbers
move within their intervals.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from turngym.backends import check_backend
from turngym.evals.bench_jobs import run_jobs
from turngym.evals.bench_seats import (
    action_vocabulary,
    check_seat_jobs,
    job_entry_key,
    seat_envs,
    seat_fields,
    seat_setup,
    train_overrides,
)
from turngym.evals.bench_table import bench_table
from turngym.evals.report import short_env_labels, write_outputs
from turngym.evals.results import (
    EntryResult,
    RunResults,
    env_provenance,
    kwargs_hash,
    provenance,
    read_jsonl,
    summarize_episodes,
)
from turngym.evals.suites import EvalEntry

__all__ = ["BenchSpec", "BenchReport", "BENCH_SUITES", "DEFAULT_RECIPE", "run_bench",
           "bench_suite", "describe_setup"]  # fmt: skip

DEFAULT_RECIPE: dict[str, Any] = dict(
    tasks_per_iteration=8,
    group_size=8,
    max_new_tokens=1,  # one token after "<action>": the move
    decoding="actions",  # ... drawn from the env's moves: the untrained policy is a random valid
    # mover, so the whole budget goes on credit assignment, not on learning the grammar
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
"""TrainConfig settings shared by every bench run (the tiny-model recipe)."""

DEFAULT_PARAMS: dict[str, dict[str, Any]] = {"grpo": {"score": "return"},
                                             "rloo": {"score": "return"}}  # fmt: skip
"""Estimator parameters the default bench passes: GRPO and RLOO score episodes by their
return, so the step penalty of the default env reaches them as it reaches GiGPO's
discounted returns (the same learning signal for all three)."""


def _quick_envs() -> tuple[EvalEntry, ...]:
    # A 3x3 lake with a step cost and 6 moves: small enough that the tiny model learns within
    # the quick budget on 2 CPU cores. A uniformly random valid mover succeeds ~32% of the
    # time, the oracle always (in 2 moves on average).
    return (EvalEntry("turngym/FrozenLake-v0",
                      options={"difficulty": {"size": 3, "step_penalty": -0.05}},
                      episodes=100, max_turns=6),)  # fmt: skip


HORIZON_ENV = "turngym/FrozenLake-v0"
HORIZON_OPTIONS: dict[str, Any] = {"difficulty": {"size": 4}}
HORIZON_TURNS = 12
"""The ``horizon`` suite's env: a 4x4 lake with the goal's reward only, 12 moves."""


def _horizon_envs() -> tuple[EvalEntry, ...]:
    # Longer episodes and a sparse signal, where step-level credit (GiGPO's anchor-state
    # groups) should help most.
    return (EvalEntry(HORIZON_ENV, options=HORIZON_OPTIONS, episodes=100,
                      max_turns=HORIZON_TURNS),)  # fmt: skip


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
        baseline_suite: Suite for the baselines besides the bench's own envs (``smoke``
            covers every family; ``None``: the bench's envs only).
        baseline_episodes: Episodes per env for the baselines (``None``: the suite's).
        suite: Name of the bench suite these settings started from (for the report).
        opponent: Multi-agent envs: the fixed opponent the policy trains against (``None``:
            self-play).
        train_seat: Multi-agent envs: the trained seat (default: the first against an
            opponent, every seat in self-play).
        eval_opponent: Multi-agent envs: the opponent of the curve, the final score and the
            baselines (default: ``opponent``, or ``random`` in self-play).
    """

    estimators: tuple[str, ...] = ("grpo", "rloo", "gigpo")
    envs: tuple[EvalEntry, ...] = field(default_factory=_quick_envs)
    seeds: tuple[int, ...] = (0, 1)
    env_steps: int = 24_000
    eval_every: int = 4
    eval_tasks: int = 32
    threshold: float = 0.5
    metric: str = "success"
    recipe: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_RECIPE))
    params: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_PARAMS))
    baselines: tuple[str, ...] = ("random", "oracle")
    baseline_suite: str | None = "smoke"
    baseline_episodes: int | None = 20
    suite: str = "quick"
    opponent: str | None = None
    train_seat: str | None = None
    eval_opponent: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (recorded in the results' provenance)."""
        data = asdict(self)
        data["envs"] = [e.to_dict() for e in self.envs]
        return data


BENCH_SUITES: dict[str, Callable[[], BenchSpec]] = {
    "quick": BenchSpec,
    "horizon": lambda: BenchSpec(envs=_horizon_envs(), seeds=(0, 1, 2), env_steps=40_000,
                                 eval_every=8, threshold=0.5, params={}, suite="horizon"),
    "tictactoe": lambda: BenchSpec(
        envs=(EvalEntry("turngym/TicTacToe-v0", episodes=100),), opponent="random",
        baselines=("random", "minimax"), baseline_suite=None, suite="tictactoe"),
}
"""Named bench settings: ``quick`` (the default), ``horizon``, and ``tictactoe`` (a multi-agent
game: ``player_0`` trained against ``random`` and scored against it, next to the ``random`` and
``minimax`` baselines in that seat)."""


def bench_suite(name: str) -> BenchSpec:
    """The settings of a named bench suite.

    Raises:
        turngym.registry.UnknownNameError: Unknown name (with suggestions).
    """
    from turngym.registry import UnknownNameError, unknown_name_message

    if name not in BENCH_SUITES:
        raise UnknownNameError(unknown_name_message("bench suite", name, list(BENCH_SUITES)))
    return BENCH_SUITES[name]()


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


# --- The bench ----------------------------------------------------------------------------------
def _run_name(estimator: str, entry: EvalEntry, ehash: str, seed: int) -> str:
    env = entry.env_id.split("/")[-1]
    return f"{estimator}__{env}-{ehash[:6]}__s{seed}"


def _threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def _jobs(spec: BenchSpec, envs: list[dict], out: Path, workers: int) -> list[dict]:
    """One training job per (env, estimator, seed)."""
    from turngym.trainers.config import TrainConfig

    jobs: list[dict[str, Any]] = []
    for index, (entry, env) in enumerate(zip(spec.envs, envs, strict=True)):
        for estimator in spec.estimators:
            for seed in spec.seeds:
                run_dir = out / "train" / _run_name(estimator, entry, env["env_kwargs_hash"], seed)
                config = TrainConfig(
                    **{**spec.recipe, **train_overrides(spec, entry)},
                    env=entry.env_id, env_options=entry.options,
                    estimator=estimator, estimator_params=spec.params.get(estimator, {}),
                    seed=seed, iterations=1_000_000, max_env_steps=spec.env_steps,
                    eval_every=spec.eval_every, eval_tasks=spec.eval_tasks,
                    max_turns=entry.max_turns, checkpoint_every=spec.eval_every,
                    out_dir=str(run_dir),
                )  # fmt: skip
                jobs.append({"config": config.to_dict(), "out_dir": str(run_dir),
                             "threads": _threads(workers), "metric": spec.metric,
                             "seed": seed, "episodes": entry.episodes,
                             "entry": job_entry_key(entry, env["env_kwargs_hash"]),
                             **seat_fields(entry),
                             "agent": f"train:{estimator}", "estimator": estimator,
                             "env_index": index})  # fmt: skip
    return jobs


def _validate(spec: BenchSpec) -> None:
    """Fail on a typo or a bad parameter before any training."""
    from turngym.trainers.config import TrainConfig
    from turngym.trainers.credit import estimator_registry, resolve_estimator
    from turngym.trainers.trainer import _CAPABILITIES

    for name in spec.estimators:
        estimator_registry.get(name)
        resolve_estimator(name, spec.params.get(name, {}), _CAPABILITIES)
    TrainConfig(**spec.recipe)  # recipe keys and values


def run_bench(
    spec: BenchSpec,
    out: str | Path = "runs/bench",
    *,
    workers: int | None = None,
    db: str | None = None,
    submit: bool = True,
    log: Callable[[str], None] | None = None,
    progress: str = "auto",
    backend: str = "local",
) -> BenchReport:
    """Run (or finish) a bench and write its report; see the module docstring.

    Everything is validated before training starts: estimator names and parameters, the
    recipe, env ids and options, baseline agents.

    Args:
        spec: What to compare.
        out: Bench directory.
        workers: Training runs at once (default: 2, or 1 on a 1-core machine); torch threads
            are split between them.
        db: Leaderboard database (path or SQLAlchemy URL); default ``$TURNGYM_LEADERBOARD``
            or ``leaderboard.db``.
        submit: Whether to submit the results to the leaderboard.
        log: Progress messages.
        progress: How the runs' progress is shown (``TrainConfig.progress`` modes).
        backend: ``local`` or ``ray``: training runs become Ray tasks declaring their CPU/GPU
            needs, and the baselines' envs run in Ray actors (:mod:`turngym.backends`).
    """
    from turngym.evals.runner import EvalRequest, evaluate
    from turngym.evals.suites import resolve_entries

    say = log or (lambda msg: None)
    out = Path(out)
    spec = replace(spec, envs=seat_envs(spec))  # games: the seat and opponent they are scored in
    _validate(spec)
    check_backend(backend)
    envs = [env_provenance(e.env_id, e.env_kwargs, e.options, e.max_turns) for e in spec.envs]
    workers = max(1, workers or min(2, os.cpu_count() or 1))
    jobs = _jobs(spec, envs, out, workers)
    check_seat_jobs(jobs)  # seats, opponents and recipe of multi-agent runs, before training
    # Baselines on the bench's own envs (floor and ceiling of the head-to-head table) and on
    # a suite covering every env family.
    own = list(spec.envs)  # as many episodes as the trained policies get
    names = [spec.baseline_suite] if spec.baseline_suite else []
    suite = resolve_entries(names, spec.baseline_episodes)
    baseline_request = EvalRequest(
        tuple(own + [e for e in suite if e not in own]), spec.baselines, (0,), "test",
        suites=tuple(names),
    ) if spec.baselines else None  # fmt: skip

    started = time.monotonic()
    say(f"bench ({spec.suite}): {len(jobs)} training runs ({len(spec.estimators)} estimators x "
        f"{len(spec.envs)} envs x {len(spec.seeds)} seeds), {workers} at once, "
        f"{spec.env_steps:,} env steps each -> {out}")  # fmt: skip
    done = run_jobs(jobs, workers, say, progress, backend)
    baselines, baseline_dir = None, None
    if baseline_request is not None:
        say(f"baselines {', '.join(spec.baselines)} on the bench's envs"
            + (f" and suite {spec.baseline_suite!r}" if spec.baseline_suite else ""))
        # Named by the request, so a bench rerun with other baselines starts a fresh eval.
        baseline_dir = out / f"baselines-{kwargs_hash(baseline_request.to_dict())}"
        baselines = evaluate(baseline_request, baseline_dir, backend=backend)
    results = _bench_results(spec, envs, jobs, done, baselines, workers)
    table = bench_table(spec.metric, spec.threshold, jobs, done, results)
    episodes = [ep for d in done for ep in d["episodes"]]
    if baseline_dir is not None:
        episodes += [r for _, r in read_jsonl(baseline_dir / "episodes.jsonl")]
    write_outputs(out, results=results, table=table, setup=describe_setup(spec, workers),
                  curves=_curves(spec, jobs, done, results), metric=spec.metric,
                  threshold=spec.threshold, config=spec.to_dict(), episodes=episodes)  # fmt: skip
    say(f"bench finished in {time.monotonic() - started:.0f} s")
    submitted = _submit(out, db, say) if submit else None
    return BenchReport(out, results, table, submitted)


def _bench_results(spec: BenchSpec, envs: list[dict], jobs: list[dict], done: list[dict],
                   baselines: RunResults | None, workers: int) -> RunResults:  # fmt: skip
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
                **seat_fields(spec.envs[index]),
            ))  # fmt: skip
    if baselines is not None:
        entries += baselines.entries
    # Torch threads per run and runs at once: what float summation order depends on.
    threads = {"torch_threads_per_run": _threads(workers), "runs_at_once": workers}
    return RunResults("bench", {**provenance(), **threads, "bench": spec.to_dict()}, entries)


def _curves(spec: BenchSpec, jobs: list[dict], done: list[dict],
            results: RunResults) -> dict[str, dict[str, Any]]:  # fmt: skip
    """``{entry key: {"label", "runs": {agent: [curve per seed]}, "levels": {baseline: v}}}``."""
    labels = short_env_labels([e for e in results.entries if e.agent.startswith("train:")])
    curves: dict[str, dict[str, Any]] = {}
    for entry in results.entries:
        if entry.key not in labels:
            continue
        panel = curves.setdefault(entry.key, {"label": labels[entry.key][0], "runs": {},
                                              "levels": {}})  # fmt: skip
        if entry.curve is None:  # a scripted baseline on the same env: a level line
            panel["levels"][entry.agent] = entry.metrics[spec.metric].mean
            continue
        estimator = entry.agent.split(":", 1)[1]
        panel["runs"][entry.agent] = [
            d["curve"] for j, d in zip(jobs, done, strict=True)
            if j["estimator"] == estimator and j["entry"] == entry.key
        ]  # fmt: skip
    return curves


def describe_setup(spec: BenchSpec, workers: int) -> list[str]:
    """The knobs a reader needs to interpret the table (starting policy, decoding, budget)."""
    from turngym.trainers.config import TrainConfig

    cfg = TrainConfig(**spec.recipe)
    model = "tiny Llama" if cfg.model == "tiny" else cfg.model
    if cfg.model == "tiny":
        model += f" (d={cfg.tiny_d_model}, {cfg.tiny_layers} layers), random init, no warm start"
    if cfg.decoding == "actions":
        moves = sorted({a for e in spec.envs for a in action_vocabulary(e.env_id)})
        decoding = (f"restricted to the env's actions ({', '.join(moves)}): the untrained "
                    "policy is a random valid mover")  # fmt: skip
    else:
        decoding = f"free (up to {cfg.max_new_tokens} tokens after {cfg.response_prefix!r})"
    return [
        f"Starting policy: {model}.",
        f"Decoding: {decoding}.",
        f"Sampling temperature {cfg.temperature:g} in training, {cfg.eval_temperature:g} in "
        "evaluation (the stochastic policy the estimators optimise).",
        f"Budget: {spec.env_steps:,} env steps per run; {cfg.tasks_per_iteration} tasks x "
        f"G={cfg.group_size} per iteration, lr {cfg.learning_rate:g}, {cfg.ppo_epochs} PPO "
        f"epochs, entropy bonus {cfg.entropy_coef:g}, invalid-action penalty "
        f"{cfg.invalid_action_penalty:g}.",
        f"Seeds {', '.join(map(str, spec.seeds))}; final score on "
        f"{', '.join(str(e.episodes) for e in spec.envs)} test tasks per seed; "
        f"{_threads(workers)} torch thread(s) per run, {workers} run(s) at once.",
        *seat_setup(spec),
    ]


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
