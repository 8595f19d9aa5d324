"""The seat-aware rollout engine for multi-agent games (PettingZoo AEC envs).

:func:`turngym.rollout.collect` routes here when the env id is a multi-agent one (see
:mod:`turngym.envs.multiagent.registry`) or when the agent is a seat mapping; the
single-agent engine is :mod:`turngym.rollout_single`, and what both share lives in
:mod:`turngym._rollout_common`. It drives them with one agent per seat (self-play or against
a fixed opponent) and records ``Turn.agent_id`` (docs/design.md#the-rollout-engine).

* **Seat mapping.** ``agent`` is one agent for every seat (self-play), or a mapping
  ``{seat: agent}`` covering every seat, e.g. ``{"player_0": policy, "player_1": minimax}``.
* **Lockstep.** Each tick gathers the seat to move in every live game and calls each distinct
  agent once with all of its conversations: self-play makes one call per tick for all games,
  a policy against a fixed opponent two (one per agent).
* **Seat views.** What comes back is, per game, one :class:`~turngym.types.Episode` per seat:
  that seat's turns only (``Turn.agent_id`` is the seat), its own observations (the other
  seats' moves reach it through them), its own rewards, ``outcome``, ``success`` and
  ``privileged`` data, plus every seat's :class:`~turngym.types.SeatOutcome`. A reward a seat
  receives on another seat's move (a loss, a deal accepted by the other side) is credited to
  that seat's latest turn, i.e. turn rewards are what PettingZoo's ``last()`` reports as the
  seat's cumulative reward since it last acted. ``Turn.index`` counts the seat's own turns;
  ``Turn.info["ply"]`` is the turn's position in the whole game.
* **Groups per seat.** For each task, the G games of the task give one Group per seat
  (``group_id = "<task_id>@<round>/<seat>"``), so group-relative estimators compare a seat
  only with the same seat: with ``train_seat`` just that seat's groups are returned (a policy
  trained against a fixed opponent); without it, every seat's (self-play with one policy per
  role baseline, as SPIRAL's role-conditioned advantages; Liu et al., 2025, arXiv:2506.24119).
* Privileged data is stripped before any agent sees anything; a game's env exception or
  timeout ends only that game, recorded as the error of each of its seat views.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from turngym._progress import progress_bar as _progress
from turngym._rollout_common import (
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_MAX_TURNS,
    close_quietly,
    describe_error,
    public_info,
)
from turngym.agents.base import ActionResult, Agent, EnvAwareAgent
from turngym.core import ACTION_VALID, INSTRUCTIONS, PRIVILEGED, SCORE, STATE_KEY, SUCCESS, TASK_ID
from turngym.envs.multiagent.base import TextAECEnv
from turngym.envs.multiagent.registry import is_multiagent, make_multiagent
from turngym.envs.multiagent.seat import SeatEnv
from turngym.registry import env_registry
from turngym.types import Conversation, Episode, Group, SeatOutcome, Turn

__all__ = ["collect_seats", "acollect_seats", "SeatAgents"]

AnyAgent = Agent | EnvAwareAgent
SeatAgents = AnyAgent | Mapping[str, AnyAgent]
"""One agent for every seat (self-play), or ``{seat: agent}`` covering every seat."""


@dataclass(frozen=True, slots=True)
class _GameSpec:
    group: int
    member: int
    seed: int
    game_id: str


@dataclass(slots=True)
class _Game:
    """A live game bound to one env."""

    env: Any
    spec: _GameSpec
    started: float
    task_id: str = ""
    instructions: dict[str, str] = field(default_factory=dict)
    history: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    turns: dict[str, list[Turn]] = field(default_factory=dict)
    privileged: dict[str, dict[str, Any]] = field(default_factory=dict)
    unattributed: dict[str, float] = field(default_factory=dict)
    observation: str = ""
    plies: int = 0
    timed_out: bool = False


def _seat_agents(agent: SeatAgents, seats: Sequence[str]) -> dict[str, AnyAgent]:
    if not isinstance(agent, Mapping):
        return dict.fromkeys(seats, agent)
    missing, unknown = sorted(set(seats) - set(agent)), sorted(set(agent) - set(seats))
    if missing or unknown:
        raise ValueError(
            f"the seat mapping must name every seat {list(seats)} exactly once "
            f"(missing {missing}, unknown {unknown}); pass one agent for self-play."
        )
    return dict(agent)


class _SeatCollector:
    """The multi-agent engine's state machine, shared by the sync and async drivers."""

    def __init__(
        self, env: str | Callable[[], Any], agent: SeatAgents, tasks: int | Sequence[int],
        group_size: int, *, train_seat: str | None, split: str, options: dict[str, Any] | None,
        env_kwargs: dict[str, Any] | None, max_turns: int | None, max_concurrent: int | None,
        episode_timeout: float | None, workers: int, round_index: int,
        on_episode: Callable[[Episode], None] | None,
    ) -> None:  # fmt: skip
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        if episode_timeout is not None and episode_timeout <= 0:
            raise ValueError(f"episode_timeout must be > 0 seconds, got {episode_timeout}")
        if workers:
            raise ValueError("multi-agent games step inline; workers applies to slow envs only.")
        self.make_env = self._env_factory(env, env_kwargs or {})
        first = self.make_env()
        if not isinstance(first, TextAECEnv):
            raise ValueError(
                f"{type(first).__name__} is not a multi-agent text env (a TextAECEnv); seat "
                "mappings and train_seat apply to those only."
            )
        self.seats = tuple(first.possible_agents)
        self.agents = _seat_agents(agent, self.seats)
        if train_seat is not None and train_seat not in self.seats:
            raise ValueError(f"train_seat {train_seat!r} is not a seat; seats: {list(self.seats)}")
        self.group_seats = (train_seat,) if train_seat is not None else self.seats
        self.distinct = list({id(a): a for a in self.agents.values()}.values())
        self.reset_options = {"split": split, **(options or {})}
        first.validate_options(self.reset_options)  # a bad config fails before any game
        self.env_id = first.spec_id or type(first).__name__
        self.max_turns = max_turns or first.max_turns or DEFAULT_MAX_TURNS
        self.split, self.round_index = split, round_index
        self.episode_timeout, self.on_episode = episode_timeout, on_episode
        self.seeds = list(range(tasks)) if isinstance(tasks, int) else [int(s) for s in tasks]
        self.queue: deque[_GameSpec] = deque(
            _GameSpec(g, m, seed, f"{split}/{seed}@{round_index}/{m}")
            for g, seed in enumerate(self.seeds)
            for m in range(group_size)
        )
        self.group_size, self.total = group_size, len(self.queue)
        self.results: dict[tuple[int, int, str], Episode] = {}
        self.finished = 0
        self.live: list[_Game] = []
        self.free_envs: list[Any] = [first]
        self._batch_order: list[int] = []
        self.concurrency = min(max_concurrent or DEFAULT_MAX_CONCURRENT, self.total) or 1

    @staticmethod
    def _env_factory(env: str | Callable[[], Any], env_kwargs: dict[str, Any]) -> Callable[[], Any]:
        if isinstance(env, str):
            if not is_multiagent(env) and env in env_registry:
                raise ValueError(f"{env} is not a multi-agent env: seat mappings and train_seat "
                                 "apply to multi-agent envs only.")  # fmt: skip
            return lambda: make_multiagent(env, **env_kwargs)
        if env_kwargs:
            raise ValueError("env_kwargs only apply to env ids; bind them in your factory.")
        return env

    # --- Game lifecycle ----------------------------------------------------------------------
    def fill(self) -> None:
        """Start queued games until ``concurrency`` are live."""
        while self.queue and len(self.live) < self.concurrency:
            spec = self.queue.popleft()
            env = self.free_envs.pop() if self.free_envs else self.make_env()
            game = _Game(env=env, spec=spec, started=time.monotonic())
            try:
                env.reset(seed=spec.seed, options=dict(self.reset_options))
                for seat in self.seats:
                    info = env.infos[seat]
                    game.instructions[seat] = str(info.get(INSTRUCTIONS, ""))
                    game.privileged[seat] = dict(info.get(PRIVILEGED, {}))
                    game.history[seat], game.turns[seat], game.unattributed[seat] = (), [], 0.0
                game.task_id = str(env.infos[self.seats[0]].get(TASK_ID, ""))
            except Exception as err:
                self._finish(game, error=describe_error(err))
                continue
            self.live.append(game)

    def batches(self) -> list[tuple[AnyAgent, list[Conversation], list[Any]]]:
        """Per distinct agent: the conversations (and seat views) of the games it must move."""
        buckets: dict[int, tuple[list[Conversation], list[Any]]] = {
            id(a): ([], []) for a in self.distinct
        }
        for game in self.live:
            seat = game.env.agent_selection
            game.observation = str(game.env.observe(seat))
            conversation = Conversation(
                game.instructions[seat], game.history[seat], game.observation,
                f"{game.spec.game_id}/{seat}", game.task_id, seat,
            )  # fmt: skip
            conversations, envs = buckets[id(self.agents[seat])]
            conversations.append(conversation)
            envs.append(SeatEnv(game.env, seat))
        batches = [(a, *buckets[id(a)]) for a in self.distinct if buckets[id(a)][0]]
        self._batch_order = [id(a) for a, _, _ in batches]
        return batches

    def apply(self, actions: Sequence[Sequence[ActionResult]]) -> None:
        """Step every live game with its agent's action (``actions`` follow :meth:`batches`)."""
        queues = {key: deque(batch) for key, batch in zip(self._batch_order, actions, strict=True)}
        still_live = []
        for game in self.live:
            seat = game.env.agent_selection
            queue = queues[id(self.agents[seat])]
            if not queue:
                raise RuntimeError("an agent returned fewer actions than conversations")
            action = queue.popleft()
            try:
                over = self._step(game, seat, action)
            except Exception as err:
                self._finish(game, error=describe_error(err))
                continue
            if over:
                self._finish(game)
            else:
                still_live.append(game)
        if any(queues.values()):
            raise RuntimeError("an agent returned more actions than conversations")
        self.live = still_live

    def _step(self, game: _Game, seat: str, action: ActionResult) -> bool:
        """Step the game with ``seat``'s action and record the turn; return whether it is over."""
        env = game.env
        state_key = env.infos[seat].get(STATE_KEY)
        env.step(action.text)
        info = env.infos[seat]
        game.plies += 1
        terminated = bool(env.terminations) and all(env.terminations.values())
        timed_out = self._time_left(game) == 0.0
        truncated = any(env.truncations.values()) or (
            (game.plies >= self.max_turns or timed_out) and not terminated
        )
        turns = game.turns[seat]
        turns.append(Turn(
            index=len(turns), agent_id=seat, observation=game.observation, action=action.text,
            reward=float(env.rewards.get(seat, 0.0)), terminated=False, truncated=False,
            state_key=state_key, action_valid=bool(info.get(ACTION_VALID, True)),
            info={**public_info(info), "ply": game.plies - 1}, trace=action.trace,
        ))  # fmt: skip
        game.history[seat] = (*game.history[seat], (game.observation, action.text))
        for other, reward in env.rewards.items():
            if other != seat and reward:
                self._credit(game, other, float(reward))
        game.timed_out = timed_out and not terminated
        return terminated or truncated

    @staticmethod
    def _credit(game: _Game, seat: str, reward: float) -> None:
        """Add a reward earned on another seat's move to ``seat``'s latest turn."""
        turns = game.turns[seat]
        if turns:
            turns[-1] = dataclasses.replace(turns[-1], reward=turns[-1].reward + reward)
        else:
            game.unattributed[seat] += reward

    def _time_left(self, game: _Game) -> float | None:
        if self.episode_timeout is None:
            return None
        return max(0.0, self.episode_timeout - (time.monotonic() - game.started))

    def _finish(self, game: _Game, error: str | None = None) -> None:
        env, spec = game.env, game.spec
        if error is None and game.timed_out:
            error = f"TimeoutError: game exceeded {self.episode_timeout} s"
        terminated = error is None and bool(env.terminations) and all(env.terminations.values())
        outcomes = {}
        for seat in self.seats:
            info = env.infos.get(seat, {}) if error is None else {}
            total = sum(t.reward for t in game.turns.get(seat, ())) + game.unattributed.get(seat, 0)
            score, success = float(info.get(SCORE, 0.0)), bool(info.get(SUCCESS, False))
            outcomes[seat] = SeatOutcome(score, success, float(total))
        metrics = {"wall_time_s": round(time.monotonic() - game.started, 6),
                   "game_id": spec.game_id, "game_turns": game.plies}  # fmt: skip
        for seat in self.group_seats:
            turns = list(game.turns.get(seat, ()))
            if turns:  # the game ended after the seat's last action, as far as the seat knows
                turns[-1] = dataclasses.replace(turns[-1], terminated=terminated,
                                                truncated=not terminated)  # fmt: skip
            final = env.infos.get(seat, {}) if error is None else {}
            episode = self.results[(spec.group, spec.member, seat)] = Episode(
                episode_id=f"{spec.game_id}/{seat}", env_id=self.env_id,
                task_id=game.task_id or f"{self.split}/{spec.seed}", seed=spec.seed,
                split=self.split, turns=tuple(turns), outcome=outcomes[seat].outcome,
                success=outcomes[seat].success,
                privileged={**game.privileged.get(seat, {}), **final.get(PRIVILEGED, {})},
                metrics=metrics, error=error, seat=seat, seat_outcomes=outcomes,
            )  # fmt: skip
            if self.on_episode is not None:
                self.on_episode(episode)
        self.finished += 1
        if error is None:
            self.free_envs.append(env)
        else:  # its state is unknown: the next game gets a fresh env
            close_quietly(env)

    # --- Results -----------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Whether every game has finished."""
        return not self.live and not self.queue

    def groups(self) -> list[Group]:
        """One Group per task and seat (task order, then seat order)."""
        groups = []
        for g, seed in enumerate(self.seeds):
            views = [self.results[(g, m, s)] for m in range(self.group_size)
                     for s in self.group_seats]  # fmt: skip
            task_ids = {ep.task_id for ep in views}
            task_id = sorted(task_ids - {f"{self.split}/{seed}"} or task_ids)[0]
            for seat in self.group_seats:
                episodes = tuple(
                    dataclasses.replace(self.results[(g, m, seat)], task_id=task_id)
                    for m in range(self.group_size)
                )
                groups.append(Group(f"{task_id}@{self.round_index}/{seat}", task_id, episodes))
        return groups

    def close(self) -> None:
        """Close every env."""
        for env in self.free_envs + [g.env for g in self.live]:
            close_quietly(env)


def _act(agent: AnyAgent, conversations: list[Conversation], envs: list[Any]) -> list[ActionResult]:
    if isinstance(agent, EnvAwareAgent):
        actions = agent.act_batch_with_envs(conversations, envs)
    else:
        actions = agent.act_batch(conversations)
    if len(actions) != len(conversations):
        raise RuntimeError(
            f"the agent returned {len(actions)} actions for {len(conversations)} conversations"
        )
    return actions


def collect_seats(
    env: str | Callable[[], Any],
    agent: SeatAgents,
    tasks: int | Sequence[int],
    group_size: int = 1,
    *,
    train_seat: str | None = None,
    progress: bool = False,
    **kwargs: Any,
) -> list[Group]:
    """Play ``group_size`` games of each task and return one Group per task and seat.

    :func:`turngym.rollout.collect` calls this for multi-agent envs; it takes the same
    keyword arguments (``split``, ``options``, ``env_kwargs``, ``max_turns``,
    ``max_concurrent``, ``episode_timeout``, ``round_index``, ``on_episode``).

    Args:
        env: A registered multi-agent env id, or a zero-argument factory returning one.
        agent: One agent for every seat (self-play), or ``{seat: agent}`` for every seat.
        tasks: A number N (seeds ``0..N-1``) or an explicit list of seeds.
        group_size: Games per task (G).
        train_seat: Return only this seat's groups (e.g. the policy's seat against a fixed
            opponent); ``None`` returns every seat's.
        progress: Show a progress bar of finished games.
        **kwargs: The remaining keyword arguments of :func:`turngym.rollout.collect`.

    Returns:
        For each task in order, one Group per returned seat (in seat order); each episode is
        one seat's view of one game.

    Example:
        >>> from turngym.agents import RandomAgent
        >>> from turngym.agents.opponents import MinimaxAgent
        >>> agents = {"player_0": RandomAgent(seed=0), "player_1": MinimaxAgent()}
        >>> groups = collect_seats("turngym/TicTacToe-v0", agents, tasks=2, group_size=3,
        ...                        train_seat="player_0")
        >>> [g.group_id.rsplit("/", 1)[1] for g in groups], len(groups[0])
        (['player_0', 'player_0'], 3)
        >>> {t.agent_id for g in groups for ep in g.episodes for t in ep.turns}
        {'player_0'}
    """
    collector = _make_collector(env, agent, tasks, group_size, train_seat, kwargs)
    try:
        with _progress(progress, collector.total) as advance:
            collector.fill()
            while not collector.done:
                before = collector.finished
                collector.apply([_act(a, c, e) for a, c, e in collector.batches()])
                collector.fill()
                advance(collector.finished - before)
        return collector.groups()
    finally:
        collector.close()


async def acollect_seats(
    env: str | Callable[[], Any],
    agent: SeatAgents,
    tasks: int | Sequence[int],
    group_size: int = 1,
    *,
    train_seat: str | None = None,
    **kwargs: Any,
) -> list[Group]:
    """Async twin of :func:`collect_seats`: the agents of one tick are awaited concurrently."""
    collector = _make_collector(env, agent, tasks, group_size, train_seat, kwargs)

    async def act(a: AnyAgent, conversations: list[Conversation], envs: list[Any]) -> Any:
        if isinstance(a, EnvAwareAgent):  # reference agents read the envs: in a thread
            return await asyncio.to_thread(_act, a, conversations, envs)
        actions = await a.aact_batch(conversations)
        if len(actions) != len(conversations):
            raise RuntimeError(f"the agent returned {len(actions)} actions for "
                               f"{len(conversations)} conversations")  # fmt: skip
        return actions

    try:
        await asyncio.to_thread(collector.fill)
        while not collector.done:
            batches = await asyncio.to_thread(collector.batches)
            actions = await asyncio.gather(*(act(a, c, e) for a, c, e in batches))
            await asyncio.to_thread(collector.apply, actions)
            await asyncio.to_thread(collector.fill)
        return collector.groups()
    finally:
        collector.close()


def _make_collector(
    env: str | Callable[[], Any], agent: SeatAgents, tasks: int | Sequence[int],
    group_size: int, train_seat: str | None, kwargs: dict[str, Any],
) -> _SeatCollector:  # fmt: skip
    known = {"split", "options", "env_kwargs", "max_turns", "max_concurrent", "episode_timeout",
             "workers", "round_index", "on_episode"}  # fmt: skip
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"collect() got unexpected keyword arguments {unknown}")
    return _SeatCollector(
        env, agent, tasks, group_size, train_seat=train_seat,
        split=kwargs.get("split", "test"), options=kwargs.get("options"),
        env_kwargs=kwargs.get("env_kwargs"), max_turns=kwargs.get("max_turns"),
        max_concurrent=kwargs.get("max_concurrent"),
        episode_timeout=kwargs.get("episode_timeout"), workers=kwargs.get("workers", 0),
        round_index=kwargs.get("round_index", 0), on_episode=kwargs.get("on_episode"),
    )  # fmt: skip
