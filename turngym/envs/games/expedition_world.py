"""Expedition worlds: the grid, the rules, a generator and a subgoal planner.

The world is a walled grid with grass ``.``, rock ``#``, trees ``T``, iron ore ``o``, a river of
water ``~`` (bridged cells become ``=``), a workbench ``W`` and a chest ``C`` on the far bank.
The quest is a chain of milestones, each needing the previous ones' products:

1. ``wood``: chop trees until you hold enough wood for the pickaxe and the bridge;
2. ``pickaxe``: craft it at the workbench (2 wood);
3. ``ore``: mine ``ore_needed`` ore with the pickaxe;
4. ``key``: craft it at the workbench (all that ore);
5. ``crossed``: bridge the river (1 wood per water cell) and stand on the far bank;
6. ``chest``: open the chest with the key and take the treasure;
7. ``home``: bring the treasure back to the workbench (stand next to it).

One action is one move or one interaction, so a quest over a 20x20 map takes 100-300 turns,
the regime of long-horizon games where a turn-level critic pays off (Odysseus, arXiv
2605.00347, trains one on 100+-turn Super Mario Land episodes).

The planner (:func:`plan`) runs the milestones in order: each errand walks down a distance
field to the nearest cell next to what it needs (the nearest tree, ore, the workbench); for the
trip to the chest the field is a Dijkstra one where entering water costs 2 turns (build, then
step). Fields are cached by terrain, so replanning is cheap while the map does not change.
It is a planner, not a proof of optimality: errands are chosen greedily.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["World", "DIRECTIONS", "MILESTONES", "generate_world", "plan", "next_errand"]

DIRECTIONS: dict[str, tuple[int, int]] = {
    "north": (-1, 0),
    "south": (1, 0),
    "west": (0, -1),
    "east": (0, 1),
}
"""The four directions; the planner tries them in this order, which fixes ties."""

MILESTONES: tuple[str, ...] = ("wood", "pickaxe", "ore", "key", "crossed", "chest", "home")
"""Quest milestones in order (``crossed`` only exists when there is a river)."""

_PASSABLE = frozenset(".=")
PICKAXE_WOOD = 2
"""Wood a pickaxe costs."""


@dataclass(slots=True)
class World:
    """The mutable state of one expedition.

    Attributes:
        grid: Rows of cells (lists of one-character strings).
        pos: The player's ``(row, col)``.
        river: ``(first column, width)`` of the river; width 0 means no river.
        ore_needed: Ore the key costs.
        inventory: ``wood``, ``ore``, ``pickaxe`` (0/1), ``key`` (0/1).
        done: Milestones reached so far, in the order reached.
        chopped: Wood chopped in total (the ``wood`` milestone counts it).
        mined: Ore mined in total.
    """

    grid: list[list[str]]
    pos: tuple[int, int]
    river: tuple[int, int]
    ore_needed: int
    inventory: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("wood", "ore", "pickaxe", "key"), 0))  # fmt: skip
    done: list[str] = field(default_factory=list)
    chopped: int = 0
    mined: int = 0
    _flat: str = ""

    def copy(self) -> World:
        """A deep copy (the planner simulates on one)."""
        return World([row[:] for row in self.grid], self.pos, self.river, self.ore_needed,
                     dict(self.inventory), list(self.done), self.chopped, self.mined,
                     self._flat)  # fmt: skip

    @property
    def flat(self) -> str:
        """The terrain as one string, row after row (cached until the terrain changes)."""
        if not self._flat:
            self._flat = "".join("".join(row) for row in self.grid)
        return self._flat

    def _set(self, r: int, c: int, symbol: str) -> None:
        self.grid[r][c] = symbol
        self._flat = ""

    @property
    def milestones(self) -> tuple[str, ...]:
        """This world's milestones (no ``crossed`` without a river)."""
        return MILESTONES if self.river[1] else tuple(m for m in MILESTONES if m != "crossed")

    @property
    def wood_needed(self) -> int:
        """Wood for the pickaxe plus one per water cell of the river."""
        return PICKAXE_WOOD + self.river[1]

    def cell(self, r: int, c: int) -> str:
        """The cell at ``(r, c)``; outside the grid counts as rock."""
        if 0 <= r < len(self.grid) and 0 <= c < len(self.grid[0]):
            return self.grid[r][c]
        return "#"

    def key(self) -> str:
        """Canonical state key: position, inventory, milestones and the changed terrain."""
        inv = self.inventory
        return (f"{self.pos[0]},{self.pos[1]}|w{inv['wood']}o{inv['ore']}p{inv['pickaxe']}"
                f"k{inv['key']}|{','.join(self.done)}|c{self.chopped}m{self.mined}|{self.flat}")

    # --- Rules ----------------------------------------------------------------------------------
    def act(self, verb: str, arg: str) -> tuple[bool, str]:
        """Apply a legal command; return ``(effective, message)``. The caller validated words."""
        if verb == "move":
            return self._move(arg)
        if verb == "craft":
            return self._craft(arg)
        if verb == "wait":
            return False, "You wait."
        dr, dc = DIRECTIONS[arg]
        r, c = self.pos[0] + dr, self.pos[1] + dc
        target = self.cell(r, c)
        handler = {"chop": self._chop, "mine": self._mine, "build": self._build,
                   "open": self._open}[verb]  # fmt: skip
        return handler(r, c, target)

    def _move(self, direction: str) -> tuple[bool, str]:
        dr, dc = DIRECTIONS[direction]
        r, c = self.pos[0] + dr, self.pos[1] + dc
        if self.cell(r, c) not in _PASSABLE:
            return False, f"Something blocks the way {direction}."
        self.pos = (r, c)
        if self.river[1] and c >= sum(self.river):
            self._reach("crossed")
        if "chest" in self.done and self.near("W"):
            self._reach("home")
            return True, "You bring the treasure home. The expedition is complete!"
        return True, ""

    def _chop(self, r: int, c: int, target: str) -> tuple[bool, str]:
        if target != "T":
            return False, "There is no tree there."
        self._set(r, c, ".")
        self.inventory["wood"] += 1
        self.chopped += 1
        if self.chopped >= self.wood_needed:
            self._reach("wood")
        return True, "You chop the tree: +1 wood."

    def _mine(self, r: int, c: int, target: str) -> tuple[bool, str]:
        if target != "o":
            return False, "There is no ore there."
        if not self.inventory["pickaxe"]:
            return False, "You need a pickaxe to mine ore."
        self._set(r, c, ".")
        self.inventory["ore"] += 1
        self.mined += 1
        if self.mined >= self.ore_needed:
            self._reach("ore")
        return True, "You mine the rock: +1 ore."

    def _build(self, r: int, c: int, target: str) -> tuple[bool, str]:
        if target != "~":
            return False, "There is no water there to bridge."
        if self.inventory["wood"] < 1:
            return False, "A bridge section needs 1 wood."
        self._set(r, c, "=")
        self.inventory["wood"] -= 1
        return True, "You build a bridge section: -1 wood."

    def _open(self, r: int, c: int, target: str) -> tuple[bool, str]:
        if target != "C":
            return False, "There is no chest there."
        if not self.inventory["key"]:
            return False, "The chest is locked; you need the key."
        if "chest" in self.done:
            return False, "The chest is empty: you already took the treasure."
        self._reach("chest")
        if self.near("W"):  # a chest next to the workbench: already home
            self._reach("home")
        return True, "You open the chest and take the treasure. Now bring it home to W."

    def _craft(self, item: str) -> tuple[bool, str]:
        if not self.near("W"):
            return False, "You must stand next to the workbench W to craft."
        inv = self.inventory
        if item == "pickaxe":
            if inv["pickaxe"]:
                return False, "You already have a pickaxe."
            if inv["wood"] < PICKAXE_WOOD:
                return False, f"A pickaxe needs {PICKAXE_WOOD} wood."
            inv["wood"] -= PICKAXE_WOOD
            inv["pickaxe"] = 1
            self._reach("pickaxe")
            return True, "You craft a pickaxe."
        if inv["key"]:
            return False, "You already have the key."
        if inv["ore"] < self.ore_needed:
            return False, f"The key needs {self.ore_needed} ore."
        inv["ore"] -= self.ore_needed
        inv["key"] = 1
        self._reach("key")
        return True, "You forge the key."

    def near(self, symbol: str) -> bool:
        """Whether a 4-neighbour of the player holds ``symbol``."""
        r, c = self.pos
        return any(self.cell(r + dr, c + dc) == symbol for dr, dc in DIRECTIONS.values())

    def _reach(self, milestone: str) -> None:
        if milestone not in self.done:
            self.done.append(milestone)


# --- Searches -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _field(flat: str, width: int, symbols: str, bridging: bool) -> tuple[int, ...]:
    """Turns from every cell to a walkable cell next to a ``symbols`` cell (-1: unreachable).

    A multi-source search backwards from those cells; with ``bridging``, stepping onto water
    costs 2 (build a section, then step), so it is Dijkstra rather than BFS. Cached by the
    terrain, so a player walking around costs one lookup per turn.
    """
    n = len(flat)
    dist = [-1] * n
    heap: list[tuple[int, int]] = []
    for cell in range(n):
        if flat[cell] in _PASSABLE and any(
            flat[nb] in symbols for nb in _neighbours(cell, width, n)
        ):
            dist[cell] = 0
            heap.append((0, cell))
    heapq.heapify(heap)
    while heap:
        d, cell = heapq.heappop(heap)
        if d > dist[cell]:
            continue
        # Moving from a neighbour onto `cell` costs 2 if `cell` is water, else 1.
        cost = 2 if flat[cell] == "~" else 1
        for nb in _neighbours(cell, width, n):
            walkable = flat[nb] in _PASSABLE or (bridging and flat[nb] == "~")
            if walkable and (dist[nb] < 0 or d + cost < dist[nb]):
                dist[nb] = d + cost
                heapq.heappush(heap, (d + cost, nb))
    return tuple(dist)


def _neighbours(cell: int, width: int, n: int) -> tuple[int, ...]:
    """Flat indices of the 4-neighbours in :data:`DIRECTIONS` order (-1 where off the grid)."""
    r, c = divmod(cell, width)
    return (cell - width if r > 0 else -1, cell + width if cell + width < n else -1,
            cell - 1 if c > 0 else -1, cell + 1 if c + 1 < width else -1)  # fmt: skip


def _flat(world: World) -> tuple[str, int]:
    return world.flat, len(world.grid[0])


def _walk(world: World, symbols: str, bridging: bool) -> tuple[list[str], str, int] | None:
    """Walk down the distance field to the nearest ``symbols`` neighbour.

    Returns:
        The moves (with ``build`` before each water cell), the direction to face at the end
        and the number of water cells crossed; ``None`` if nothing is reachable.
    """
    flat, width = _flat(world)
    dist = _field(flat, width, symbols, bridging)
    cell = world.pos[0] * width + world.pos[1]
    if flat[cell] not in _PASSABLE or dist[cell] < 0:
        return None
    names = tuple(DIRECTIONS)
    actions, water = [], 0
    while dist[cell] > 0:
        for name, nb in zip(names, _neighbours(cell, width, len(flat)), strict=True):
            step = 2 if flat[nb] == "~" else 1
            if nb >= 0 and dist[nb] >= 0 and dist[nb] + step == dist[cell]:
                if flat[nb] == "~":
                    actions.append(f"build {name}")
                    water += 1
                actions.append(name)
                cell = nb
                break
        else:  # unreachable: the field is consistent by construction
            return None
    face = next(name for name, nb in zip(names, _neighbours(cell, width, len(flat)), strict=True)
                if nb >= 0 and flat[nb] in symbols)  # fmt: skip
    return actions, face, water


def _water_to_cross(world: World) -> int:
    """Bridge sections still needed: 0 on the far bank, else the fewest left in any row."""
    col, width = world.river
    if not width or world.pos[1] >= col + width:
        return 0
    return min(row[col : col + width].count("~") for row in world.grid[1:-1])


def next_errand(world: World) -> tuple[str, str, str]:
    """The planner's next errand: ``(milestone it serves, verb, target symbols)``."""
    inv = world.inventory
    if "chest" in world.done:
        return "home", "return", "W"
    if inv["wood"] < (0 if inv["pickaxe"] else PICKAXE_WOOD) + _water_to_cross(world):
        return "wood", "chop", "T"
    if not inv["pickaxe"]:
        return "pickaxe", "craft pickaxe", "W"
    if not inv["key"] and inv["ore"] < world.ore_needed:
        return "ore", "mine", "o"
    if not inv["key"]:
        return "key", "craft key", "W"
    return "chest", "open", "C"


def errand_distance(world: World) -> int | None:
    """Turns to where the next errand is served (``None`` if it cannot be reached)."""
    _, verb, symbols = next_errand(world)
    flat, width = _flat(world)
    dist = _field(flat, width, symbols, verb == "open")
    value = dist[world.pos[0] * width + world.pos[1]]
    return None if value < 0 else value


def plan(world: World, max_actions: int = 3000) -> list[str] | None:
    """The planner's full action list from ``world`` to the end of the quest (``None``: stuck)."""
    sim = world.copy()
    actions: list[str] = []
    while "home" not in sim.done:
        if len(actions) > max_actions:
            return None
        _, verb, symbols = next_errand(sim)
        found = _walk(sim, symbols, verb == "open")
        if found is None:
            return None
        moves, face, water = found
        if water > sim.inventory["wood"]:  # the best route crosses more water than planned
            found = _walk(sim, "T", False)
            if found is None:
                return None
            moves, face, _ = found
            verb = "chop"
        if verb == "return":
            errand = moves
        else:
            errand = [*moves, verb if verb.startswith("craft") else f"{verb} {face}"]
        for action in errand:
            verb_, _, arg = action.partition(" ")
            if verb_ in DIRECTIONS:
                verb_, arg = "move", verb_
            effective, _ = sim.act(verb_, arg)
            if not effective and "home" not in sim.done:
                return None  # the errand did not apply: a planner bug, not a world property
            actions.append(action)
            if "home" in sim.done:
                break
    return actions


# --- Generator ----------------------------------------------------------------------------------
def _free_cells(grid: list[list[str]], cols: range) -> list[tuple[int, int]]:
    return [(r, c) for r in range(1, len(grid) - 1) for c in cols if grid[r][c] == "."]


def generate_world(rng: np.random.Generator, d: Mapping[str, Any]) -> tuple[World, list[str]]:
    """Draw a world whose planned quest takes ``min_plan``..``max_plan`` actions.

    Raises:
        ValueError: No candidate in 200 fits the plan-length bounds (the message says which
            knobs to change).
    """
    for _ in range(200):
        world = _candidate(rng, d)
        actions = plan(world)
        if actions is not None and d["min_plan"] <= len(actions) <= d["max_plan"]:
            return world, actions
    raise ValueError(
        f"Expedition: no world of size {d['size']} has a quest of {d['min_plan']}-"
        f"{d['max_plan']} actions; widen min_plan/max_plan or change size/ore_needed."
    )


def _candidate(rng: np.random.Generator, d: Mapping[str, Any]) -> World:
    size, width = int(d["size"]), int(d["river_width"])
    grid = [["#"] * size for _ in range(size)]
    for r in range(1, size - 1):
        for c in range(1, size - 1):
            grid[r][c] = "#" if rng.random() < float(d["rocks"]) else "."
    river_col = int(round(size * 0.68)) - width // 2
    for r in range(1, size - 1):
        for c in range(river_col, river_col + width):
            grid[r][c] = "~"
    west = range(1, river_col - 1 if width else size - 4)
    east = range(river_col + width + 1 if width else size - 3, size - 1)
    start = (int(rng.integers(1, size - 1)), 1)
    grid[start[0]][start[1]] = "."

    def place(symbol: str, count: int, cols: range, near: tuple[int, int] | None = None) -> None:
        cells = [x for x in _free_cells(grid, cols) if x != start]
        if near is not None:  # the workbench stays within a few steps of the camp
            cells = [x for x in cells if abs(x[0] - near[0]) + abs(x[1] - near[1]) <= 4] or cells
        for i in rng.permutation(len(cells))[:count].tolist():
            grid[cells[i][0]][cells[i][1]] = symbol

    place("W", 1, range(2, min(6, west.stop)), near=start)
    place("T", int(d["trees"]), west)
    far = range(max(west.start, west.stop // 2), west.stop)  # ore lies in the far half
    place("o", int(d["ore_needed"]) + 2, far)
    place("C", 1, range(max(east.start, size - 4), size - 1))
    return World(grid, start, (river_col, width), int(d["ore_needed"]))
