"""The single-agent rollout engine: many episodes advanced in lockstep, collected into groups.

:func:`turngym.rollout.collect` routes single-agent envs here (multi-agent ones go to
:mod:`turngym.rollout_multiagent`); the behaviour is described there. This module holds the
state machine (:class:`_Collector`) and its sync and async drivers.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import gymnasium

from turngym._progress import progress_bar as _progress
from turngym._rollout_common import (
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_MAX_TURNS,
    close_quietly,
    describe_error,
    public_info,
)
from turngym.agents.base import ActionResult, Agent, EnvAwareAgent
from turngym.core import INSTRUCTIONS, PRIVILEGED, SCORE, STATE_KEY, SUCCESS, TASK_ID, TextEnv
from turngym.registry import make
from turngym.tick import prepare_tick
from turngym.types import Conversation, Episode, Group, Turn

__all__ = ["EnvSource", "collect_single", "acollect_single"]

EnvSource = str | Callable[[], gymnasium.Env]
"""A registered env id, or a zero-argument factory returning an env."""


@dataclass(frozen=True, slots=True)
class _EpisodeSpec:
    group: int
    member: int
    seed: int
    group_id: str
    episode_id: str


@dataclass(slots=True)
class _Slot:
    """A live episode bound to one env."""

    env: gymnasium.Env
    spec: _EpisodeSpec
    started: float
    observation: str = ""
    instructions: str = ""
    task_id: str = ""
    state_key: str | None = None
    privileged: dict[str, Any] = field(default_factory=dict)
    history: tuple[tuple[str, str], ...] = ()
    turns: list[Turn] = field(default_factory=list)
    last_info: dict[str, Any] = field(default_factory=dict)
    timed_out: bool = False


class _Collector:
    """The engine's state machine, shared by the sync and async drivers."""

    def __init__(
        self,
        env: EnvSource,
        tasks: int | Sequence[int],
        group_size: int,
        *,
        split: str,
        options: dict[str, Any] | None,
        env_kwargs: dict[str, Any] | None,
        max_turns: int | None,
        max_concurrent: int | None,
        episode_timeout: float | None,
        workers: int,
        round_index: int,
        on_episode: Callable[[Episode], None] | None = None,
    ) -> None:
        seeds = list(range(tasks)) if isinstance(tasks, int) else [int(s) for s in tasks]
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        if episode_timeout is not None and episode_timeout <= 0:
            raise ValueError(f"episode_timeout must be > 0 seconds, got {episode_timeout}")
        self.make_env = self._env_factory(env, env_kwargs or {})
        self.reset_options = {"split": split, **(options or {})}
        self.split = split
        self.seeds = seeds
        self.group_size = group_size
        self.round_index = round_index
        self.episode_timeout = episode_timeout
        self.on_episode = on_episode
        self.queue: deque[_EpisodeSpec] = deque(self._episode_specs())
        self.results: dict[tuple[int, int], Episode] = {}
        self.live: list[_Slot] = []
        self.free_envs: list[gymnasium.Env] = []
        self.total = len(self.queue)
        first = self.make_env()
        if not isinstance(first, gymnasium.Env):  # e.g. a factory of a PettingZoo env
            raise ValueError("a multi-agent env needs a seat mapping {seat: agent} or its id")
        self.env_id = first.spec.id if first.spec is not None else type(first.unwrapped).__name__
        spec_limit = first.spec.max_episode_steps if first.spec is not None else None
        self.max_turns = max_turns or spec_limit or DEFAULT_MAX_TURNS
        slow = bool(first.unwrapped.metadata.get("turngym.slow", False))
        pool_size = workers or (min(32, self.total) if slow else 0)
        self.pool = ThreadPoolExecutor(pool_size) if pool_size > 0 else None
        if isinstance(first.unwrapped, TextEnv):  # a bad config fails here, before any episode
            first.unwrapped.validate_options(self.reset_options)
        self.free_envs.append(first)
        self.concurrency = min(max_concurrent or DEFAULT_MAX_CONCURRENT, self.total) or 1

    @staticmethod
    def _env_factory(env: EnvSource, env_kwargs: dict[str, Any]) -> Callable[[], gymnasium.Env]:
        if isinstance(env, str):
            # Gymnasium's passive checker re-validates every new env's first steps; the
            # conformance suite (turngym check) covers that, so skip it on the hot path.
            kwargs = {"disable_env_checker": True, **env_kwargs}
            return lambda: make(env, **kwargs)
        if env_kwargs:
            raise ValueError("env_kwargs only apply to env ids; bind them in your factory.")
        return env

    def _episode_specs(self) -> list[_EpisodeSpec]:
        specs = []
        for g, seed in enumerate(self.seeds):
            group_id = f"{self.split}/{seed}@{self.round_index}"
            for m in range(self.group_size):
                specs.append(_EpisodeSpec(g, m, seed, group_id, f"{group_id}/{m}"))
        return specs

    # --- Episode lifecycle -----------------------------------------------------------------
    def fill(self) -> None:
        """Start queued episodes until ``concurrency`` are live."""
        while self.queue and len(self.live) < self.concurrency:
            spec = self.queue.popleft()
            env = self.free_envs.pop() if self.free_envs else self.make_env()
            slot = _Slot(env=env, spec=spec, started=time.monotonic())
            try:
                obs, info = env.reset(seed=spec.seed, options=dict(self.reset_options))
            except Exception as err:
                self._finish(slot, error=describe_error(err), env_broken=True)
                continue
            self._begin(slot, obs, info)

    def _begin(self, slot: _Slot, obs: str, info: dict[str, Any]) -> None:
        """Make ``slot`` live from its env's reset (shared with the Ray backend)."""
        slot.observation = obs
        slot.instructions = str(info.get(INSTRUCTIONS, ""))
        slot.task_id = str(info.get(TASK_ID, f"{self.split}/{slot.spec.seed}"))
        slot.state_key = info.get(STATE_KEY)
        slot.privileged = dict(info.get(PRIVILEGED, {}))
        slot.last_info = info
        self.live.append(slot)

    def conversations(self) -> list[Conversation]:
        """The conversation of every live episode, in slot order."""
        return [_conversation(s) for s in self.live]

    def envs(self) -> list[gymnasium.Env]:
        """The env of every live episode, in slot order (for env-aware reference agents)."""
        return [s.env for s in self.live]

    def apply(self, actions: Sequence[ActionResult]) -> None:
        """Step every live env with its action and retire finished episodes."""
        if len(actions) != len(self.live):
            raise RuntimeError(
                f"the agent returned {len(actions)} actions for {len(self.live)} conversations"
            )
        outcomes = self._step_all(actions)
        still_live = []
        for slot, action, outcome in zip(self.live, actions, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                self._finish(slot, error=describe_error(outcome), env_broken=True)
                continue
            if self._record(slot, action, outcome):
                self._finish(slot)
            else:
                still_live.append(slot)
        self.live = still_live

    def _step_all(self, actions: Sequence[ActionResult]) -> list[Any]:
        prepare_tick([s.env.unwrapped for s in self.live], [a.text for a in actions])
        if self.pool is None:
            outcomes: list[Any] = []
            for slot, action in zip(self.live, actions, strict=True):
                try:
                    outcomes.append(slot.env.step(action.text))
                except Exception as err:
                    outcomes.append(err)
            return outcomes
        futures = [
            self.pool.submit(s.env.step, a.text) for s, a in zip(self.live, actions, strict=True)
        ]
        outcomes = []
        for slot, future in zip(self.live, futures, strict=True):
            try:
                outcomes.append(future.result(timeout=self._time_left(slot)))
            except FutureTimeout:
                outcomes.append(TimeoutError(f"episode exceeded {self.episode_timeout} s"))
            except Exception as err:
                outcomes.append(err)
        return outcomes

    def _time_left(self, slot: _Slot) -> float | None:
        if self.episode_timeout is None:
            return None
        return max(0.0, self.episode_timeout - (time.monotonic() - slot.started))

    def _record(self, slot: _Slot, action: ActionResult, outcome: tuple) -> bool:
        """Append the turn; return whether the episode is over."""
        obs, reward, terminated, truncated, info = outcome
        index = len(slot.turns)
        over_limit = index + 1 >= self.max_turns
        timed_out = self._time_left(slot) == 0.0
        truncated = bool(truncated) or ((over_limit or timed_out) and not terminated)
        fields = (index, slot.observation, action, reward, terminated, truncated, slot.state_key,
                  info)  # fmt: skip
        self._add_turn(slot, bool(terminated) or truncated, fields)
        slot.history = (*slot.history, (slot.observation, action.text))
        slot.observation = obs
        slot.state_key = info.get(STATE_KEY)
        slot.last_info = info
        slot.timed_out = timed_out and not terminated
        return bool(terminated) or truncated

    def _add_turn(self, slot: _Slot, last: bool, fields: TurnFields) -> None:
        """Append the turn made of ``fields`` (``last``: the episode ends with it)."""
        slot.turns.append(make_turn(*fields))

    def _finish(self, slot: _Slot, error: str | None = None, env_broken: bool = False) -> None:
        info = slot.last_info
        if error is None and slot.timed_out:
            error = f"TimeoutError: episode exceeded {self.episode_timeout} s"
        privileged = {**slot.privileged, **info.get(PRIVILEGED, {})}
        success = bool(info.get(SUCCESS, False)) and error is None
        outcome = float(info.get(SCORE, float(success))) if error is None else 0.0
        spec = slot.spec
        episode = self.results[(spec.group, spec.member)] = Episode(
            episode_id=spec.episode_id,
            env_id=self.env_id,
            task_id=slot.task_id or f"{self.split}/{spec.seed}",
            seed=spec.seed,
            split=self.split,
            turns=tuple(slot.turns),
            outcome=outcome,
            success=success,
            privileged=privileged,
            metrics={"wall_time_s": round(time.monotonic() - slot.started, 6)},
            error=error,
        )
        if env_broken or error is not None:
            close_quietly(slot.env)  # its state is unknown: the next episode gets a fresh env
        else:
            self.free_envs.append(slot.env)
        if self.on_episode is not None:  # e.g. the eval runner appends it to episodes.jsonl now
            self.on_episode(episode)

    # --- Results ---------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Whether every episode has finished."""
        return not self.live and not self.queue

    def groups(self) -> list[Group]:
        """Assemble the finished episodes into groups, in task order."""
        groups = []
        for g, seed in enumerate(self.seeds):
            episodes = tuple(self.results[(g, m)] for m in range(self.group_size))
            task_ids = {ep.task_id for ep in episodes}
            # A reset that failed in one member only cannot know the task id; use the others'.
            task_id = sorted(task_ids - {f"{self.split}/{seed}"} or task_ids)[0]
            episodes = tuple(_with_task_id(ep, task_id) for ep in episodes)
            groups.append(Group(f"{task_id}@{self.round_index}", task_id, episodes))
        return groups

    def close(self) -> None:
        """Close every env and the worker pool."""
        for env in self.free_envs + [s.env for s in self.live]:
            close_quietly(env)
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


TurnFields = tuple[int, str, ActionResult, float, bool, bool, str | None, dict[str, Any]]
"""What a turn is made of: index, observation, action, reward, terminated, truncated (as the
engine decided it), state key, and the step's info."""


def make_turn(index: int, observation: str, action: ActionResult, reward: float,
              terminated: bool, truncated: bool, state_key: str | None,
              info: dict[str, Any]) -> Turn:  # fmt: skip
    """The :class:`~turngym.types.Turn` the engine records for one step."""
    return Turn(
        index=index,
        agent_id="agent",
        observation=observation,
        action=action.text,
        reward=float(reward),
        terminated=bool(terminated),
        truncated=truncated,
        state_key=state_key,
        action_valid=bool(info.get("action_valid", True)),
        info=public_info(info),
        trace=action.trace,
    )


def _conversation(slot: _Slot) -> Conversation:
    """What the agent sees of a live episode (the Ray backend ships it to env-aware agents)."""
    return Conversation(
        slot.instructions, slot.history, slot.observation, slot.spec.episode_id, slot.task_id,
        "agent",
    )  # fmt: skip


def _with_task_id(episode: Episode, task_id: str) -> Episode:
    if episode.task_id == task_id:
        return episode
    return Episode(
        episode.episode_id, episode.env_id, task_id, episode.seed, episode.split, episode.turns,
        episode.outcome, episode.success, episode.privileged, episode.metrics, episode.error,
    )  # fmt: skip


def _act(agent: Agent | EnvAwareAgent, collector: _Collector) -> list[ActionResult]:
    if isinstance(agent, EnvAwareAgent):
        return agent.act_batch_with_envs(collector.conversations(), collector.envs())
    return agent.act_batch(collector.conversations())


def collect_single(
    env: EnvSource,
    agent: Agent | EnvAwareAgent,
    tasks: int | Sequence[int],
    group_size: int = 1,
    *,
    split: str = "test",
    options: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    max_turns: int | None = None,
    max_concurrent: int | None = None,
    episode_timeout: float | None = None,
    workers: int = 0,
    round_index: int = 0,
    progress: bool = False,
    on_episode: Callable[[Episode], None] | None = None,
) -> list[Group]:
    """:func:`turngym.rollout.collect` for a single-agent env (the arguments are its own)."""
    collector = _Collector(
        env, tasks, group_size, split=split, options=options, env_kwargs=env_kwargs,
        max_turns=max_turns, max_concurrent=max_concurrent, episode_timeout=episode_timeout,
        workers=workers, round_index=round_index, on_episode=on_episode,
    )  # fmt: skip
    try:
        with _progress(progress, collector.total) as advance:
            collector.fill()
            while not collector.done:
                before = len(collector.results)
                collector.apply(_act(agent, collector))
                collector.fill()
                advance(len(collector.results) - before)
        return collector.groups()
    finally:
        collector.close()


async def acollect_single(
    env: EnvSource,
    agent: Agent | EnvAwareAgent,
    tasks: int | Sequence[int],
    group_size: int = 1,
    **kwargs: Any,
) -> list[Group]:
    """:func:`turngym.rollout.acollect` for a single-agent env (the arguments are its own)."""
    collector = _Collector(
        env, tasks, group_size,
        split=kwargs.pop("split", "test"), options=kwargs.pop("options", None),
        env_kwargs=kwargs.pop("env_kwargs", None), max_turns=kwargs.pop("max_turns", None),
        max_concurrent=kwargs.pop("max_concurrent", None),
        episode_timeout=kwargs.pop("episode_timeout", None),
        workers=kwargs.pop("workers", 0), round_index=kwargs.pop("round_index", 0),
        on_episode=kwargs.pop("on_episode", None),
    )  # fmt: skip
    if kwargs:
        raise TypeError(f"acollect() got unexpected keyword arguments {sorted(kwargs)}")
    try:
        await asyncio.to_thread(collector.fill)
        while not collector.done:
            if isinstance(agent, EnvAwareAgent):  # reference agents act from the envs, in a thread
                actions = await asyncio.to_thread(_act, agent, collector)
            else:
                actions = await agent.aact_batch(collector.conversations())
            await asyncio.to_thread(collector.apply, actions)
            await asyncio.to_thread(collector.fill)
        return collector.groups()
    finally:
        collector.close()
