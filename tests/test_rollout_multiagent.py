"""The seat-aware rollout engine: seat mappings, lockstep, seat views, per-seat groups."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

pytest.importorskip("pettingzoo")

from turngym.agents import RandomAgent, ScriptedAgent  # noqa: E402
from turngym.agents.base import ActionResult, BaseAgent  # noqa: E402
from turngym.agents.opponents import MinimaxAgent  # noqa: E402
from turngym.envs.multiagent.tictactoe import TicTacToe  # noqa: E402
from turngym.rollout import acollect, collect  # noqa: E402
from turngym.types import Episode  # noqa: E402

TTT = "turngym/TicTacToe-v0"


class Counting(BaseAgent):
    """Wraps an env-aware agent; counts calls and records conversations."""

    def __init__(self, inner=None):
        self.inner = inner or RandomAgent(seed=5)
        self.calls: list[int] = []
        self.seen = []

    def act_batch_with_envs(self, conversations, envs):
        self.calls.append(len(conversations))
        self.seen.extend(conversations)
        return self.inner.act_batch_with_envs(conversations, envs)


def test_self_play_is_one_agent_call_per_tick_for_every_game():
    agent = Counting()
    groups = collect(TTT, agent, tasks=6, group_size=3)
    ticks = max(ep.metrics["game_turns"] for g in groups for ep in g.episodes)
    assert len(agent.calls) == ticks and agent.calls[0] == 18  # every game in the first tick
    assert {c.agent_id for c in agent.seen} == {"player_0", "player_1"}


def test_policy_vs_opponent_calls_each_agent_once_per_tick():
    policy, opponent = Counting(), Counting(MinimaxAgent())
    collect(TTT, {"player_0": policy, "player_1": opponent}, tasks=5, group_size=2)
    assert policy.calls[0] == 10 and {c.agent_id for c in policy.seen} == {"player_0"}
    assert {c.agent_id for c in opponent.seen} == {"player_1"}


def test_seat_views_and_groups_per_seat():
    groups = collect(TTT, RandomAgent(seed=0), tasks=4, group_size=3)
    assert len(groups) == 8
    for group, seat in zip(groups, ["player_0", "player_1"] * 4, strict=True):
        assert group.group_id == f"{group.task_id}@0/{seat}" and len(group) == 3
        for member, ep in enumerate(group.episodes):
            assert ep.seat == seat and ep.episode_id.endswith(f"/{member}/{seat}")
            assert all(t.agent_id == seat for t in ep.turns)
            assert [t.index for t in ep.turns] == list(range(len(ep.turns)))
            assert set(ep.seat_outcomes) == {"player_0", "player_1"}
            assert ep.outcome == ep.seat_outcomes[seat].outcome
            assert sum(o.outcome for o in ep.seat_outcomes.values()) == pytest.approx(1.0)
            assert ep.turns[-1].terminated and not any(t.terminated for t in ep.turns[:-1])
    first = {ep.turns[0].observation for ep in groups[0].episodes}
    assert len(first) == 1  # the G games of a task start from the same position


def test_train_seat_returns_only_that_seats_groups():
    groups = collect(TTT, {"player_0": RandomAgent(), "player_1": MinimaxAgent()}, tasks=3,
                     group_size=2, train_seat="player_1")  # fmt: skip
    assert [g.group_id.rsplit("/", 1)[1] for g in groups] == ["player_1"] * 3


def test_rewards_earned_on_the_other_seats_move_go_to_the_latest_turn():
    x_loses = ScriptedAgent([f"<action>{c}</action>" for c in ("1", "2", "9")])
    o_wins = ScriptedAgent([f"<action>{c}</action>" for c in ("4", "5", "6")])
    groups = collect(lambda: TicTacToe(opening_plies=1), {"player_0": x_loses, "player_1": o_wins},
                     tasks=1, options={"task": {"opening": []}})  # fmt: skip
    x, o = (g.episodes[0] for g in groups)
    assert [t.reward for t in x.turns] == [0.0, 0.0, -1.0]  # the loss lands on X's last move
    assert [t.reward for t in o.turns] == [0.0, 0.0, 1.0]
    assert x.total_reward == x.seat_outcomes["player_0"].total_reward == -1.0
    assert o.success and not x.success and x.outcome == 0.0
    assert [t.info["ply"] for t in o.turns] == [1, 3, 5]


def test_conversations_are_per_seat_and_carry_the_seat_episode_id():
    agent = Counting()
    groups = collect(TTT, agent, tasks=2, group_size=1)
    ids = {ep.episode_id for g in groups for ep in g.episodes}
    assert {c.episode_id for c in agent.seen} == ids
    for c in agent.seen:
        assert c.instructions.startswith("You are playing Tic-Tac-Toe as")
        assert f"({c.agent_id})" in c.instructions
        assert "privileged" not in repr(c) and "optimal_moves" not in repr(c)


def test_collect_is_deterministic_and_acollect_matches():
    agents = {"player_0": RandomAgent(seed=2), "player_1": MinimaxAgent(seed=3)}
    a = collect(TTT, agents, tasks=5, group_size=2)
    b = collect(TTT, agents, tasks=5, group_size=2)
    c = asyncio.run(acollect(TTT, agents, tasks=5, group_size=2))

    def rows(groups):
        return [{**ep.to_dict(), "metrics": None} for g in groups for ep in g.episodes]

    assert rows(a) == rows(b) == rows(c)


def test_minimax_breaks_ties_differently_across_group_members():
    groups = collect(TTT, MinimaxAgent(), tasks=3, group_size=6, train_seat="player_0")
    games = {tuple(t.action for t in ep.turns) for g in groups for ep in g.episodes}
    assert len(games) > 3


def test_seat_episodes_roundtrip_through_json():
    groups = collect("turngym/DealOrNoDeal-v0", RandomAgent(seed=1), tasks=2, group_size=2)
    for ep in (e for g in groups for e in g.episodes):
        again = Episode.from_dict(json.loads(json.dumps(ep.to_dict())))
        assert again == ep and again.seat == ep.seat and again.seat_outcomes == ep.seat_outcomes


def test_on_episode_sees_every_returned_seat_view():
    seen = []
    groups = collect(TTT, RandomAgent(), tasks=3, group_size=2, on_episode=seen.append,
                     train_seat="player_0")  # fmt: skip
    assert sorted(e.episode_id for e in seen) == sorted(
        e.episode_id for g in groups for e in g.episodes
    )


def test_engine_turn_cap_truncates_every_seat():
    groups = collect(TTT, RandomAgent(), tasks=2, group_size=1, max_turns=2)
    for ep in (e for g in groups for e in g.episodes):
        assert ep.num_turns == 1 and ep.truncated and ep.turns[-1].truncated


def test_group_relative_estimators_run_on_seat_groups():
    from turngym.trainers.credit import resolve_estimator
    from turngym.trainers.credit.types import CreditContext, TurnBatch

    groups = collect(TTT, {"player_0": RandomAgent(), "player_1": MinimaxAgent()}, tasks=4,
                     group_size=4, train_seat="player_0")  # fmt: skip
    batch = TurnBatch.from_groups(groups)
    credit = resolve_estimator("grpo")(batch, CreditContext())
    assert credit.advantages.shape == (batch.n_turns,) and np.isfinite(credit.advantages).all()


def test_env_exception_ends_only_that_game():
    class Fragile(TicTacToe):
        def apply(self, seat, command):
            if self.plies >= 4 and self.task["opening"][0] == "1":
                raise RuntimeError("simulated crash")
            return super().apply(seat, command)

    agent = RandomAgent()  # a factory needs the seat mapping (an id alone implies self-play)
    groups = collect(Fragile, {"player_0": agent, "player_1": agent}, tasks=12, group_size=1)
    episodes = [e for g in groups for e in g.episodes]
    broken = [e for e in episodes if e.error]
    assert broken and len(broken) < len(episodes)
    assert all("simulated crash" in e.error and not e.success for e in broken)


def test_bad_arguments_fail_before_any_game():
    with pytest.raises(ValueError, match="every seat"):
        collect(TTT, {"player_0": RandomAgent()}, tasks=1)
    with pytest.raises(ValueError, match="not a seat"):
        collect(TTT, RandomAgent(), tasks=1, train_seat="player_9")
    with pytest.raises(ValueError, match="Unknown reset option"):
        collect(TTT, RandomAgent(), tasks=1, options={"levle": 1})
    with pytest.raises(ValueError, match="opening_plies"):
        collect(TTT, RandomAgent(), tasks=1, options={"difficulty": {"opening_plies": 9}})
    with pytest.raises(ValueError, match="not a multi-agent"):
        collect("turngym/FrozenLake-v0", RandomAgent(), tasks=1, train_seat="player_0")
    with pytest.raises(ValueError, match="seat mapping"):
        collect(TicTacToe, RandomAgent(), tasks=1)  # a factory needs a seat mapping


def test_wrong_action_count_is_a_clear_error():
    class Short(BaseAgent):
        def act_batch(self, conversations):
            return [ActionResult("<action>1</action>")][: len(conversations) - 1]

    with pytest.raises(RuntimeError, match="actions for"):
        collect(TTT, Short(), tasks=2)


def test_readme_multiagent_example_runs(capsys):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S)
                 if "make_multiagent" in b)  # fmt: skip
    scope: dict = {}
    exec(compile(block, "README multi-agent example", "exec"), scope)
    assert scope["episode"].seat == "player_0" and len(scope["selfplay"]) == 8
    assert "Tic-Tac-Toe" in capsys.readouterr().out


def test_episode_timeout_cuts_the_game_with_an_error():
    groups = collect(TTT, RandomAgent(), tasks=2, episode_timeout=1e-9)
    for ep in (e for g in groups for e in g.episodes):
        assert ep.error and "TimeoutError" in ep.error and not ep.success
        assert ep.num_turns <= 1
