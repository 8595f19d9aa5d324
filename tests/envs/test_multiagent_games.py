"""Known answers for the multi-agent games: rules, the invalid-move rule, minimax, negotiator."""

from __future__ import annotations

import random

import numpy as np
import pytest

pytest.importorskip("pettingzoo")

from turngym.envs.multiagent.bargaining import DealOrNoDeal  # noqa: E402
from turngym.envs.multiagent.connect_four import ConnectFour, ConnectFourPosition  # noqa: E402
from turngym.envs.multiagent.minimax import best_moves, choose_move, exact_value  # noqa: E402
from turngym.envs.multiagent.negotiation import (  # noqa: E402
    TOTAL_VALUE,
    BargainView,
    admissible,
    draw_pool,
    negotiate,
    pareto_optimal,
    parse_command,
    points,
    splits,
    value_vectors,
)
from turngym.envs.multiagent.tictactoe import TicTacToe, TicTacToePosition  # noqa: E402


def act(text: str) -> str:
    return f"<action>{text}</action>"


def ttt(opening=()):
    env = TicTacToe()
    env.reset(options={"task": {"opening": list(opening)}})
    return env


def play(env, *moves):
    for move in moves:
        env.step(act(move))


# --- TicTacToe --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("moves", "winner"),
    [
        (["1", "4", "2", "5", "3"], "player_0"),  # top row
        (["1", "2", "4", "3", "7"], "player_0"),  # left column
        (["2", "1", "4", "5", "6", "9"], "player_1"),  # main diagonal
        (["1", "3", "2", "5", "4", "7"], "player_1"),  # anti-diagonal
    ],
)
def test_tictactoe_lines_win(moves, winner):
    env = ttt()
    play(env, *moves)
    loser = "player_1" if winner == "player_0" else "player_0"
    assert all(env.terminations.values())
    assert env.rewards == {winner: 1.0, loser: -1.0}
    assert env.infos[winner]["success"] and env.infos[winner]["score"] == 1.0
    assert env.infos[loser]["score"] == 0.0


def test_tictactoe_full_board_is_a_draw():
    env = ttt()
    play(env, "1", "2", "3", "5", "4", "6", "8", "7", "9")
    assert all(env.terminations.values()) and env.rewards == {"player_0": 0.0, "player_1": 0.0}
    assert [env.infos[s]["score"] for s in env.possible_agents] == [0.5, 0.5]
    assert "draw" in env.observe("player_1")


def test_refused_moves_retry_with_penalty_then_forfeit():
    env = ttt(["5", "1"])  # X to move
    env.step(act("5"))  # taken
    assert env.agent_selection == "player_0" and env.rewards["player_0"] == pytest.approx(-0.1)
    assert env.infos["player_0"]["action_valid"] is False
    assert "cell 5 is already taken" in env.observe("player_0")
    assert "taken" not in env.observe("player_1")  # the refusal reaches only its author
    env.step("I pick the middle")  # no tag
    assert "no <action>" in env.observe("player_0") and env.agent_selection == "player_0"
    env.step(act("10"))  # third refusal in a row: forfeit
    assert all(env.terminations.values())
    assert env.rewards == {"player_0": pytest.approx(-1.1), "player_1": 1.0}
    assert env.infos["player_1"]["success"] and env.infos["player_0"]["metrics"]["forfeited"]


def test_a_legal_move_resets_the_refusal_count():
    env = ttt()
    env.step(act("x"))
    env.step(act("y"))
    env.step(act("5"))  # legal: count back to 0
    env.step(act("5"))
    env.step(act("5"))  # O refused twice
    assert not any(env.terminations.values()) and env.agent_selection == "player_1"


def test_tictactoe_privileged_is_the_exact_solution():
    # X (1, 9) to move must block O's 3-5-7 diagonal at 7, which also forks 4 and 8: X wins.
    env = ttt(["1", "5", "9", "3"])
    assert env.infos["player_0"]["privileged"] == {"value": 1, "optimal_moves": ["7"]}
    assert env.infos["player_1"]["privileged"] == {"value": -1}
    assert env.oracle_action("player_0") == act("7")


def test_exact_minimax_values():
    empty = TicTacToePosition.empty_board()
    assert exact_value(empty) == 0.0
    x_wins_now = TicTacToePosition((1, 1, 0, 2, 2, 0, 0, 0, 0), 0)
    assert best_moves(x_wins_now, None) == [2]  # completing the row beats blocking
    assert exact_value(x_wins_now) > 1.0  # a win, worth more than 1 because it is quick
    o_must_block = TicTacToePosition((1, 1, 0, 2, 0, 0, 0, 0, 0), 1)
    assert best_moves(o_must_block, None) == [2]
    assert choose_move(empty, None, random.Random(0)) in best_moves(empty, None)


def test_tictactoe_difficulty_knobs_are_checked():
    with pytest.raises(ValueError, match="opening_plies"):
        TicTacToe(opening_plies=0)
    with pytest.raises(ValueError, match="invalid_penalty"):
        TicTacToe(invalid_penalty=0.5)
    env = TicTacToe(level=2)
    env.reset(seed=0, options={"split": "train"})
    assert env.task["opening"] and len(env.task["opening"]) == 4


# --- ConnectFour ------------------------------------------------------------------------------
def c4(opening=(), rows=6, columns=7):
    env = ConnectFour()
    env.reset(options={"task": {"rows": rows, "columns": columns, "opening": list(opening)}})
    return env


@pytest.mark.parametrize(
    "moves",
    [
        ["1", "1", "2", "2", "3", "3", "4"],  # row
        ["1", "2", "1", "2", "1", "2", "1"],  # column
        ["1", "2", "2", "3", "4", "3", "3", "4", "5", "4", "4"],  # diagonal
    ],
)
def test_connect_four_wins(moves):
    env = c4()
    play(env, *moves)
    assert env.rewards == {"player_0": 1.0, "player_1": -1.0}
    assert "four in a row" in env.observe("player_1")


def test_connect_four_full_column_is_refused():
    env = c4(rows=4, columns=4)
    play(env, "1", "1", "1", "1")
    env.step(act("1"))
    assert env.infos["player_0"]["action_valid"] is False
    assert "column 1 is full" in env.observe("player_0")
    assert "1" not in env.observe("player_0").split("Legal moves:")[1].split(",")[0]


def test_connect_four_minimax_wins_and_blocks():
    win = c4(["1", "2", "1", "2", "1", "3"]).position()  # X threatens column 1
    assert best_moves(win, 2) == [0]
    block = c4(["1", "2", "1", "2", "1"]).position()  # O must block column 1
    assert best_moves(block, 2) == [0]


def test_connect_four_heuristic_is_antisymmetric():
    position = ConnectFourPosition.empty_board().play(3).play(2).play(3)
    mirror = ConnectFourPosition(position.rows, position.columns, position.cells,
                                 position.heights, 1 - position.player)  # fmt: skip
    assert position.heuristic() == pytest.approx(-mirror.heuristic())
    assert -0.5 <= position.heuristic() <= 0.5


# --- Negotiation rules and the negotiator -------------------------------------------------
def test_value_vectors_and_pools_follow_lewis_et_al():
    for counts in [(1, 3, 2), (4, 1, 1), (2, 2, 2)]:
        assert all(points(v, counts) == TOTAL_VALUE for v in value_vectors(counts))
    rng = np.random.default_rng(0)
    for _ in range(50):
        counts, a, b = draw_pool(rng)
        assert 5 <= sum(counts) <= 7 and all(1 <= c <= 4 for c in counts)
        assert admissible(a, b) and points(a, counts) == points(b, counts) == 10
    assert len(splits((1, 3, 2))) == 2 * 4 * 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("propose book=1 hat=0 ball=2", ("propose", (1, 0, 2))),
        ("Propose  books: 1, balls=2", ("propose", (1, 0, 2))),
        ("accept", ("accept", None)),
        ("Walk Away", ("walk", None)),
        ("propose book=9", ("error", None)),
        ("propose cars=1", ("error", None)),
        ("propose book=1 and give me the rest", ("error", None)),
        ("take everything", ("error", None)),
    ],
)
def test_parse_command(text, expected):
    assert parse_command(text, (1, 3, 2))[:2] == expected


def test_pareto_optimality():
    counts, va, vb = (1, 3, 2), (4, 0, 3), (1, 1, 3)
    assert pareto_optimal((1, 0, 2), counts, va, vb)  # va takes all it values
    assert not pareto_optimal((1, 3, 2), counts, va, vb)  # hats are worthless to va


def view(**kw):
    base = {"counts": (1, 3, 2), "values": (4, 0, 3), "move": 0, "max_moves": 10,
            "offer": None, "their_offers": (), "my_offers": ()}  # fmt: skip
    return BargainView(**{**base, **kw})


def test_negotiator_accepts_good_offers_and_concedes_late():
    assert negotiate(view(move=1, offer=(0, 3, 0))) == act("accept")  # leaves it 10 points
    assert negotiate(view(move=1, offer=(1, 3, 0))) != act("accept")  # 6 points, too early
    assert negotiate(view(move=9, offer=(1, 3, 1))) == act("accept")  # last move, 3 > 0
    assert negotiate(view(move=9, offer=(1, 3, 2))) != act("accept")  # nothing for it


def test_negotiator_leaves_the_opponent_what_it_asked_for():
    asked_hats = view(move=4, their_offers=((0, 3, 0), (0, 3, 1)))
    take = parse_command(negotiate(asked_hats)[8:-9], (1, 3, 2))[1]
    assert take is not None and take[1] == 0 and points((4, 0, 3), take) >= 5


# --- DealOrNoDeal rules ---------------------------------------------------------------------
TASK = {"counts": [1, 3, 2], "first": "player_1",
        "values": {"player_0": [4, 0, 3], "player_1": [1, 1, 3]}}  # fmt: skip


def bargain(**kw):
    env = DealOrNoDeal(**kw)
    env.reset(options={"task": TASK})
    return env


def test_bargaining_first_seat_and_accept_rules():
    env = bargain()
    assert env.agent_selection == "player_1"
    env.step(act("accept"))  # nothing to accept yet
    assert env.infos["player_1"]["action_valid"] is False and env.agent_selection == "player_1"
    env.step(act("propose book=1 ball=2"))
    env.step(act("propose hats=3"))  # a counter-offer, not an acceptance
    assert env.agent_selection == "player_1" and not any(env.terminations.values())
    env.step(act("accept"))  # player_1 accepts: it gets book and balls, player_0 hats
    assert env.rewards == {"player_0": 0.0, "player_1": 0.7}
    assert env.infos["player_1"]["success"] and env.infos["player_0"]["success"]
    assert env.infos["player_0"]["privileged"]["pareto_optimal"] is False


def test_bargaining_last_move_and_walk_away_end_without_deal():
    env = bargain(max_moves=2)
    env.step(act("propose book=1"))
    assert "last one" in env.observe("player_0")
    env.step(act("propose ball=2"))  # cannot be answered
    assert all(env.terminations.values()) and env.rewards == {"player_0": 0.0, "player_1": 0.0}
    assert not env.infos["player_0"]["success"]
    env = bargain()
    env.step(act("walk away"))
    assert all(env.terminations.values()) and "walked away" in env.observe("player_0")


def test_bargaining_forfeit_is_no_deal():
    env = bargain(max_invalid=2)
    env.step("nonsense")
    env.step(act("propose book=7"))
    assert all(env.terminations.values())
    assert env.rewards == {"player_0": 0.0, "player_1": pytest.approx(-0.1)}
    assert "forfeits" in env.observe("player_0")


def test_bargaining_rejects_malformed_tasks():
    env = DealOrNoDeal()
    bad = {**TASK, "values": {"player_0": [4, 0, 2], "player_1": [1, 1, 3]}}
    with pytest.raises(ValueError, match="total 10"):
        env.reset(options={"task": bad})
    with pytest.raises(ValueError, match="counts, values and first"):
        env.reset(options={"task": {"counts": [1, 1, 1]}})
