"""``collect(..., backend="ray")``: the rollout engine with its envs in Ray actors.

The episode bookkeeping is the local engine's own (:class:`turngym.rollout._Collector`: the
same episode specs, seeds, reset options, turn records, truncation and error handling), so an
episode played here is the one the local backend plays for the same seeds. What changes is
where envs live (:mod:`turngym.backends.ray_envs`): resets and steps go to the actors in one
batched call per actor per tick, while the agent, on the driver, still answers every live
episode at once. The driver builds a tick's turn records while the actors step the next one.
Env-aware reference agents (random, oracle) read env objects, so they act inside the actors,
next to their envs, in the same round trip as the step; once no episode is queued, each
actor plays its episodes on to their end in one generator call and the driver records the
ticks it hands over (same episodes, same finishing order, no round trip per tick).

Differences from the local backend, all documented on :func:`collect_ray`: live episodes of a
slow env are capped by the CPUs the cluster has for them, and an episode timeout cuts every
episode sharing the stuck actor (a slow env's instances have an actor each).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from turngym._progress import progress_bar as _progress
from turngym._rollout_common import close_quietly as _close_quietly
from turngym._rollout_common import describe_error as _describe
from turngym._rollout_common import plays_multiagent
from turngym.agents.base import ActionResult, Agent, EnvAwareAgent
from turngym.backends.ray_cluster import cluster_cpus, init_ray
from turngym.backends.ray_envs import HostPool, plan_placement
from turngym.rollout_single import (
    EnvSource,
    TurnFields,
    _Collector,
    _conversation,
    _Slot,
    make_turn,
)
from turngym.types import Episode, Group, Turn

__all__ = ["collect_ray", "acollect_ray"]

# Stands in a slot's turn list until the turn is built (see _RayCollector._add_turn).
_PENDING = Turn(-1, "agent", "", "", 0.0, False, False, None, True)


class _RayCollector(_Collector):
    """The local engine's state machine, with env calls batched to Ray actors."""

    def __init__(self, env: EnvSource, tasks: int | Sequence[int], group_size: int, *,
                 agent: Any, **kwargs: Any) -> None:  # fmt: skip
        # The base builds one env here: it names the env, reads its turn limit and metadata
        # and validates the reset options, so a bad config fails before any actor starts.
        super().__init__(env, tasks, group_size, **kwargs)
        ray = init_ray()
        first = self.free_envs.pop()
        metadata = dict(first.unwrapped.metadata)
        _close_quietly(first)
        if self.pool is not None:  # slow envs step in their own actors, not in threads
            self.pool.shutdown(wait=False)
            self.pool = None
        placement = plan_placement(metadata, self.concurrency, cluster_cpus())
        self.concurrency = min(self.concurrency, placement.capacity)
        env_aware = isinstance(agent, EnvAwareAgent)
        self.hosts = HostPool(ray, self.make_env, placement, agent if env_aware else None)
        self.make_env = self.hosts.new_env  # type: ignore[assignment]
        self._deferred: list[tuple[list[Turn], TurnFields]] = []  # see _add_turn
        self._defer = True

    def fill(self) -> None:
        """Start queued episodes until ``concurrency`` are live, one reset call per actor."""
        while self.queue and len(self.live) < self.concurrency:
            starting: list[_Slot] = []
            while self.queue and len(self.live) + len(starting) < self.concurrency:
                spec = self.queue.popleft()
                env = self.free_envs.pop() if self.free_envs else self.make_env()
                starting.append(_Slot(env=env, spec=spec, started=time.monotonic()))
            outcomes = self.hosts.call(
                "reset", [s.env for s in starting], [s.spec.seed for s in starting],
                self.reset_options,
            )  # fmt: skip
            for slot, outcome in zip(starting, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    self._finish(slot, error=_describe(outcome), env_broken=True)
                else:
                    self._begin(slot, *outcome)

    def apply(self, actions: Sequence[ActionResult] | None) -> None:
        """Step every live episode and retire the finished ones, one call per actor.

        ``actions`` come from the driver's agent; ``None`` lets the env-aware agent act inside
        the actors, next to its envs. While the actors step, the driver builds the previous
        tick's turns (:meth:`_add_turn`), and it takes each actor's results as they come.
        Episodes finish in slot order, as on the local backend.
        """
        live = self.live
        if actions is not None and len(actions) != len(live):
            raise RuntimeError(
                f"the agent returned {len(actions)} actions for {len(live)} conversations"
            )
        if actions is None and not self.queue and self.episode_timeout is None:
            self._play_out()
            return
        handles = [s.env for s in live]
        if actions is None:  # an episode's first conversation goes to its actor, which keeps it
            firsts = [None if s.turns else _conversation(s) for s in live]
            calls = self.hosts.submit("act_step", handles, firsts, None, self._deadlines())
        else:
            texts = [a.text for a in actions]
            calls = self.hosts.submit("step", handles, texts, None, self._deadlines())
        self._flush()
        errors: dict[int, str] = {}
        over = [False] * len(live)
        for positions, results in self.hosts.gather(calls, self._timeout_message()):
            for p, result in zip(positions, results, strict=True):
                if isinstance(result, BaseException):
                    errors[p] = _describe(result)
                elif actions is None:
                    over[p] = self._record(live[p], *result)
                else:
                    over[p] = self._record(live[p], actions[p], result)
        self.live = []
        for p, slot in enumerate(live):
            if p in errors:
                self._finish(slot, error=errors[p], env_broken=True)
            elif over[p]:
                self._finish(slot)
            else:
                self.live.append(slot)

    def _play_out(self) -> None:
        """Env-aware agent, nothing queued: the actors play their episodes to the end.

        One generator call per actor (``EnvHost.play``) instead of a round trip per tick: the
        actors play on while the driver records the ticks they yield, and episodes finish in
        the order the per-tick engine finishes them. Not with an episode timeout, which is
        enforced per round trip.
        """
        live = self.live
        items = [(None if s.turns else _conversation(s), self.max_turns - len(s.turns))
                 for s in live]  # fmt: skip
        ticks = self.hosts.stream("play", [s.env for s in live], items)
        self._flush()
        self._defer = False  # an episode's turns are needed as soon as it ends
        playing = dict(enumerate(live))  # position -> slot, until its episode ends
        for tick in ticks:
            ended: dict[int, str | None] = {}  # position -> error (None: the episode is over)
            for host, positions, results in tick:
                if isinstance(results, BaseException):  # the actor died: so did its episodes
                    died = _describe(results)
                    ended.update((p, died) for p, s in playing.items() if _host(s) is host)
                    continue
                for p, result in zip(positions, results, strict=True):
                    if isinstance(result, BaseException):
                        ended[p] = _describe(result)
                    elif self._record(playing[p], *result):
                        ended[p] = None
            for p in sorted(ended):
                self._finish(playing.pop(p), error=ended[p], env_broken=ended[p] is not None)
        self._defer = True
        self.live = list(playing.values())  # none: an actor stops an episode as the engine does

    def _add_turn(self, slot: _Slot, last: bool, fields: TurnFields) -> None:
        # An episode's last turn is built at once (the episode is assembled now); the others
        # wait for the next tick's actor calls, whose round trip would otherwise idle here.
        if last or not self._defer:
            super()._add_turn(slot, last, fields)
        else:
            slot.turns.append(_PENDING)
            self._deferred.append((slot.turns, fields))

    def _flush(self) -> None:
        """Build the turns :meth:`_add_turn` put off."""
        for turns, fields in self._deferred:
            turns[fields[0]] = make_turn(*fields)
        self._deferred.clear()

    def groups(self) -> list[Group]:
        """Assemble the finished episodes into groups, in task order."""
        self._flush()
        return super().groups()

    def _deadlines(self) -> list[float | None]:
        if self.episode_timeout is None:
            return [None] * len(self.live)
        return [s.started + self.episode_timeout for s in self.live]

    def _timeout_message(self) -> str:
        return f"episode exceeded {self.episode_timeout} s"  # the local backend's wording

    def close(self) -> None:
        """Stop the actors (the envs live and die with them)."""
        self.hosts.close()


def _collector(env: EnvSource, agent: Any, tasks: int | Sequence[int], group_size: int,
               kwargs: dict[str, Any]) -> _RayCollector:  # fmt: skip
    unknown = set(kwargs) - _COLLECTOR_ARGS
    if unknown:
        raise TypeError(f"collect(backend='ray') got unexpected arguments {sorted(unknown)}")
    defaults = {"split": "test", "options": None, "env_kwargs": None, "max_turns": None,
                "max_concurrent": None, "episode_timeout": None, "workers": 0, "round_index": 0,
                "on_episode": None}  # fmt: skip
    return _RayCollector(env, tasks, group_size, agent=agent, **{**defaults, **kwargs})


_COLLECTOR_ARGS = {"split", "options", "env_kwargs", "max_turns", "max_concurrent",
                   "episode_timeout", "workers", "round_index", "on_episode"}  # fmt: skip


def _check_single_agent(env: EnvSource, agent: Any, train_seat: str | None) -> None:
    if plays_multiagent(env, agent, train_seat) or not isinstance(agent, (Agent, EnvAwareAgent)):
        raise ValueError(
            "backend='ray' plays single-agent envs with one agent; multi-agent envs and seat "
            "mappings run on the local backend"
        )


def collect_ray(
    env: EnvSource,
    agent: Agent | EnvAwareAgent,
    tasks: int | Sequence[int],
    group_size: int = 1,
    *,
    progress: bool = False,
    on_episode: Callable[[Episode], None] | None = None,
    train_seat: str | None = None,
    **kwargs: Any,
) -> list[Group]:
    """:func:`turngym.rollout.collect` with env instances in Ray actors.

    Takes :func:`~turngym.rollout.collect`'s arguments and returns the same groups for the
    same seeds. ``workers`` is ignored (placement follows the env's declared cost, see
    :func:`~turngym.backends.ray_envs.plan_placement`). Two differences: a slow env has at
    most as many live episodes as the cluster's CPUs cover, which changes how episodes are
    batched for the agent (a model agent whose draws depend on its batch composition then
    samples differently, as it would locally with another ``max_concurrent``); and an episode
    timeout cuts every episode that shares the stuck actor. An actor that dies (a crashing
    env, a killed worker) records an error on each episode it was playing and is replaced;
    while an env-aware agent plays on in it, the turns it had not yet handed over are lost
    with it (the episodes keep the turns recorded before).

    Example:
        >>> from turngym.agents import OracleAgent
        >>> groups = collect_ray("turngym/FrozenLake-v0", OracleAgent(), 2)  # doctest: +SKIP
    """
    _check_single_agent(env, agent, train_seat)
    collector = _collector(env, agent, tasks, group_size, {**kwargs, "on_episode": on_episode})
    try:
        with _progress(progress, collector.total) as advance:
            collector.fill()
            while not collector.done:
                before = len(collector.results)
                actions = None  # an env-aware agent acts inside the actors
                if not isinstance(agent, EnvAwareAgent):
                    actions = agent.act_batch(collector.conversations())
                collector.apply(actions)
                collector.fill()
                advance(len(collector.results) - before)
        return collector.groups()
    finally:
        collector.close()


async def acollect_ray(
    env: EnvSource,
    agent: Agent | EnvAwareAgent,
    tasks: int | Sequence[int],
    group_size: int = 1,
    **kwargs: Any,
) -> list[Group]:
    """:func:`turngym.rollout.acollect` with env instances in Ray actors (see :func:`collect_ray`).

    Actor calls run in a worker thread, so the event loop stays free while envs step.
    """
    _check_single_agent(env, agent, kwargs.pop("train_seat", None))
    collector = await asyncio.to_thread(_collector, env, agent, tasks, group_size, kwargs)
    try:
        await asyncio.to_thread(collector.fill)
        while not collector.done:
            actions = None  # an env-aware agent acts inside the actors
            if not isinstance(agent, EnvAwareAgent):
                actions = await agent.aact_batch(collector.conversations())
            await asyncio.to_thread(collector.apply, actions)
            await asyncio.to_thread(collector.fill)
        return collector.groups()
    finally:
        collector.close()


def _host(slot: _Slot) -> Any:
    """The actor slot hosting a live episode's env (its handle is an ``ActorEnv``)."""
    return getattr(slot.env, "host", None)
