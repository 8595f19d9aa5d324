"""Sokoban level generator: reverse play from solved positions.

Levels come from *reverse play*, gym-sokoban's idea (the code here is our own): carve a random
room, put every box on a target, then play backwards, where a move either walks or walks
while pulling the box behind the player. Each reverse move undoes a forward move, so every
position reached is solvable. gym-sokoban searches the reverse moves depth-first and keeps the
position with the largest box displacement; we search them breadth-first from all solved
positions at once, so the depth at which a position is first reached *is* its optimal plan
length, and we keep one of the deepest positions with no box on a target. The forward solver
(:func:`turngym.envs.games.sokoban_levels.solve_level`) then checks the level.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from turngym.envs.games.sokoban_levels import _DELTAS, Cell, Level, _Board, solve_level

__all__ = ["generate_level"]

_REVERSE_BUDGET = 200_000  # states the generator's reverse search may visit
_MIN_PLAN_LENGTH = 3  # shorter levels are near-trivial, and leak_check cannot tell them apart

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
