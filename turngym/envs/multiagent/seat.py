"""``SeatEnv``: one seat of a turn-based text game, seen as a single-agent env.

Env-aware reference agents (random, oracle, scripted opponents) read ``env.unwrapped`` and its
accessors; the multi-agent rollout engine hands each one this view of its own seat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from turngym.text_actions import TextSpace

if TYPE_CHECKING:
    from turngym.envs.multiagent.base import TextAECEnv

__all__ = ["SeatEnv"]


class SeatEnv:
    """One seat of a multi-agent env, shaped like a single-agent env for reference agents.

    The rollout engine hands these to env-aware agents (random, oracle, minimax, negotiator):
    ``unwrapped`` is the view itself, ``action_space`` samples the seat's *legal* actions, and
    the game-specific accessors answer for this seat only. A scripted opponent built on this
    view sees what its seat may see, plus the board of a perfect-information game.
    """

    def __init__(self, env: TextAECEnv, seat: str) -> None:
        """Wrap ``env`` for ``seat`` (the seat to move)."""
        self._env = env
        self.seat = seat

    @property
    def unwrapped(self) -> SeatEnv:
        """The view itself (reference agents read ``env.unwrapped``)."""
        return self

    @property
    def action_space(self) -> TextSpace:
        """A text space whose examples are the seat's legal actions now."""
        return TextSpace(examples=self._env.legal_actions(self.seat) or self._env.example_actions)

    @property
    def search_depth(self) -> int | None:
        """The game's default minimax depth (``None``: exact full-depth search)."""
        return self._env.search_depth

    def oracle_action(self) -> str:
        """The game's reference move for this seat."""
        return self._env.oracle_action(self.seat)

    def position(self) -> Any:
        """The board position (perfect-information games only), for search-based opponents."""
        return self._env.position()

    def action_for(self, move: Any) -> str:
        """The tagged action text of a move of :meth:`position`."""
        return self._env.action_for(move)

    def private_view(self) -> Any:
        """What this seat privately knows (games with hidden information only)."""
        return self._env.private_view(self.seat)
