"""Maze: find the goal of a procedurally generated maze while seeing only your surroundings.

A partially observed text navigation task in the spirit of BALROG's MiniHack ``MazeWalk``
and the maze puzzles of TextArena/KORGym (docs/environments.md#maze). Mazes are
carved by a randomized depth-first search (recursive backtracker) on a ``size`` x ``size``
lattice of rooms, drawn as a ``(2 * size + 1)``-square grid of ``#`` walls and ``.`` floor;
``loops`` then knocks out extra walls so that there is more than one way round. The start is
a random room and the goal the room farthest from it (by BFS, within the move budget).

The agent sees the squares within ``view_radius`` of itself (a square window, through walls).
With ``memory`` (the default) the observation is the whole grid with every square it has ever
seen and ``?`` elsewhere, like a fog-of-war map; without it, only the current window. Each turn
is one move, ``<action>up|down|left|right</action>``; walking into a wall is a legal move that
goes nowhere. Reaching the goal pays 1 and ends the episode; after ``max_steps`` moves without
it the episode ends with 0.

Example:
    >>> import gymnasium, turngym.envs
    >>> env = gymnasium.make("turngym/Maze-v0")
    >>> task = {"rows": ["#####", "#S.G#", "#####"], "view_radius": 1}
    >>> print(env.reset(options={"task": task})[0])
    You are at row 1, column 1 (@). Moves left: 100.
    ###??
    #@.??
    ###??
    >>> obs, reward, terminated, *_ = env.step("<action>right</action>")
    >>> print(obs)
    You moved right.
    <BLANKLINE>
    You are at row 1, column 2 (@). Moves left: 99.
    ####?
    #.@G?
    ####?
    >>> reward, terminated
    (0.0, False)
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Mapping, Sequence
from functools import lru_cache
from numbers import Integral, Real
from typing import Any, ClassVar, NamedTuple

import numpy as np

from turngym.core import TextEnv, Transition

__all__ = ["Maze", "MOVES", "carve_maze"]

MOVES: tuple[str, ...] = ("up", "down", "left", "right")
"""Move names; ``north``/``south``/``west``/``east`` and initials are accepted too."""

_DELTAS = ((-1, 0), (1, 0), (0, -1), (0, 1))
_ALIASES = {
    **{m: i for i, m in enumerate(MOVES)},
    **{m: i for i, m in enumerate(("north", "south", "west", "east"))},
    **{m: i for i, m in enumerate("udlr")},
    **{m: i for i, m in enumerate("nswe")},
}
_TASK_KEYS = frozenset({"rows", "view_radius", "memory", "max_steps", "goal_hint"})
_INT_KNOBS: Mapping[str, tuple[int, int, str]] = {
    "size": (2, 15, "rooms per side; the grid is 2 * size + 1 squares wide"),
    "view_radius": (1, 20, "how many squares the agent sees in every direction"),
    "max_steps": (2, 1000, "the move budget"),
}
_MAX_SIDE = 61
# A run of move words joined only by separators someone would use to write a plan out.
_MOVE_WORDS = r"\b(?:up|down|left|right)\b"
_RUN = re.compile(rf"{_MOVE_WORDS}(?:(?:\s|,|;|->|=>|→|\band\b|\bthen\b)+{_MOVE_WORDS})+")


class _Board(NamedTuple):
    """A validated map and everything derived from it (shared between episodes)."""

    n_rows: int
    n_cols: int
    open: tuple[bool, ...]  # per square: floor (start and goal included)
    start: int
    goal: int
    nxt: tuple[tuple[int, int, int, int], ...]  # per square and move: where it leads
    dist: tuple[int, ...]  # moves to the goal, -1 if it cannot be reached


def carve_maze(rng: np.random.Generator, size: int, loops: float) -> list[list[str]]:
    """Carve a perfect maze by randomized DFS, then open extra walls with probability ``loops``.

    Args:
        rng: The only source of randomness.
        size: Rooms per side; rooms sit at odd coordinates of the ``2 * size + 1`` grid.
        loops: Probability that each remaining wall between two adjacent rooms is removed.

    Returns:
        The grid as lists of ``#`` and ``.`` characters.
    """
    n = 2 * size + 1
    grid = [["#"] * n for _ in range(n)]
    first = (int(rng.integers(size)), int(rng.integers(size)))
    visited, stack = {first}, [first]
    grid[2 * first[0] + 1][2 * first[1] + 1] = "."
    while stack:
        r, c = stack[-1]
        options = [
            (r + dr, c + dc)
            for dr, dc in _DELTAS
            if 0 <= r + dr < size and 0 <= c + dc < size and (r + dr, c + dc) not in visited
        ]
        if not options:
            stack.pop()
            continue
        nr, nc = options[int(rng.integers(len(options)))]
        grid[r + nr + 1][c + nc + 1] = "."  # the wall between the two rooms
        grid[2 * nr + 1][2 * nc + 1] = "."
        visited.add((nr, nc))
        stack.append((nr, nc))
    walls = [
        (r, c)
        for r in range(1, n - 1)
        for c in range(1, n - 1)
        if (r % 2) != (c % 2) and grid[r][c] == "#"
    ]
    for (r, c), u in zip(walls, rng.random(len(walls)).tolist(), strict=True):
        if u < loops:
            grid[r][c] = "."
    return grid


def _bfs(nxt: Sequence[Sequence[int]], source: int) -> list[int]:
    """Moves from ``source`` to every square (-1: unreachable); grid moves are symmetric."""
    dist = [-1] * len(nxt)
    dist[source] = 0
    queue = deque([source])
    while queue:
        cell = queue.popleft()
        for nb in nxt[cell]:
            if dist[nb] < 0:
                dist[nb] = dist[cell] + 1
                queue.append(nb)
    return dist


def _neighbours(
    open_: Sequence[bool], n_rows: int, n_cols: int
) -> list[tuple[int, int, int, int]]:
    """Per square and move, the square it leads to (itself when blocked)."""
    table = []
    for cell in range(n_rows * n_cols):
        r, c = divmod(cell, n_cols)
        row = []
        for dr, dc in _DELTAS:
            rr, cc = r + dr, c + dc
            inside = 0 <= rr < n_rows and 0 <= cc < n_cols
            row.append(rr * n_cols + cc if inside and open_[rr * n_cols + cc] else cell)
        table.append((row[0], row[1], row[2], row[3]))
    return table


@lru_cache(maxsize=1024)
def _compile(rows: tuple[str, ...]) -> _Board:
    """Validate a map and solve it (cached: the episodes of a group share their map)."""
    example = 'e.g. {"rows": ["#####", "#S.G#", "#####"]}'
    if not rows or len({len(row) for row in rows}) != 1 or not rows[0]:
        raise ValueError(f"Maze task rows must be non-empty strings of equal length, {example}.")
    if len(rows) > _MAX_SIDE or len(rows[0]) > _MAX_SIDE:
        raise ValueError(f"Maze task maps may be at most {_MAX_SIDE}x{_MAX_SIDE} squares.")
    flat = "".join(rows)
    bad = sorted(set(flat) - set("#.SG"))
    if bad or flat.count("S") != 1 or flat.count("G") != 1:
        found = f"unknown symbols {bad}" if bad else "not exactly one S and one G"
        raise ValueError(
            f"Maze task rows use # wall, . floor, one S start and one G goal ({found}), {example}."
        )
    n_rows, n_cols = len(rows), len(rows[0])
    open_ = tuple(ch != "#" for ch in flat)
    nxt = tuple(_neighbours(open_, n_rows, n_cols))
    goal = flat.index("G")
    return _Board(n_rows, n_cols, open_, flat.index("S"), goal, nxt, tuple(_bfs(nxt, goal)))


def _check_rows(rows: Any) -> tuple[str, ...]:
    if isinstance(rows, str) or not isinstance(rows, Sequence):
        raise ValueError("Maze task 'rows' must be a list of strings such as '#S.G#'.")
    if not all(isinstance(row, str) for row in rows):
        raise ValueError("Maze task 'rows' must hold strings such as '#S.G#'.")
    return tuple(rows)


class Maze(TextEnv):
    """Navigate a partially observed maze to its goal (MiniHack MazeWalk-style, BFS oracle).

    Difficulty knobs (:attr:`difficulty_defaults`):

    * ``size`` (2-15): rooms per side; the grid is ``2 * size + 1`` squares wide.
    * ``view_radius`` (1-20): the agent sees the ``(2r + 1)``-square window around itself.
    * ``memory``: show every square seen so far (``?`` elsewhere) rather than only the window.
    * ``loops`` (0-1): chance that each wall left between two adjacent rooms is removed after
      carving; 0 gives a perfect maze (exactly one path between any two squares).
    * ``max_steps`` (2-1000): the move budget (moves into walls count). The goal is drawn
      within it, so every generated maze is solvable; the registered turn limit is 200 turns,
      so budgets above it need ``turngym.make(..., max_episode_steps=...)``.
    * ``goal_hint``: state where the goal is (and show it on the map from the start).

    Levels: 0 = 4x4 rooms, radius 2, goal shown, 60 moves; 1 = 5x5, radius 1, a few loops,
    100 moves (default); 2 = 7x7, 150 moves; 3 = 9x9 without memory, 200 moves.

    A task is ``{"rows": [...], ...}`` with rows over ``#``, ``.``, ``S`` (start) and ``G``
    (goal), plus the knobs that change the puzzle (``view_radius``, ``memory``, ``max_steps``,
    ``goal_hint``); hand-written tasks may give only ``rows``.

    State key: ``"p=row,col"`` of the agent, plus with ``memory`` a digest of the set of seen
    squares (it is part of what the agent observes). The move counter is left out, as the turn
    count is for every env: states met at different times still group together.

    Privileged info: ``goal`` (row, column), ``shortest_path_length`` from the start and the
    ``optimal_plan`` (moves), ``distance_to_goal`` from the current square (``None`` where the
    goal cannot be reached). Leak check: a text leaks if it spells a run of two or more moves
    that walks from the start to the goal, or, while the goal is neither hinted nor seen, if it
    names the goal's square as "row R, column C".

    Example:
        >>> env = Maze(level=2)
        >>> obs, info = env.reset(seed=0, options={"split": "test"})
        >>> info["privileged"]["shortest_path_length"] <= 150
        True
    """

    family: ClassVar[str] = "maze"
    example_actions: ClassVar[tuple[str, ...]] = tuple(f"<action>{m}</action>" for m in MOVES)
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "size": 5,
        "view_radius": 1,
        "memory": True,
        "loops": 0.1,
        "max_steps": 100,
        "goal_hint": False,
    }
    # Each preset sets every puzzle knob, so a per-reset level fully applies.
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        level: dict(zip(("size", "view_radius", "memory", "loops", "max_steps", "goal_hint"),
                        values, strict=True))
        for level, values in {
            0: (4, 2, True, 0.0, 60, True),
            1: (5, 1, True, 0.1, 100, False),
            2: (7, 1, True, 0.1, 150, False),
            3: (9, 1, False, 0.2, 200, False),
        }.items()
    }  # fmt: skip

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and its valid range."""
        for name, (low, high, meaning) in _INT_KNOBS.items():
            value = difficulty[name]
            integer = isinstance(value, Integral) and not isinstance(value, bool)
            if not integer or not low <= value <= high:
                raise ValueError(
                    f"Maze: {name}={value!r} is invalid; use an integer from {low} to {high} "
                    f"({meaning})."
                )
        loops = difficulty["loops"]
        if isinstance(loops, bool) or not isinstance(loops, Real) or not 0.0 <= float(loops) <= 1.0:
            raise ValueError(f"Maze: loops={loops!r} is invalid; use a probability from 0 to 1.")
        for name in ("memory", "goal_hint"):
            if not isinstance(difficulty[name], bool):
                raise ValueError(
                    f"Maze: {name}={difficulty[name]!r} is invalid; use True or False."
                )

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Carve a maze; the goal is the room farthest from a random start within the budget."""
        size, budget = int(difficulty["size"]), int(difficulty["max_steps"])
        grid = carve_maze(rng, size, float(difficulty["loops"]))
        n = 2 * size + 1
        rooms = [(2 * r + 1) * n + 2 * c + 1 for r in range(size) for c in range(size)]
        start = rooms[int(rng.integers(len(rooms)))]
        open_ = [ch == "." for row in grid for ch in row]
        dist = _bfs(_neighbours(open_, n, n), start)
        far = max(dist[room] for room in rooms if dist[room] <= budget)
        ends = [room for room in rooms if dist[room] == far]
        goal = ends[int(rng.integers(len(ends)))]
        grid[start // n][start % n], grid[goal // n][goal % n] = "S", "G"
        return {
            "rows": ["".join(row) for row in grid],
            "view_radius": int(difficulty["view_radius"]),
            "memory": bool(difficulty["memory"]),
            "max_steps": budget,
            "goal_hint": bool(difficulty["goal_hint"]),
        }

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Validate the task, solve the map (cached) and put the agent on the start."""
        unknown = sorted(set(task) - _TASK_KEYS)
        if unknown:
            raise ValueError(
                f"Maze task has unknown key(s) {unknown}; known: {sorted(_TASK_KEYS)}."
            )
        knobs = {**self.episode_difficulty, **{k: v for k, v in task.items() if k != "rows"}}
        self.check_difficulty(knobs)
        self.board = _compile(_check_rows(task.get("rows")))
        self.radius, self.memory = int(knobs["view_radius"]), knobs["memory"]
        self.max_steps, self.goal_hint = int(knobs["max_steps"]), knobs["goal_hint"]
        self.cell, self.moves, self.over = self.board.start, 0, False
        self.seen = bytearray(self.board.n_rows * self.board.n_cols)
        if self.goal_hint:
            self.seen[self.board.goal] = 1
        self._look()
        self._plan = self._walk(self.board.start)

    def _window(self, cell: int) -> list[int]:
        """The squares within ``view_radius`` (Chebyshev) of ``cell``, clipped to the grid."""
        b, radius = self.board, self.radius
        r, c = divmod(cell, b.n_cols)
        rows = range(max(0, r - radius), min(b.n_rows, r + radius + 1))
        cols = range(max(0, c - radius), min(b.n_cols, c + radius + 1))
        return [rr * b.n_cols + cc for rr in rows for cc in cols]

    def _look(self) -> None:
        for square in self._window(self.cell):
            self.seen[square] = 1

    def _walk(self, cell: int) -> list[str]:
        """The optimal moves from ``cell`` (first move in ``MOVES`` order that gets closer)."""
        b, plan = self.board, list[str]()
        if b.dist[cell] < 0:
            return plan
        while cell != b.goal:
            move = next(a for a in range(4) if b.dist[b.nxt[cell][a]] == b.dist[cell] - 1)
            plan.append(MOVES[move])
            cell = b.nxt[cell][move]
        return plan

    # --- Play ---------------------------------------------------------------------------------
    def apply(self, command: str) -> Transition:
        """Make one move; unknown words are invalid and change nothing."""
        move = _ALIASES.get(command.strip().lower())
        if move is None:
            shown = command if len(command) <= 40 else command[:37] + "..."
            return Transition(
                valid=False,
                effective=False,
                message=f"Invalid action: {shown!r} is not a move. Answer with one of `up`, "
                "`down`, `left` or `right`, e.g. <action>up</action>.",
            )
        if self.over:
            return Transition(
                terminated=True, effective=False, message="The episode is over; call reset()."
            )
        self.moves += 1
        target = self.board.nxt[self.cell][move]
        moved = target != self.cell
        self.cell = target
        self._look()
        if self.cell == self.board.goal:
            self.over = True
            return Transition(
                reward=1.0,
                terminated=True,
                reward_components={"goal": 1.0},
                message=f"You moved {MOVES[move]} and reached the goal!",
            )
        message = f"You moved {MOVES[move]}." if moved else "A wall blocks the way; you stay put."
        if self.moves >= self.max_steps:
            self.over = True
            return Transition(
                terminated=True, effective=moved, message=f"{message} You are out of moves."
            )
        return Transition(effective=moved, message=message)

    # --- Views --------------------------------------------------------------------------------
    def instructions(self) -> str:
        """Rules, legend, grammar and one example; the goal's square only with ``goal_hint``."""
        b = self.board
        view = f"You see every square within {self.radius} step(s) of you, walls included" + (
            ", and the map keeps every square you have seen." if self.memory else "."
        )
        lines = [
            f"You are in a maze drawn as a grid of {b.n_rows} rows and {b.n_cols} columns "
            "(row 0 is the top, column 0 the left). Find the goal G.",
            view,
            "Symbols: @ you, # wall, . floor, G goal, ? not seen yet.",
            "Each turn make one move: `up`, `down`, `left` or `right`. Walking into a wall "
            "leaves you where you are but still uses a move.",
            f"You have {self.max_steps} moves. Reaching G gives reward 1 and ends the episode; "
            "running out of moves ends it with 0.",
        ]
        if self.goal_hint:
            r, c = divmod(b.goal, b.n_cols)
            lines.append(f"The goal is at row {r}, column {c}.")
        lines.append("Answer with exactly one move in action tags, e.g. <action>up</action>")
        return "\n".join(lines)

    def render_text(self) -> str:
        """The position, moves left, and the seen map (or just the window without memory)."""
        b = self.board
        r, c = divmod(self.cell, b.n_cols)
        header = f"You are at row {r}, column {c} (@). Moves left: {self.max_steps - self.moves}."
        if self.memory:
            rows, cols = range(b.n_rows), range(b.n_cols)
        else:
            rows = range(r - self.radius, r + self.radius + 1)
            cols = range(c - self.radius, c + self.radius + 1)
        lines = [header]
        for rr in rows:
            line = []
            for cc in cols:
                square = rr * b.n_cols + cc
                if not (0 <= rr < b.n_rows and 0 <= cc < b.n_cols):
                    line.append("#")  # outside the grid (window mode only)
                elif square == self.cell:
                    line.append("@")
                elif not self.seen[square]:
                    line.append("?")
                else:
                    line.append("G" if square == b.goal else "." if b.open[square] else "#")
            lines.append("".join(line))
        return "\n".join(lines)

    def state_key(self) -> str:
        """``"p=row,col"``, plus ``"|seen=<digest>"`` of the seen squares with ``memory``."""
        r, c = divmod(self.cell, self.board.n_cols)
        if not self.memory:
            return f"p={r},{c}"
        digest = hashlib.blake2b(bytes(self.seen), digest_size=8).hexdigest()
        return f"p={r},{c}|seen={digest}"

    def score(self) -> float:
        """1.0 on the goal, else 0.0."""
        return 1.0 if self.cell == self.board.goal else 0.0

    def privileged(self) -> dict[str, Any]:
        """The goal, the optimal plan from the start and the current distance to the goal."""
        b = self.board
        d0, d = b.dist[b.start], b.dist[self.cell]
        return {
            "goal": list(divmod(b.goal, b.n_cols)),
            "shortest_path_length": d0 if d0 >= 0 else None,
            "optimal_plan": list(self._plan),
            "distance_to_goal": d if d >= 0 else None,
        }

    def metrics(self) -> dict[str, Any]:
        """Moves used, squares seen and the shortest path length from the start."""
        d0 = self.board.dist[self.board.start]
        return {
            "moves_used": self.moves,
            "squares_seen": sum(self.seen),
            "shortest_path_length": d0 if d0 >= 0 else None,
        }

    def oracle_action(self) -> str:
        """The next move of a shortest path on the true map (BFS from the goal)."""
        plan = self._walk(self.cell)
        return f"<action>{plan[0] if plan else MOVES[0]}</action>"

    def leak_check(self, text: str) -> list[str]:
        """Flag spelled-out solutions and the goal's square (see the class docstring)."""
        b, problems = self.board, []
        for run in _RUN.finditer(text.lower()):
            words = re.findall(_MOVE_WORDS, run.group())
            if any(self._reaches_goal(words[i:]) for i in range(len(words) - 1)):
                problems.append(f"the text spells a way to the goal: {run.group()!r}")
                break
        r, c = divmod(b.goal, b.n_cols)
        if not self.goal_hint and not self.seen[b.goal] and f"row {r}, column {c}" in text:
            problems.append("the text names the goal's square before the agent has seen it")
        return problems

    def _reaches_goal(self, words: Sequence[str]) -> bool:
        """Whether some prefix (2+ moves) of ``words`` walks from the start onto the goal."""
        cell = self.board.start
        for count, word in enumerate(words, start=1):
            cell = self.board.nxt[cell][MOVES.index(word)]
            if cell == self.board.goal:
                return count >= 2
        return False
