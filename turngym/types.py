"""Core records shared by envs, the rollout engine, trainers and evals.

These are plain frozen dataclasses (docs/design.md#core-records): no torch, no numpy.
Estimators read them through a columnar view built elsewhere and never mutate them.

Every record round-trips through JSON (``to_dict`` / ``from_dict``) so that episodes can be
written to ``episodes.jsonl`` and replayed or re-scored later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TokenTrace", "Turn", "SeatOutcome", "Episode", "Group", "Conversation"]


@dataclass(frozen=True, slots=True)
class TokenTrace:
    """The tokens behind one action, as produced by a policy agent.

    Attributes:
        prompt_ids: Token ids of the prompt the model was conditioned on.
        completion_ids: Token ids the model generated (the action).
        logprobs: Log-probability of each completion token under the sampling policy, or
            ``None`` when the agent could not provide them.
    """

    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    logprobs: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.logprobs is not None and len(self.logprobs) != len(self.completion_ids):
            raise ValueError(
                f"TokenTrace has {len(self.completion_ids)} completion tokens but "
                f"{len(self.logprobs)} logprobs; pass one logprob per completion token or None."
            )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "prompt_ids": list(self.prompt_ids),
            "completion_ids": list(self.completion_ids),
            "logprobs": None if self.logprobs is None else list(self.logprobs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenTrace:
        """Inverse of :meth:`to_dict`."""
        logprobs = data.get("logprobs")
        return cls(
            prompt_ids=tuple(data["prompt_ids"]),
            completion_ids=tuple(data["completion_ids"]),
            logprobs=None if logprobs is None else tuple(logprobs),
        )


@dataclass(frozen=True, slots=True)
class Turn:
    """One agent action and what the env answered.

    Attributes:
        index: Position of the turn in its episode, from 0.
        agent_id: Who acted (``"agent"`` for single-agent envs; the seat in multi-agent games).
        observation: The text the agent saw before acting.
        action: The raw text the agent produced.
        reward: Immediate reward returned by ``env.step`` for this action.
        terminated: The env reached a terminal state after this action.
        truncated: The episode was cut (turn limit, timeout) after this action.
        state_key: Canonical key of the env state the action was taken FROM (``None`` if the
            env has none). Equal states of one task give equal keys; GiGPO groups by it.
        action_valid: Whether the env could parse and apply the action.
        info: The step's info dict with privileged data removed.
        trace: Tokens behind the action when the agent is a policy model.
    """

    index: int
    agent_id: str
    observation: str
    action: str
    reward: float
    terminated: bool
    truncated: bool
    state_key: str | None
    action_valid: bool
    info: Mapping[str, Any] = field(default_factory=dict)
    trace: TokenTrace | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "index": self.index,
            "agent_id": self.agent_id,
            "observation": self.observation,
            "action": self.action,
            "reward": self.reward,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "state_key": self.state_key,
            "action_valid": self.action_valid,
            "info": dict(self.info),
            "trace": None if self.trace is None else self.trace.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Turn:
        """Inverse of :meth:`to_dict`."""
        trace = data.get("trace")
        return cls(
            index=int(data["index"]),
            agent_id=str(data["agent_id"]),
            observation=str(data["observation"]),
            action=str(data["action"]),
            reward=float(data["reward"]),
            terminated=bool(data["terminated"]),
            truncated=bool(data["truncated"]),
            state_key=data.get("state_key"),
            action_valid=bool(data["action_valid"]),
            info=dict(data.get("info", {})),
            trace=None if trace is None else TokenTrace.from_dict(trace),
        )


@dataclass(frozen=True, slots=True)
class SeatOutcome:
    """How one seat of a multi-agent game did.

    Attributes:
        outcome: The seat's final score in [0, 1] (board games: 1 win, 0.5 draw, 0 loss).
        success: Whether the seat succeeded (board games: won; bargaining: a deal was made).
        total_reward: Undiscounted sum of every reward the seat received.
    """

    outcome: float
    success: bool
    total_reward: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {"outcome": self.outcome, "success": self.success, "total_reward": self.total_reward}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeatOutcome:
        """Inverse of :meth:`to_dict`."""
        return cls(float(data["outcome"]), bool(data["success"]), float(data["total_reward"]))


@dataclass(frozen=True, slots=True)
class Episode:
    """A finished episode: the turns plus what the env revealed only at the end.

    Attributes:
        episode_id: Unique within a collection: ``"<split>/<seed>@<round>/<member>"``.
        env_id: The registered env id including its version, e.g. ``"turngym/Sokoban-v0"``.
        task_id: Stable id of the task (same task, same id, on any machine).
        seed: The reset seed that selected the task within its split.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        turns: The turns in order.
        outcome: Final task score in [0, 1] unless the env documents otherwise.
        success: Whether the task was solved.
        privileged: Ground truth the agent never saw (optimal plan, gold answer, ...).
        metrics: Env-specific numbers (e.g. optimal plan length) and engine numbers.
        error: ``None``, or why the episode ended abnormally (env exception, timeout).
        seat: In a multi-agent game, the seat this episode is seen from: ``turns`` are that
            seat's turns only (the other seats' moves reach it through its observations),
            ``outcome``/``success`` and ``privileged`` are its own. ``None`` for single-agent
            episodes.
        seat_outcomes: In a multi-agent game, every seat's :class:`SeatOutcome` (empty for
            single-agent episodes).

    .. versionchanged:: 0.1
        Added ``seat`` and ``seat_outcomes``; ``to_dict`` writes them only when set, so
        single-agent records are unchanged.
    """

    episode_id: str
    env_id: str
    task_id: str
    seed: int
    split: str
    turns: tuple[Turn, ...]
    outcome: float
    success: bool
    privileged: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    seat: str | None = None
    seat_outcomes: Mapping[str, SeatOutcome] = field(default_factory=dict)

    @property
    def total_reward(self) -> float:
        """Undiscounted sum of the per-turn rewards."""
        return float(sum(turn.reward for turn in self.turns))

    @property
    def num_turns(self) -> int:
        """Number of actions taken."""
        return len(self.turns)

    @property
    def truncated(self) -> bool:
        """Whether the episode was cut before reaching a terminal state."""
        return bool(self.turns) and self.turns[-1].truncated and not self.turns[-1].terminated

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (one line of ``episodes.jsonl``)."""
        data: dict[str, Any] = {
            "episode_id": self.episode_id,
            "env_id": self.env_id,
            "task_id": self.task_id,
            "seed": self.seed,
            "split": self.split,
            "outcome": self.outcome,
            "success": self.success,
            "error": self.error,
            "metrics": dict(self.metrics),
            "privileged": dict(self.privileged),
            "turns": [turn.to_dict() for turn in self.turns],
        }
        if self.seat is not None:
            data["seat"] = self.seat
        if self.seat_outcomes:
            data["seat_outcomes"] = {k: v.to_dict() for k, v in self.seat_outcomes.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Episode:
        """Inverse of :meth:`to_dict`."""
        return cls(
            episode_id=str(data["episode_id"]),
            env_id=str(data["env_id"]),
            task_id=str(data["task_id"]),
            seed=int(data["seed"]),
            split=str(data["split"]),
            turns=tuple(Turn.from_dict(t) for t in data["turns"]),
            outcome=float(data["outcome"]),
            success=bool(data["success"]),
            privileged=dict(data.get("privileged", {})),
            metrics=dict(data.get("metrics", {})),
            error=data.get("error"),
            seat=data.get("seat"),
            seat_outcomes={
                k: SeatOutcome.from_dict(v) for k, v in data.get("seat_outcomes", {}).items()
            },
        )


@dataclass(frozen=True, slots=True)
class Group:
    """The G episodes started from the same task: the unit of group-relative baselines.

    Attributes:
        group_id: ``"<task_id>@<round>"``; the round tells apart repeated samplings of a task.
        task_id: The task every episode of the group started from.
        episodes: The episodes, in member order.
    """

    group_id: str
    task_id: str
    episodes: tuple[Episode, ...]

    def __post_init__(self) -> None:
        stray = sorted({ep.task_id for ep in self.episodes} - {self.task_id})
        if stray:
            raise ValueError(f"Group {self.group_id!r} holds episodes of other tasks: {stray}")

    def __len__(self) -> int:
        return len(self.episodes)


@dataclass(frozen=True, slots=True)
class Conversation:
    """What an agent sees before it acts. Never contains privileged data.

    Attributes:
        instructions: The system text from ``info["instructions"]`` at reset.
        turns: Past ``(observation, action)`` pairs, oldest first.
        observation: The current observation the agent must answer.
        episode_id: Id of the episode, so stateful agents can keep per-episode memory.
        task_id: Id of the task (public: it names the task, it does not describe it).
        agent_id: The seat that must act (``"agent"`` for single-agent envs).
    """

    instructions: str
    turns: tuple[tuple[str, str], ...]
    observation: str
    episode_id: str = ""
    task_id: str = ""
    agent_id: str = "agent"

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        # Pickled per live episode per tick when envs run in Ray actors; the default for a
        # frozen slots dataclass calls dataclasses.fields() per object (4x slower).
        return (Conversation, (self.instructions, self.turns, self.observation, self.episode_id,
                               self.task_id, self.agent_id))  # fmt: skip

    def messages(self) -> list[dict[str, str]]:
        """Render as chat messages (system, then alternating user/assistant, then user)."""
        out = [{"role": "system", "content": self.instructions}]
        for observation, action in self.turns:
            out.append({"role": "user", "content": observation})
            out.append({"role": "assistant", "content": action})
        out.append({"role": "user", "content": self.observation})
        return out

    def last(self, k: int) -> Conversation:
        """Return a copy that keeps only the last ``k`` past turns (a history window)."""
        if k < 0:
            raise ValueError(f"history window must be >= 0, got {k}")
        kept = self.turns[len(self.turns) - k :] if k else ()
        return Conversation(
            self.instructions, kept, self.observation, self.episode_id, self.task_id, self.agent_id
        )
