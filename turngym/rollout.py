"""The rollout engine: many episodes advanced in lockstep, collected into groups.

``collect(env, agent, tasks, group_size)`` plays ``group_size`` episodes of every task and
returns one :class:`~turngym.types.Group` per task (docs/design.md#the-rollout-engine).

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

This module is the dispatcher above the two engines: single-agent envs go to
:mod:`turngym.rollout_single`, multi-agent envs and seat mappings to
:mod:`turngym.rollout_multiagent` (imported only then: it needs PettingZoo). Both engines
depend on :mod:`turngym._rollout_common` and never on each other or on this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from turngym._rollout_common import DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_TURNS
from turngym.agents.base import Agent, EnvAwareAgent
from turngym.envs.multiagent.registry import multiagent_registry
from turngym.evals.stats import wilson_interval
from turngym.rollout_single import EnvSource, acollect_single, collect_single
from turngym.types import Episode, Group

__all__ = [
    "collect",
    "acollect",
    "summarize",
    "wilson_interval",
    "DEFAULT_MAX_TURNS",
    "DEFAULT_MAX_CONCURRENT",
]


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
    assert not isinstance(agent, Mapping)  # seat mappings went to the multi-agent engine
    return collect_single(env, agent, tasks, group_size, split=split, options=options,
        env_kwargs=env_kwargs, max_turns=max_turns, max_concurrent=max_concurrent,
        episode_timeout=episode_timeout, workers=workers, round_index=round_index,
        progress=progress, on_episode=on_episode)  # fmt: skip


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
    assert not isinstance(agent, Mapping)  # seat mappings went to the multi-agent engine
    return await acollect_single(env, agent, tasks, group_size, **kwargs)


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
