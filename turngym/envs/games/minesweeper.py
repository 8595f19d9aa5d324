"""Minesweeper: reveal every safe cell of a board without stepping on a mine.

The classic game in TextArena's text form (``Minesweeper-v0``;
docs/environments.md#minesweeper), also in GEM and KORGym: ``<action>reveal 3 4</action>``
opens the cell at row 3, column 4
(0-based), ``<action>flag 3 4</action>`` toggles a flag. Opening a cell with no adjacent mines
opens its neighbours too (flood fill). As in TextArena and most desktop versions, the first
reveal is always safe: mines are placed only then, outside the 3x3 block around it, so the
first reveal always opens an area.

Mine layouts are drawn at the first reveal from the task's ``layout_seed`` and the revealed
cell, so a task dict plus the actions fully determine an episode. With ``no_guess`` (the
default) the generator keeps drawing until the board can be cleared from that first reveal by
logic alone, using the same solver as the oracle: single-cell rules (a number whose hidden
neighbours all must be mines, or none can be), the subset rule (if one constraint's cells are a
subset of another's, the difference holds the difference of their mine counts) and the total
mine count. Where no cell is provably safe (only without ``no_guess``, or on a hand-written
board) the oracle guesses the cell with the lowest estimated risk, so its success rate there is
below 100%: the game then involves guessing.

Example:
    >>> import gymnasium, turngym.envs
    >>> env = gymnasium.make("turngym/Minesweeper-v0")
    >>> task = {"rows": 3, "cols": 4, "mine_cells": [[0, 3]]}
    >>> _ = env.reset(options={"task": task})
    >>> obs, reward, terminated, *_ = env.step("<action>reveal 2 0</action>")
    >>> print(obs)
    You revealed (2, 0). You cleared the board!
    <BLANKLINE>
    Mines: 1. Flags: 0. Safe cells revealed: 11 of 11.
      0 1 2 3
    0 . . 1 *
    1 . . 1 1
    2 . . . .
    >>> reward, terminated
    (1.0, True)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np

from turngym.core import TextEnv, TextSpace, Transition
from turngym.envs.games.minesweeper_solver import (
    deduce,
    flood,
    logic_solves,
    mine_counts,
    neighbours,
    place_mines,
    risk_order,
)

__all__ = ["Minesweeper"]

_TASK_KEYS = frozenset({"rows", "cols", "mines", "layout_seed", "no_guess", "mine_cells"})
_ACTION = re.compile(
    r"(reveal|open|flag|unflag|r|f)\s*[(\[]?\s*(\d{1,3})\s*[,\s]\s*(\d{1,3})\s*[)\]]?",
    re.IGNORECASE,
)
_VERBS = {
    "reveal": "reveal",
    "open": "reveal",
    "r": "reveal",
    "flag": "flag",
    "f": "flag",
    "unflag": "unflag",
}
_PAIR = re.compile(r"[(\[]\s*(\d+)\s*,\s*(\d+)\s*[)\]]")
_DIGITS = (".", "1", "2", "3", "4", "5", "6", "7", "8")
_BOARD_ROW = re.compile(r"^\s*\d+(?:\s+[?F.*X1-8])+\s*$", re.MULTILINE)


@lru_cache(maxsize=32)
def _board_actions(rows: int, cols: int) -> TextSpace:
    """What random agents sample: revealing any cell of this board, or flagging a corner."""
    reveals = [f"<action>reveal {r} {c}</action>" for r in range(rows) for c in range(cols)]
    corners = [(0, 0), (0, cols - 1), (rows - 1, 0), (rows - 1, cols - 1)]
    return TextSpace(examples=reveals + [f"<action>flag {r} {c}</action>" for r, c in corners])


@lru_cache(maxsize=32)
def _frame(rows: int, cols: int) -> tuple[str, tuple[str, ...], int]:
    """The column-number line, the row labels and the symbol width of a board."""
    width, label = len(str(cols - 1)), len(str(rows - 1))
    header = " " * label + " " + " ".join(f"{c:>{width}}" for c in range(cols))
    return header, tuple(f"{r:>{label}} " for r in range(rows)), width


class Minesweeper(TextEnv):
    """Clear a Minesweeper board (TextArena's text version; a logic-solver oracle).

    Each turn is one action: ``reveal R C`` (also ``open``/``r``), ``flag R C`` (``f``; toggles
    a flag) or ``unflag R C``, with 0-based row and column, e.g. ``<action>reveal 3 4</action>``;
    ``(3, 4)`` and ``3,4`` are accepted. Revealing a flagged or already revealed cell, or
    flagging a revealed one, is invalid and changes nothing. Revealing a mine ends the episode.

    Score and reward: the score is the fraction of safe cells revealed (1 = cleared, the only
    success); each step's reward is the gain in score, plus ``mine_penalty`` (default 0) on
    the step that hits a mine, so an episode's rewards add up to its final score.

    Difficulty knobs: ``rows`` (3-24), ``cols`` (3-30), ``mines`` (at least one, leaving room for
    the safe 3x3 block of the first reveal), ``no_guess`` (draw only layouts that logic alone
    clears from the first reveal; falls back to a layout that needs a guess after 500 draws,
    which ``privileged["logic_solvable"]`` then reports) and ``mine_penalty`` (-10 to 0).
    Levels: 0 = 6x6 with 4 mines; 1 = 8x8 with 10 (default); 2 = 9x9 with 10 (beginner);
    3 = 12x12 with 24; 4 = 16x16 with 40 (intermediate); 5 = 9x9 with 10 and guessing allowed.

    A task is ``{"rows", "cols", "mines", "layout_seed", "no_guess"}`` (mines placed at the
    first reveal) or, hand-written, ``{"rows", "cols", "mine_cells": [[r, c], ...]}``: a fixed
    layout, where a first reveal onto a mine moves that mine to the first free cell in
    row-major order (the Windows rule), so the first reveal is safe there too.

    State key: the visible board (``?`` hidden, ``F`` flag, ``.``/digits revealed) and whether
    the game is on, won or lost. Privileged info: ``mine_cells`` and ``logic_solvable``
    (whether the solver clears the board from the first reveal), both ``None`` until the first
    reveal places the mines. Leak check: until the game is over, no board row may show a mine,
    and no text may list the coordinates of every mine.

    Example:
        >>> env = Minesweeper()
        >>> obs, info = env.reset(seed=0, options={"split": "test"})
        >>> _ = env.step(env.oracle_action())
        >>> env.privileged()["logic_solvable"]
        True
    """

    family: ClassVar[str] = "minesweeper"
    example_actions: ClassVar[tuple[str, ...]] = (
        "<action>reveal 0 0</action>",
        "<action>reveal 4 4</action>",
        "<action>reveal 2 5</action>",
        "<action>reveal 7 1</action>",
        "<action>flag 3 3</action>",
    )
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "rows": 8,
        "cols": 8,
        "mines": 10,
        "no_guess": True,
        "mine_penalty": 0.0,
    }
    # Each preset sets every board knob, so a per-reset level fully applies.
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"rows": 6, "cols": 6, "mines": 4, "no_guess": True},
        1: {"rows": 8, "cols": 8, "mines": 10, "no_guess": True},
        2: {"rows": 9, "cols": 9, "mines": 10, "no_guess": True},
        3: {"rows": 12, "cols": 12, "mines": 24, "no_guess": True},
        4: {"rows": 16, "cols": 16, "mines": 40, "no_guess": True},
        5: {"rows": 9, "cols": 9, "mines": 10, "no_guess": False},
    }

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and its valid range."""
        for name, high in (("rows", 24), ("cols", 30)):
            value = difficulty[name]
            if (isinstance(value, bool) or not isinstance(value, Integral)
                    or not 3 <= int(value) <= high):  # fmt: skip
                raise ValueError(
                    f"Minesweeper: {name}={value!r} is invalid; use an integer from 3 to {high}."
                )
        room = difficulty["rows"] * difficulty["cols"] - 9
        mines = difficulty["mines"]  # None: a fixed layout (load_task checks its cells)
        integer = isinstance(mines, Integral) and not isinstance(mines, bool)
        if mines is not None and (not integer or not 1 <= mines <= room):
            raise ValueError(
                f"Minesweeper: mines={mines!r} is invalid; use 1 to {room} on a "
                f"{difficulty['rows']}x{difficulty['cols']} board (the first "
                "reveal keeps a 3x3 block free)."
            )
        if not isinstance(difficulty["no_guess"], bool):
            raise ValueError(
                f"Minesweeper: no_guess={difficulty['no_guess']!r} is invalid; use True or False."
            )
        penalty = difficulty["mine_penalty"]
        if (isinstance(penalty, bool) or not isinstance(penalty, Real)
                or not -10 <= float(penalty) <= 0):  # fmt: skip
            raise ValueError(
                f"Minesweeper: mine_penalty={penalty!r} is invalid; use a number from -10 to 0."
            )

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw a layout seed; the mines themselves are placed at the first reveal."""
        return {
            "rows": int(difficulty["rows"]),
            "cols": int(difficulty["cols"]),
            "mines": int(difficulty["mines"]),
            "layout_seed": int(rng.integers(2**31 - 1)),
            "no_guess": bool(difficulty["no_guess"]),
        }

    # The layout seed is one rng.integers(n): reset may draw it without NumPy's generator.
    _integer_draws = generate_task

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Validate the task and start with every cell hidden."""
        unknown = sorted(set(task) - _TASK_KEYS)
        if unknown:
            raise ValueError(
                f"Minesweeper task has unknown key(s) {unknown}; known: {sorted(_TASK_KEYS)}."
            )
        fixed = task.get("mine_cells")
        knobs = {
            **self.episode_difficulty,
            **{k: task[k] for k in ("rows", "cols", "no_guess") if k in task},
        }
        knobs["mines"] = task.get("mines", knobs["mines"]) if fixed is None else None
        self.check_difficulty(knobs)
        self.rows, self.cols, self.n_mines = int(knobs["rows"]), int(knobs["cols"]), knobs["mines"]
        self.no_guess, self.penalty = knobs["no_guess"], float(knobs["mine_penalty"])
        self.fixed = None if fixed is None else self._check_cells(fixed)
        if self.fixed is not None:
            self.n_mines = len(self.fixed)
        if fixed is None and not isinstance(task.get("layout_seed"), int):
            raise ValueError(
                "A generated Minesweeper task needs an integer 'layout_seed' "
                "(or give a fixed layout as 'mine_cells')."
            )
        self.seed = task.get("layout_seed", 0)
        size = self.rows * self.cols
        self.revealed, self.flagged = bytearray(size), bytearray(size)
        self.mines: tuple[int, ...] = ()
        self.counts: list[int] = []
        self.status, self.hit = "play", -1
        self.logic_solvable: bool | None = None
        # Kept up to date move by move, so a step never rescans the board: the symbol of every
        # cell as the state key shows it, and the numbers the status line and metrics report.
        self._view = ["?"] * size
        self._n_revealed = self._n_flags = 0
        self.action_space = _board_actions(self.rows, self.cols)

    def _check_cells(self, cells: Any) -> tuple[int, ...]:
        """Validate hand-written ``mine_cells`` and return their sorted indices."""
        ok = isinstance(cells, list) and all(
            isinstance(p, list)
            and len(p) == 2
            and all(isinstance(x, int) for x in p)
            and 0 <= p[0] < self.rows
            and 0 <= p[1] < self.cols
            for p in cells
        )
        indices = sorted({p[0] * self.cols + p[1] for p in cells}) if ok else []
        if not ok or len(indices) != len(cells) or not 1 <= len(cells) < self.rows * self.cols:
            raise ValueError(
                "Minesweeper task 'mine_cells' must be distinct [row, col] pairs "
                "inside the board, e.g. [[0, 3], [2, 1]]."
            )
        return tuple(indices)

    # --- Play ---------------------------------------------------------------------------------
    def apply(self, command: str) -> Transition:
        """Reveal or (un)flag one cell; malformed or illegal commands change nothing."""
        match = _ACTION.fullmatch(command.strip())
        if match is None:
            shown = command if len(command) <= 40 else command[:37] + "..."
            return self._invalid(f"{shown!r} is not an action")
        verb = _VERBS[match.group(1).lower()]
        r, c = int(match.group(2)), int(match.group(3))
        if not (r < self.rows and c < self.cols):
            return self._invalid(
                f"({r}, {c}) is off the board (rows 0-{self.rows - 1}, columns 0-{self.cols - 1})"
            )
        if self.status != "play":
            return Transition(
                terminated=True,
                effective=False,
                message="The game is over; call reset() for a new board.",
            )
        cell = r * self.cols + c
        if self.revealed[cell]:
            return self._invalid(f"({r}, {c}) is already revealed")
        if verb != "reveal":
            if verb == "unflag" and not self.flagged[cell]:
                return self._invalid(f"({r}, {c}) has no flag")
            self.flagged[cell] ^= 1
            self._n_flags += 1 if self.flagged[cell] else -1
            self._view[cell] = "F" if self.flagged[cell] else "?"
            done = "flagged" if self.flagged[cell] else "removed the flag from"
            return Transition(message=f"You {done} ({r}, {c}).")
        if self.flagged[cell]:
            return self._invalid(f"({r}, {c}) is flagged; unflag it first with unflag {r} {c}")
        return self._reveal(cell, f"You revealed ({r}, {c}).")

    def _invalid(self, reason: str) -> Transition:
        return Transition(
            valid=False,
            effective=False,
            message=(
                f"Invalid action: {reason}. Answer like <action>reveal 2 3</action> or "
                "<action>flag 2 3</action> (row, then column, counting from 0)."
            ),
        )

    def _reveal(self, cell: int, message: str) -> Transition:
        """Open ``cell`` (placing the mines first if needed) and score the result."""
        if not self.mines:
            self._place_mines(cell)
        before = self.score()
        nbrs = neighbours(self.rows, self.cols)
        if cell in self.mines:
            self.status, self.hit = "lost", cell
            self._view[cell] = "X"
            return Transition(
                reward=self.penalty,
                terminated=True,
                reward_components={"progress": 0.0, "mine": self.penalty},
                message=f"{message} It was a mine. You lost.",
            )
        opened: list[int] = []
        flood(cell, nbrs, self.counts, self.revealed, self.flagged, opened)
        self._n_revealed += len(opened)
        for here in opened:
            self._view[here] = _DIGITS[self.counts[here]]
        gain = self.score() - before
        if self._cleared():
            self.status = "won"
            message += " You cleared the board!"
        return Transition(
            reward=gain,
            terminated=self.status == "won",
            message=message,
            reward_components={"progress": gain, "mine": 0.0},
        )

    def _place_mines(self, first: int) -> None:
        if self.fixed is not None:
            mines = list(self.fixed)
            if first in mines:  # the Windows rule: move it to the first free cell
                free = next(
                    i for i in range(self.rows * self.cols) if i not in mines and i != first
                )
                mines[mines.index(first)] = free
            self.mines = tuple(sorted(mines))
            self.logic_solvable = logic_solves(self.rows, self.cols, self.mines, first)
        else:
            self.mines, self.logic_solvable = place_mines(
                self.rows, self.cols, self.n_mines, self.seed, first, self.no_guess
            )
        self.counts = mine_counts(neighbours(self.rows, self.cols), self.mines)

    def _cleared(self) -> bool:
        return self._n_revealed == self.rows * self.cols - self.n_mines

    # --- Views --------------------------------------------------------------------------------
    def instructions(self) -> str:
        """Rules, legend, grammar and one example."""
        guess = (
            "This board can always be cleared by logic alone, without guessing."
            if self.no_guess and self.fixed is None
            else "You may sometimes have to guess."
        )
        return "\n".join(
            [
                f"You are playing Minesweeper on a board of {self.rows} rows and {self.cols} "
                f"columns (counting from 0, row 0 at the top) with {self.n_mines} hidden mines.",
                "Reveal every cell that is not a mine. A revealed number tells how many of its (up "
                "to 8) neighbours are mines; revealing a cell with no neighbouring mines also "
                "reveals its neighbours. Revealing a mine ends the game.",
                f"Your first reveal is always safe. {guess}",
                "Symbols: ? hidden, F flag, . revealed with no neighbouring mine, 1-8 revealed "
                "number, * mine (shown when the game is over), X the mine you hit.",
                "Actions: `reveal R C` opens the cell at row R, column C; `flag R C` puts or "
                "removes a flag (a note for yourself; flags are never required to win).",
                "Your score is the fraction of safe cells revealed; clearing the board scores 1.",
                "Answer with one action in action tags, for example: <action>reveal 0 0</action>",
            ]
        )

    def render_text(self) -> str:
        """A status line, then the board with row and column numbers."""
        safe = self.rows * self.cols - self.n_mines
        lines = [
            f"Mines: {self.n_mines}. Flags: {self._n_flags}. Safe cells revealed: "
            f"{self._n_revealed} of {safe}."
        ]
        header, labels, width = _frame(self.rows, self.cols)
        lines.append(header)
        symbols = self._symbols(show_mines=self.status != "play")
        if width > 1:
            symbols = [f"{s:>{width}}" for s in symbols]
        # One join for the whole board, then a slice per row (every symbol has ``width``
        # characters plus a separator).
        flat, stride = " ".join(symbols), self.cols * (width + 1)
        lines += [labels[r] + flat[r * stride : (r + 1) * stride - 1] for r in range(self.rows)]
        return "\n".join(lines)

    def _symbols(self, show_mines: bool) -> list[str]:
        """Per cell: ``X`` the mine hit, ``*`` other mines (if shown), digits, ``F``, ``?``."""
        if not show_mines:
            return self._view
        out = list(self._view)
        for mine in self.mines:
            if mine != self.hit:
                out[mine] = "*"
        return out

    def state_key(self) -> str:
        """The visible board, rows joined by ``/``, then ``|play``, ``|won`` or ``|lost``."""
        symbols, cols = "".join(self._view), self.cols
        rows = "/".join([symbols[r * cols : (r + 1) * cols] for r in range(self.rows)])
        return f"{rows}|{self.status}"

    def score(self) -> float:
        """The fraction of safe cells revealed (1.0 = cleared)."""
        return self._n_revealed / (self.rows * self.cols - self.n_mines)

    def privileged(self) -> dict[str, Any]:
        """The mine layout and whether logic alone clears it (``None`` before placement)."""
        cells = [[m // self.cols, m % self.cols] for m in self.mines] if self.mines else None
        return {"mine_cells": cells, "logic_solvable": self.logic_solvable}

    def metrics(self) -> dict[str, Any]:
        """Safe cells revealed, flags, and whether mines have been placed yet."""
        return {
            "revealed": self._n_revealed,
            "flags": self._n_flags,
            "mines_placed": bool(self.mines),
        }

    def oracle_action(self) -> str:
        """Reveal a cell the solver proves safe, else the lowest-risk cell (a guess).

        Before the first reveal it opens the centre. It never flags; it only removes a flag
        that stands on the cell it wants to open.
        """
        if not self.mines:
            return f"<action>reveal {self.rows // 2} {self.cols // 2}</action>"
        safe, mines = deduce(self.rows, self.cols, self.revealed, self.counts, self.n_mines)
        if safe:
            cell = min(safe)
        else:
            cell = risk_order(
                self.rows, self.cols, self.revealed, self.counts, self.n_mines, mines
            )[0][1]
        r, c = divmod(cell, self.cols)
        verb = "unflag" if self.flagged[cell] else "reveal"
        return f"<action>{verb} {r} {c}</action>"

    def leak_check(self, text: str) -> list[str]:
        """Flag mines shown on the board, or listed by coordinates, before the game is over."""
        if self.status != "play" or not self.mines:
            return []
        problems = []
        if any(set(row.split()[1:]) & {"*", "X"} for row in _BOARD_ROW.findall(text)):
            problems.append("a board row shows a mine while the game is on")
        pairs = {
            int(r) * self.cols + int(c)
            for r, c in _PAIR.findall(text)
            if int(r) < self.rows and int(c) < self.cols
        }
        if set(self.mines) <= pairs:
            problems.append("the text lists the coordinates of every mine")
        return problems
