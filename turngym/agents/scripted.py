"""Reference agents that need no model: random (the floor), oracle (the ceiling), replay.

Every benchmark table is anchored by these two: random success is what a policy gets for
free, oracle success proves the tasks are solvable.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import gymnasium

from turngym.agents.base import ActionResult, BaseAgent
from turngym.core import TextSpace
from turngym.types import Conversation

__all__ = ["EpisodeSeededAgent", "RandomAgent", "OracleAgent", "NoOracleError", "ReplayAgent",
           "ScriptedAgent"]  # fmt: skip

_MAX_TRACKED_EPISODES = 65_536


class EpisodeSeededAgent(BaseAgent):
    """Base for agents that draw randomness per episode: ``random.Random(f"{seed}:{episode}")``.

    The stream restarts when an episode starts, so an episode's actions do not depend on which
    other episodes share its batch (used by the random agent and the scripted opponents).
    """

    def __init__(self, seed: int = 0) -> None:
        """Create the agent; ``seed`` fixes every episode's action stream."""
        self.seed = int(seed)
        self._rngs: dict[str, random.Random] = {}

    def _rng(self, conversation: Conversation) -> random.Random:
        episode_id = conversation.episode_id
        rng = self._rngs.get(episode_id)
        if rng is None or not conversation.turns:
            # random.Random seeds a str through SHA-512: stable across processes and machines.
            rng = self._rngs[episode_id] = random.Random(f"{self.seed}:{episode_id}")
            if len(self._rngs) > _MAX_TRACKED_EPISODES:  # forget the oldest episode
                del self._rngs[next(iter(self._rngs))]
        return rng


class RandomAgent(EpisodeSeededAgent):
    """Samples a valid-looking action from each env's action space.

    Each episode gets its own ``random.Random`` seeded from ``(seed, episode_id)``, so an
    episode's actions do not depend on which other episodes share its batch.

    Example:
        >>> import turngym
        >>> from turngym.rollout import collect
        >>> groups = collect("turngym/FrozenLake-v0", RandomAgent(seed=0), tasks=2, group_size=2)
        >>> len(groups), len(groups[0].episodes)
        (2, 2)
    """


    def act_batch_with_envs(
        self, conversations: Sequence[Conversation], envs: Sequence[gymnasium.Env]
    ) -> list[ActionResult]:
        """Pick uniformly among each env's example actions (or sample its space)."""
        out = []
        for conversation, env in zip(conversations, envs, strict=True):
            space = env.unwrapped.action_space  # skip the wrapper chain: this is a hot path
            if isinstance(space, TextSpace) and space.examples:
                text = self._rng(conversation).choice(space.examples)
            else:
                text = space.sample()
            out.append(ActionResult(text))
        return out

    def act_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        """Without envs there is nothing to sample from: use the rollout engine."""
        raise TypeError("RandomAgent samples env action spaces; run it through turngym.rollout.")


class NoOracleError(ValueError):
    """The oracle agent was asked to play an env that has no oracle (a usage error)."""


class OracleAgent(BaseAgent):
    """Plays each env's own optimal policy (``env.unwrapped.oracle_action()``).

    The oracle reads the env's solver, so it is an upper bound, not a baseline to train
    against. An env without one (no ``oracle_action``, or one that raises
    ``NotImplementedError``, e.g. a served env whose server does not offer it) raises
    :class:`NoOracleError` on the first action, before any episode is recorded.
    """

    def act_batch_with_envs(
        self, conversations: Sequence[Conversation], envs: Sequence[gymnasium.Env]
    ) -> list[ActionResult]:
        """Ask every env for its optimal action."""
        out = []
        for env in envs:
            oracle = getattr(env.unwrapped, "oracle_action", None)
            try:
                if oracle is None:
                    raise NotImplementedError
                out.append(ActionResult(oracle()))
            except NotImplementedError as err:
                raise NoOracleError(_no_oracle_message(env)) from err
        return out

    def act_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        """The oracle needs the envs: use the rollout engine."""
        raise TypeError("OracleAgent reads the env's solver; run it through turngym.rollout.")


def _no_oracle_message(env: gymnasium.Env) -> str:
    # A served env (RemoteEnv) always has oracle_action: its server answers or refuses.
    env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    return f"{env_id} has no oracle (no solver behind oracle_action); pick another agent"


class ScriptedAgent(BaseAgent):
    """Plays a fixed list of actions in order (the same list in every episode).

    Past the end of the list it repeats the last action (or sends ``""`` if the list is
    empty), which is an invalid action in every tagged env.
    """

    def __init__(self, actions: Iterable[str]) -> None:
        """Create the agent from the actions to play, turn by turn."""
        self.actions = tuple(actions)

    def act_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        """Return the scripted action for each conversation's turn index."""
        out = []
        for conversation in conversations:
            index = len(conversation.turns)
            if not self.actions:
                text = ""
            else:
                text = self.actions[min(index, len(self.actions) - 1)]
            out.append(ActionResult(text))
        return out


class ReplayAgent(BaseAgent):
    """Replays the actions recorded in an ``episodes.jsonl`` file.

    An episode is matched by ``episode_id`` first (a rerun of the same collection), then by
    ``task_id`` (the first recorded episode of that task). Past the recorded turns, or for an
    unknown task, it sends ``""`` (an invalid action) rather than inventing moves.
    """

    def __init__(self, path: str | Path) -> None:
        """Load the recorded episodes from ``path``.

        Raises:
            FileNotFoundError: The file does not exist.
            ValueError: A line is not a JSON episode (with its line number).
        """
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"replay file {str(self.path)!r} does not exist")
        self.by_episode: dict[str, tuple[str, ...]] = {}
        self.by_task: dict[str, tuple[str, ...]] = {}
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                actions = tuple(str(turn["action"]) for turn in row["turns"])
                self.by_episode[str(row["episode_id"])] = actions
                self.by_task.setdefault(str(row["task_id"]), actions)
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(f"{self.path}:{number}: not an episode record ({err}).") from err

    def act_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        """Return the recorded action for each conversation's turn."""
        out = []
        for conversation in conversations:
            actions = self.by_episode.get(conversation.episode_id)
            if actions is None:
                actions = self.by_task.get(conversation.task_id, ())
            index = len(conversation.turns)
            out.append(ActionResult(actions[index] if index < len(actions) else ""))
        return out
