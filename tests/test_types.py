from __future__ import annotations

import json

import pytest

from turngym.types import Conversation, Episode, Group, TokenTrace, Turn


def _turn(i: int, trace: TokenTrace | None = None) -> Turn:
    return Turn(i, "agent", f"obs{i}", f"act{i}", 0.5, False, False, f"k{i}", True, {"x": 1}, trace)


def test_records_roundtrip_json():
    trace = TokenTrace((1, 2), (3, 4), (-0.1, -0.2))
    ep = Episode(
        "e",
        "turngym/X-v0",
        "t",
        3,
        "test",
        (_turn(0, trace), _turn(1)),
        1.0,
        True,
        {"gold": "a"},
        {"m": 2},
    )
    assert Episode.from_dict(json.loads(json.dumps(ep.to_dict()))) == ep
    assert ep.total_reward == 1.0 and ep.num_turns == 2 and not ep.truncated


def test_token_trace_validates_lengths():
    with pytest.raises(ValueError, match="one logprob per completion token"):
        TokenTrace((1,), (2, 3), (-1.0,))


def test_group_rejects_foreign_episodes():
    a = Episode("a", "e", "t1", 0, "test", (), 0.0, False)
    b = Episode("b", "e", "t2", 0, "test", (), 0.0, False)
    with pytest.raises(ValueError, match="other tasks"):
        Group("t1@0", "t1", (a, b))


def test_conversation_messages_and_window():
    conv = Conversation("sys", (("o1", "a1"), ("o2", "a2")), "o3")
    assert [m["role"] for m in conv.messages()] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert conv.last(1).turns == (("o2", "a2"),) and conv.last(0).turns == ()


def test_seat_fields_roundtrip_and_old_records_still_load():
    from turngym.types import SeatOutcome

    outcomes = {"player_0": SeatOutcome(1.0, True, 0.9), "player_1": SeatOutcome(0.0, False, -1.0)}
    ep = Episode("e/player_0", "turngym/TicTacToe-v0", "t", 0, "test", (_turn(0),), 1.0, True,
                 seat="player_0", seat_outcomes=outcomes)  # fmt: skip
    data = json.loads(json.dumps(ep.to_dict()))
    assert data["seat"] == "player_0" and data["seat_outcomes"]["player_1"]["total_reward"] == -1.0
    assert Episode.from_dict(data) == ep
    single = Episode("e", "turngym/X-v0", "t", 0, "test", (_turn(0),), 1.0, True)
    assert "seat" not in single.to_dict() and "seat_outcomes" not in single.to_dict()
    assert Episode.from_dict(single.to_dict()) == single  # records written before seats load
