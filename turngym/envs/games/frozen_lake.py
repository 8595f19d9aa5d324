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
rollouts of a group pay for it once.

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
from collections import deque
from collections.abc import Mapping, Sequence
from functools import lru_cache
from numbers import Integral, Real
from typing import Any, ClassVar, NamedTuple

import numpy as np

from turngym.core import TextEnv, Transition

__all__ = ["FrozenLake"]

MOVES: tuple[str, ...] = ("left", "down", "right", "up")
"""Move names in Gymnasium's action order (0 left, 1 down, 2 right, 3 up)."""

_MOVE_INDEX = {name: index for index, name in enumerate(MOVES)}
_DELTAS = ((0, -1), (1, 0), (0, 1), (-1, 0))
_POLICY_LETTERS = "LDRU"
_FROZEN, _HOLE, _GOAL = 0, 1, 2
_TASK_KEYS = frozenset({"rows", "slip_prob", "fog"})
_RANGES = {  # knob: (low, high, what to do instead)
    "hole_prob": (0.0, 0.6, "use a fraction from 0 to 0.6 (denser maps rarely have a path)."),
    "slip_prob": (0.0, 1.0, "use 0 (deterministic) to 1; Gymnasium's slippery ice is 2/3."),
    "goal_reward": (0.0, math.inf, "use a positive finite number such as 1.0."),
    "step_penalty": (-1.0, 0.0, "use a small non-positive number such as -0.01."),
}
_PI_MAX_ITERATIONS = 1_000
# Expected moves given to cells a policy never leaves (improper policies cost "infinity").
_UNREACHED = 1e12
# Q-values this close to the best count as ties, then broken by expected moves, then by order.
_TIE_TOL = 1e-9
_MAX_DRAWS = 10_000
_MAX_SIDE = 20

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


class _Board(NamedTuple):
    """Everything derived from a map and its slip probability (shared and immutable)."""

    n_rows: int
    n_cols: int
    start: int
    kinds: tuple[int, ...]  # per cell: _FROZEN, _HOLE or _GOAL
    nxt: tuple[tuple[int, int, int, int], ...]  # per cell and move: the cell it leads to
    ice_rows: tuple[str, ...]  # the map as rendered without the player
    keys: tuple[str, ...]  # state_key per player cell
    policy: tuple[int, ...]  # optimal move per cell
    oracle: tuple[str, ...]  # tagged optimal move per cell
    value: tuple[float, ...]  # optimal success probability per cell
    dist: tuple[int | None, ...]  # moves to the goal on non-slippery ice, None if cut off
    policy_rows: tuple[str, ...]  # policy as letters L/D/R/U, H hole, G goal, . no way out


@lru_cache(maxsize=64)
def _neighbours(n_rows: int, n_cols: int) -> tuple[tuple[int, int, int, int], ...]:
    """Return, per cell, the cell each move leads to (the same cell at the border)."""
    table = []
    for r in range(n_rows):
        for c in range(n_cols):
            row = []
            for dr, dc in _DELTAS:
                rr, cc = r + dr, c + dc
                inside = 0 <= rr < n_rows and 0 <= cc < n_cols
                row.append(rr * n_cols + cc if inside else r * n_cols + c)
            table.append(tuple(row))
    return tuple(table)


def _bfs(nxt: Sequence[Sequence[int]], kinds: Sequence[int], source: int) -> list[int]:
    """Return the number of moves from ``source`` to every cell avoiding holes (-1: none).

    Grid moves are symmetric, so distances from the goal are also distances to the goal.
    """
    dist = [-1] * len(kinds)
    dist[source] = 0
    queue = deque([source])
    while queue:
        cell = queue.popleft()
        for nb in nxt[cell]:
            if dist[nb] < 0 and kinds[nb] != _HOLE:
                dist[nb] = dist[cell] + 1
                # The goal is absorbing: paths go into it, never through it.
                if kinds[nb] != _GOAL:
                    queue.append(nb)
    return dist


def _transitions(
    nxt: Sequence[Sequence[int]], kinds: Sequence[int], slip: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``P[s, a, s']`` over all cells (end cells loop on themselves) and ``end`` mask."""
    n = len(kinds)
    end = np.array([k != _FROZEN for k in kinds])
    table = np.array(nxt, dtype=np.intp)
    table[end] = np.arange(n)[end, None]
    cells = np.repeat(np.arange(n), 4).reshape(n, 4)
    moves = np.tile(np.arange(4), (n, 1))
    p = np.zeros((n, 4, n))
    # Gymnasium: the intended move w.p. 1 - slip, each perpendicular one, (a - 1) % 4 and
    # (a + 1) % 4, w.p. slip / 2. add.at sums outcomes that land on the same cell (walls).
    np.add.at(p, (cells, moves, table), 1.0 - slip)
    np.add.at(p, (cells, moves, table[:, [3, 0, 1, 2]]), slip / 2.0)
    np.add.at(p, (cells, moves, table[:, [1, 2, 3, 0]]), slip / 2.0)
    return p, end


def _evaluate(p_pi: np.ndarray, gain: np.ndarray, stop: np.ndarray, cut_off: float) -> np.ndarray:
    """Solve ``x = gain + P x`` with ``x = 0`` on ``stop`` cells, for one fixed policy.

    Cells from which the policy never reaches a ``stop`` cell get ``cut_off``; the remaining
    system is non-singular because every cell in it leaves it with positive probability.
    """
    n = len(stop)
    preds: list[list[int]] = [[] for _ in range(n)]
    src, dst = np.nonzero(p_pi)
    for s, t in zip(src.tolist(), dst.tolist(), strict=True):
        preds[t].append(s)
    reached = stop.tolist()
    queue = deque(np.flatnonzero(stop).tolist())
    while queue:
        for s in preds[queue.popleft()]:
            if not reached[s]:
                reached[s] = True
                queue.append(s)
    reach = np.array(reached)
    x = np.where(reach, 0.0, cut_off)
    live = reach & ~stop
    if live.any():
        idx = np.flatnonzero(live)
        a = np.eye(len(idx)) - p_pi[np.ix_(idx, idx)]
        # Mass that flows to cut-off cells brings their value along (e.g. "infinite" moves).
        rhs = gain[idx] + p_pi[np.ix_(idx, np.flatnonzero(~reach))] @ x[~reach]
        x[idx] = np.linalg.solve(a, rhs)
    return x


def _improve(
    q: np.ndarray, policy: np.ndarray, allowed: np.ndarray, sign: float
) -> np.ndarray | None:
    """One policy-improvement step (maximise ``sign * q``); ``None`` when nothing improves.

    A cell switches only on a strict improvement, so policy iteration cannot cycle on ties.
    """
    score = np.where(allowed, sign * q, -np.inf)
    best = score.max(axis=1)
    current = score[np.arange(len(policy)), policy]
    switch = best > current + _TIE_TOL
    if not switch.any():
        return None
    new = policy.copy()
    new[switch] = np.argmax(score >= best[:, None] - _TIE_TOL, axis=1)[switch]
    return new


def _solve_exact(
    nxt: Sequence[Sequence[int]], kinds: Sequence[int], slip: float, start: Sequence[int]
) -> tuple[list[int], list[float]]:
    """Solve the slippery MDP exactly (gamma = 1; holes and the goal are absorbing).

    Stage 1 maximises the probability of ever reaching the goal; stage 2 breaks ties among the
    actions that attain it by the fewest expected moves until the episode ends (or reaches a
    cell with no way to the goal); remaining ties go to the first move in ``MOVES`` order.
    Both stages are solved by policy iteration with exact linear solves: it gives the same
    fixed point as value iteration (a test checks this) but converges in a handful of
    iterations, whereas value iteration needs ~500 sweeps (~8 ms) on 4x4 maps with
    ``slip = 2/3`` because bumping into a wall keeps most of the mass in place.

    Args:
        nxt: Per cell and move, the cell it leads to.
        kinds: Per cell, ``_FROZEN``, ``_HOLE`` or ``_GOAL``.
        slip: The slip probability.
        start: The initial policy (any; the non-slippery optimum saves iterations).

    Returns:
        The optimal move and the optimal success probability of every cell.
    """
    p, end = _transitions(nxt, kinds, slip)
    n = len(kinds)
    rows = np.arange(n)
    goal = kinds.index(_GOAL)
    goal_step = p[:, :, goal] * ~end[:, None]  # reward: stepping onto the goal
    everything = np.ones((n, 4), dtype=bool)
    policy = np.array(start, dtype=np.intp)
    for _ in range(_PI_MAX_ITERATIONS):
        v = _evaluate(p[rows, policy], goal_step[rows, policy], end, 0.0)
        new = _improve(goal_step + p @ v, policy, everything, 1.0)
        if new is None:
            break
        policy = new
    q = goal_step + p @ v
    allowed = q >= v[:, None] - _TIE_TOL
    stop = end | (v <= _TIE_TOL)
    steps = np.where(stop, 0.0, 1.0)
    # Stage 1's policy reaches a stop cell w.p. 1 from every other cell (a cell it never leaves
    # would have value 0), so it is a proper starting policy for this shortest-path problem.
    for _ in range(_PI_MAX_ITERATIONS):
        h = _evaluate(p[rows, policy], steps, stop, _UNREACHED)
        new = _improve(steps[:, None] + p @ h, policy, allowed, -1.0)
        if new is None:
            break
        policy = new
    cost = np.where(allowed, steps[:, None] + p @ h, np.inf)
    final = np.argmax(cost <= cost.min(axis=1, keepdims=True) + _TIE_TOL, axis=1)
    final[stop] = 0
    # Rounded so that linear-solve noise does not show (0.9999999999999993 -> 1.0).
    values = [round(float(x), 12) for x in v]
    values[goal] = 1.0  # v counts steps onto the goal; standing on it is success itself
    return [int(a) for a in final], values


def _solve_deterministic(
    nxt: Sequence[Sequence[int]], kinds: Sequence[int], dist: Sequence[int]
) -> tuple[list[int], list[float]]:
    """The fixed point of :func:`_solve_exact` when ``slip == 0``, read off BFS distances.

    Without slipping, a cell's success probability is 1 if the goal is reachable and 0
    otherwise, and the fewest expected moves is the BFS distance, so the tie-broken optimal
    move is the first one that lowers the distance. This is what value iteration converges to
    (a test checks it), at a fraction of the cost on the reset path.
    """
    policy, value = [], []
    for cell, d in enumerate(dist):
        move = 0
        if d > 0 and kinds[cell] == _FROZEN:
            move = next(a for a, nb in enumerate(nxt[cell]) if dist[nb] == d - 1)
        policy.append(move)
        value.append(1.0 if d >= 0 else 0.0)
    return policy, value


@lru_cache(maxsize=4096)
def _compile(rows: tuple[str, ...], slip: float) -> _Board:
    """Build and solve a (validated) map; cached because groups reset the same task n times."""
    n_rows, n_cols = len(rows), len(rows[0])
    flat = "".join(rows)
    kinds = tuple(_HOLE if ch == "O" else _GOAL if ch == "G" else _FROZEN for ch in flat)
    nxt = _neighbours(n_rows, n_cols)
    goal = flat.index("G")
    dist = _bfs(nxt, kinds, goal)
    policy, value = _solve_deterministic(nxt, kinds, dist)
    if slip > 0.0:
        policy, value = _solve_exact(nxt, kinds, slip, policy)
    letters = []
    for cell, kind in enumerate(kinds):
        if kind != _FROZEN:
            letters.append("H" if kind == _HOLE else "G")
        else:
            letters.append(_POLICY_LETTERS[policy[cell]] if value[cell] > 0.0 else ".")
    policy_rows = tuple("".join(letters[r * n_cols : (r + 1) * n_cols]) for r in range(n_rows))
    return _Board(
        n_rows=n_rows,
        n_cols=n_cols,
        start=flat.index("S"),
        kinds=kinds,
        nxt=nxt,
        ice_rows=tuple(row.replace("S", "_") for row in rows),
        keys=tuple(f"p={cell // n_cols},{cell % n_cols}" for cell in range(len(flat))),
        policy=tuple(policy),
        oracle=tuple(f"<action>{MOVES[a]}</action>" for a in policy),
        value=tuple(value),
        dist=tuple(d if d >= 0 else None for d in dist),
        policy_rows=policy_rows,
    )


def _check_rows(rows: Any) -> tuple[str, ...]:
    """Validate the ``rows`` of a task dict and return them as a tuple."""
    example = 'e.g. {"rows": ["S_O", "_O_", "__G"]}'
    if isinstance(rows, str) or not isinstance(rows, Sequence) or not rows:
        raise ValueError(f"FrozenLake task 'rows' must be a non-empty list of strings, {example}.")
    if not all(isinstance(row, str) and row for row in rows):
        raise ValueError(f"FrozenLake task 'rows' must hold non-empty strings, {example}.")
    if len({len(row) for row in rows}) != 1:
        raise ValueError(f"FrozenLake task rows must all have the same length, {example}.")
    if len(rows) > _MAX_SIDE or len(rows[0]) > _MAX_SIDE:
        # The exact solver builds a dense cells x moves x cells transition array.
        raise ValueError(f"FrozenLake task maps may be at most {_MAX_SIDE}x{_MAX_SIDE} cells.")
    flat = "".join(rows)
    bad = sorted(set(flat) - set("S_OG"))
    if bad:
        raise ValueError(
            f"FrozenLake task rows contain {bad}; use S start, _ ice, O hole, G goal, {example}."
        )
    if flat.count("S") != 1 or flat.count("G") != 1:
        raise ValueError(f"FrozenLake task rows need exactly one S and one G, {example}.")
    return tuple(rows)


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
        if isinstance(size, bool) or not isinstance(size, Integral) or not 3 <= size <= 10:
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
        nxt = _neighbours(size, size)
        for _ in range(_MAX_DRAWS):
            # One permutation draws everything: start, goal, then the holes.
            perm = rng.permutation(n).tolist()
            kinds = [_FROZEN] * n
            for cell in perm[2 : 2 + n_holes]:
                kinds[cell] = _HOLE
            kinds[perm[1]] = _GOAL
            if _bfs(nxt, kinds, perm[0])[perm[1]] > 0:
                chars = ["_O"[k] if k != _GOAL else "G" for k in kinds]
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
        rows = _check_rows(task.get("rows"))
        knobs = {
            **self.episode_difficulty,
            **{k: task[k] for k in ("slip_prob", "fog") if k in task},
        }
        self.check_difficulty(knobs)
        self.slip_prob = float(knobs["slip_prob"])
        self.fog = knobs["fog"]
        self.goal_reward = float(knobs["goal_reward"])
        board = _compile(rows, self.slip_prob)
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
        if kind == _FROZEN:
            return self._moved
        self._over = True
        return self._reached if kind == _GOAL else self._fell

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
        player = "X" if kind == _HOLE else "√" if kind == _GOAL else "P"
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
        return 1.0 if self._kinds[self._cell] == _GOAL else 0.0

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
            if board.kinds[cell] == _HOLE:
                return False
            if board.kinds[cell] == _GOAL:
                return count >= 2
        return False
