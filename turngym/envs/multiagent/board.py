"""``BoardGame``: two-player, perfect-information board games on :class:`TextAECEnv`.

Shared by ``TicTacToe`` and ``ConnectFour``. A subclass supplies an immutable position class
(the :class:`~turngym.envs.multiagent.minimax.Position` protocol, plus a flat ``cells`` tuple
for the state key), how moves are written, and how the board is drawn; this class does tasks,
rules, outcomes and texts.

* **Tasks** are openings: ``opening_plies`` random legal moves from the empty board (never a
  finished game), so the three splits hold different start positions. ``player_0`` plays
  ``X`` and always moves first from the empty board.
* **Rewards and outcomes** follow PettingZoo's classic games
  (docs/environments.md#multi-agent-games):
  win +1, loss -1, draw 0, paid to both seats on the move that ends the game. A seat's
  ``score`` is 1 for a win, 0.5 for a draw and 0 for a loss (or an unfinished game);
  ``success`` means a win.
* **Forfeit**: ``max_invalid`` refused moves in a row lose the game.
* **Reference player** (``oracle_action``): minimax at :attr:`BoardGame.search_depth`
  (``None``: exact), first best move in move order.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from turngym.envs.multiagent.base import Move, TextAECEnv
from turngym.envs.multiagent.minimax import Position, best_moves

__all__ = ["BoardGame"]

_MAX_OPENING_DRAWS = 1_000
# Outcomes of a legal move besides a win (whose outcome is the win phrase), and the shared,
# read-only records of legal moves: (class, seat, label, mark, outcome) -> Move.
_GOES_ON: Any = object()
_DRAW: Any = object()
_NO_REWARDS: Mapping[str, float] = MappingProxyType({})
_RECORDS: dict[tuple[type, str, str, str, Any], Move] = {}


class BoardGame(TextAECEnv):
    """Base of the two-player board games: tasks are openings, outcomes win/draw/loss."""

    marks: ClassVar[tuple[str, str]] = ("X", "O")
    """The symbol of each seat on the board."""
    game_name: ClassVar[str] = "board game"
    """Human-readable name for the texts."""
    reference_opponent: ClassVar[str] = "minimax"

    # --- Set by subclasses ---------------------------------------------------------------------
    def empty_position(self, difficulty: Mapping[str, Any]) -> Position:
        """Return the empty board for these knobs."""
        raise NotImplementedError

    def parse_move(self, position: Position, command: str) -> int | str:
        """Return the move written in ``command``, or an error message saying what is wrong."""
        raise NotImplementedError

    def move_label(self, move: int) -> str:
        """Return how a move is written in actions and texts (e.g. ``"5"``)."""
        raise NotImplementedError

    def draw_board(self, position: Position) -> str:
        """Return the board as text."""
        raise NotImplementedError

    def rules(self) -> str:
        """Return the rules paragraph of the instructions (how to move and win)."""
        raise NotImplementedError

    # --- TextAECEnv hooks ----------------------------------------------------------------------
    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Play ``opening_plies`` uniformly random legal moves that do not end the game."""
        plies = int(difficulty["opening_plies"])
        for _ in range(_MAX_OPENING_DRAWS):
            position, opening = self.empty_position(difficulty), []
            for _ in range(plies):
                moves = sorted(position.moves())
                move = moves[int(rng.integers(len(moves)))]
                position = position.play(move)
                opening.append(self.move_label(move))
            if position.moves():
                return {**self.board_fields(difficulty), "opening": opening}
        raise RuntimeError(f"no unfinished {plies}-ply opening found; lower opening_plies.")

    # An opening is rng.integers(n) draws only: reset may make them without NumPy's generator.
    _integer_draws = generate_task

    def board_fields(self, difficulty: Mapping[str, Any]) -> dict[str, Any]:
        """Task fields that fix the board shape (none for fixed boards)."""
        return {}

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Replay the opening on the empty board.

        Raises:
            ValueError: A move of the opening is illegal, or it finishes the game.
        """
        self._position = self._replay_opening(task)
        self.result: str | None = None  # a seat, "draw", or None while the game goes on
        self.forfeited: str | None = None
        self.plies = len(task.get("opening", []))

    def _replay_opening(self, task: Mapping[str, Any]) -> Position:
        """The position after the task's opening (see :meth:`load_task`)."""
        position = self.empty_position({**self.episode_difficulty, **task})
        for label in task.get("opening", []):
            move = self.parse_move(position, str(label))
            if isinstance(move, str):
                raise ValueError(f"task opening move {label!r}: {move}")
            position = position.play(move)
        if not position.moves():
            raise ValueError("the task's opening already finishes the game")
        return position

    def to_move(self) -> str:
        """The seat whose mark is to move."""
        return self.seats[self._position.player]

    def position(self) -> Position:
        """The current (immutable) position, for minimax opponents."""
        return self._position

    def action_for(self, move: int) -> str:
        """The tagged action that plays ``move``."""
        return f"<{self.action_tag}>{self.move_label(move)}</{self.action_tag}>"

    def apply(self, seat: str, command: str) -> Move:
        """Play the move in ``command`` if it is legal; announce it to the opponent."""
        position = self._position
        move = self.parse_move(position, command)
        if isinstance(move, str):
            return Move(valid=False, message=f"Illegal move: {move}")
        self._position = after = position.play(move)
        self.plies += 1
        if after.winner() is not None:
            self.result, outcome = seat, self.win_phrase()
        elif not after.moves():
            self.result, outcome = "draw", _DRAW
        else:
            outcome = _GOES_ON
        # The record depends on nothing else, so each one is built once per process.
        key = (type(self), seat, self.move_label(move), self.marks[position.player], outcome)
        record = _RECORDS.get(key)
        if record is None:
            record = _RECORDS[key] = self._move_record(*key[1:])
        return record

    def _move_record(self, seat: str, label: str, mark: str, outcome: Any) -> Move:
        """What ``seat`` playing ``label`` with ``mark`` tells both seats, and the rewards.

        ``outcome`` is the win phrase of a winning move, else :data:`_DRAW` or :data:`_GOES_ON`.
        """
        you, they = f"You played {label}", f"Your opponent ({mark}) played {label}"
        if outcome is _GOES_ON:
            return Move(message=f"{you}.", announcement=f"{they}.", rewards=_NO_REWARDS)
        if outcome is _DRAW:
            full = "The board is full: draw."
            return Move(message=f"{you}. {full}", announcement=f"{they}. {full}",
                        rewards=_NO_REWARDS, terminated=True)  # fmt: skip
        rewards = MappingProxyType({seat: 1.0, self._opponent(seat): -1.0})
        return Move(message=f"{you}: {outcome}. You won!",
                    announcement=f"{they}: {outcome}. You lost.",
                    rewards=rewards, terminated=True)  # fmt: skip

    def win_phrase(self) -> str:
        """How a winning move is described (e.g. "three in a row")."""
        return "a winning line"

    def forfeit(self, seat: str) -> Move:
        """Refusing to move legally ``max_invalid`` times in a row loses the game."""
        other = self._opponent(seat)
        self.result, self.forfeited = other, seat
        return Move(message="You forfeit the game: you lost.",
                    announcement="Your opponent forfeits the game: you won!",
                    rewards={seat: -1.0, other: 1.0}, terminated=True)  # fmt: skip

    def success(self, seat: str) -> bool:
        """Whether ``seat`` has won (its score is 1)."""
        return self.result == seat

    def score(self, seat: str) -> float:
        """1 for a win, 0.5 for a draw, 0 for a loss or an unfinished game."""
        if self.result is None:
            return 0.0
        return 0.5 if self.result == "draw" else float(self.result == seat)

    def state_key(self) -> str:
        """The cells (``.`` empty, then the marks) and the index of the seat to move."""
        position = self._position
        cells = "".join(map(".XO".__getitem__, position.cells))  # type: ignore[attr-defined]
        return f"{self.family}:{cells}|{position.player}"

    def legal_actions(self, seat: str) -> list[str]:
        """The actions of every legal move, for the seat to move (none for the other)."""
        if self.result is not None or seat != self.to_move():
            return []
        return [self.action_for(move) for move in sorted(self._position.moves())]

    def oracle_action(self, seat: str) -> str:
        """The first best move of a minimax search at :attr:`search_depth`."""
        return self.action_for(best_moves(self._position, self.search_depth)[0])

    def metrics(self) -> dict[str, Any]:
        """Plies played (opening included) and the result so far."""
        return {"plies": self.plies, "result": self.result, "forfeited": self.forfeited}

    def instructions(self, seat: str) -> str:
        """Rules, the action grammar, the refusal rule and the rewards, for ``seat``."""
        index = self.seats.index(seat)
        mark, other = self.marks[index], self.marks[1 - index]
        d = self.episode_difficulty
        return (
            f"You are playing {self.game_name} as {mark} ({seat}); your opponent plays "
            f"{other}. {self.rules()}\n"
            f"Answer with one move in an action tag, e.g. {self.example_actions[0]}. You may "
            f"think first in <think>...</think>. A malformed or illegal move is refused: you "
            f"must move again, it costs {abs(float(d['invalid_penalty'])):g} reward, and "
            f"{int(d['max_invalid'])} refused moves in a row forfeit the game.\n"
            "Rewards: win +1, loss -1, draw 0."
        )

    def render_text(self, seat: str) -> str:
        """The board, whose turn it is, and the legal moves when it is ``seat``'s turn."""
        index = self.seats.index(seat)
        head = f"{self.game_name}: you are {self.marks[index]} ({seat})."
        board = self.draw_board(self._position)
        if self.result is not None:
            verdict = "draw" if self.result == "draw" else "you won" if self.result == seat else (
                "you lost")  # fmt: skip
            status = f"Game over: {verdict}."
        elif seat == self.to_move():
            status = f"Your move ({self.marks[index]}). Legal moves: {self.moves_text()}."
        else:
            status = "Waiting for your opponent."
        return f"{head}\n{board}\n{status}"

    def moves_text(self) -> str:
        """The legal moves of the current position, as shown to the seat to move ("1, 5")."""
        return ", ".join(self.move_label(m) for m in sorted(self._position.moves()))

    def _opponent(self, seat: str) -> str:
        return self.seats[1 - self.seats.index(seat)]
