"""FrozenLake: walk across a frozen lake to the goal without falling into a hole.

The text version of Gymnasium's ``FrozenLake`` as used by RAGEN (docs/environments.md#frozenlake):
the agent sees the grid (``P`` player, ``_`` ice, ``O`` hole, ``G`` goal, ``X`` player in a hole,
``√`` player on the goal) and answers ``<action>left|down|right|up</action>``. Reaching the goal
pays ``goal_reward`` and ends the episode with score 1; a hole ends it with reward and score 0.

Maps are generated with a guaranteed path from start to goal (checked by BFS). With
``slip_prob > 0`` the ice is slippery with Gymnasium's semantics: with probability ``slip_prob``
the move goes to one of the two perpendicular directions, each equally likely. Gymnasium's
``is_slippery=True`` (RAGEN's setting, level 3) is ``slip_prob = 2/3``: every one of the three
directions has probability 1/3.

The MDP is tiny, so it is solved exactly when a task is loaded: the optimal (horizon-free)
success probability of every cell, ties broken towards the fewest expected moves, so that on
non-slippery ice the oracle walks a shortest path. The solution is cached per map, so the
rollouts of a group pay for it once. Maps, their validation and the solver live in
:mod:`turngym.envs.games.frozen_lake_maps`; this module holds the env's contract hooks.

Example:
    >>> import gymnasium, turngym.envs
    >>> env = gymnasium.make("turngym/FrozenLake-v0")
    >>> print(env.reset(options={"task": {"rows": ["S_", "OG"]}})[0])
    P_
    OG
    >>> _ = env.step("<action>right</action>")
    >>> obs, reward, terminated, truncated, info = env.step("<action>down</action>")
    >>> print(obs)
    You reached the goal!
    <BLANKLINE>
    __
    O√
    >>> reward, terminated, info["success"]
    (1.0, True, True)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np

from turngym.core import TextEnv, Transition
from turngym.envs.games.frozen_lake_maps import (
    FROZEN,
    GOAL,
    HOLE,
    MOVES,
    bfs_distances,
    check_rows,
    compile_board,
    neighbours,
)

__all__ = ["FrozenLake"]

_MOVE_INDEX = {name: index for index, name in enumerate(MOVES)}
_TASK_KEYS = frozenset({"rows", "slip_prob", "fog"})
_RANGES = {  # knob: (low, high, what to do instead)
    "hole_prob": (0.0, 0.6, "use a fraction from 0 to 0.6 (denser maps rarely have a path)."),
    "slip_prob": (0.0, 1.0, "use 0 (deterministic) to 1; Gymnasium's slippery ice is 2/3."),
    "goal_reward": (0.0, math.inf, "use a positive finite number such as 1.0."),
    "step_penalty": (-1.0, 0.0, "use a small non-positive number such as -0.01."),
}
_MAX_DRAWS = 10_000

# Every move word is followed by a compass word, so no two move words are ever adjacent in our
# own texts and the leak check (runs of move words) cannot fire on the legend itself.
_LEGAL = "left (west), down (south), right (east) or up (north)"

# Immutable outcomes shared by every instance; building a Transition per step costs ~1 us.
_MOVED = Transition()
_BUMPED = Transition(effective=False, message="You hit the edge of the lake and did not move.")
_FELL = Transition(terminated=True, message="You fell into a hole. The episode is over.")
_OVER = Transition(
    terminated=True,
    effective=False,
    message="The episode is over; nothing moves any more. Call reset() for a new episode.",
)
_MOVE_RUN = re.compile(r"\b(?:left|down|right|up)\b(?:[^a-z]+\b(?:left|down|right|up)\b)+")


def _move_outcomes(goal: float, step: float) -> tuple[Transition, ...]:
    """The four outcomes of a valid move (moved, bumped, fell, reached), built once per task."""
    if step == 0.0:
        reached = Transition(reward=goal, terminated=True, message="You reached the goal!",
                             reward_components={"goal": goal})  # fmt: skip
        return _MOVED, _BUMPED, _FELL, reached
    parts = {"step": step}
    return (
        Transition(reward=step, reward_components=parts),
        Transition(reward=step, effective=False, message=_BUMPED.message, reward_components=parts),
        Transition(reward=step, terminated=True, message=_FELL.message, reward_components=parts),
        Transition(
            reward=goal + step,
            terminated=True,
            message="You reached the goal!",
            reward_components={"goal": goal, **parts},
        ),  # fmt: skip
    )


class FrozenLake(TextEnv):
    """Cross a frozen lake to the goal; holes end the episode (RAGEN's text FrozenLake).

    Difficulty knobs (:attr:`difficulty_defaults`):

    * ``size`` (3..10): the map is ``size`` x ``size``.
    * ``hole_prob`` (0..0.6): fraction of the cells other than start and goal that are holes
      (rounded to a whole number of holes).
    * ``slip_prob`` (0..1): probability that a move goes to one of the two perpendicular
      directions instead (each equally likely). 0 is deterministic; 2/3 is Gymnasium's
      ``is_slippery=True``.
    * ``fog``: if true, only the 3x3 neighbourhood of the player is visible (``?`` elsewhere).
    * ``goal_reward``: reward for reaching the goal (> 0); a reward scale, not part of the task.
    * ``step_penalty`` (-1..0, default 0 as in RAGEN and Gymnasium): added to the reward of
      every valid move, so that shorter paths earn more; also not part of the task.

    A task is ``{"rows": [...], "slip_prob": p, "fog": f}`` with rows over ``S`` (start),
    ``_`` (ice), ``O`` (hole) and ``G`` (goal). Hand-written tasks may give only ``rows``; the
    other keys then come from the episode's difficulty (so ``reset(options={"task": t,
    "level": 3})`` plays ``t`` on slippery ice).

    Privileged info: ``optimal_policy`` (rows of ``L``/``D``/``R``/``U``, ``H`` hole, ``G`` goal,
    ``.`` no way to the goal), ``optimal_success_prob`` (from the start),
    ``shortest_path_length`` (moves without slipping, ``None`` if cut off), and for the current
    cell ``state_success_prob`` and ``distance_to_goal``.

    Leak check: a text leaks if it contains a run of two or more move words separated only by
    non-letters (``"down, down right"``, ``"down->right"``) that walks from the start to the
    goal on non-slippery ice without entering a hole, which covers the shortest path in any
    common spelling; or if it contains the policy grid verbatim. A one-move solution cannot be
    told apart from the legend and is not checked.

    Example:
        >>> env = FrozenLake(level=3)
        >>> obs, info = env.reset(seed=0, options={"split": "test"})
        >>> sorted(info["privileged"])[:3]
        ['distance_to_goal', 'optimal_policy', 'optimal_success_prob']
    """

    # --- TextEnv hooks ---
    family: ClassVar[str] = "frozenlake"
    example_actions: ClassVar[tuple[str, ...]] = tuple(f"<action>{m}</action>" for m in MOVES)
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "size": 4,
        "hole_prob": 0.2,
        "slip_prob": 0.0,
        "fog": False,
        "goal_reward": 1.0,
        "step_penalty": 0.0,
    }
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"size": 4, "hole_prob": 0.2, "slip_prob": 0.0},
        1: {"size": 5, "hole_prob": 0.25, "slip_prob": 0.0},
        2: {"size": 6, "hole_prob": 0.3, "slip_prob": 0.0},
        # RAGEN / Gymnasium is_slippery=True: each of the three directions w.p. 1/3.
        3: {"size": 4, "hole_prob": 0.2, "slip_prob": 2 / 3},
        4: {"size": 8, "hole_prob": 0.25, "slip_prob": 0.0},
    }

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and its valid range if a value is invalid."""
        size = difficulty["size"]
        if isinstance(size, bool) or not isinstance(size, Integral) or not 3 <= int(size) <= 10:
            raise ValueError(f"FrozenLake: size={size!r} is invalid; use an integer from 3 to 10.")
        for name, (low, high, hint) in _RANGES.items():
            value = difficulty[name]
            number = isinstance(value, Real) and not isinstance(value, bool)
            # goal_reward must be > 0 (a zero reward makes success invisible to the trainer).
            if not (number and low <= value <= high and math.isfinite(value)) or (
                name == "goal_reward" and value <= 0
            ):
                raise ValueError(f"FrozenLake: {name}={value!r} is invalid; {hint}")
        if not isinstance(difficulty["fog"], bool):
            raise ValueError(
                f"FrozenLake: fog={difficulty['fog']!r} is invalid; use True or False."
            )

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw a map with a path from start to goal (start, goal and holes from ``rng``).

        Start, goal and holes are redrawn together until BFS finds a path, so on dense maps
        start and goal tend to be closer than on sparse ones.

        Args:
            rng: The only source of randomness.
            difficulty: Resolved knobs (``size``, ``hole_prob``, and ``slip_prob`` and ``fog``,
                which are copied into the task because they change the puzzle).

        Returns:
            ``{"rows": [...], "slip_prob": p, "fog": f}``.

        Raises:
            RuntimeError: No solvable map in 10,000 draws (only with extreme knob values).
        """
        size = int(difficulty["size"])
        n = size * size
        n_holes = round(float(difficulty["hole_prob"]) * (n - 2))
        nxt = neighbours(size, size)
        for _ in range(_MAX_DRAWS):
            # One permutation draws everything: start, goal, then the holes.
            perm = rng.permutation(n).tolist()
            kinds = [FROZEN] * n
            for cell in perm[2 : 2 + n_holes]:
                kinds[cell] = HOLE
            kinds[perm[1]] = GOAL
            if bfs_distances(nxt, kinds, perm[0])[perm[1]] > 0:
                chars = ["_O"[k] if k != GOAL else "G" for k in kinds]
                chars[perm[0]] = "S"
                flat = "".join(chars)
                return {
                    "rows": [flat[r * size : (r + 1) * size] for r in range(size)],
                    "slip_prob": float(difficulty["slip_prob"]),
                    "fog": bool(difficulty["fog"]),
                }
        raise RuntimeError(
            f"FrozenLake: no solvable {size}x{size} map with {n_holes} holes in {_MAX_DRAWS} "
            "draws; lower hole_prob."
        )

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Validate the task, solve it (cached per map) and put the player on the start."""
        unknown = sorted(set(task) - _TASK_KEYS)
        if unknown:
            raise ValueError(
                f"FrozenLake task has unknown key(s) {unknown}; known: {sorted(_TASK_KEYS)}."
            )
        rows = check_rows(task.get("rows"))
        knobs = {
            **self.episode_difficulty,
            **{k: task[k] for k in ("slip_prob", "fog") if k in task},
        }
        self.check_difficulty(knobs)
        self.slip_prob = float(knobs["slip_prob"])
        self.fog = knobs["fog"]
        self.goal_reward = float(knobs["goal_reward"])
        board = compile_board(rows, self.slip_prob)
        self._board = board
        # Hot-path tables as direct attributes: one dict lookup each in apply().
        self._nxt = board.nxt
        self._kinds = board.kinds
        self._keys = board.keys
        self._frames: list[str | None] = [None] * len(board.kinds)
        self._moved, self._bumped, self._fell, self._reached = _move_outcomes(
            self.goal_reward, float(knobs["step_penalty"])
        )
        self._cell = board.start
        self._over = False
        self._slipped = False
        spl = board.dist[board.start]
        self._static = {
            "optimal_policy": board.policy_rows,
            "optimal_success_prob": board.value[board.start],
            "shortest_path_length": spl,
        }

    def apply(self, command: str) -> Transition:
        """Move (maybe slipping); unknown words are invalid and change nothing."""
        self._slipped = False
        move = _MOVE_INDEX.get(command)
        if move is None:
            move = _MOVE_INDEX.get(command.lower())
            if move is None:
                shown = command if len(command) <= 40 else command[:37] + "..."
                return Transition(
                    valid=False,
                    effective=False,
                    message=f"Invalid action: unknown move {shown!r}. Use {_LEGAL}, "
                    "e.g. <action>left</action>.",
                )
        if self._over:
            return _OVER
        slip = self.slip_prob
        if slip > 0.0:
            # One uniform draw decides: [0, slip/2) one side, [slip/2, slip) the other side.
            u = self.np_random.random()
            if u < slip:
                move = (move + (3 if u < slip * 0.5 else 1)) & 3
                self._slipped = True
        cell = self._nxt[self._cell][move]
        if cell == self._cell:
            return self._bumped
        self._cell = cell
        kind = self._kinds[cell]
        if kind == FROZEN:
            return self._moved
        self._over = True
        return self._reached if kind == GOAL else self._fell

    def render_text(self) -> str:
        """Return the grid with the player drawn in; frames are built once per cell."""
        frame = self._frames[self._cell]
        if frame is None:
            frame = self._frames[self._cell] = self._draw(self._cell)
        return frame

    def _draw(self, cell: int) -> str:
        board = self._board
        r, c = divmod(cell, board.n_cols)
        kind = board.kinds[cell]
        player = "X" if kind == HOLE else "√" if kind == GOAL else "P"
        rows = [list(row) for row in board.ice_rows]
        rows[r][c] = player
        if self.fog:
            for rr, row in enumerate(rows):
                for cc in range(len(row)):
                    if abs(rr - r) > 1 or abs(cc - c) > 1:
                        row[cc] = "?"
        return "\n".join("".join(row) for row in rows)

    def state_key(self) -> str:
        """Return ``"p=row,col"`` of the player (holes and goal are fixed per task)."""
        return self._keys[self._cell]

    def score(self) -> float:
        """Return 1.0 on the goal, else 0.0."""
        return 1.0 if self._kinds[self._cell] == GOAL else 0.0

    def privileged(self) -> dict[str, Any]:
        """Return the cached solution plus the current cell's value and distance (O(1))."""
        info = dict(self._static)
        info["state_success_prob"] = self._board.value[self._cell]
        info["distance_to_goal"] = self._board.dist[self._cell]
        return info

    def metrics(self) -> dict[str, Any]:
        """Return the shortest path length and whether the last move slipped (a fresh dict)."""
        return {
            "shortest_path_length": self._static["shortest_path_length"],
            "slipped": self._slipped,
        }

    def oracle_action(self) -> str:
        """Return the optimal move of the current cell, e.g. ``<action>down</action>``."""
        return self._board.oracle[self._cell]

    def instructions(self) -> str:
        """Return the rules, legend, action grammar and one example (never the solution)."""
        board = self._board
        lines = [
            f"You are on a frozen lake drawn as a grid of {board.n_rows} rows and "
            f"{board.n_cols} columns (the first row is the top, north).",
            "Walk to the goal G without falling into a hole O.",
            "Symbols: P you, _ frozen ice (safe), O hole, G goal, X you in a hole, "
            "√ you on the goal" + (", ? hidden by fog." if self.fog else "."),
            f"Each turn move one cell: {_LEGAL}. Walking into the edge of the lake leaves you "
            "where you are.",
            f"Reaching G gives reward {self.goal_reward:g} and ends the episode; falling into a "
            "hole gives reward 0 and ends it.",
        ]
        if self.slip_prob > 0.0:
            lines.append(
                "The ice is slippery: you may move in an unintended direction. With probability "
                f"{self.slip_prob:.0%} you slide to one of the two directions at right angles to "
                "the one you chose."
            )
        if self.fog:
            lines.append("Fog: you only see the cells around you; hidden cells are shown as ?.")
        lines.append(
            "Think if you like, then answer with exactly one move in action tags, for example: "
            "<action>left</action>"
        )
        return "\n".join(lines)

    def leak_check(self, text: str) -> list[str]:
        """Flag move sequences that solve the map, and the policy grid (see class docstring)."""
        problems = []
        board = self._board
        for match in _MOVE_RUN.finditer(text.lower()):
            words = re.findall(r"left|down|right|up", match.group())
            for begin in range(len(words) - 1):
                if self._walks_to_goal(words[begin:]):
                    problems.append(f"the text spells a solution: {match.group()!r}")
                    break
        grid = "\n".join(board.policy_rows)
        if len(grid) >= 8 and grid in text:
            problems.append("privileged['optimal_policy'] appears verbatim in the text")
        return problems

    def _walks_to_goal(self, words: Sequence[str]) -> bool:
        """Whether some prefix (2+ moves) of ``words`` walks from the start to the goal."""
        board = self._board
        cell = board.start
        for count, word in enumerate(words, start=1):
            cell = board.nxt[cell][_MOVE_INDEX[word]]
            if board.kinds[cell] == HOLE:
                return False
            if board.kinds[cell] == GOAL:
                return count >= 2
        return False
