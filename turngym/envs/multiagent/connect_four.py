"""ConnectFour: drop discs into columns; four in a row wins. Depth-limited minimax opponent.

The text version of PettingZoo's ``connect_four_v3`` and TextArena's ``ConnectFour-v0``
(docs/environments.md#connectfour). The board has ``rows`` x ``columns`` cells (default 6 x 7);
an action is a column number, ``<action>4</action>``; a disc falls to the lowest empty cell.
``player_0`` plays X and ``player_1`` plays O.

Tasks are openings of ``opening_plies`` random moves (default 4: 7^4 = 2,401 openings). The
game is too large to solve in pure Python, so the reference player searches ``search_depth``
plies (default 4) with alpha-beta and scores the horizon with the usual window heuristic
(open threes and twos, centre control); ``minimax:<depth>`` opponents choose their own depth.
There is no hidden information, so ``privileged`` is empty.

Example:
    >>> env = ConnectFour()
    >>> env.reset(options={"task": {"rows": 6, "columns": 7, "opening": []}})
    >>> for column in ["1", "2", "1", "2", "1", "2"]:
    ...     env.step(f"<action>{column}</action>")
    >>> env.step("<action>1</action>")  # X's fourth disc in column 1
    >>> env.rewards
    {'player_0': 1.0, 'player_1': -1.0}
    >>> print(env.render_text("player_0"))
    Connect Four: you are X (player_0).
     1 2 3 4 5 6 7
     . . . . . . .
     . . . . . . .
     X . . . . . .
     X O . . . . .
     X O . . . . .
     X O . . . . .
    Game over: you won.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from turngym.envs.multiagent.base import BASE_DIFFICULTY
from turngym.envs.multiagent.board import BoardGame

__all__ = ["ConnectFour", "ConnectFourPosition"]

_DIRECTIONS = ((1, 0), (0, 1), (1, 1), (1, -1))


@functools.lru_cache(maxsize=64)
def _windows(rows: int, columns: int) -> tuple[tuple[int, ...], ...]:
    """Every line of four cells (flat indices ``row * columns + column``, row 0 at the bottom)."""
    out = []
    for r in range(rows):
        for c in range(columns):
            for dc, dr in _DIRECTIONS:
                cells = [(r + k * dr, c + k * dc) for k in range(4)]
                if all(0 <= rr < rows and 0 <= cc < columns for rr, cc in cells):
                    out.append(tuple(rr * columns + cc for rr, cc in cells))
    return tuple(out)


@functools.lru_cache(maxsize=64)
def _move_order(columns: int) -> tuple[int, ...]:
    """Centre columns first: the classic ordering that makes alpha-beta prune early."""
    return tuple(sorted(range(columns), key=lambda c: (abs(2 * c - (columns - 1)), c)))


@dataclass(frozen=True, slots=True)
class ConnectFourPosition:
    """A Connect Four board with its column heights, player to move and winner so far.

    ``cells`` is flat (``row * columns + column``, row 0 at the bottom; 0 empty, 1 X, 2 O);
    ``won`` is the index of the player with four in a row, -1 while nobody has.
    """

    rows: int
    columns: int
    cells: tuple[int, ...]
    heights: tuple[int, ...]
    player: int
    won: int = -1

    @classmethod
    def empty_board(cls, rows: int = 6, columns: int = 7) -> ConnectFourPosition:
        """An empty board, X to move."""
        return cls(rows, columns, (0,) * (rows * columns), (0,) * columns, 0)

    def winner(self) -> int | None:
        """0 or 1 if that player has four in a row, else ``None``."""
        return None if self.won < 0 else self.won

    def moves(self) -> tuple[int, ...]:
        """Columns (0-based) that are not full, centre first; none once someone has won."""
        if self.won >= 0:
            return ()
        return tuple(c for c in _move_order(self.columns) if self.heights[c] < self.rows)

    def play(self, move: int) -> ConnectFourPosition:
        """The board after the player to move drops a disc in column ``move``."""
        row = self.heights[move]
        cells = list(self.cells)
        cells[row * self.columns + move] = self.player + 1
        heights = list(self.heights)
        heights[move] = row + 1
        won = self.player if self._connects(cells, row, move) else -1
        return ConnectFourPosition(
            self.rows, self.columns, tuple(cells), tuple(heights), 1 - self.player, won
        )

    def _connects(self, cells: list[int], row: int, column: int) -> bool:
        mark, cols = cells[row * self.columns + column], self.columns
        for dc, dr in _DIRECTIONS:
            run = 1
            for sign in (1, -1):
                r, c = row + sign * dr, column + sign * dc
                while 0 <= r < self.rows and 0 <= c < cols and cells[r * cols + c] == mark:
                    run, r, c = run + 1, r + sign * dr, c + sign * dc
            if run >= 4:
                return True
        return False

    def empty_cells(self) -> int:
        """Number of empty cells."""
        return self.rows * self.columns - sum(self.heights)

    def heuristic(self) -> float:
        """Window score for the player to move, squashed into [-0.5, 0.5].

        Each line of four holding only one player's discs counts for that player: 3 discs
        +5, 2 discs +2 (an opponent's 3 counts -4 for the player to move); each disc in the
        centre column +3. These are the weights of the common Connect Four tutorial heuristic.
        """
        me, them = self.player + 1, 2 - self.player
        cells, score = self.cells, 0
        for window in _windows(self.rows, self.columns):
            mine = theirs = 0
            for index in window:
                cell = cells[index]
                if cell == me:
                    mine += 1
                elif cell == them:
                    theirs += 1
            if theirs == 0:
                score += 5 if mine == 3 else 2 if mine == 2 else 0
            elif mine == 0:
                score -= 4 if theirs == 3 else 2 if theirs == 2 else 0
        if self.columns % 2:
            centre = self.columns // 2
            for r in range(self.rows):
                cell = cells[r * self.columns + centre]
                score += 3 if cell == me else -3 if cell == them else 0
        return 0.5 * math.tanh(score / 40.0)


class ConnectFour(BoardGame):
    """Connect Four between ``player_0`` (X) and ``player_1`` (O); see the module docstring."""

    metadata: ClassVar[dict[str, Any]] = {**BoardGame.metadata, "name": "connect_four_v0"}
    _position: ConnectFourPosition
    family: ClassVar[str] = "connectfour"
    game_name: ClassVar[str] = "Connect Four"
    example_actions: ClassVar[tuple[str, ...]] = tuple(f"<action>{i}</action>" for i in range(1, 8))
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        **BASE_DIFFICULTY, "rows": 6, "columns": 7, "opening_plies": 4,
    }  # fmt: skip
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"rows": 5, "columns": 6, "opening_plies": 4},
        1: {"rows": 6, "columns": 7, "opening_plies": 4},
        2: {"rows": 6, "columns": 7, "opening_plies": 2},
    }
    default_max_turns: ClassVar[int] = 130
    search_depth: ClassVar[int | None] = 4

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Boards from 4 x 4 to 9 x 9, openings that leave a game to play."""
        rows, columns = int(difficulty["rows"]), int(difficulty["columns"])
        if not (4 <= rows <= 9 and 4 <= columns <= 9):
            raise ValueError(f"rows and columns must be 4-9, got {rows} x {columns}.")
        if not 2 <= int(difficulty["opening_plies"]) <= 8:
            raise ValueError(
                "opening_plies must be 2-8: fewer leaves too few openings for three disjoint "
                "splits, more makes the opening decide the game."
            )

    def board_fields(self, difficulty: Mapping[str, Any]) -> dict[str, Any]:
        """The board shape is part of the task."""
        return {"rows": int(difficulty["rows"]), "columns": int(difficulty["columns"])}

    def empty_position(self, difficulty: Mapping[str, Any]) -> ConnectFourPosition:
        """The empty board of the task's (or the knobs') shape."""
        return ConnectFourPosition.empty_board(int(difficulty["rows"]), int(difficulty["columns"]))

    def parse_move(self, position: Any, command: str) -> int | str:
        """A column number that is not full."""
        text, columns = command.strip(), position.columns
        if not text.isdigit() or not 1 <= int(text) <= columns:
            return f"{text[:40]!r} is not a column number from 1 to {columns}"
        column = int(text) - 1
        if position.heights[column] >= position.rows:
            return f"column {text} is full"
        return column

    def move_label(self, move: int) -> str:
        """Columns are numbered from 1."""
        return str(move + 1)

    def draw_board(self, position: Any) -> str:
        """Column numbers, then the rows from the top (``.`` empty)."""
        columns = position.columns
        lines = [" " + " ".join(str(c + 1) for c in range(columns))]
        for r in reversed(range(position.rows)):
            row = position.cells[r * columns : (r + 1) * columns]
            lines.append(" " + " ".join(".XO"[cell] for cell in row))
        return "\n".join(lines)

    def rules(self) -> str:
        """How to move and win."""
        rows, columns = self._position.rows, self._position.columns
        return (
            f"Players take turns dropping a disc into one of {columns} columns (numbered 1-"
            f"{columns}) of a board {rows} rows high; the disc falls to the lowest empty cell. "
            "Four discs in a row (across, up, or diagonally) win; a full board is a draw."
        )

    def win_phrase(self) -> str:
        """A winning move makes four in a row."""
        return "four in a row"
