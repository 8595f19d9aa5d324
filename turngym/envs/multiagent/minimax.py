"""Minimax search for two-player zero-sum board games (negamax with alpha-beta pruning).

The opponents of ``TicTacToe`` and ``ConnectFour`` (opponents of graded
strength; docs/environments.md#multi-agent-games). Negamax with alpha-beta
pruning follows Knuth & Moore, "An analysis of alpha-beta pruning", Artificial Intelligence 6
(1975). Small games are solved exactly (``depth=None``: full depth, memoised); larger ones
are searched to a fixed depth and scored by the position's heuristic at the horizon.

Values are from the point of view of the player to move: a won game is worth
``1 + 0.01 * empty_cells`` (so quicker wins are preferred and losses are delayed), a draw 0,
a heuristic score lies in [-0.5, 0.5]. No global RNG: ties are broken by a ``random.Random``
the caller owns.

Example:
    >>> from turngym.envs.multiagent.tictactoe import TicTacToePosition
    >>> empty = TicTacToePosition.empty_board()
    >>> exact_value(empty)  # perfect play from the empty board is a draw
    0.0
    >>> x_threatens = TicTacToePosition((1, 1, 0, 2, 2, 0, 0, 0, 0), player=0)
    >>> best_moves(x_threatens, depth=None)  # X completes the top row (cell index 2)
    [2]
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Hashable, Sequence
from typing import Protocol

__all__ = ["Position", "exact_value", "negamax", "move_values", "best_moves", "choose_move"]

_WIN = 1.0
_SPEED = 0.01
_TIE = 1e-9


class Position(Hashable, Protocol):
    """An immutable two-player board position (the protocol the search needs).

    ``player`` is the index (0 or 1) of the seat to move; ``moves()`` is empty once the game
    is over and lists the best-first candidates otherwise (good ordering makes pruning cut).
    Positions are hashable: the exact search caches them.
    """

    @property
    def player(self) -> int:
        """The index (0 or 1) of the seat to move."""
        ...

    def moves(self) -> Sequence[int]:
        """Legal moves, in the order the search tries them; empty when the game is over."""
        ...

    def play(self, move: int) -> Position:
        """The position after the player to move plays ``move``."""
        ...

    def winner(self) -> int | None:
        """The index of the player who has won, or ``None``."""
        ...

    def empty_cells(self) -> int:
        """Number of empty cells (rewards quick wins)."""
        ...

    def heuristic(self) -> float:
        """Static score in [-0.5, 0.5] for the player to move (used at the depth horizon)."""
        ...


def _terminal(position: Position) -> float | None:
    winner = position.winner()
    if winner is not None:
        value = _WIN + _SPEED * position.empty_cells()
        return value if winner == position.player else -value
    if not position.moves():
        return 0.0
    return None


@functools.lru_cache(maxsize=1 << 16)
def exact_value(position: Position) -> float:
    """Game-theoretic value for the player to move, by full-depth search (memoised).

    Only for small games (Tic-Tac-Toe has 5,478 reachable positions); there is no pruning, so
    every memoised value is exact.
    """
    terminal = _terminal(position)
    if terminal is not None:
        return terminal
    # "+ 0.0" turns the -0.0 of a negated draw into 0.0.
    return max(-exact_value(position.play(move)) for move in position.moves()) + 0.0


def negamax(
    position: Position, depth: int, alpha: float = -math.inf, beta: float = math.inf
) -> float:
    """Depth-limited negamax value with alpha-beta pruning (fail-hard on the window).

    Args:
        position: Where to search from.
        depth: Plies to look ahead; at 0 the position's heuristic is returned.
        alpha: Lower bound of the search window.
        beta: Upper bound of the search window.

    Returns:
        The value for the player to move, exact when it lies inside ``(alpha, beta)``.
    """
    terminal = _terminal(position)
    if terminal is not None:
        return terminal
    if depth <= 0:
        return position.heuristic()
    best = -math.inf
    for move in position.moves():
        value = -negamax(position.play(move), depth - 1, -beta, -alpha)
        if value > best:
            best = value
        if best > alpha:
            alpha = best
        if alpha >= beta:
            break
    return best


def move_values(position: Position, depth: int | None) -> dict[int, float]:
    """Value of every legal move for the player to move (full window, so ties are exact).

    Args:
        position: A position that is not over.
        depth: Plies to search (``None``: exact full-depth search, small games only).
    """
    if depth is None:
        return {move: -exact_value(position.play(move)) for move in position.moves()}
    if depth < 1:
        raise ValueError(f"minimax depth must be >= 1 (or None for a full solve), got {depth}")
    return {move: -negamax(position.play(move), depth - 1) for move in position.moves()}


def best_moves(position: Position, depth: int | None) -> list[int]:
    """Every move whose value ties the best, in the position's move order."""
    values = move_values(position, depth)
    if not values:
        return []
    top = max(values.values())
    return [move for move, value in values.items() if value >= top - _TIE]


def choose_move(position: Position, depth: int | None, rng: random.Random | None = None) -> int:
    """One best move: the first in move order, or a uniform pick among ties with ``rng``.

    Raises:
        ValueError: The game is over (there is no legal move).
    """
    moves = best_moves(position, depth)
    if not moves:
        raise ValueError("the game is over: there is no move to choose")
    return moves[0] if rng is None else rng.choice(moves)
