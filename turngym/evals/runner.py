"""``turngym eval``: entries x agents x seeds -> a resumable run directory.

The run directory holds ``run.json`` (the request), ``episodes.jsonl`` (one line per finished
episode) and ``results.json`` (aggregates with provenance); see :mod:`turngym.evals.results`.

**Resuming.** Every episode has a key ``"<env_id>#<hash>|<agent>|<run seed>|<task seed>"``
(for a seat of a multi-agent game ``"<env_id>#<hash>@<seat> vs <opponent>|..."``).
Episodes are appended to ``episodes.jsonl`` with one ``write`` each the moment they finish, so
a run killed at any point (SIGKILL included) leaves only complete lines, plus at worst one torn
last line, which the next run cuts off. Rerunning the same request skips every key already in
the file: the killed run loses only the episodes that were in flight and none is written twice.
A different request in the same directory is refused rather than mixed in.

**Seeds.** Run seed ``s`` seeds the agent and selects tasks ``s*N .. s*N+N-1`` of the split
(N episodes per seed), so seeds add tasks rather than repeat them. An uninterrupted run is
deterministic; a resumed one gives a sampling agent a fresh random stream for the episodes it
replays, which is as valid a sample but not bit-identical.

**Multi-agent games.** An entry with an ``opponent`` plays each agent in each of its seats
against that opponent (seeded from the run seed, :func:`~turngym.evals.seats.opponent_seed`);
every (entry, seat, agent) is a result of its own (:mod:`turngym.evals.seats`). Before the
first episode, one game per entry and seat checks that the opponent can play it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turngym.agents import make_agent
from turngym.backends import check_backend
from turngym.envs.multiagent.registry import is_multiagent
from turngym.evals.results import (
    EntryResult,
    ResultsError,
    RunResults,
    env_provenance,
    provenance,
    read_jsonl,
    redact,
    summarize_episodes,
    write_json_atomic,
)
from turngym.evals.seats import entry_key, opponent_seed, resolve_seats, seat_players
from turngym.evals.suites import EvalEntry
from turngym.registry import env_registry
from turngym.rollout import acollect, collect
from turngym.types import Episode

__all__ = ["EvalRequest", "RunDirError", "evaluate", "episode_key"]

RUN_SCHEMA = "turngym.run/1"


class RunDirError(ValueError):
    """The run directory holds a different eval (or is not a run directory)."""


@dataclass(frozen=True)
class EvalRequest:
    """What ``turngym eval`` was asked to do (written to ``run.json``).

    Attributes:
        entries: Env configurations (see :func:`turngym.evals.suites.resolve_entries`).
        agents: Agent specs (``random``, ``oracle``, ``hf:PATH``, ``openai:MODEL@URL``, ...).
        seeds: Run seeds.
        split: Split the tasks come from.
    """

    entries: tuple[EvalEntry, ...]
    agents: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    split: str = "test"
    suites: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not self.entries or not self.agents or not self.seeds:
            raise ValueError("an eval needs at least one env, one agent and one seed")
        if self.split not in ("train", "validation", "test"):
            raise ValueError(f"split must be train, validation or test, got {self.split!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form; agent specs are redacted (no credentials on disk)."""
        return {"entries": [e.to_dict() for e in self.entries],
                "agents": [redact(a) for a in self.agents], "seeds": list(self.seeds),
                "split": self.split}  # fmt: skip


def episode_key(entry: EvalEntry, agent: str, run_seed: int, task_seed: int, ehash: str,
                seat: str | None = None) -> str:  # fmt: skip
    """The identity of one episode within a run (with the seat and opponent in a game)."""
    opponent = None if seat is None else redact(str(entry.opponent))
    key = entry_key(entry.env_id, ehash, seat, opponent)
    return f"{key}|{redact(agent)}|{run_seed}|{task_seed}"


class _EpisodeLog:
    """Append-only ``episodes.jsonl``: one ``os.write`` per episode, torn tails cut on open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: set[str] = set()
        valid_end = 0
        if path.exists():
            for end, record in read_jsonl(path):
                self.done.add(str(record.get("key")))
                valid_end = end
            if path.stat().st_size != valid_end:  # a line torn by a kill mid-write
                os.truncate(path, valid_end)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with self.lock:  # async evals finish episodes from several worker threads
            if record["key"] in self.done:
                return
            os.write(self.fd, data)  # appends to a regular file are not split by signals
            self.done.add(record["key"])

    def close(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)


@dataclass
class _Job:
    entry: EvalEntry
    ehash: str
    agent: str
    seed: int
    task_seeds: list[int]
    seat: str | None = None  # multi-agent games: the agent's seat; the opponent plays the rest
    seats: tuple[str, ...] = ()  # ... and every seat of the game


def evaluate(
    request: EvalRequest,
    out_dir: str | Path,
    *,
    max_concurrent: int | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    backend: str = "local",
) -> RunResults:
    """Run (or resume) an eval and write its run directory; return the aggregates.

    Everything that can be checked is checked before the first episode: env ids, agent specs,
    reset options (each env is built and reset once to fingerprint it). ``backend="ray"``
    plays the episodes with their envs in Ray actors (:mod:`turngym.backends`); the run
    directory is the same either way, so a run may be resumed on either backend.

    Raises:
        turngym.registry.UnknownNameError: Unknown env id or agent name.
        ValueError: Bad options; :class:`RunDirError` when ``out_dir`` holds another eval.
    """
    say = log or (lambda msg: None)
    out = Path(out_dir)
    check_backend(backend)
    seatings = [_seating(entry) for entry in request.entries]
    # One agent per spec (a model is loaded once); other seeds reseed it, or rebuild it when
    # it cannot be reseeded (cheap scripted agents).
    agents = {spec: make_agent(spec, seed=request.seeds[0]) for spec in request.agents}
    envs = [env_provenance(e.env_id, e.env_kwargs, e.options, e.max_turns)
            for e in request.entries]  # fmt: skip
    opponents = _check_opponents(request, seatings)
    _claim(out, request)
    episodes_log = _EpisodeLog(out / "episodes.jsonl")
    try:
        jobs = _pending(request, envs, seatings, episodes_log.done)
        todo = sum(len(j.task_seeds) for j in jobs)
        say(f"{len(episodes_log.done)} episodes already done, {todo} to run")
        for spec, seed in itertools.product(request.agents, request.seeds):
            mine = [j for j in jobs if j.agent == spec and j.seed == seed]
            if not mine:
                continue
            agent = _seeded(agents[spec], spec, seed)
            if getattr(agent, "prefers_async", False):
                asyncio.run(_run_async(mine, agent, opponents, request, episodes_log,
                                       max_concurrent, backend))  # fmt: skip
            else:
                for job in mine:
                    _run_job(job, agent, opponents, request, episodes_log, max_concurrent,
                             progress, backend)  # fmt: skip
    finally:
        episodes_log.close()
    configs = {spec: _agent_config(spec, agent) for spec, agent in agents.items()}
    rivals = {redact(spec): _agent_config(spec, agent) for spec, agent in opponents.items()}
    results = _aggregate(request, envs, seatings, configs, rivals, out)
    results.save(out / "results.json")
    return results


def _claim(out: Path, request: EvalRequest) -> None:
    """Create the run directory, or check that it holds this same request."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "run.json"
    wanted = {"schema": RUN_SCHEMA, "request": request.to_dict()}
    if path.exists():
        try:
            found = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise RunDirError(
                f"{path}: not valid JSON ({err}); remove it or use another --out"
            ) from err
        if found != wanted:
            raise RunDirError(
                f"{out} holds a different eval (see {path}); rerun that eval to resume it, or "
                "choose another --out directory."
            )
        return
    write_json_atomic(path, wanted)


def _seating(entry: EvalEntry) -> tuple[tuple[str | None, ...], tuple[str, ...]]:
    """``(seats the agent plays, every seat)``; ``((None,), ())`` for a single-agent env."""
    if entry.opponent is None:
        if is_multiagent(entry.env_id):
            raise ValueError(f"{entry.env_id} is a multi-agent game: its eval entry names the "
                             "opponent in the other seats (--opponent minimax, or "
                             "EvalEntry(..., opponent='minimax') in a suite)")  # fmt: skip
        env_registry.get(entry.env_id)  # unknown ids fail here, with did-you-mean
        return (None,), ()
    every = resolve_seats(entry.env_id, entry.env_kwargs)
    return resolve_seats(entry.env_id, entry.env_kwargs, entry.seats), every


def _check_opponents(request: EvalRequest, seatings: list[tuple[tuple, tuple[str, ...]]]
                     ) -> dict[str, Any]:  # fmt: skip
    """Build each opponent once, and play one game per game entry and seat with it.

    A scripted opponent that cannot play a game (``minimax`` in a bargaining game) fails
    here, naming both, before any episode is written.
    """
    from turngym.agents import RandomAgent

    opponents: dict[str, Any] = {}
    for entry, (seats, every) in zip(request.entries, seatings, strict=True):
        if entry.opponent is None:
            continue
        if entry.opponent not in opponents:
            opponents[entry.opponent] = make_agent(entry.opponent, seed=0)
        for seat in seats:
            players = seat_players(every, str(seat), RandomAgent(), opponents[entry.opponent])
            try:
                groups = collect(entry.env_id, players, [0], 1, split=request.split,
                                 options=entry.options, env_kwargs=entry.env_kwargs,
                                 max_turns=entry.max_turns, train_seat=seat)  # fmt: skip
            except Exception as err:
                raise ValueError(f"opponent {redact(entry.opponent)!r} cannot play "
                                 f"{entry.env_id} ({type(err).__name__}: {err}); choose "
                                 "another --opponent") from err  # fmt: skip
            error = groups[0].episodes[0].error
            if error is not None:
                raise ValueError(f"{entry.env_id} failed in a test game against "
                                 f"{redact(entry.opponent)!r} as {seat}: {error}")  # fmt: skip
    return opponents


def _pending(request: EvalRequest, envs: list[dict], seatings: list[tuple[tuple, tuple]],
             done: set[str]) -> list[_Job]:  # fmt: skip
    jobs = []
    for entry, env, (seats, every) in zip(request.entries, envs, seatings, strict=True):
        ehash = env["env_kwargs_hash"]
        for agent in request.agents:
            for seed in request.seeds:
                seeds = [seed * entry.episodes + i for i in range(entry.episodes)]
                for seat in seats:
                    left = [s for s in seeds
                            if episode_key(entry, agent, seed, s, ehash, seat) not in done]
                    if left:
                        jobs.append(_Job(entry, ehash, agent, seed, left, seat, every))
    return jobs


def _recorder(job: _Job, log: _EpisodeLog) -> Callable[[Episode], None]:
    opponent = None if job.seat is None else redact(str(job.entry.opponent))
    entry = entry_key(job.entry.env_id, job.ehash, job.seat, opponent)

    def record(episode: Episode) -> None:
        key = episode_key(job.entry, job.agent, job.seed, episode.seed, job.ehash, job.seat)
        rival = {} if opponent is None else {"opponent": opponent}  # the seat's seat and rival
        log.write({"key": key, "entry": entry, "agent": redact(job.agent), "run_seed": job.seed,
                   **rival, **episode.to_dict()})  # fmt: skip

    return record


def _players(job: _Job, agent: Any, opponents: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """What plays a job's episodes (the agent, or a seat mapping) and the seat to record."""
    if job.seat is None:
        return agent, {}
    spec = str(job.entry.opponent)
    opponent = _seeded(opponents[spec], spec, opponent_seed(job.seed))
    return seat_players(job.seats, job.seat, agent, opponent), {"train_seat": job.seat}


def _collect_kwargs(job: _Job, request: EvalRequest, log: _EpisodeLog, max_concurrent: int | None,
                    backend: str) -> dict[str, Any]:  # fmt: skip
    return dict(split=request.split, options=job.entry.options, env_kwargs=job.entry.env_kwargs,
                max_turns=job.entry.max_turns, max_concurrent=max_concurrent,
                on_episode=_recorder(job, log), backend=backend)  # fmt: skip


def _seeded(agent: Any, spec: str, seed: int) -> Any:
    """``agent`` restarted from ``seed`` (``reseed``), or a fresh one built with that seed."""
    reseed = getattr(agent, "reseed", None)
    if reseed is None:
        return make_agent(spec, seed=seed)
    reseed(seed)
    return agent


def _run_job(job: _Job, agent: Any, opponents: dict[str, Any], request: EvalRequest,
             log: _EpisodeLog, max_concurrent: int | None, progress: bool,
             backend: str) -> None:  # fmt: skip
    reseed = getattr(agent, "reseed", None)
    if reseed is not None:  # every env of this (agent, seed) starts from the same stream
        reseed(job.seed)
    players, seat = _players(job, agent, opponents)
    collect(job.entry.env_id, players, job.task_seeds, 1, progress=progress,
            **_collect_kwargs(job, request, log, max_concurrent, backend), **seat)  # fmt: skip


async def _run_async(jobs: list[_Job], agent: Any, opponents: dict[str, Any],
                     request: EvalRequest, log: _EpisodeLog,
                     max_concurrent: int | None, backend: str) -> None:  # fmt: skip
    """Network agents: every env of this (agent, seed) at once; the agent bounds requests."""
    played = [(job, *_players(job, agent, opponents)) for job in jobs]
    await asyncio.gather(*(
        acollect(job.entry.env_id, players, job.task_seeds, 1,
                 **_collect_kwargs(job, request, log, max_concurrent, backend), **seat)
        for job, players, seat in played
    ))  # fmt: skip


def _aggregate(request: EvalRequest, envs: list[dict], seatings: list[tuple[tuple, tuple]],
               configs: dict[str, dict], rivals: dict[str, dict],
               out: Path) -> RunResults:  # fmt: skip
    """Aggregate ``episodes.jsonl`` per (entry, seat, agent) into :class:`RunResults`."""
    by_key: dict[tuple[str, str], list[dict]] = {}
    seen: set[str] = set()
    for _, record in read_jsonl(out / "episodes.jsonl"):
        if record["key"] in seen:  # never expected; counted once if a file was concatenated
            continue
        seen.add(record["key"])
        by_key.setdefault((record["entry"], record["agent"]), []).append(record)
    entries = []
    for entry, env, (seats, _) in zip(request.entries, envs, seatings, strict=True):
        opponent = None if entry.opponent is None else redact(entry.opponent)
        for agent, seat in itertools.product(request.agents, seats):
            key = entry_key(entry.env_id, env["env_kwargs_hash"], seat, opponent)
            episodes = by_key.get((key, redact(agent)), [])
            expected = entry.episodes * len(request.seeds)
            if len(episodes) != expected:
                where = "" if seat is None else f" as {seat}"
                raise ResultsError(
                    f"{entry.label} x {agent}{where}: {len(episodes)} episodes in {out}, "
                    f"expected {expected}; rerun the same command to finish the run."
                )
            entries.append(EntryResult(
                **env, split=request.split, agent=redact(agent),
                agent_config=configs[agent], seeds=list(request.seeds),
                episodes_per_seed=entry.episodes, metrics=summarize_episodes(episodes),
                seat=seat, opponent=None if seat is None else opponent,
            ))  # fmt: skip
    prov = {**provenance(), "suites": list(request.suites)}
    if rivals:  # what each opponent reported about itself (spec, model, sampling)
        prov["opponents"] = rivals
    return RunResults(kind="eval", provenance=prov, entries=entries)


def _agent_config(spec: str, agent: Any) -> dict[str, Any]:
    """The spec plus the agent's own description when it offers one (``config()``, no secrets)."""
    described = getattr(agent, "config", None)
    return {"spec": redact(spec), **(described() if callable(described) else {})}


def load_request(out_dir: str | Path) -> EvalRequest:
    """The request recorded in a run directory's ``run.json``."""
    path = Path(out_dir) / "run.json"
    if not path.exists():
        raise RunDirError(f"{path}: not a run directory (no run.json)")
    data = json.loads(path.read_text())["request"]
    return EvalRequest(tuple(EvalEntry.from_dict(e) for e in data["entries"]),
                       tuple(data["agents"]), tuple(data["seeds"]), data["split"])  # fmt: skip

