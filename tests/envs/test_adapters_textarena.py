"""TextArena's single-player games through the adapter (needs the textarena package)."""

from __future__ import annotations

import random

import pytest

pytest.importorskip("textarena", reason="TextArena is not installed: pip install textarena")

import turngym  # noqa: E402
from turngym.envs.adapters.textarena import TEXTARENA_GAMES, TextArenaEnv  # noqa: E402
from turngym.testing import check_env  # noqa: E402


def test_games_are_registered_under_the_textarena_namespace():
    ids = [i for i in turngym.registry.env_registry.names() if i.startswith("textarena/")]
    assert len(ids) == len(TEXTARENA_GAMES) >= 10
    assert "textarena/Sudoku-v0" in ids


def test_textarena_randomness_does_not_touch_the_global_rng():
    random.seed(123)
    expected = random.random()
    random.seed(123)
    env = TextArenaEnv(game="Minesweeper-v0")
    env.reset(seed=0, options={"split": "test"})
    env.step("<action>[3 3]</action>")
    assert random.random() == expected


def test_moves_reach_the_game_and_untagged_text_does_not():
    env = turngym.make("textarena/FrozenLake-v0")
    obs, info = env.reset(seed=0, options={"split": "test"})
    assert "Frozen Lake" in info["instructions"] and "<action>" in info["instructions"]
    key = info["state_key"]
    _, reward, done, _, info = env.step("down")  # no tag: turngym's invalid action
    assert info["action_valid"] is False and info["state_key"] == key and not done
    obs, reward, done, _, info = env.step("<action>[right]</action>")
    assert info["action_valid"] and info["state_key"] != key and "[You] [right]" in obs


def test_refused_moves_follow_textarenas_rule():
    env = turngym.make("textarena/GuessTheNumber-v0")
    env.reset(seed=0, options={"split": "test"})
    _, reward, done, _, info = env.step("<action>banana</action>")
    assert info["action_valid"] is False and not done  # one error is allowed...
    _, reward, done, _, info = env.step("<action>banana</action>")
    assert done and reward <= 0.0 and not info["success"]  # ...the next one ends the game
    assert "Invalid Move" in env.unwrapped.game.state.game_info[0]["reason"]


def test_guess_the_number_can_be_won_by_bisection():
    env = turngym.make("textarena/GuessTheNumber-v0")
    env.reset(seed=4, options={"split": "test"})
    low, high = 1, 20
    for _ in range(10):
        guess = (low + high) // 2
        obs, reward, done, _, info = env.step(f"<action>[{guess}]</action>")
        if done:
            break
        if "higher" in obs.lower():
            low = guess + 1
        else:
            high = guess - 1
    assert done and reward == 1.0 and info["success"]


def test_same_seed_same_game():
    a, b = turngym.make("textarena/Sudoku-v0"), turngym.make("textarena/Sudoku-v0")
    assert a.reset(seed=5, options={"split": "test"})[0] == b.reset(
        seed=5, options={"split": "test"})[0]  # fmt: skip


def test_unknown_game_fails_clearly():
    env = TextArenaEnv(game="NoSuchGame-v0")
    with pytest.raises(ValueError, match="TextArena has no game"):
        env.reset(seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("game", sorted(TEXTARENA_GAMES))
def test_textarena_game_passes_turngym_check(game):
    check_env(f"textarena/{game}", fuzz_examples=30, n_tasks=8).raise_if_failed()


# --- Two-player games on PettingZoo's AEC API ----------------------------------------------------
def test_two_player_games_are_multiagent_ids():
    from turngym.envs.adapters.textarena_multi import TEXTARENA_TWO_PLAYER_GAMES
    from turngym.envs.multiagent.registry import multiagent_ids

    ids = {i for i in multiagent_ids() if i.startswith("textarena/")}
    assert ids == {f"textarena/{g}" for g in TEXTARENA_TWO_PLAYER_GAMES}


def test_tictactoe_win_ends_the_game_for_both_seats():
    from turngym.envs.multiagent.registry import make_multiagent

    env = make_multiagent("textarena/TicTacToe-v0")
    env.reset(seed=0, options={"split": "test"})
    assert "Tic Tac Toe" in env.infos["player_0"]["instructions"]
    for cell in (0, 3, 1, 4, 2):  # player_0 takes the top row
        env.step(f"<action>[{cell}]</action>")
    assert env.terminations == {"player_0": True, "player_1": True}
    assert env.rewards == {"player_0": 1.0, "player_1": -1.0}
    assert env.infos["player_0"]["success"] and env.infos["player_1"]["score"] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("game", ["TicTacToe-v0", "ConnectFour-v0", "IteratedPrisonersDilemma-v0",
                                  "KuhnPoker-v0", "Othello-v0", "Breakthrough-v0"])  # fmt: skip
def test_two_player_game_passes_the_multiagent_checks(game):
    from turngym.envs.multiagent.testing import check_multiagent_env

    report = check_multiagent_env(f"textarena/{game}", fuzz_examples=20, n_tasks=6)
    assert report.ok, [(r.name, r.message) for r in report.results if not r.ok]
