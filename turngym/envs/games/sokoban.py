"""Sokoban: push every box onto a target (ENVIRONMENTS.md sections 5.1 and 5.5).

Levels come from *reverse play*, gym-sokoban's idea (the code here is our own): carve a random
room, put every box on a target, then play backwards, where a move either walks or walks
while pulling the box behind the player. Each reverse move undoes a forward move, so every
position reached is solvable. gym-sokoban searches the reverse moves depth-first and keeps the
position with the largest box displacement; we search them breadth-first from all solved
positions at once, so the depth at which a position is first reached *is* its optimal plan
length, and we keep one of the deepest positions with no box on a target. The forward solver
then checks the level and supplies the plan that :meth:`Sokoban.privileged` and the oracle use.

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
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from turngym.core import TextEnv, Transition

__all__ = [
    "MOVES",
    "DEFAULT_MAX_STATES",
    "Cell",
    "Level",
    "dead_squares",
    "solve",
    "solve_level",
    "generate_level",
    "Sokoban",
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
_REVERSE_BUDGET = 200_000  # states the generator's reverse search may visit
_MIN_PLAN_LENGTH = 3  # shorter levels are near-trivial, and leak_check cannot tell them apart


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
        walls, targets, boxes, players = set(), set(), [], []
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
    walls, targets = frozenset(map(tuple, walls)), frozenset(map(tuple, targets))
    boxes, player = tuple(sorted(map(tuple, boxes))), tuple(player)
    if shape is None:
        cells = [*walls, *targets, *boxes, player]
        shape = (max(r for r, _ in cells) + 1, max(c for _, c in cells) + 1)
    if len(boxes) != len(targets):
        raise ValueError(f"Need as many targets as boxes, got {len(targets)} and {len(boxes)}.")
    level = Level(shape[0], shape[1], walls, targets, boxes, player)  # type: ignore[arg-type]
    return solve_level(level, max_states)


# --- Generator --------------------------------------------------------------------------------
# Brushes stamped along the random walk: single cells, pairs, triples, a 2x2 block and a plus.
_BRUSHES: tuple[tuple[Cell, ...], ...] = (
    ((0, 0),),
    ((0, 0), (0, 1)),
    ((0, 0), (1, 0)),
    ((0, 0), (0, -1), (0, 1)),
    ((0, 0), (-1, 0), (1, 0)),
    ((0, 0), (0, 1), (1, 0), (1, 1)),
    ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)),
)


def _carve_room(rng: np.random.Generator, size: int, wall_density: float) -> list[Cell]:
    """Carve a connected floor inside a ``size`` x ``size`` box of walls; return it sorted."""
    lo, hi = 1, size - 2
    pos = (int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1)))
    direction = _DELTAS[int(rng.integers(4))]
    floor: set[Cell] = set()
    # About as many stamps as gym-sokoban's 1.7 * (width + height) walk steps.
    for _ in range(round(3.4 * size)):
        if rng.random() < 0.35:
            direction = _DELTAS[int(rng.integers(4))]
        for dr, dc in _BRUSHES[int(rng.integers(len(_BRUSHES)))]:
            r, c = pos[0] + dr, pos[1] + dc
            if lo <= r <= hi and lo <= c <= hi:
                floor.add((r, c))
        # Clamping keeps each stamp adjacent to the previous one, so the floor stays connected.
        pos = (min(hi, max(lo, pos[0] + direction[0])), min(hi, max(lo, pos[1] + direction[1])))
    if wall_density > 0:
        for cell in _shuffled(rng, sorted(floor)):
            if rng.random() < wall_density and _connected(floor - {cell}):
                floor.discard(cell)
    return sorted(floor)


def _shuffled(rng: np.random.Generator, items: list[Cell]) -> list[Cell]:
    # Our own Fisher-Yates on rng.integers, so levels do not hinge on numpy's shuffle code.
    items = list(items)
    for i in range(len(items) - 1, 0, -1):
        j = int(rng.integers(i + 1))
        items[i], items[j] = items[j], items[i]
    return items


def _connected(cells: set[Cell]) -> bool:
    if not cells:
        return False
    start = min(cells)
    seen, stack = {start}, [start]
    while stack:
        r, c = stack.pop()
        for dr, dc in _DELTAS:
            nxt = (r + dr, c + dc)
            if nxt in cells and nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return len(seen) == len(cells)


def _reverse_search(
    board: _Board, floor: Sequence[int], max_depth: int, max_states: int
) -> tuple[int, list[tuple[int, tuple[int, ...]]]]:
    """Play backwards from every solved position; return the deepest unsolved layer.

    The search is breadth-first over reverse moves (walk, or walk while pulling the box
    behind you) starting from all solved positions at once, so a position found at depth
    ``k`` needs exactly ``k`` moves to solve. Returns ``(k, positions)`` for the largest
    ``k <= max_depth`` whose layer holds positions with no box on a target; ``(0, [])`` if none.
    """
    nbr, goal = board.nbr, board.targets
    on_target = set(goal)
    seen = {(p, goal) for p in floor if p not in on_target}
    layer = sorted(seen)
    best: tuple[int, list[tuple[int, tuple[int, ...]]]] = (0, [])
    for depth in range(1, max_depth + 1):
        found = []
        for p, bs in layer:
            for d in range(4):
                ahead = nbr[d][p]
                if ahead < 0 or ahead in bs:
                    continue
                nexts = [(ahead, bs)]
                behind = nbr[d ^ 1][p]
                if behind in bs:  # -1 is never a box
                    nexts.append((ahead, tuple(sorted(p if b == behind else b for b in bs))))
                for state in nexts:
                    if state not in seen:
                        seen.add(state)
                        found.append(state)
        if not found:
            break
        unsolved = [s for s in found if on_target.isdisjoint(s[1])]
        if unsolved:
            best = (depth, unsolved)
        layer = found
        if len(seen) > max_states:
            break
    return best


def generate_level(
    rng: np.random.Generator,
    *,
    size: int = 6,
    boxes: int = 1,
    wall_density: float = 0.0,
    reverse_steps: int = 25,
    max_tries: int = 200,
) -> tuple[Level, list[str]]:
    """Draw a solvable, unsolved level and its optimal plan, using ``rng`` only.

    Args:
        rng: The only source of randomness.
        size: Grid side, border walls included.
        boxes: Number of boxes (and targets).
        wall_density: Chance that each carved floor cell is walled up again.
        reverse_steps: Depth of the reverse search, so the longest plan a level may need.
        max_tries: Rooms to try before giving up.

    Returns:
        The level and its move-optimal plan (at least 3 moves).

    Carves a room, puts the boxes on random targets, and plays backwards (see
    :func:`_reverse_search`) up to ``reverse_steps`` moves deep; one of the deepest unsolved
    positions, drawn with ``rng``, becomes the level, so its optimal plan has exactly that
    many moves. The forward solver then checks it; a room with no unsolved position is
    thrown away and drawn again from the same ``rng``.

    Raises:
        RuntimeError: No acceptable level in ``max_tries`` rooms.
    """
    for _ in range(max_tries):
        floor = _carve_room(rng, size, wall_density)
        if len(floor) < 2 * boxes + 2:
            continue
        targets = frozenset(_shuffled(rng, floor)[:boxes])
        floor_set = set(floor)
        walls = frozenset(
            (r, c) for r in range(size) for c in range(size) if (r, c) not in floor_set
        )
        board = _Board(Level(size, size, walls, targets, tuple(sorted(targets)), floor[0]))
        depth, positions = _reverse_search(
            board, [r * size + c for r, c in floor], reverse_steps, _REVERSE_BUDGET
        )
        if depth < _MIN_PLAN_LENGTH:  # too easy (or nothing to push): try another room
            continue
        player, box_cells = positions[int(rng.integers(len(positions)))]
        level = Level(
            size,
            size,
            walls,
            targets,
            tuple(divmod(b, size) for b in box_cells),
            divmod(player, size),
        )
        plan = solve_level(level)
        if plan is None:  # only when the solver's state budget ran out
            continue
        if len(plan) != depth:
            raise AssertionError(f"solver found {len(plan)} moves, reverse search {depth}")
        return level, plan
    raise RuntimeError(
        f"No Sokoban level with size={size}, boxes={boxes} and wall_density={wall_density} "
        f"in {max_tries} tries; raise size or lower boxes or wall_density."
    )


# --- The env ----------------------------------------------------------------------------------
# Integer knobs: (lowest, highest, what it means) for check_difficulty's messages.
_INT_KNOBS: Mapping[str, tuple[int, int, str]] = {
    "size": (5, 10, "the grid side, border walls included"),
    "boxes": (1, 4, "the number of boxes"),
    "reverse_steps": (3, 200, "the reverse-play depth = longest optimal plan of a level"),
    "actions_per_turn": (1, 20, "the most moves one action may hold"),
}
_REWARD_KNOBS = ("step_penalty", "box_on_reward", "box_off_penalty", "solve_bonus")
# Backticks keep the move list from forming a "run" that leak_check would read as a plan.
_LEGAL = "`up`, `down`, `left`, `right`"
_MOVE_WORDS = r"\b(?:up|down|left|right)\b"
# A run is a sequence of move words joined only by separators someone would use to write a
# plan out ("up, up -> left then down"); backticks or any other word end a run.
_SEP = r"(?:\s|,|;|\|+|->|=>|→|\band\b|\bthen\b)+"
_RUN = re.compile(rf"{_MOVE_WORDS}(?:{_SEP}{_MOVE_WORDS})*")


class Sokoban(TextEnv):
    """Sokoban on a small grid, RAGEN's rendering and gym-sokoban's rewards.

    Each move costs ``step_penalty`` (-0.1, blocked moves included); pushing a box onto a target
    gives ``box_on_reward`` (+1), pushing one off ``box_off_penalty`` (-1), and the move that
    puts the last box on its target adds ``solve_bonus`` (+10) and ends the episode. With
    ``actions_per_turn > 1`` an action may hold several moves separated by ``||``; moves after
    the solving one are ignored. Unknown words or too many moves make the whole action invalid.

    Difficulty knobs: ``size`` (5-10, grid side incl. border walls), ``boxes`` (1-4),
    ``wall_density`` (0-0.5, chance that each carved floor cell is walled up again, keeping
    the floor connected), ``reverse_steps`` (3-200, depth of the reverse-play search, so the
    longest optimal plan a generated level may have; the default 25 leaves slack under the
    registered 30-turn limit), ``actions_per_turn`` (1-20) and the four rewards. Levels:
    0 = 6x6 with 1 box (default), 1 = 7x7 with 2, 2 = 8x8 with 2, 3 = 8x8 with 3.

    Tasks are ``{"rows": [...]}`` in the rendered symbols (XSB symbols are accepted too).
    ``privileged()`` holds ``optimal_plan`` and ``optimal_plan_length`` from the start (``None``
    if the solver found none) and ``deadlocked``: a box stands on a dead square, so the level
    can no longer be solved (``False`` does not prove that it can).

    Example:
        >>> env = Sokoban()
        >>> obs, info = env.reset(options={"task": {"rows": ["#####", "#PXO#", "#####"]}})
        >>> env.step("<action>Right</action>")[1:3]
        (10.9, True)
    """

    family = "sokoban"
    action_tag = "action"
    example_actions = tuple(f"<action>{m}</action>" for m in MOVES)
    difficulty_defaults: Mapping[str, Any] = {
        "size": 6,
        "boxes": 1,
        "wall_density": 0.0,
        "reverse_steps": 25,
        "actions_per_turn": 1,
        "step_penalty": -0.1,
        "box_on_reward": 1.0,
        "box_off_penalty": -1.0,
        "solve_bonus": 10.0,
    }
    levels: Mapping[int, Mapping[str, Any]] = {
        0: {"size": 6, "boxes": 1},
        1: {"size": 7, "boxes": 2},
        2: {"size": 8, "boxes": 2},
        3: {"size": 8, "boxes": 3},
    }

    def __init__(self, **kwargs: Any) -> None:
        """Create the env; keyword arguments are those of :class:`~turngym.core.TextEnv`."""
        super().__init__(**kwargs)
        self.puzzle: Level | None = None
        self.player: Cell = (0, 0)
        self.boxes: tuple[Cell, ...] = ()
        self._dead: frozenset[Cell] = frozenset()
        self._plan: tuple[str, ...] | None = None
        self._oracle_moves: tuple[str, ...] = ()
        self._oracle_at: dict[tuple[Cell, tuple[Cell, ...]], int] = {}

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and its allowed range."""
        for name, (low, high, meaning) in _INT_KNOBS.items():
            value = difficulty[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or not low <= value <= high
            ):
                raise ValueError(
                    f"{name}={value!r} is invalid; use an integer from {low} to {high} ({meaning})."
                )
        density = difficulty["wall_density"]
        if (
            isinstance(density, bool)
            or not isinstance(density, (int, float))
            or not 0 <= density <= 0.5
        ):
            raise ValueError(f"wall_density={density!r} is invalid; use a number from 0.0 to 0.5.")
        for name in _REWARD_KNOBS:
            value = difficulty[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not np.isfinite(value)
            ):
                raise ValueError(f"{name}={value!r} is invalid; use a finite number.")
        size, boxes = difficulty["size"], difficulty["boxes"]
        if boxes > (size - 2) ** 2 // 3:
            raise ValueError(
                f"boxes={boxes} do not fit in a {size}x{size} grid; use at most "
                f"{(size - 2) ** 2 // 3} boxes or a larger size."
            )

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw a level by reverse play; the task is ``{"rows": [...]}``."""
        level, _ = generate_level(
            rng,
            size=int(difficulty["size"]),
            boxes=int(difficulty["boxes"]),
            wall_density=float(difficulty["wall_density"]),
            reverse_steps=int(difficulty["reverse_steps"]),
        )
        return {"rows": level.to_rows()}

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Parse ``task["rows"]`` and solve the level once (cached)."""
        if "rows" not in task:
            raise ValueError(
                f"A Sokoban task needs a 'rows' list of strings; got keys {sorted(task)}."
            )
        rows = task["rows"]
        self.puzzle = Level.from_rows(list(rows) if isinstance(rows, (list, tuple)) else rows)
        self.player, self.boxes = self.puzzle.player, self.puzzle.boxes
        self._dead = dead_squares(self.puzzle)
        plan = solve_level(self.puzzle)
        self._plan = None if plan is None else tuple(plan)
        self._cache_oracle(self._plan or ())

    # --- Play ---------------------------------------------------------------------------------
    def apply(self, command: str) -> Transition:
        """Play the moves of one action (``up``/``down``/``left``/``right``, ``||``-separated)."""
        moves = [word.strip().lower() for word in command.split("||")]
        limit = int(self.episode_difficulty["actions_per_turn"])
        if len(moves) > limit:
            return self._invalid(
                f"you sent {len(moves)} moves, at most {limit} per turn are allowed"
            )
        for move in moves:
            if move not in MOVES:
                shown = move if len(move) <= 40 else move[:40] + "..."
                return self._invalid(f"{shown!r} is not a move" if move else "a move is empty")
        parts = {"step": 0.0, "box_on": 0.0, "box_off": 0.0, "solved": 0.0}
        effective, played = False, 0
        for move in moves:
            moved, change = self._move(move)
            effective, played = effective or moved, played + 1
            parts["step"] += float(self.episode_difficulty["step_penalty"])
            if change > 0:
                parts["box_on"] += float(self.episode_difficulty["box_on_reward"])
            elif change < 0:
                parts["box_off"] += float(self.episode_difficulty["box_off_penalty"])
            if self._solved():
                parts["solved"] += float(self.episode_difficulty["solve_bonus"])
                break
        message = ""
        if self._solved():
            message = "Solved: every box is on a target."
            if played < len(moves):
                message += f" The {len(moves) - played} move(s) after the solving one were ignored."
        return Transition(
            reward=sum(parts.values()),
            terminated=self._solved(),
            message=message,
            reward_components=parts,
            effective=effective,
        )

    def _invalid(self, reason: str) -> Transition:
        limit = int(self.episode_difficulty["actions_per_turn"])
        grammar = f" (up to {limit} per action, separated by `||`)" if limit > 1 else ""
        return Transition(
            valid=False,
            effective=False,
            message=f"Invalid action: {reason}. Legal moves: {_LEGAL}{grammar}.",
        )

    def _move(self, move: str) -> tuple[bool, int]:
        """Play one move; return whether anything moved and the change in boxes on targets."""
        assert self.puzzle is not None, "call reset() first"
        dr, dc = _DELTAS[MOVES.index(move)]
        ahead = (self.player[0] + dr, self.player[1] + dc)
        if not self.puzzle.is_free(ahead):
            return False, 0
        change = 0
        if ahead in self.boxes:
            beyond = (ahead[0] + dr, ahead[1] + dc)
            if not self.puzzle.is_free(beyond) or beyond in self.boxes:
                return False, 0
            self.boxes = tuple(sorted(beyond if b == ahead else b for b in self.boxes))
            change = (beyond in self.puzzle.targets) - (ahead in self.puzzle.targets)
        self.player = ahead
        return True, change

    def _on_target(self) -> int:
        assert self.puzzle is not None, "call reset() first"
        return sum(b in self.puzzle.targets for b in self.boxes)

    def _solved(self) -> bool:
        return self._on_target() == len(self.boxes)

    # --- Views --------------------------------------------------------------------------------
    def instructions(self) -> str:
        """Rules, legend, action grammar and one example; never the solution."""
        limit, r = int(self.episode_difficulty["actions_per_turn"]), self.episode_difficulty
        if limit == 1:
            grammar = (
                "Answer with exactly one move inside <action></action>, e.g. <action>up</action>."
            )
        else:
            grammar = (
                f"Answer with 1 to {limit} moves inside <action></action>, separated by `||`, "
                "e.g. <action>Right || Up</action>. They are played in order."
            )
        return "\n".join(
            [
                "You are playing Sokoban. Push every box onto a target to win.",
                "Legend: # wall, _ floor, O target, X box, √ box on a target, P you, "
                "S you standing on a target.",
                "A move is one of `up`, `down`, `left`, `right` (any case). Walking into a box "
                "pushes it one cell if the cell beyond it is floor or a target. You cannot pull "
                "boxes or push two at once. A box pushed into a corner that is not a target can "
                "never be moved again, so plan ahead.",
                grammar,
                f"Rewards: {r['step_penalty']} per move, {r['box_on_reward']} for pushing a box "
                f"onto a target, {r['box_off_penalty']} for pushing one off, {r['solve_bonus']} "
                "when every box is on a target.",
            ]
        )

    def render_text(self) -> str:
        """The grid in RAGEN symbols, rows joined by newlines."""
        assert self.puzzle is not None, "call reset() first"
        return "\n".join(self.puzzle.to_rows(self.boxes, self.player))

    def state_key(self) -> str:
        """``"p=row,col|b=row,col;row,col"``: the player and the sorted boxes."""
        boxes = ";".join(f"{r},{c}" for r, c in self.boxes)
        return f"p={self.player[0]},{self.player[1]}|b={boxes}"

    def score(self) -> float:
        """1.0 when every box is on a target, else 0.0."""
        return 1.0 if self._solved() else 0.0

    def privileged(self) -> dict[str, Any]:
        """The optimal plan from the start, its length, and whether a box is on a dead square."""
        return {
            "optimal_plan": None if self._plan is None else list(self._plan),
            "optimal_plan_length": None if self._plan is None else len(self._plan),
            "deadlocked": not self._dead.isdisjoint(self.boxes),
        }

    def metrics(self) -> dict[str, Any]:
        """Boxes on targets, number of boxes and the optimal plan length from the start."""
        return {
            "boxes_on_target": self._on_target(),
            "boxes": len(self.boxes),
            "optimal_plan_length": None if self._plan is None else len(self._plan),
        }

    # --- Oracle and leak check ----------------------------------------------------------------
    def oracle_action(self) -> str:
        """The next move of a move-optimal plan from the current state.

        The plan is cached with the states it passes through; the level is solved again only
        when the current state is not on it. With no plan (solved, deadlocked, or beyond the
        solver's budget) it returns ``<action>up</action>``.
        """
        assert self.puzzle is not None, "call reset() first"
        state = (self.player, self.boxes)
        if state not in self._oracle_at:
            plan = None
            if self._dead.isdisjoint(self.boxes):  # a dead square proves there is no plan
                plan = solve_level(replace(self.puzzle, boxes=self.boxes, player=self.player))
            self._cache_oracle(tuple(plan or ()))
        index = self._oracle_at[state]
        move = self._oracle_moves[index] if index < len(self._oracle_moves) else MOVES[0]
        return f"<{self.action_tag}>{move}</{self.action_tag}>"

    def _cache_oracle(self, plan: tuple[str, ...]) -> None:
        # Map every state along the plan, the last one included, to its index, so that
        # oracle_action is a dict lookup while the agent follows the plan. An empty plan still
        # records the current state, so an unsolvable state is not searched again.
        saved = self.player, self.boxes
        self._oracle_moves, self._oracle_at = plan, {saved: 0}
        for index, move in enumerate(plan, start=1):
            self._move(move)
            self._oracle_at[(self.player, self.boxes)] = index
        self.player, self.boxes = saved

    def leak_check(self, text: str) -> list[str]:
        """Flag ``text`` if it spells out the optimal plan from the start.

        Two renderings are caught, case-insensitively: the plan's moves in order inside a run
        of move words joined only by spaces, commas, semicolons, ``|``/``||``, arrows, "and" or
        "then" (``"Right, Up, up"``), and the plan's initials inside a word of u/d/l/r letters
        (``"RUU"``). Plans shorter than 3 moves (runs) or 4 moves (initials) are not checked:
        the instructions' own examples name two moves.
        """
        if not self._plan:
            return []
        lowered, problems = text.lower(), []
        spelled = " ".join(self._plan)
        if len(self._plan) >= 3:
            for run in _RUN.finditer(lowered):
                words = " ".join(re.findall(_MOVE_WORDS, run.group()))
                if f" {spelled} " in f" {words} ":
                    problems.append("the optimal plan appears as a sequence of moves")
                    break
        initials = "".join(move[0] for move in self._plan)
        if len(initials) >= 4 and any(initials in w for w in re.findall(r"\b[udlr]+\b", lowered)):
            problems.append("the optimal plan appears as move initials")
        return problems
