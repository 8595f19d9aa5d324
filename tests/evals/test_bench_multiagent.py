"""`turngym bench` on a multi-agent game: one seat trained (fixed opponent or self-play)."""

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from turngym.evals.bench import (  # noqa: E402
    BENCH_SUITES,
    DEFAULT_RECIPE,
    BenchSpec,
    run_bench,
)
from turngym.evals.results import load_episodes, load_results  # noqa: E402
from turngym.evals.suites import EvalEntry  # noqa: E402
from turngym.trainers.config import TrainConfig  # noqa: E402

GAME = "turngym/TicTacToe-v0"
TINY = BenchSpec(
    estimators=("grpo",), seeds=(0,), env_steps=24, eval_every=1, eval_tasks=4,
    envs=(EvalEntry(GAME, episodes=4),),
    recipe={**DEFAULT_RECIPE, "tasks_per_iteration": 2, "group_size": 2},
    baselines=("random", "minimax"), baseline_suite=None, opponent="random",
    train_seat="player_1",
)


@pytest.mark.slow
def test_tiny_bench_trains_one_seat_against_a_fixed_opponent(tmp_path):
    db = tmp_path / "lb.db"
    pytest.importorskip("sqlalchemy")
    report = run_bench(TINY, tmp_path / "bench", workers=1, db=str(db), submit=True,
                       progress="off")  # fmt: skip
    out = tmp_path / "bench"
    results = load_results(out)
    key = next(e.key for e in results.entries if e.agent == "train:grpo")
    assert key.endswith("@player_1 vs random")
    # The trained policy and both baselines are scored in the same seat against the same rival.
    assert {(e.agent, e.seat, e.opponent, e.key) for e in results.entries} == {
        (a, "player_1", "random", key) for a in ("train:grpo", "random", "minimax")}
    trained = next(e for e in results.entries if e.agent == "train:grpo")
    assert trained.curve and trained.curve[0]["env_steps"] == 0
    assert trained.metrics["win"].n == 4 and "loss" in trained.metrics
    minimax = next(e for e in results.entries if e.agent == "minimax")
    assert minimax.metrics["loss"].mean == 0.0  # exact search never loses vs random as O here
    episodes = [e for e in load_episodes(out) if e["agent"] == "train:grpo"]
    assert len(episodes) == 4
    assert all(e["seat"] == "player_1" and e["opponent"] == "random" for e in episodes)
    config = TrainConfig.from_dict(json.loads(next(out.glob("train/*/config.json")).read_text()))
    assert (config.opponent, config.train_seat, config.eval_opponent) == (
        "random", "player_1", "random")
    assert config.invalid_action_penalty == 0.0  # the game charges invalid moves itself
    assert "as player_1 vs random" in report.table
    assert "trains player_1 against random" in (out / "bench.md").read_text()
    assert report.submitted  # the leaderboard recomputed every seat row from its episodes


@pytest.mark.slow
def test_self_play_trains_both_seats_and_evaluates_one(tmp_path):
    from turngym.trainers.trainer import Trainer

    config = TrainConfig(**{**DEFAULT_RECIPE, "tasks_per_iteration": 2, "group_size": 2,
                            "invalid_action_penalty": 0.0},
                         env=GAME, iterations=1, eval_tasks=3, out_dir=str(tmp_path),
                         progress="off")  # fmt: skip
    trainer = Trainer(config)
    assert trainer.seats is not None and trainer.seats.opponent is None
    seen = []
    trained = trainer.seats.trained
    trainer.seats.trained = lambda groups: seen.append(groups) or trained(groups)
    row = trainer.step()
    [groups] = seen
    assert {g.episodes[0].seat for g in groups} == {"player_0", "player_1"}
    assert len(groups) == 2 * config.tasks_per_iteration  # one group per task and seat
    assert row["env_steps"] == sum(ep.num_turns for g in groups for ep in g.episodes)
    metrics = trainer.evaluate()
    assert 0.0 <= metrics["eval_success"] <= 1.0


def test_the_default_bench_is_single_agent_and_tictactoe_is_a_seat_bench():
    quick = BENCH_SUITES["quick"]()
    assert (quick.opponent, quick.train_seat, quick.eval_opponent) == (None, None, None)
    assert all(e.opponent is None for e in quick.envs)
    game = BENCH_SUITES["tictactoe"]()
    assert game.envs[0].env_id == GAME and game.opponent == "random"
    with pytest.raises(ValueError, match="apply to multi-agent envs"):
        run_bench(BenchSpec(opponent="random"), "/nonexistent/never-written", submit=False)
