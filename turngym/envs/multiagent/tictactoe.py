"""TicTacToe: noughts and crosses for two seats, with a perfect minimax opponent.

The text version of PettingZoo's ``tictactoe_v3`` and TextArena's ``TicTacToe-v0``
(docs/environments.md#tictactoe). Cells are numbered 1-9 row by row; an action is the number
of an empty cell, ``<action>5</action>``. ``player_0`` plays X, ``player_1`` plays O.

Tasks are openings of ``opening_plies`` random moves (default 2, so X is to move on a board
holding one X and one O; the 72 such openings are split ~60/20/20 by content hash). The game
is solved exactly (5,478 reachable positions), so each seat's ``privileged`` info holds the
game-theoretic value of the position for that seat and, for the seat to move, its optimal
moves; the ``minimax`` opponent and the oracle never lose from a drawn or won position.

Example:
    >>> env = TicTacToe()
    >>> env.reset(options={"task": {"opening": []}})
    >>> for cell in ["1", "4", "2", "5"]:
    ...     env.step(f"<action>{cell}</action>")
    >>> env.step("<action>3</action>")  # X completes the top row
    >>> env.rewards, env.terminations["player_1"]
    ({'player_0': 1.0, 'player_1': -1.0}, True)
    >>> print(env.observe("player_1"))
    You played 5.
    Your opponent (X) played 3: three in a row. You lost.
    <BLANKLINE>
    Tic-Tac-Toe: you are O (player_1).
     X | X | X
    ---+---+---
     O | O | 6
    ---+---+---
     7 | 8 | 9
    Game over: you lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from turngym.envs.multiagent.base import BASE_DIFFICULTY
from turngym.envs.multiagent.board import BoardGame
from turngym.envs.multiagent.minimax import best_moves, exact_value

__all__ = ["TicTacToe", "TicTacToePosition"]

_CELL_ACTIONS = tuple(f"<action>{i}</action>" for i in range(1, 10))
_LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))
_LABELS = tuple(str(i) for i in range(1, 10))
_MISSING = object()
# At most 3**9 boards exist, so everything derived from a board alone is computed once per
# board and process: the winner, the legal moves, the successor boards, the drawing, and the
# solver's verdict. A step then costs a few dictionary look-ups.
_WINNERS: dict[tuple[int, ...], int | None] = {}
_MOVES: dict[tuple[int, ...], tuple[int, ...]] = {}
_NEXT: dict[tuple[tuple[int, ...], int, int], TicTacToePosition] = {}
_DRAWINGS: dict[tuple[int, ...], str] = {}
_SOLVED: dict[tuple[tuple[int, ...], int], tuple[int, list[str]]] = {}
_KEYS: dict[tuple[tuple[int, ...], int], str] = {}
_MOVE_TEXTS: dict[tuple[int, ...], str] = {}
# Per class as well, since a subclass may draw or word things differently: the position after
# an opening, a seat's view of a board, a seat's instructions for the two refusal knobs.
_OPENINGS: dict[tuple[type, tuple[str, ...]], TicTacToePosition] = {}
_VIEWS: dict[tuple[type, str, tuple[int, ...], int, str | None], str] = {}
_INSTRUCTIONS: dict[tuple[type, str, Any, Any], str] = {}


@dataclass(frozen=True, slots=True)
class TicTacToePosition:
    """A Tic-Tac-Toe board: 9 cells (0 empty, 1 X, 2 O) and the index of the player to move."""

    cells: tuple[int, ...]
    player: int

    @classmethod
    def empty_board(cls) -> TicTacToePosition:
        """The empty board, X to move."""
        return cls((0,) * 9, 0)

    def winner(self) -> int | None:
        """0 if X has three in a row, 1 if O has, else ``None``."""
        c = self.cells
        won = _WINNERS.get(c, _MISSING)
        if won is _MISSING:
            won = next((c[a] - 1 for a, b, d in _LINES if c[a] and c[a] == c[b] == c[d]), None)
            _WINNERS[c] = won
        return won  # type: ignore[return-value]

    def moves(self) -> tuple[int, ...]:
        """Indices (0-8) of the empty cells; none once someone has won."""
        moves = _MOVES.get(self.cells)
        if moves is None:
            won = self.winner() is not None
            moves = _MOVES[self.cells] = (
                () if won else tuple(i for i, c in enumerate(self.cells) if not c)
            )
        return moves

    def play(self, move: int) -> TicTacToePosition:
        """The board after the player to move marks cell index ``move``."""
        key = (self.cells, self.player, move)
        after = _NEXT.get(key)
        if after is None:
            cells = list(self.cells)
            cells[move] = self.player + 1
            after = _NEXT[key] = TicTacToePosition(tuple(cells), 1 - self.player)
        return after

    def empty_cells(self) -> int:
        """Number of empty cells."""
        return self.cells.count(0)

    def heuristic(self) -> float:
        """The game is solved exactly, so the horizon score is never needed; 0 is neutral."""
        return 0.0


class TicTacToe(BoardGame):
    """Tic-Tac-Toe between ``player_0`` (X) and ``player_1`` (O); see the module docstring."""

    metadata: ClassVar[dict[str, Any]] = {**BoardGame.metadata, "name": "tictactoe_v0"}
    family: ClassVar[str] = "tictactoe"
    game_name: ClassVar[str] = "Tic-Tac-Toe"
    example_actions: ClassVar[tuple[str, ...]] = _CELL_ACTIONS
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {**BASE_DIFFICULTY, "opening_plies": 2}
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"opening_plies": 2},
        1: {"opening_plies": 3},
        2: {"opening_plies": 4},
    }
    default_max_turns: ClassVar[int] = 30
    search_depth: ClassVar[int | None] = None
    _position: TicTacToePosition  # the board game's position, with its flat ``cells`` tuple

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """``opening_plies`` must leave room for a game and for three disjoint splits."""
        if not 1 <= int(difficulty["opening_plies"]) <= 4:
            raise ValueError(
                "opening_plies must be 1-4: fewer leaves too few openings for three disjoint "
                "splits, more often leaves a decided game."
            )

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Play ``opening_plies`` uniformly random moves (the board game's draw, shortcut).

        Nobody can win within 4 plies, so the legal moves are the empty cells in order and
        every such opening is unfinished: the same draws as :meth:`BoardGame.generate_task`
        without building positions.
        """
        plies = int(difficulty["opening_plies"])
        if type(self) is not TicTacToe or not 0 <= plies <= 4:  # a subclass may move otherwise
            return super().generate_task(rng, difficulty)
        cells, opening = list(_LABELS), []
        for _ in range(plies):
            opening.append(cells.pop(int(rng.integers(len(cells)))))
        return {"opening": opening}

    # As the board game's: rng.integers(n) draws only.
    _integer_draws = generate_task

    def empty_position(self, difficulty: Mapping[str, Any]) -> TicTacToePosition:
        """The empty 3x3 board."""
        return TicTacToePosition.empty_board()

    def parse_move(self, position: Any, command: str) -> int | str:
        """A cell number 1-9 that is empty."""
        text = command.strip()
        if not text.isdigit() or not 1 <= int(text) <= 9:
            return f"{command.strip()[:40]!r} is not a cell number from 1 to 9"
        index = int(text) - 1
        if position.cells[index]:
            return f"cell {text} is already taken"
        return index

    def move_label(self, move: int) -> str:
        """Cells are numbered 1-9."""
        return _LABELS[move]

    def draw_board(self, position: Any) -> str:
        """Marks, or the cell number where a cell is empty."""
        drawing = _DRAWINGS.get(position.cells)
        if drawing is None:
            cells = [" XO"[c] if c else str(i + 1) for i, c in enumerate(position.cells)]
            rows = [" " + " | ".join(cells[r * 3 : r * 3 + 3]) for r in range(3)]
            drawing = _DRAWINGS[position.cells] = "\n---+---+---\n".join(rows)
        return drawing

    def state_key(self) -> str:
        """The cells (``.`` empty, ``X``, ``O``) and the index of the seat to move."""
        position = self._position
        key = _KEYS.get((position.cells, position.player))
        if key is None:
            key = _KEYS[position.cells, position.player] = super().state_key()
        return key

    def _replay_opening(self, task: Mapping[str, Any]) -> TicTacToePosition:
        """The board after the opening (replayed once per opening and process)."""
        key = (type(self), tuple(str(label) for label in task.get("opening", [])))
        position = _OPENINGS.get(key)
        if position is None:  # an illegal opening raises every time, and is never stored
            replayed = super()._replay_opening(task)
            assert isinstance(replayed, TicTacToePosition)
            position = _OPENINGS[key] = replayed
        return position

    def render_text(self, seat: str) -> str:
        """The board, whose turn it is, and the legal moves when it is ``seat``'s turn."""
        position = self._position
        key = (type(self), seat, position.cells, position.player, self.result)
        text = _VIEWS.get(key)
        if text is None:
            text = _VIEWS[key] = super().render_text(seat)
        return text

    def instructions(self, seat: str) -> str:
        """Rules, the action grammar, the refusal rule and the rewards, for ``seat``."""
        d = self.episode_difficulty
        key = (type(self), seat, d["invalid_penalty"], d["max_invalid"])
        text = _INSTRUCTIONS.get(key)
        if text is None:
            text = _INSTRUCTIONS[key] = super().instructions(seat)
        return text

    def moves_text(self) -> str:
        """The empty cells' numbers, e.g. ``"1, 5, 9"``."""
        cells = self._position.cells
        text = _MOVE_TEXTS.get(cells)
        if text is None:
            text = _MOVE_TEXTS[cells] = super().moves_text()
        return text

    def rules(self) -> str:
        """How to move and win."""
        return (
            "Players take turns marking an empty cell of a 3x3 grid; cells are numbered 1-9 "
            "row by row. Three marks in a row, column or diagonal win; a full board is a draw."
        )

    def win_phrase(self) -> str:
        """A winning move makes three in a row."""
        return "three in a row"

    def privileged(self, seat: str) -> dict[str, Any]:
        """The exact value of the position for ``seat``, and its optimal moves when it moves.

        The value is +1 (win), 0 (draw) or -1 (loss) under perfect play from here on.
        """
        position = self._position
        if self.result is not None:
            return {}
        key = (position.cells, position.player)
        solved = _SOLVED.get(key)
        if solved is None:
            labels = [self.move_label(m) for m in best_moves(position, None)]
            solved = _SOLVED[key] = (_sign(exact_value(position)), labels)
        value, labels = solved
        if self.seats.index(seat) != position.player:
            return {"value": -value}
        return {"value": value, "optimal_moves": list(labels)}


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)
