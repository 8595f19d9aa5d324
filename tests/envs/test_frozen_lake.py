"""FrozenLake: known answers on hand-written maps, the exact solver, oracle, snapshots."""

from __future__ import annotations

import json
import math
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import turngym.envs  # noqa: F401  (registers turngym/FrozenLake-v0)
from turngym.envs.games.frozen_lake import FrozenLake
from turngym.tasks import split_of

ENV_ID = "turngym/FrozenLake-v0"
MOVES = ("left", "down", "right", "up")

# A deterministic 4x4 map. BFS distances to G (row by row; holes marked H):
#   6 7 H 3
#   5 H 3 2
#   4 3 2 1
#   H 2 1 0
# so the shortest path from S has 6 moves, and the tie-broken optimal move (first of
# left/down/right/up that lowers the distance) gives the policy below.
MAZE = {"rows": ["S_O_", "_O__", "____", "O__G"]}
MAZE_POLICY = ("DLHD", "DHDD", "RDDD", "HRRG")
MAZE_PATH = ["down", "down", "right", "down", "right", "right"]


def act(move: str) -> str:
    return f"<action>{move}</action>"


def make(**kwargs):
    return gymnasium.make(ENV_ID, **kwargs)


def play(env, moves):
    return [env.step(act(m)) for m in moves]


# --- Known answers ----------------------------------------------------------------------------
def test_deterministic_map_shortest_path_and_policy():
    env = make()
    obs, info = env.reset(options={"task": MAZE})
    assert obs == "P_O_\n_O__\n____\nO__G"
    priv = info["privileged"]
    assert priv["shortest_path_length"] == 6
    assert priv["optimal_policy"] == MAZE_POLICY
    assert priv["optimal_success_prob"] == 1.0
    assert info["metrics"]["shortest_path_length"] == 6
    moves = []
    for _ in range(6):
        oracle = env.unwrapped.oracle_action()
        moves.append(oracle.removeprefix("<action>").removesuffix("</action>"))
        obs, reward, terminated, _, info = env.step(oracle)
    assert moves == MAZE_PATH
    assert (reward, terminated, info["success"], info["score"]) == (1.0, True, True, 1.0)
    assert obs.endswith("O__√")


def test_slippery_corridor_success_probability():
    # Slip 0.5: the intended move w.p. 0.5, each perpendicular one (here: a hole) w.p. 0.25.
    # From M (middle), "right" reaches G w.p. 0.5; "up"/"down" give 0.25*v(S) + 0.25 <= 0.5 and
    # "left" 0.5*v(S), so v(M) = 0.5. From S, "right" gives 0.5*v(M) = 0.25, "up"/"down" give
    # 0.25*v(S) + 0.25*v(M) (fixed point 1/6) and "left" 0.5*v(S), so v(S) = 0.25.
    env = make()
    _, info = env.reset(options={"task": {"rows": ["OOO", "S_G", "OOO"], "slip_prob": 0.5}})
    priv = info["privileged"]
    assert priv["optimal_success_prob"] == pytest.approx(0.25, abs=1e-12)
    assert priv["optimal_policy"] == ("HHH", "RRG", "HHH")
    env.step(act("right"))  # whatever happens, the value of the new cell is known
    state = env.unwrapped.privileged()["state_success_prob"]
    assert state in (pytest.approx(0.5), 0.0)


def test_slippery_map_prefers_the_safe_wall_hugging_move():
    # S_ / OG with slip 0.5. At S, "right" slips down into the hole w.p. 0.25, but "up" bumps
    # the wall (stay) or slips right to F (w.p. 0.25) and never falls: v(S) = 1 via "up".
    # At F every move is safe; expected moves to the end with S playing "up"
    # (h(S) = 4 + h(F)): left 1 + 0.5h(S) + 0.25h(F) -> 12, down 1 + 0.25h(S) + 0.25h(F) -> 4,
    # right 1 + 0.75h(F) -> 4, so down and right tie and the earlier move, down, wins.
    env = make()
    _, info = env.reset(options={"task": {"rows": ["S_", "OG"], "slip_prob": 0.5}})
    assert info["privileged"]["optimal_success_prob"] == 1.0
    assert info["privileged"]["optimal_policy"] == ("UD", "HG")
    # Without slipping, the shortest path goes right then down.
    _, info = env.reset(options={"task": {"rows": ["S_", "OG"]}})
    assert info["privileged"]["optimal_policy"] == ("RD", "HG")
    assert info["privileged"]["shortest_path_length"] == 2


def _reference_value_iteration(rows, slip):
    """Plain value iteration, written independently of the env's policy iteration.

    Returns the success probability per cell and, on cells with a way to the goal, the move
    that attains it with the fewest expected moves (earliest move on ties).
    """
    flat = "".join(rows)
    n_rows, n_cols = len(rows), len(rows[0])
    end = [ch in "OG" for ch in flat]

    def outcomes(s, a):
        r, c = divmod(s, n_cols)
        result = []
        for move, prob in ((a, 1 - slip), ((a - 1) % 4, slip / 2), ((a + 1) % 4, slip / 2)):
            dr, dc = ((0, -1), (1, 0), (0, 1), (-1, 0))[move]
            rr, cc = r + dr, c + dc
            inside = 0 <= rr < n_rows and 0 <= cc < n_cols
            result.append((rr * n_cols + cc if inside else s, prob))
        return result

    table = [[outcomes(s, a) for a in range(4)] for s in range(len(flat))]

    def sweep(x, pick, fixed):
        return [x[s] if fixed[s] else pick(s, x) for s in range(len(flat))]

    def solve(x, pick, fixed):
        for _ in range(100_000):
            new = sweep(x, pick, fixed)
            if max(abs(a - b) for a, b in zip(new, x, strict=True)) < 1e-13:
                return new
            x = new
        raise AssertionError("value iteration did not converge")

    def q(s, a, x):
        return sum(p * x[t] for t, p in table[s][a])

    v = solve(
        [float(ch == "G") for ch in flat], lambda s, x: max(q(s, a, x) for a in range(4)), end
    )
    allowed = [[a for a in range(4) if q(s, a, v) >= v[s] - 1e-9] for s in range(len(flat))]
    stop = [e or v[s] < 1e-9 for s, e in enumerate(end)]
    h = solve([0.0] * len(flat), lambda s, x: min(1 + q(s, a, x) for a in allowed[s]), stop)
    policy = {}
    for s in range(len(flat)):
        if not stop[s]:
            costs = [1 + q(s, a, h) if a in allowed[s] else math.inf for a in range(4)]
            policy[s] = next(a for a in range(4) if costs[a] <= min(costs) + 1e-9)
    return v, policy


@pytest.mark.parametrize("slip", [0.0, 0.3, 2 / 3, 1.0])
def test_exact_solver_matches_value_iteration(slip):
    env = FrozenLake(size=4, hole_prob=0.3, slip_prob=slip)
    rng = np.random.default_rng(7)
    for _ in range(12):
        task = env.generate_task(rng, env.difficulty)
        env.reset(options={"task": task})
        values, policy = _reference_value_iteration(task["rows"], slip)
        assert list(env._board.value) == pytest.approx(values, abs=1e-9)
        assert {s: env._board.policy[s] for s in policy} == policy


# --- Dynamics ---------------------------------------------------------------------------------
def test_hole_ends_the_episode_with_nothing():
    env = make()
    env.reset(options={"task": {"rows": ["S_", "OG"]}})
    obs, reward, terminated, truncated, info = env.step(act("down"))
    assert obs.endswith("__\nXG")
    assert (reward, terminated, truncated) == (0.0, True, False)
    assert (info["success"], info["score"], info["action_valid"]) == (False, 0.0, True)
    assert "hole" in obs
    # Stepping on after the end changes nothing and keeps saying terminated.
    obs, reward, terminated, _, info = env.step(act("right"))
    assert (reward, terminated, info["state_key"]) == (0.0, True, "p=1,0")
    assert info["metrics"]["action_effective"] is False


def test_episode_difficulty_fills_in_hand_written_tasks():
    env = make()
    _, info = env.reset(options={"task": {"rows": ["S_", "OG"]}, "level": 3})
    assert "slippery" in info["instructions"]
    assert info["privileged"]["optimal_policy"] == ("UR", "HG")  # slip 2/3: right beats down
    _, info = env.reset(options={"task": {"rows": ["S_", "OG"], "slip_prob": 0.0}, "level": 3})
    assert "slippery" not in info["instructions"]
    _, info = env.reset(seed=0, options={"difficulty": {"goal_reward": 3.0}})
    assert "reward 3 " in info["instructions"] and "goal_reward" not in env.unwrapped.task


def test_goal_pays_goal_reward():
    env = make(goal_reward=2.5)
    env.reset(options={"task": {"rows": ["S_", "OG"]}})
    *_, info = env.step(act("right"))
    assert info["state_key"] == "p=0,1"
    obs, reward, terminated, _, info = env.step(act("down"))
    assert (reward, terminated, info["success"]) == (2.5, True, True)
    assert info["reward_components"] == {"goal": 2.5}
    assert obs.endswith("__\nO√")


@pytest.mark.parametrize(
    "action",
    [
        "<action>jump</action>",
        "down",
        "",
        "<action></action>",
        "<action>" + "x" * 5000 + "</action>",
    ],
)
def test_invalid_actions_change_nothing(action):
    env = make()
    obs0, info0 = env.reset(options={"task": MAZE})
    obs, reward, terminated, truncated, info = env.step(action)
    assert (reward, terminated, truncated, info["action_valid"]) == (0.0, False, False, False)
    assert info["state_key"] == info0["state_key"] == "p=0,0"
    assert obs.endswith(obs0) and obs != obs0  # the message comes above the unchanged grid
    assert info["metrics"]["action_effective"] is False


def test_unknown_word_lists_the_legal_moves():
    env = make()
    env.reset(options={"task": MAZE})
    obs, *_ = env.step(act("north"))
    assert all(move in obs for move in MOVES) and "'north'" in obs


def test_moves_are_case_insensitive():
    env = make()
    env.reset(options={"task": MAZE})
    *_, info = env.step("<think>go down</think><action> DoWn </action>")
    assert info["action_valid"] and info["state_key"] == "p=1,0"


def test_border_moves_are_valid_but_ineffective():
    env = make()
    env.reset(options={"task": MAZE})
    for move in ("up", "left"):
        obs, reward, terminated, _, info = env.step(act(move))
        assert info["action_valid"] is True
        assert info["metrics"]["action_effective"] is False
        assert (reward, terminated, info["state_key"]) == (0.0, False, "p=0,0")
    *_, info = env.step(act("down"))
    assert info["metrics"]["action_effective"] is True


def test_fog_shows_only_the_neighbourhood():
    rows = ["S____", "_O___", "__O__", "___O_", "____G"]
    env = make(fog=True)
    obs, info = env.reset(options={"task": {"rows": rows}})
    assert obs == "P_???\n_O???\n?????\n?????\n?????"
    assert "?" in info["instructions"]
    play(env, ["right", "right", "down"])
    obs, *_ = env.step(act("down"))  # (2,2) is a hole
    assert obs.endswith("\n\n?????\n?O__?\n?_X_?\n?__O?\n?????")


def test_slips_go_perpendicular_at_the_advertised_rate():
    env = make(slip_prob=0.5)
    env.reset(seed=0, options={"task": {"rows": ["___", "_S_", "___", "__G"]}})
    u = env.unwrapped
    counts = {}
    for _ in range(4000):
        u._cell = u._board.start  # put the player back without a reset (no holes here)
        u.step(act("up"))
        counts[u.state_key()] = counts.get(u.state_key(), 0) + 1
    assert set(counts) == {"p=0,1", "p=1,0", "p=1,2"}  # up, or slipped left/right; never down
    assert counts["p=0,1"] / 4000 == pytest.approx(0.5, abs=0.03)
    assert counts["p=1,0"] / 4000 == pytest.approx(0.25, abs=0.03)


# --- Tasks, levels, oracle --------------------------------------------------------------------
def test_oracle_solves_the_test_split():
    env = make()
    wins = 0
    for seed in range(200):
        env.reset(seed=seed, options={"split": "test"})
        for _ in range(20):
            *_, terminated, truncated, info = env.step(env.unwrapped.oracle_action())
            if terminated or truncated:
                break
        wins += info["success"]
    assert wins / 200 >= 0.99


@pytest.mark.parametrize("level", sorted(FrozenLake.levels))
def test_every_level_generates_solvable_maps(level):
    knobs = {**FrozenLake.difficulty_defaults, **FrozenLake.levels[level]}
    size, n_holes = knobs["size"], round(knobs["hole_prob"] * (knobs["size"] ** 2 - 2))
    env = make(level=level)
    for seed in range(25):
        _, info = env.reset(seed=seed, options={"split": "train"})
        task = env.unwrapped.task
        assert json.loads(json.dumps(task)) == task
        assert split_of(task) == "train"
        assert len(task["rows"]) == size and {len(r) for r in task["rows"]} == {size}
        assert "".join(task["rows"]).count("O") == n_holes
        assert task["slip_prob"] == knobs["slip_prob"]
        assert info["privileged"]["shortest_path_length"] >= 1
        assert info["privileged"]["optimal_success_prob"] > 0.0


def test_densest_maps_are_still_generated():
    env = make(size=10, hole_prob=0.6)
    _, info = env.reset(seed=0)
    assert info["privileged"]["shortest_path_length"] >= 1


def test_same_seed_same_episode_including_slips():
    actions = [act(MOVES[i % 4]) for i in (1, 2, 2, 1, 0, 3, 1, 2, 2, 1, 1, 2)]
    runs = []
    for _ in range(2):
        env = make(level=3)
        obs, info = env.reset(seed=11, options={"split": "test"})
        trace = [(obs, info["task_id"])]
        for a in actions:
            obs, reward, terminated, _, info = env.step(a)
            trace.append((obs, reward, info["state_key"], info["metrics"]["slipped"]))
            if terminated:
                break
        runs.append(trace)
    assert runs[0] == runs[1]
    ids = {make().reset(seed=s)[1]["task_id"] for s in range(20)}
    assert len(ids) > 15


def test_snapshot_restore_replays_slips():
    env = make(level=3)
    base = env.unwrapped
    rows = ["S___", "____", "____", "___G"]  # no holes, so episodes last
    env.reset(seed=5, options={"task": {"rows": rows, "slip_prob": 2 / 3}})
    play(env, ["right", "down"])
    snapshot = base.get_state()
    actions = [act(MOVES[i % 4]) for i in range(12)]

    def replay():
        return [(obs, r, t, info["state_key"], info["metrics"]["slipped"])
                for obs, r, t, _, info in map(base.step, actions)]  # fmt: skip

    first = replay()
    base.set_state(snapshot)
    assert replay() == first
    assert any(step[-1] for step in first)  # the replay really went through slips


# --- Privileged info, leak check, knobs -------------------------------------------------------
def test_privileged_is_cached_and_cheap():
    env = make()
    _, info = env.reset(options={"task": MAZE})
    *_, info2 = env.step(act("down"))
    assert info2["privileged"]["optimal_policy"] is info["privileged"]["optimal_policy"]
    assert info2["privileged"]["distance_to_goal"] == 5
    info2["privileged"]["optimal_success_prob"] = -1  # consumers may mutate their copy
    assert env.unwrapped.privileged()["optimal_success_prob"] == 1.0


def test_leak_check_flags_the_solution_not_the_env_texts():
    env = make()
    obs, info = env.reset(options={"task": MAZE})
    u = env.unwrapped
    assert u.leak_check(info["instructions"]) == []
    assert u.leak_check(obs) == []
    for spelled in (" ".join(MAZE_PATH), ", ".join(MAZE_PATH).upper(), "->".join(MAZE_PATH)):
        assert u.leak_check(f"Plan: {spelled}.")
    assert u.leak_check("Try down down first.") == []  # not a way to the goal
    assert u.leak_check("\n".join(MAZE_POLICY))
    # Every text an oracle or a confused agent sees on real tasks is clean.
    for seed in range(20):
        obs, info = env.reset(seed=seed, options={"split": "test", "level": seed % 5})
        texts = [info["instructions"], obs, env.step(act("jump"))[0], env.step("no tag")[0]]
        for _ in range(8):
            obs, *_, terminated, truncated, _ = env.step(u.oracle_action())
            texts.append(obs)
            if terminated or truncated:
                break
        assert all(u.leak_check(t) == [] for t in texts)


def test_slippery_instructions_warn():
    _, info = make(level=3).reset(seed=0)
    assert "slippery" in info["instructions"] and "unintended" in info["instructions"]
    _, info = make().reset(seed=0)
    assert "slippery" not in info["instructions"]


@pytest.mark.parametrize(
    ("knobs", "match"),
    [
        ({"size": 2}, "size"),
        ({"size": 11}, "size"),
        ({"size": 4.0}, "size"),
        ({"hole_prob": 0.7}, "hole_prob"),
        ({"slip_prob": -0.1}, "slip_prob"),
        ({"fog": "yes"}, "fog"),
        ({"goal_reward": 0.0}, "goal_reward"),
        ({"goal_reward": float("inf")}, "goal_reward"),
        ({"holes": 0.1}, "hole_prob"),
    ],
)
def test_bad_knobs_raise_actionable_errors(knobs, match):
    with pytest.raises(ValueError, match=match):
        FrozenLake(**knobs)


@pytest.mark.parametrize(
    ("task", "match"),
    [
        ({"rows": ["S_", "_"]}, "same length"),
        ({"rows": ["S_", "__"]}, "one S and one G"),
        ({"rows": ["SX", "_G"]}, "contain"),
        ({"rows": "S_G"}, "list of strings"),
        ({"rows": ["S" + "_" * 20, "_" * 20 + "G"]}, "at most 20x20"),
        ({"rows": ["S_", "_G"], "slip": 0.1}, "unknown key"),
        ({"rows": ["S_", "_G"], "slip_prob": 2}, "slip_prob"),
    ],
)
def test_malformed_tasks_raise(task, match):
    with pytest.raises(ValueError, match=match):
        make().reset(options={"task": task})


def test_gymnasium_checker_passes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gymnasium_check_env(make(level=3, fog=True).unwrapped)


@settings(max_examples=150, deadline=None, database=None, derandomize=True)
@given(st.text(max_size=60), st.booleans())
def test_any_command_never_raises(command, tagged):
    env = make(slip_prob=0.3)
    env.reset(seed=1)
    obs, reward, *_ = env.step(act(command) if tagged else command)
    assert isinstance(obs, str) and reward in (0.0, 1.0)


def test_step_penalty_knob_is_added_to_every_valid_move():
    env = gymnasium.make("turngym/FrozenLake-v0", step_penalty=-0.05)
    env.reset(options={"task": {"rows": ["S__G"]}})
    _, reward, terminated, _, info = env.step("<action>left</action>")  # bumps into the edge
    assert (reward, terminated, info["reward_components"]) == (-0.05, False, {"step": -0.05})
    env.step("<action>right</action>")
    env.step("<action>right</action>")
    _, reward, terminated, _, info = env.step("<action>right</action>")
    assert terminated and reward == pytest.approx(0.95)
    assert info["reward_components"] == {"goal": 1.0, "step": -0.05}
    assert env.reset(options={"task": {"rows": ["S__G"]}}) and env.step("jump")[1] == 0.0
    with pytest.raises(ValueError, match="step_penalty"):
        gymnasium.make("turngym/FrozenLake-v0", step_penalty=0.5)
