"""Multi-agent games in `turngym eval`: per-seat results against named opponents, resume, tables."""

import io
import json

import pytest

from turngym.cli import main
from turngym.evals.results import EntryResult, RunResults, load_episodes, load_results
from turngym.evals.runner import EvalRequest, evaluate
from turngym.evals.seats import seat_result
from turngym.evals.stats import wilson_interval
from turngym.evals.suites import EvalEntry, builtin_multiagent_ids, resolve_entries
from turngym.evals.tables import render, table_rows

GAME = "turngym/TicTacToe-v0"


def run(*argv):
    buf = io.StringIO()
    code = main(list(argv), stdout=buf)
    return code, buf.getvalue()


def test_eval_plays_each_seat_against_the_named_opponent(tmp_path):
    out = tmp_path / "run"
    code, text = run("eval", GAME, "--agents", "random", "minimax", "--opponent", "minimax",
                     "--episodes", "5", "--out", str(out))
    assert code == 0
    assert f"| {GAME} as player_0 vs minimax | minimax | win |" in text
    assert "| **every seat vs minimax (macro mean)** | random | loss |" in text
    results = load_results(out)
    assert {(e.agent, e.seat, e.opponent) for e in results.entries} == {
        (a, s, "minimax") for a in ("random", "minimax") for s in ("player_0", "player_1")}
    assert set(results.provenance["opponents"]) == {"minimax"}
    episodes = load_episodes(out)
    assert len(episodes) == 2 * 2 * 5
    for entry in results.entries:
        mine = [e for e in episodes if e["entry"] == entry.key and e["agent"] == entry.agent]
        assert len(mine) == 5
        assert all(e["seat"] == entry.seat and e["opponent"] == "minimax" for e in mine)
        assert all(t["agent_id"] == entry.seat for e in mine for t in e["turns"])
        # Known answer: the rates are the counts of the seat outcomes, with Wilson intervals.
        wins = sum(e["seat_outcomes"][entry.seat]["outcome"]
                   > max(o["outcome"] for s, o in e["seat_outcomes"].items() if s != entry.seat)
                   for e in mine)  # fmt: skip
        win = entry.metrics["win"]
        assert win.mean == wins / 5 and win.ci95 == pytest.approx(wilson_interval(wins, 5))
        rates = sum(entry.metrics[m].mean for m in ("win", "draw", "loss"))
        assert rates == pytest.approx(1.0)
    # X moves third in a two-ply opening, never from a lost position: exact search never loses.
    x = next(e for e in results.entries if e.agent == "minimax" and e.seat == "player_0")
    assert x.metrics["loss"].mean == 0.0


def test_seat_and_opponent_flags_and_their_errors(tmp_path, capsys):
    out = tmp_path / "one-seat"
    code, _ = run("eval", GAME, "--seat", "player_1", "--opponent", "random", "--episodes", "2",
                  "--out", str(out))
    assert code == 0
    assert [(e.seat, e.opponent) for e in load_results(out).entries] == [("player_1", "random")]
    code, _ = run("eval", GAME, "--seat", "player_7", "--out", str(tmp_path / "a"))
    assert code == 2 and "seats are player_0, player_1" in capsys.readouterr().err
    code, _ = run("eval", "turngym/FrozenLake-v0", "--opponent", "minimax",
                  "--out", str(tmp_path / "b"))
    assert code == 2 and "multi-agent env ids" in capsys.readouterr().err
    # minimax cannot play a bargaining game: refused before any episode is written.
    code, _ = run("eval", "turngym/DealOrNoDeal-v0", "--opponent", "minimax", "--episodes", "1",
                  "--out", str(tmp_path / "c"))
    err = capsys.readouterr().err
    assert code == 2 and "minimax" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c" / "episodes.jsonl").exists()
    with pytest.raises(ValueError, match="needs an opponent|names the opponent"):
        evaluate(EvalRequest((EvalEntry(GAME, episodes=1),), ("random",), (0,)), tmp_path / "d")


def test_default_opponent_is_the_games_reference_player(tmp_path):
    assert resolve_entries([GAME])[0].opponent == "minimax"
    code, _ = run("eval", "turngym/DealOrNoDeal-v0", "--episodes", "2", "--out",
                  str(tmp_path / "deal"))
    assert code == 0
    assert {e.opponent for e in load_results(tmp_path / "deal").entries} == {"negotiator"}


def _request():
    entries = (EvalEntry(GAME, episodes=6, opponent="random"),
               EvalEntry("turngym/FrozenLake-v0", episodes=3))
    return EvalRequest(entries, ("random", "oracle"), (0, 1))


def test_an_interrupted_eval_resumes_without_losing_or_repeating_an_episode(tmp_path):
    whole = evaluate(_request(), tmp_path / "whole")
    cut = tmp_path / "cut"
    evaluate(_request(), cut)
    path = cut / "episodes.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    # As a kill leaves it: the last 9 episodes never happened and the 10th-last is torn.
    path.write_text("".join(lines[:-10]) + lines[-10][: len(lines[-10]) // 2])
    (cut / "results.json").unlink()
    resumed = evaluate(_request(), cut)
    keys = [e["key"] for e in load_episodes(cut)]
    assert len(keys) == len(set(keys)) == len(lines) == (2 * 6 + 3) * 2 * 2
    strip = lambda r: [e.to_dict() for e in r.entries]  # noqa: E731
    # Scripted agents draw per episode, so the resumed run equals the uninterrupted one.
    assert strip(resumed) == strip(whole)


def test_tables_keep_seat_rows_apart_from_single_agent_envs(tmp_path):
    results = evaluate(_request(), tmp_path)
    rows = table_rows([("run", results)], ("success", "win"))
    aggregates = {r.env for r in rows if r.aggregate}
    assert aggregates == {"every seat vs random (macro mean)"}  # one single-agent env: none
    assert all(r.metric == "success" for r in rows if r.env == "turngym/FrozenLake-v0")
    csv = render(rows, "csv")
    assert f"{GAME} as player_1 vs random,oracle,win," in csv


def test_seat_results_round_trip_and_need_both_fields():
    entry = EntryResult(GAME, 0, {}, {}, "abc", "fp", "test", "random", {}, [0], 1, {},
                        seat="player_0", opponent="minimax")
    again = EntryResult.from_dict(json.loads(json.dumps(entry.to_dict())))
    assert again == entry and again.key == f"{GAME}#abc@player_0 vs minimax"
    assert RunResults("eval", {}, [entry]).entries[0].seat == "player_0"
    with pytest.raises(ValueError, match="both its seat and its opponent"):
        EntryResult(GAME, 0, {}, {}, "abc", "fp", "test", "random", {}, [0], 1, {},
                    seat="player_0")


def test_win_draw_loss_of_one_seat_view():
    view = {"seat": "player_0", "outcome": 1.0, "error": None,
            "seat_outcomes": {"player_0": {"outcome": 1.0}, "player_1": {"outcome": 0.0}}}
    assert seat_result(view) == {"win": 1.0, "draw": 0.0, "loss": 0.0}
    assert seat_result({**view, "error": "timeout"}) == {"win": 0.0, "draw": 0.0, "loss": 1.0}
    assert seat_result({"seat": None}) == {}


def test_multiagent_suite_covers_every_game_and_other_suites_stay_single_agent():
    entries = resolve_entries(["multiagent"])
    games = set(builtin_multiagent_ids())
    assert games >= {GAME, "turngym/ConnectFour-v0", "turngym/DealOrNoDeal-v0"}
    assert {(e.env_id, e.opponent) for e in entries} >= {(g, "random") for g in games}
    assert (GAME, "minimax") in {(e.env_id, e.opponent) for e in entries}
    assert all(e.seats == () for e in entries)  # every seat
    for suite in ("smoke", "quick", "full"):
        assert all(e.opponent is None for e in resolve_entries([suite]))
    entry = EvalEntry(GAME, opponent="minimax:2", seats=("player_1",))
    assert EvalEntry.from_dict(json.loads(json.dumps(entry.to_dict()))) == entry
    with pytest.raises(ValueError, match="seats need an opponent"):
        EvalEntry(GAME, seats=("player_0",))


def test_frames_carry_the_seat_the_opponent_and_the_rates(tmp_path):
    pytest.importorskip("pandas")
    from turngym.evals import load

    evaluate(_request(), tmp_path)
    frames = load(tmp_path)
    games = frames.episodes[frames.episodes["env_id"] == GAME]
    assert set(games["seat"]) == {"player_0", "player_1"} and set(games["opponent"]) == {"random"}
    assert (games["win"] + games["draw"] + games["loss"] == 1.0).all()
    lake = frames.episodes[frames.episodes["env_id"] == "turngym/FrozenLake-v0"]
    assert lake["win"].isna().all() and lake["opponent"].isna().all()
    wins = frames.aggregates.query("metric == 'win'")
    assert set(zip(wins["seat"], wins["opponent"], strict=True)) == {
        ("player_0", "random"), ("player_1", "random")}
