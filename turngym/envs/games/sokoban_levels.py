"""Sokoban levels: parsing, rendering and an exact solver.

Levels are drawn by reverse play (:mod:`turngym.envs.games.sokoban_generator`); the forward
solver here checks each one and supplies the plan that :meth:`Sokoban.privileged` and the
oracle use.

The solver is a breadth-first search over (player cell, sorted box cells) with one move per
edge, so its plans are optimal in moves (not only in pushes). Boxes pushed onto *dead squares*
(non-target cells from which no sequence of pushes can reach any target) are pruned.

Example:
    >>> level = Level.from_rows(["#####", "#PXO#", "#####"])
    >>> solve_level(level)
    ['right']
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "MOVES",
    "DEFAULT_MAX_STATES",
    "Cell",
    "Level",
    "dead_squares",
    "solve",
    "solve_level",
]

Cell = tuple[int, int]
"""A grid cell as ``(row, col)``, ``(0, 0)`` being the top-left corner."""

MOVES: tuple[str, ...] = ("up", "down", "left", "right")
"""The four moves; the solver tries them in this order, which fixes ties between plans."""

_DELTAS: tuple[Cell, ...] = ((-1, 0), (1, 0), (0, -1), (0, 1))

# RAGEN's grid vocabulary (ragen/env/sokoban/config.py) is what we render. Parsing also accepts
# the usual XSB level notation so that classic level files can be loaded as tasks unchanged.
_WALL, _FLOOR, _TARGET, _BOX_ON, _BOX, _PLAYER, _PLAYER_ON = "#", "_", "O", "√", "X", "P", "S"
_PARSE: Mapping[str, tuple[bool, bool, bool, bool]] = {
    # symbol: (wall, target, box, player)
    "#": (True, False, False, False),
    "_": (False, False, False, False),
    " ": (False, False, False, False),
    "-": (False, False, False, False),
    "O": (False, True, False, False),
    ".": (False, True, False, False),
    "X": (False, False, True, False),
    "$": (False, False, True, False),
    "√": (False, True, True, False),
    "*": (False, True, True, False),
    "P": (False, False, False, True),
    "@": (False, False, False, True),
    "S": (False, True, False, True),
    "+": (False, True, False, True),
}

DEFAULT_MAX_STATES = 1_000_000
"""Solver budget: distinct states visited before giving up (at worst ~5 s and ~300 MB)."""


# --- Levels -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Level:
    """A Sokoban level. Cells outside ``height`` x ``width`` count as walls.

    Attributes:
        height: Number of rows.
        width: Number of columns.
        walls: Wall cells.
        targets: Target cells (as many as boxes).
        boxes: Box cells, sorted.
        player: The player's cell.
    """

    height: int
    width: int
    walls: frozenset[Cell]
    targets: frozenset[Cell]
    boxes: tuple[Cell, ...]
    player: Cell

    @classmethod
    def from_rows(cls, rows: Sequence[str]) -> Level:
        """Parse rows in RAGEN symbols (``# _ O √ X P S``) or XSB symbols (``# - . * $ @ +``).

        Short rows are padded with walls.

        Raises:
            ValueError: An unknown symbol, not exactly one player, no box, or a different
                number of boxes and targets.
        """
        if isinstance(rows, str) or not rows or not all(isinstance(r, str) for r in rows):
            raise ValueError("A Sokoban task needs 'rows': a non-empty list of strings.")
        walls: set[tuple[int, int]] = set()
        targets: set[tuple[int, int]] = set()
        boxes: list[tuple[int, int]] = []
        players: list[tuple[int, int]] = []
        width = max(len(r) for r in rows)
        for r, row in enumerate(rows):
            for c, symbol in enumerate(row.ljust(width, _WALL)):
                if symbol not in _PARSE:
                    raise ValueError(
                        f"Unknown symbol {symbol!r} at row {r}, column {c}; use "
                        f"{''.join(sorted(_PARSE))!r} (RAGEN or XSB notation)."
                    )
                wall, target, box, player = _PARSE[symbol]
                for flag, bucket in ((wall, walls), (target, targets)):
                    if flag:
                        bucket.add((r, c))
                if box:
                    boxes.append((r, c))
                if player:
                    players.append((r, c))
        if len(players) != 1:
            raise ValueError(f"A level needs exactly one player (P or S); found {len(players)}.")
        if not boxes or len(boxes) != len(targets):
            raise ValueError(
                f"A level needs at least one box and as many targets as boxes; found "
                f"{len(boxes)} box(es) and {len(targets)} target(s)."
            )
        return cls(
            len(rows), width, frozenset(walls), frozenset(targets), tuple(sorted(boxes)), players[0]
        )

    def to_rows(self, boxes: Iterable[Cell] | None = None, player: Cell | None = None) -> list[str]:
        """Render in RAGEN symbols, optionally with other box and player cells."""
        box_set = set(self.boxes if boxes is None else boxes)
        player = self.player if player is None else player
        rows = []
        for r in range(self.height):
            row = []
            for c in range(self.width):
                cell, on = (r, c), (r, c) in self.targets
                if cell in self.walls:
                    row.append(_WALL)
                elif cell == player:
                    row.append(_PLAYER_ON if on else _PLAYER)
                elif cell in box_set:
                    row.append(_BOX_ON if on else _BOX)
                else:
                    row.append(_TARGET if on else _FLOOR)
            rows.append("".join(row))
        return rows

    def is_free(self, cell: Cell) -> bool:
        """Whether ``cell`` is inside the grid and not a wall."""
        r, c = cell
        return 0 <= r < self.height and 0 <= c < self.width and cell not in self.walls


# --- Solver -----------------------------------------------------------------------------------
class _Board:
    """Flat-index view of a level's static part (cell ``i = row * width + col``)."""

    __slots__ = ("width", "nbr", "targets", "dead")

    def __init__(self, level: Level) -> None:
        w, n = level.width, level.height * level.width
        self.width = w
        # nbr[d][i]: the cell one step from i in direction d, or -1 for a wall or the edge.
        self.nbr = [
            [
                (i // w + dr) * w + i % w + dc if level.is_free((i // w + dr, i % w + dc)) else -1
                for i in range(n)
            ]
            for dr, dc in _DELTAS
        ]
        self.targets = tuple(sorted(r * w + c for r, c in level.targets))
        self.dead = self._dead_cells(level, n)

    def _dead_cells(self, level: Level, n: int) -> list[bool]:
        # A box at p pushed in direction d goes to nbr[d][p] and needs the player at the cell
        # opposite, nbr[d^1][p]. Search backwards from the targets to find every cell from
        # which some target is reachable by pushes, ignoring the other boxes.
        live = [False] * n
        stack = list(self.targets)
        for t in stack:
            live[t] = True
        while stack:
            q = stack.pop()
            for d in range(4):
                p = self.nbr[d ^ 1][q]  # the box came from p, pushed in direction d
                if p >= 0 and not live[p] and self.nbr[d ^ 1][p] >= 0:
                    live[p] = True
                    stack.append(p)
        return [not live[i] and level.is_free(divmod(i, self.width)) for i in range(n)]


def dead_squares(level: Level) -> frozenset[Cell]:
    """Free cells from which a box can never be pushed onto any target.

    Example:
        >>> sorted(dead_squares(Level.from_rows(["#####", "#PXO#", "#___#", "#####"])))
        [(1, 1), (2, 1), (2, 2), (2, 3)]
    """
    board = _Board(level)
    return frozenset(divmod(i, board.width) for i, dead in enumerate(board.dead) if dead)


@functools.lru_cache(maxsize=512)
def _solve_cached(level: Level, max_states: int) -> tuple[str, ...] | None:
    # Cached because generation solves a level and load_task solves the same one right after.
    board = _Board(level)
    w, nbr, dead, goal = board.width, board.nbr, board.dead, board.targets
    n = level.height * w
    boxes = tuple(sorted(r * w + c for r, c in level.boxes))
    if boxes == goal:
        return ()
    if any(dead[b] for b in boxes):
        return None

    def boxes_code(bs: tuple[int, ...]) -> int:
        code, scale = 0, n
        for b in bs:
            code += b * scale
            scale *= n
        return code

    player = level.player[0] * w + level.player[1]
    start_bc = boxes_code(boxes)
    # parent[state code] = previous state code * 4 + move; the start maps to -1.
    parent = {player + start_bc: -1}
    frontier = [(player, boxes, start_bc)]
    while frontier:
        next_frontier = []
        for p, bs, bc in frontier:
            code = p + bc
            for d in range(4):
                q = nbr[d][p]
                if q < 0:
                    continue
                nbs, nbc = bs, bc
                if q in bs:
                    r = nbr[d][q]
                    if r < 0 or r in bs or dead[r]:
                        continue
                    nbs = tuple(sorted(r if b == q else b for b in bs))
                    nbc = boxes_code(nbs)
                new = q + nbc
                if new in parent:
                    continue
                parent[new] = code * 4 + d
                if nbs == goal:
                    return _backtrack(parent, new)
                next_frontier.append((q, nbs, nbc))
        if len(parent) > max_states:
            return None
        frontier = next_frontier
    return None


def _backtrack(parent: dict[int, int], code: int) -> tuple[str, ...]:
    moves = []
    while parent[code] >= 0:
        code, d = divmod(parent[code], 4)
        moves.append(MOVES[d])
    return tuple(reversed(moves))


def solve_level(level: Level, max_states: int = DEFAULT_MAX_STATES) -> list[str] | None:
    """Return a move-optimal plan for ``level``, or ``None``.

    Args:
        level: The level to solve.
        max_states: Give up after visiting about this many states.

    Returns:
        Moves from :data:`MOVES`; ``[]`` if already solved; ``None`` if unsolvable or the
        budget ran out. Results are cached per ``(level, max_states)``.

    Example:
        >>> solve_level(Level.from_rows(["######", "#PX_O#", "######"]))
        ['right', 'right']
    """
    plan = _solve_cached(level, int(max_states))
    return None if plan is None else list(plan)


def solve(
    walls: Iterable[Cell],
    targets: Iterable[Cell],
    boxes: Iterable[Cell],
    player: Cell,
    *,
    shape: tuple[int, int] | None = None,
    max_states: int = DEFAULT_MAX_STATES,
) -> list[str] | None:
    """Return a shortest move sequence that puts every box on a target, or ``None``.

    Args:
        walls: Wall cells ``(row, col)``.
        targets: Target cells (as many as boxes).
        boxes: Box cells.
        player: The player's cell.
        shape: ``(height, width)`` of the grid; cells outside it are walls. Defaults to the
            smallest grid holding every given cell.
        max_states: Give up (return ``None``) after visiting this many states.

    Returns:
        Moves from :data:`MOVES`, optimal in the number of moves; ``[]`` if already solved.

    Example:
        >>> solve(walls=[(0, 0), (0, 4)], targets=[(0, 3)], boxes=[(0, 2)], player=(0, 1))
        ['right']
    """
    # Cells may come as lists (e.g. from JSON): make them (row, col) tuples.
    wall_set = frozenset((int(r), int(c)) for r, c in walls)
    target_set = frozenset((int(r), int(c)) for r, c in targets)
    box_cells = tuple(sorted((int(r), int(c)) for r, c in boxes))
    start = (int(player[0]), int(player[1]))
    if shape is None:
        cells = [*wall_set, *target_set, *box_cells, start]
        shape = (max(r for r, _ in cells) + 1, max(c for _, c in cells) + 1)
    if len(box_cells) != len(target_set):
        raise ValueError(
            f"Need as many targets as boxes, got {len(target_set)} and {len(box_cells)}."
        )
    level = Level(shape[0], shape[1], wall_set, target_set, box_cells, start)
    return solve_level(level, max_states)
