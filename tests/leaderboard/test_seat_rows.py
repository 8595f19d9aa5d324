"""Seat results of multi-agent games on the leaderboard: stored, shown apart, never forged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")

from turngym.evals.runner import EvalRequest, evaluate  # noqa: E402
from turngym.evals.suites import EvalEntry  # noqa: E402
from turngym.leaderboard.store import SubmissionError  # noqa: E402

GAME = "turngym/TicTacToe-v0"


@pytest.fixture(scope="module")
def seat_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real eval: random and the oracle in both seats of TicTacToe vs random, and FrozenLake."""
    run = tmp_path_factory.mktemp("runs") / "ttt"
    entries = (EvalEntry(GAME, episodes=6, opponent="random"),
               EvalEntry("turngym/FrozenLake-v0", episodes=3))  # fmt: skip
    evaluate(EvalRequest(entries, ("random", "oracle"), (0,)), run)
    return run


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def _edit_results(run: Path, edit) -> None:
    path = run / "results.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _seat_entry(data: dict, agent: str, seat: str) -> dict:
    return next(e for e in data["entries"] if e.get("seat") == seat and e["agent"] == agent)


def test_seat_rows_are_stored_with_their_seat_and_opponent(store, seat_run):
    store.submit(seat_run)
    rows = store.rows(metric="win")
    assert {(r["agent"], r["seat"], r["opponent"]) for r in rows} == {
        (a, s, "random") for a in ("random", "oracle") for s in ("player_0", "player_1")}
    assert all(r["env"] == f"{GAME} as {r['seat']} vs random" for r in rows)
    success = {(r["env_id"], r["seat"]) for r in store.rows(metric="success")}
    assert ("turngym/FrozenLake-v0", None) in success
    page = store.page_data("success")
    # Single-agent envs and the games vs random are ranked in rows of their own.
    assert {r["agent"] for r in page["rows"]} == {
        "random", "oracle", "random vs random", "oracle vs random"}


def test_a_forged_win_rate_is_refused(store, seat_run, tmp_path):
    run = _copy(seat_run, tmp_path / "forged")

    def forge(data: dict) -> None:
        win = _seat_entry(data, "random", "player_1")["metrics"]["win"]
        # One more win than played, with an interval that still holds the claimed mean.
        win["mean"] = win["mean"] + 1 / 6 if win["mean"] < 1 else win["mean"] - 1 / 6
        win["ci95"] = [0.0, 1.0]

    _edit_results(run, forge)
    with pytest.raises(SubmissionError, match=r"win does not match its 6 episodes"):
        store.submit(run)
    assert store.submissions() == []


def test_a_seat_row_needs_its_rates_and_its_episodes(store, seat_run, tmp_path):
    run = _copy(seat_run, tmp_path / "no-loss")
    _edit_results(run, lambda d: _seat_entry(d, "random", "player_0")["metrics"].pop("loss"))
    with pytest.raises(SubmissionError, match="must summarise win, draw and loss; it lacks loss"):
        store.submit(run)
    run = _copy(seat_run, tmp_path / "no-episodes")
    (run / "episodes.jsonl").unlink()
    with pytest.raises(SubmissionError, match="seat result.*no episodes.jsonl"):
        store.submit(run)
    assert store.submissions() == []


def test_episodes_played_against_another_opponent_are_refused(store, seat_run, tmp_path):
    run = _copy(seat_run, tmp_path / "relabelled")
    # Claim the games were won against minimax: rename the opponent everywhere it is keyed,
    # but the episodes still say who they were played against.
    def relabel(text: str) -> str:
        return text.replace("vs random", "vs minimax")

    (run / "results.json").write_text(relabel((run / "results.json").read_text())
                                      .replace('"opponent": "random"', '"opponent": "minimax"'))
    lines = (run / "episodes.jsonl").read_text().splitlines(keepends=True)
    (run / "episodes.jsonl").write_text("".join(relabel(line) for line in lines))
    with pytest.raises(SubmissionError, match="played as player_0 against random"):
        store.submit(run)
    assert store.submissions() == []


def test_a_board_made_before_seat_rows_gains_their_columns(store_url, seat_run):
    import sqlalchemy as sa

    from turngym.leaderboard.store import LeaderboardStore

    with LeaderboardStore(store_url):  # creates today's tables
        pass
    # store.url hides the password; connect with the URL the fixture gave (or the file's).
    engine = sa.create_engine(store_url if "://" in store_url else f"sqlite:///{store_url}")
    with engine.begin() as conn:  # the entries table as boards had it before seats
        for column in ("seat", "opponent"):
            conn.exec_driver_sql(f"ALTER TABLE turngym_entries DROP COLUMN {column}")
    engine.dispose()
    with LeaderboardStore(store_url) as store:
        store.submit(seat_run)
        assert {r["seat"] for r in store.rows(metric="win")} == {"player_0", "player_1"}


def test_the_gate_compares_seat_rates_only_where_there_are_seats(seat_run):
    from turngym.leaderboard.gate import gate

    report = gate(seat_run, seat_run, metrics=("win", "success"))
    seats = [c for c in report.checks if c.metric == "win"]
    assert len(seats) == 4 and all("vs random" in c.env for c in seats)
    assert {c.verdict for c in report.checks} == {"pass"} and len(report.checks) == 4 + 6
