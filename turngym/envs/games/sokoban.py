"""Sokoban: push every box onto a target (docs/environments.md#sokoban).

The env plays levels from :mod:`turngym.envs.games.sokoban_generator` (reverse play), checked
by the move-optimal BFS solver of :mod:`turngym.envs.games.sokoban_levels`, with RAGEN's
rendering and gym-sokoban's rewards.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from turngym.core import TextEnv, Transition
from turngym.envs.games.sokoban_generator import generate_level
from turngym.envs.games.sokoban_levels import (
    _DELTAS,
    MOVES,
    Cell,
    Level,
    dead_squares,
    solve_level,
)

__all__ = ["Sokoban"]

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
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
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
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
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
