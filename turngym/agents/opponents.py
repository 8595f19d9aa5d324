"""Scripted opponents for multi-agent games: minimax for board games, a negotiator for bargaining.

Opponents of graded strength (random, depth-k minimax, a negotiator;
docs/environments.md#multi-agent-games) are the fixed opponents a policy trains against
(``collect(env, {"player_0": policy, "player_1": MinimaxAgent()}, ...)``) and the anchors of
the multi-agent benchmark tables. Both are env-aware reference agents: the rollout engine
hands them a :class:`~turngym.envs.multiagent.seat.SeatEnv`, the view of their own seat
(the board of a perfect-information game, or the seat's own private values).

Ties between equally good moves are broken by a ``random.Random`` per episode, seeded from
``(seed, episode_id)`` as in :class:`~turngym.agents.scripted.RandomAgent`, so a group of
episodes against a fixed opponent still differs between members, and an episode's moves do
not depend on which other episodes share its batch.

Example:
    >>> from turngym.agents import RandomAgent
    >>> from turngym.rollout import collect
    >>> agents = {"player_0": RandomAgent(seed=0), "player_1": MinimaxAgent()}
    >>> groups = collect("turngym/TicTacToe-v0", agents, tasks=10, group_size=2,
    ...                  train_seat="player_1")
    >>> # exact search never does worse than the value of the opening it was dealt
    >>> all(ep.outcome >= (ep.privileged["value"] + 1) / 2 for g in groups for ep in g.episodes)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from turngym.agents.base import ActionResult
from turngym.agents.scripted import EpisodeSeededAgent
from turngym.envs.multiagent.minimax import choose_move
from turngym.envs.multiagent.negotiation import negotiate
from turngym.types import Conversation

__all__ = ["MinimaxAgent", "NegotiatorAgent"]

class MinimaxAgent(EpisodeSeededAgent):
    """Plays the best move found by minimax (alpha-beta) on a board game.

    ``depth=None`` uses each game's own ``search_depth``: exact full-depth search for
    Tic-Tac-Toe, 4 plies for Connect Four. ``minimax:<depth>`` in agent specs sets it.
    """

    def __init__(self, depth: int | None = None, seed: int = 0) -> None:
        """Create the agent.

        Args:
            depth: Plies to search (``None``: the game's default).
            seed: Fixes the tie-breaking of every episode.

        Raises:
            ValueError: ``depth`` is below 1.
        """
        if depth is not None and depth < 1:
            raise ValueError(f"minimax depth must be >= 1, got {depth}")
        super().__init__(seed)
        self.depth = depth

    def act_batch_with_envs(
        self, conversations: Sequence[Conversation], envs: Sequence[Any]
    ) -> list[ActionResult]:
        """Search each env's position and answer with a best move (ties broken at random)."""
        out = []
        for conversation, env in zip(conversations, envs, strict=True):
            seat = env.unwrapped
            depth = self.depth if self.depth is not None else seat.search_depth
            move = choose_move(seat.position(), depth, self._rng(conversation))
            out.append(ActionResult(seat.action_for(move)))
        return out


class NegotiatorAgent(EpisodeSeededAgent):
    """Bargains with a time-dependent concession strategy from its own seat's view only.

    See :func:`turngym.envs.multiagent.negotiation.negotiate` (Faratin et al., 1998).
    """

    def act_batch_with_envs(
        self, conversations: Sequence[Conversation], envs: Sequence[Any]
    ) -> list[ActionResult]:
        """Propose, accept or walk away from each seat's private view."""
        return [
            ActionResult(negotiate(env.unwrapped.private_view(), self._rng(conversation)))
            for conversation, env in zip(conversations, envs, strict=True)
        ]
