"""The rollout engine: many episodes advanced in lockstep, collected into groups.

``collect(env, agent, tasks, group_size)`` plays ``group_size`` episodes of every task and
returns one :class:`~turngym.types.Group` per task (DESIGN.md section 4).

* **Lockstep batching.** Every tick gathers the conversation of each live episode and calls
  the agent once, so a local model generates for the whole batch at once; finished episodes
  drop out and queued ones take their env.
* **Groups.** The G episodes of a task are reset with the same (split, seed, options), so they
  start from identical observations; that is what makes group-relative baselines valid.
* **Privileged data** is stripped from every info dict before anything reaches the agent, and
  stored on the Episode for trainers and evaluators.
* **Failures stay visible.** An env exception or a per-episode timeout ends only that episode,
  recorded in ``Episode.error``; the env is rebuilt for the next episode.
* **Slow envs** (``metadata["turngym.slow"] = True``, or ``workers > 0``) are stepped in a
  thread pool; envs that are CPU-heavy do their heavy work in subprocesses of their own.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import gymnasium

from turngym._progress import progress_bar as _progress
from turngym.agents.base import ActionResult, Agent, EnvAwareAgent
from turngym.core import INSTRUCTIONS, PRIVILEGED, SCORE, STATE_KEY, SUCCESS, TASK_ID, TextEnv
from turngym.envs.multiagent.registry import multiagent_registry
from turngym.evals.stats import wilson_interval
from turngym.registry import make
from turngym.tick import prepare_tick
from turngym.types import Conversation, Episode, Group, Turn

__all__ = [
    "collect",
    "acollect",
    "summarize",
    "wilson_interval",
    "DEFAULT_MAX_TURNS",
    "DEFAULT_MAX_CONCURRENT",
]

DEFAULT_MAX_TURNS = 100
"""Turn cap for envs whose spec sets no ``max_episode_steps``."""

DEFAULT_MAX_CONCURRENT = 512
"""Live episodes (and env instances) at once unless ``max_concurrent`` says otherwise: a
batch this large already saturates a local model, and finished episodes hand their env to
queued ones instead of every episode building its own."""

EnvSource = str | Callable[[], gymnasium.Env]


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


def _public(info: dict[str, Any]) -> dict[str, Any]:
    """Drop what the agent must not see (privileged) and what is stored elsewhere."""
    public = info.copy()  # a C-level copy, then two pops: cheaper than a filtering comprehension
    public.pop(PRIVILEGED, None)
    public.pop(INSTRUCTIONS, None)
    return public


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
                self._finish(slot, error=_describe(err), env_broken=True)
                continue
            slot.observation = obs
            slot.instructions = str(info.get(INSTRUCTIONS, ""))
            slot.task_id = str(info.get(TASK_ID, f"{self.split}/{spec.seed}"))
            slot.state_key = info.get(STATE_KEY)
            slot.privileged = dict(info.get(PRIVILEGED, {}))
            slot.last_info = info
            self.live.append(slot)

    def conversations(self) -> list[Conversation]:
        """The conversation of every live episode, in slot order."""
        return [
            Conversation(
                s.instructions, s.history, s.observation, s.spec.episode_id, s.task_id, "agent"
            )
            for s in self.live
        ]

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
                self._finish(slot, error=_describe(outcome), env_broken=True)
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
        slot.turns.append(
            Turn(
                index=index,
                agent_id="agent",
                observation=slot.observation,
                action=action.text,
                reward=float(reward),
                terminated=bool(terminated),
                truncated=truncated,
                state_key=slot.state_key,
                action_valid=bool(info.get("action_valid", True)),
                info=_public(info),
                trace=action.trace,
            )
        )
        slot.history = (*slot.history, (slot.observation, action.text))
        slot.observation = obs
        slot.state_key = info.get(STATE_KEY)
        slot.last_info = info
        slot.timed_out = timed_out and not terminated
        return bool(terminated) or truncated

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
            _close_quietly(slot.env)  # its state is unknown: the next episode gets a fresh env
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
            _close_quietly(env)
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


def _with_task_id(episode: Episode, task_id: str) -> Episode:
    if episode.task_id == task_id:
        return episode
    return Episode(
        episode.episode_id, episode.env_id, task_id, episode.seed, episode.split, episode.turns,
        episode.outcome, episode.success, episode.privileged, episode.metrics, episode.error,
    )  # fmt: skip


def _describe(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(err).__name__}: {err}{where}"


def _close_quietly(env: gymnasium.Env) -> None:
    try:
        env.close()
    except Exception:  # closing a broken env must not hide the episode's own error
        pass


def _act(agent: Agent | EnvAwareAgent, collector: _Collector) -> list[ActionResult]:
    if isinstance(agent, EnvAwareAgent):
        return agent.act_batch_with_envs(collector.conversations(), collector.envs())
    return agent.act_batch(collector.conversations())


def _multiagent(env: EnvSource, agent: Any, train_seat: str | None) -> bool:
    named = isinstance(env, str) and env in multiagent_registry
    return isinstance(agent, Mapping) or train_seat is not None or named


def collect(
    env: EnvSource,
    agent: Agent | EnvAwareAgent | Mapping[str, Agent | EnvAwareAgent],
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
    train_seat: str | None = None,
) -> list[Group]:
    """Play ``group_size`` episodes of each task in lockstep and return one Group per task.

    Multi-agent envs (and seat mappings) go to :mod:`turngym.rollout_multiagent`, which
    returns one Group per task *and seat* of seat views (``Episode.seat``).

    Args:
        env: A registered env id, or a zero-argument factory returning an env.
        agent: A batched agent, or an env-aware reference agent (random, oracle); for a
            multi-agent env also ``{seat: agent}`` (one agent alone plays every seat).
        tasks: A number N (seeds ``0..N-1``) or an explicit list of seeds.
        group_size: Episodes per task (G).
        split: The split the seeds select tasks from.
        options: Extra reset options (``level``, ``difficulty``, ``task``).
        env_kwargs: Keyword arguments for ``turngym.make`` (env ids only).
        max_turns: Turn cap; defaults to the spec's ``max_episode_steps``.
        max_concurrent: At most this many live episodes (and envs); default
            :data:`DEFAULT_MAX_CONCURRENT`.
        episode_timeout: Wall-clock seconds per episode; past it the episode is cut and
            recorded with an error.
        workers: Step envs in a thread pool of this size (0: inline, unless the env
            declares ``metadata["turngym.slow"]``).
        round_index: Sampling round, part of group ids (trainers pass the iteration).
        progress: Show a progress bar of finished episodes.
        on_episode: Called with each episode the moment it finishes (before the others of
            its group), so a caller can persist results as they come.
        train_seat: Multi-agent only: return just this seat's groups.

    Returns:
        One Group per task, in the order of ``tasks``; episodes in member order.

    Example:
        >>> from turngym.agents import OracleAgent
        >>> groups = collect("turngym/FrozenLake-v0", OracleAgent(), tasks=3, group_size=2)
        >>> [all(ep.success for ep in g.episodes) for g in groups]
        [True, True, True]
    """
    if _multiagent(env, agent, train_seat):
        from turngym.rollout_multiagent import collect_seats  # PettingZoo: only when needed
        return collect_seats(env, agent, tasks, group_size, split=split, options=options,
            env_kwargs=env_kwargs, max_turns=max_turns, max_concurrent=max_concurrent,
            episode_timeout=episode_timeout, workers=workers, round_index=round_index,
            progress=progress, on_episode=on_episode, train_seat=train_seat)  # fmt: skip
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


async def acollect(
    env: EnvSource,
    agent: Agent | EnvAwareAgent | Mapping[str, Agent | EnvAwareAgent],
    tasks: int | Sequence[int],
    group_size: int = 1,
    **kwargs: Any,
) -> list[Group]:
    """Async twin of :func:`collect`: awaits ``agent.aact_batch`` (for network agents).

    Env steps run in a worker thread so the event loop stays responsive. Takes the same
    keyword arguments as :func:`collect` except ``progress``.
    """
    if _multiagent(env, agent, kwargs.get("train_seat")):
        from turngym.rollout_multiagent import acollect_seats
        return await acollect_seats(env, agent, tasks, group_size, **kwargs)
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


def summarize(groups: Sequence[Group]) -> dict[str, Any]:
    """Aggregate groups into the numbers the CLI and the trainer report.

    Success rate with a Wilson 95% interval, mean outcome, return and turns, the
    invalid-action rate, and the number of episodes that ended with an error.
    """
    episodes = [ep for g in groups for ep in g.episodes]
    n = len(episodes)
    successes = sum(ep.success for ep in episodes)
    turns = [t for ep in episodes for t in ep.turns]
    low, high = wilson_interval(successes, n)
    return {
        "episodes": n,
        "success_rate": successes / n if n else 0.0,
        "success_ci95": [low, high],
        "mean_outcome": sum(ep.outcome for ep in episodes) / n if n else 0.0,
        "mean_return": sum(ep.total_reward for ep in episodes) / n if n else 0.0,
        "mean_turns": len(turns) / n if n else 0.0,
        "invalid_action_rate": sum(not t.action_valid for t in turns) / len(turns)
        if turns
        else 0.0,
        "errors": sum(ep.error is not None for ep in episodes),
    }
