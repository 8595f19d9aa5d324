"""Maze: carving, partial observation, the move budget, state keys, leaks, oracle vs random."""

from __future__ import annotations

import random
from collections import deque

import gymnasium
import numpy as np
import pytest

import turngym.envs  # noqa: F401  (registers turngym/Maze-v0)
from turngym.envs.games.maze import MOVES, Maze, carve_maze
from turngym.tasks import split_of

ENV_ID = "turngym/Maze-v0"
# A 3x3-room maze. From S (row 1, col 1) the only way to G (row 5, col 5) is
# right, right, down, down, left, left, down, down, right, right, right, right (12 moves).
ROWS = [
    "#######",
    "#S..#.#",
    "###.#.#",
    "#...#.#",
    "#.###.#",
    "#....G#",
    "#######",
]
PATH = ["right", "right", "down", "down", "left", "left", "down", "down"] + ["right"] * 4


def act(move: str) -> str:
    return f"<action>{move}</action>"


def make(**kwargs):
    return gymnasium.make(ENV_ID, **kwargs)


def _components(grid):
    """Connected floor squares of a carved grid (list of lists)."""
    n = len(grid)
    floor = {(r, c) for r in range(n) for c in range(n) if grid[r][c] != "#"}
    start = next(iter(floor))
    seen, queue = {start}, deque([start])
    while queue:
        r, c = queue.popleft()
        for nb in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if nb in floor and nb not in seen:
                seen.add(nb)
                queue.append(nb)
    return floor, seen


# --- Carving ------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [2, 5, 9])
def test_carved_maze_is_a_spanning_tree_of_rooms(size):
    grid = carve_maze(np.random.default_rng(size), size, loops=0.0)
    n = 2 * size + 1
    assert len(grid) == n and all(len(row) == n for row in grid)
    assert all(ch == "#" for ch in grid[0] + grid[-1] + [row[0] for row in grid])
    rooms = [(2 * r + 1, 2 * c + 1) for r in range(size) for c in range(size)]
    assert all(grid[r][c] == "." for r, c in rooms)
    floor, reached = _components(grid)
    assert reached == floor  # connected
    # A tree on size^2 rooms has size^2 - 1 passages: every other floor square is a passage.
    assert len(floor) - len(rooms) == size * size - 1
    assert all(grid[r][c] == "#" for r in range(0, n, 2) for c in range(0, n, 2))  # posts


def test_loops_open_extra_walls():
    perfect = carve_maze(np.random.default_rng(0), 6, loops=0.0)
    loopy = carve_maze(np.random.default_rng(0), 6, loops=0.5)
    full = carve_maze(np.random.default_rng(0), 6, loops=1.0)
    count = [sum(row.count(".") for row in g) for g in (perfect, loopy, full)]
    assert count[0] < count[1] < count[2]
    assert count[2] == 36 + 2 * 6 * 5  # every wall between adjacent rooms removed


# --- Play on a known map ------------------------------------------------------------------------
def test_known_map_plan_oracle_and_goal():
    env = make()
    _, info = env.reset(options={"task": {"rows": ROWS}})
    priv = info["privileged"]
    assert priv["shortest_path_length"] == 12 and priv["optimal_plan"] == PATH
    assert priv["goal"] == [5, 5] and priv["distance_to_goal"] == 12
    moves = []
    for _ in range(12):
        oracle = env.unwrapped.oracle_action()
        moves.append(oracle[len("<action>") : -len("</action>")])
        obs, reward, terminated, _, info = env.step(oracle)
    assert moves == PATH
    assert (reward, terminated, info["success"], info["reward_components"]) == (
        1.0,
        True,
        True,
        {"goal": 1.0},
    )
    assert "reached the goal" in obs


def test_view_radius_and_memory_render():
    env = make()
    obs, _ = env.reset(options={"task": {"rows": ROWS, "view_radius": 1}})
    assert obs.splitlines()[1:] == [
        "###????",
        "#@.????",
        "###????",
        "???????",
        "???????",
        "???????",
        "???????",
    ]
    env.step(act("right"))
    obs, *_ = env.step(act("right"))
    assert obs.splitlines()[3:7] == ["#####??", "#..@#??", "###.#??", "???????"]
    # Without memory only the window is drawn; squares outside the grid show as walls.
    env.reset(options={"task": {"rows": ROWS, "view_radius": 1, "memory": False}})
    obs, *_ = env.step(act("left"))  # a wall: stays on S
    assert obs.splitlines()[3:] == ["###", "#@.", "###"]


def test_goal_hint_and_legend():
    env = make()
    obs, info = env.reset(options={"task": {"rows": ROWS, "goal_hint": True}})
    assert "The goal is at row 5, column 5." in info["instructions"]
    assert obs.splitlines()[6][5] == "G"
    _, info = env.reset(options={"task": {"rows": ROWS}})
    assert "row 5, column 5" not in info["instructions"]


def test_walls_cost_a_move_and_the_budget_ends_the_episode():
    env = make()
    env.reset(options={"task": {"rows": ROWS, "max_steps": 3}})
    obs, reward, terminated, _, info = env.step(act("up"))
    assert "wall" in obs and info["action_valid"] and not info["metrics"]["action_effective"]
    assert "Moves left: 2." in obs and info["metrics"]["moves_used"] == 1
    env.step(act("right"))
    obs, reward, terminated, _, info = env.step(act("right"))
    assert terminated and "out of moves" in obs and info["score"] == 0.0 and reward == 0.0


@pytest.mark.parametrize("word", ["down", "south", "S", "d", "DOWN", " down "])
def test_move_aliases(word):
    env = make()
    env.reset(options={"task": {"rows": ROWS}})
    env.step(act("right"))
    env.step(act("right"))
    *_, info = env.step(act(word))
    assert info["action_valid"] and info["state_key"].startswith("p=2,3|")


@pytest.mark.parametrize("action", ["<action>jump</action>", "right", "<action>up up</action>"])
def test_invalid_actions_change_nothing(action):
    env = make()
    _, before = env.reset(options={"task": {"rows": ROWS}})
    obs, reward, terminated, _, info = env.step(action)
    assert not info["action_valid"] and reward == 0.0 and not terminated
    assert info["state_key"] == before["state_key"] and "Moves left: 100." in obs


def test_state_key_tracks_position_and_seen_squares():
    env = make()
    _, info = env.reset(options={"task": {"rows": ROWS}})
    start = info["state_key"]
    keys = [env.step(act(m))[4]["state_key"] for m in ("right", "left", "right", "left")]
    assert keys[0] == keys[2] and keys[1] == keys[3]  # nothing new seen on the way back
    assert keys[1] != start  # same square, more of the map seen
    assert start.startswith("p=1,1|seen=") and keys[1].startswith("p=1,1|seen=")
    env.reset(options={"task": {"rows": ROWS, "memory": False}})
    assert env.unwrapped.state_key() == "p=1,1"


def test_leak_check():
    env = make()
    env.reset(options={"task": {"rows": ROWS}})
    base = env.unwrapped
    assert base.leak_check("go " + ", ".join(PATH)) != []
    assert base.leak_check("right right down down") == []  # does not reach the goal
    assert base.leak_check("the exit is at row 5, column 5") != []
    assert base.leak_check("`up`, `down`, `left` or `right`") == []
    _, info = env.reset(options={"task": {"rows": ROWS, "goal_hint": True}})
    assert base.leak_check(info["instructions"]) == []


@pytest.mark.parametrize(
    ("task", "match"),
    [
        ({"rows": ["###", "#S#", "###"]}, "one S start and one G goal"),
        ({"rows": ["#SG", "##"]}, "equal length"),
        ({"rows": ["#SGx"]}, "unknown symbols"),
        ({"rows": "#SG#"}, "list of strings"),
        ({"rows": ROWS, "view": 2}, "unknown key"),
        ({"rows": ROWS, "view_radius": 0}, "view_radius=0 is invalid"),
    ],
)
def test_malformed_tasks_raise(task, match):
    with pytest.raises(ValueError, match=match):
        make().reset(options={"task": task})


@pytest.mark.parametrize(
    ("knobs", "match"),
    [({"size": 1}, "size=1"), ({"loops": 1.5}, "loops=1.5"), ({"memory": 1}, "memory=1")],
)
def test_bad_knobs_raise(knobs, match):
    with pytest.raises(ValueError, match=match):
        Maze(**knobs)


def test_unreachable_goal_has_no_plan():
    env = make()
    _, info = env.reset(options={"task": {"rows": ["#####", "#S#G#", "#####"]}})
    assert info["privileged"]["shortest_path_length"] is None
    assert info["privileged"]["optimal_plan"] == []
    assert env.unwrapped.oracle_action() == act("up")


# --- Generation, oracle vs random, determinism --------------------------------------------------
@pytest.mark.parametrize("level", sorted(Maze.levels))
def test_every_level_generates_solvable_mazes_with_the_farthest_goal(level):
    knobs = {**Maze.difficulty_defaults, **Maze.levels[level]}
    env = Maze(level=level)
    for seed in range(10):
        _, info = env.reset(seed=seed, options={"split": "train"})
        task = env.task
        assert split_of(task) == "train" and len(task["rows"]) == 2 * knobs["size"] + 1
        length = info["privileged"]["shortest_path_length"]
        assert 2 <= length <= knobs["max_steps"]
        board = env.board
        rooms = [i for i, ok in enumerate(board.open) if ok and (i // board.n_cols) % 2 == 1
                 and (i % board.n_cols) % 2 == 1]  # fmt: skip
        start_dist = {room: _dist(board, board.start, room) for room in rooms}
        assert length == max(d for d in start_dist.values() if d <= knobs["max_steps"])


def _dist(board, a, b):
    seen, queue = {a: 0}, deque([a])
    while queue:
        cell = queue.popleft()
        for nb in board.nxt[cell]:
            if nb not in seen:
                seen[nb] = seen[cell] + 1
                queue.append(nb)
    return seen[b]


def _play(env, seed, policy, **options):
    env.reset(seed=seed, options={"split": "test", **options})
    while True:
        *_, terminated, truncated, info = env.step(policy(env))
        if terminated or truncated:
            return info["success"]


def test_oracle_solves_every_test_task_and_random_rarely_does():
    env = make()
    assert all(_play(env, s, lambda e: e.unwrapped.oracle_action()) for s in range(50))
    rng = random.Random(0)
    wins = sum(_play(env, s, lambda e: act(rng.choice(MOVES))) for s in range(30))
    assert wins <= 5


@pytest.mark.slow
def test_oracle_vs_random_on_200_test_tasks():
    env = make()
    assert all(_play(env, s, lambda e: e.unwrapped.oracle_action()) for s in range(200))
    rng = random.Random(0)
    wins = sum(_play(env, s, lambda e: act(rng.choice(MOVES))) for s in range(200))
    assert wins / 200 < 0.1  # measured: 1.5%


@pytest.mark.slow
@pytest.mark.parametrize("level", sorted(Maze.levels))
def test_oracle_solves_every_level(level):
    env = make()
    assert all(_play(env, s, lambda e: e.unwrapped.oracle_action(), level=level)
               for s in range(200))  # fmt: skip


def test_same_seed_same_maze_and_snapshot_replays():
    a, b = make(), make()
    assert a.reset(seed=4, options={"split": "test"}) == b.reset(seed=4, options={"split": "test"})
    a.step(act("up"))
    snapshot = a.unwrapped.get_state()
    moves = ["left", "down", "down", "right", "up", "left"]
    first = [a.step(act(m)) for m in moves]
    a.unwrapped.set_state(snapshot)
    assert [a.step(act(m)) for m in moves] == first
