"""Every multi-agent env passes PettingZoo's api_test and turngym's multi-agent checks.

The leak tests are non-interference tests: change only what a seat must not see (the other
seat's private values) and require that seat's instructions, observations and, for the
scripted negotiator, its actions to stay identical.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import pytest

pytest.importorskip("pettingzoo")

from pettingzoo.test import api_test  # noqa: E402

import turngym  # noqa: E402
from turngym.agents import OracleAgent, RandomAgent  # noqa: E402
from turngym.agents.base import ActionResult, BaseAgent  # noqa: E402
from turngym.agents.opponents import MinimaxAgent, NegotiatorAgent  # noqa: E402
from turngym.envs.multiagent.bargaining import DealOrNoDeal  # noqa: E402
from turngym.envs.multiagent.registry import make_multiagent, multiagent_ids  # noqa: E402
from turngym.envs.multiagent.testing import MULTIAGENT_CHECKS, check_multiagent_env  # noqa: E402
from turngym.registry import UnknownNameError  # noqa: E402
from turngym.rollout import collect  # noqa: E402

# turngym's own games; TextArena's (textarena/...) have tests/envs/test_adapters_textarena.py.
ENV_IDS = [env_id for env_id in multiagent_ids() if env_id.startswith("turngym/")]
OPPONENTS = {
    "turngym/TicTacToe-v0": MinimaxAgent,
    "turngym/ConnectFour-v0": MinimaxAgent,
    "turngym/DealOrNoDeal-v0": NegotiatorAgent,
}


def test_every_registered_env_has_a_scripted_opponent():
    assert set(ENV_IDS) == set(OPPONENTS)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pettingzoo_api_test(env_id):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()) as out:
        warnings.simplefilter("ignore")
        api_test(make_multiagent(env_id), num_cycles=500)
    assert "Passed API test" in out.getvalue()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_turngym_multiagent_checks(env_id):
    report = check_multiagent_env(env_id, fuzz_examples=40, n_tasks=15)
    assert [r.name for r in report.results] == list(MULTIAGENT_CHECKS)
    assert report.ok, [(r.name, r.message) for r in report.results if not r.ok]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reference_player_beats_random(env_id):
    agents = {"player_0": RandomAgent(seed=1), "player_1": OPPONENTS[env_id]()}
    groups = collect(env_id, agents, tasks=15, group_size=1, train_seat="player_1")
    episodes = [ep for g in groups for ep in g.episodes]
    assert all(ep.error is None and ep.seat == "player_1" for ep in episodes)
    if env_id == "turngym/DealOrNoDeal-v0":
        mine = sum(ep.seat_outcomes["player_1"].outcome for ep in episodes)
        theirs = sum(ep.seat_outcomes["player_0"].outcome for ep in episodes)
        assert mine > theirs  # the negotiator keeps the larger share
    elif env_id == "turngym/TicTacToe-v0":  # exact search: never worse than the opening's value
        assert all(ep.outcome >= (ep.privileged["value"] + 1) / 2 for ep in episodes)
    else:  # depth-4 search: wins nearly every game against a random mover
        assert sum(ep.success for ep in episodes) >= 0.9 * len(episodes)


@pytest.mark.parametrize("env_id", ["turngym/TicTacToe-v0", "turngym/DealOrNoDeal-v0"])
def test_oracle_plays_every_seat(env_id):
    groups = collect(env_id, OracleAgent(), tasks=6, group_size=1)
    assert {ep.seat for g in groups for ep in g.episodes} == {"player_0", "player_1"}
    assert all(ep.error is None for g in groups for ep in g.episodes)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_make_points_to_the_multiagent_registry(env_id):
    with pytest.raises(UnknownNameError, match="multi-agent"):
        turngym.make(env_id)
    assert turngym.make_multiagent(env_id).possible_agents == ["player_0", "player_1"]


def test_unknown_ids_suggest_multiagent_ids():
    with pytest.raises(UnknownNameError, match="Did you mean 'turngym/TicTacToe-v0'"):
        make_multiagent("turngym/TicTacTo-v0")
    with pytest.raises(UnknownNameError, match="turngym/ConnectFour-v0"):
        turngym.make("turngym/ConnectFor-v0")


# --- Leak tests ------------------------------------------------------------------------------
TASK = {"counts": [1, 3, 2], "first": "player_0",
        "values": {"player_0": [4, 0, 3], "player_1": [1, 1, 3]}}  # fmt: skip
VARIANTS = DealOrNoDeal().privacy_variants(TASK, "player_0")


def test_bargaining_has_variants_to_compare():
    assert len(VARIANTS) >= 2
    assert all(v["values"]["player_0"] == TASK["values"]["player_0"] for v in VARIANTS)


def test_checker_catches_a_leaky_bargaining_env():
    class Leaky(DealOrNoDeal):
        def render_text(self, seat):
            other = self.seats[1 - self.seats.index(seat)]
            return super().render_text(seat) + f"\n(psst: {self.values[other]})"

    report = check_multiagent_env(lambda: Leaky(), only=["privacy"])
    assert not report.ok and "changed with information hidden" in report.results[0].message


class Script(BaseAgent):
    """Plays a fixed list of actions, one per own turn, whatever it sees."""

    def __init__(self, actions):
        self.actions = actions

    def act_batch(self, conversations):
        return [ActionResult(self.actions[min(len(c.turns), len(self.actions) - 1)])
                for c in conversations]  # fmt: skip


class Spy(BaseAgent):
    def __init__(self, inner):
        self.inner, self.seen = inner, []

    def act_batch(self, conversations):
        self.seen.extend((c.instructions, c.turns, c.observation) for c in conversations)
        return self.inner.act_batch(conversations)


SCRIPT_1 = ["<action>propose book=1 hat=0 ball=2</action>",
            "<action>propose book=0 hat=3 ball=2</action>",
            "<action>propose book=1 hat=3 ball=0</action>"]  # fmt: skip
SCRIPT_0 = ["<action>propose book=1 hat=3 ball=2</action>",
            "<action>propose book=1 hat=1 ball=2</action>",
            "<action>propose book=1 hat=2 ball=0</action>"]  # fmt: skip


def _play(task, player_0):
    """Collect one game of ``task``; player_1 follows SCRIPT_1; return both seats' views."""
    player_1 = Spy(Script(SCRIPT_1))
    groups = collect("turngym/DealOrNoDeal-v0", {"player_0": player_0, "player_1": player_1},
                     tasks=1, options={"task": task})  # fmt: skip
    views = {g.episodes[0].seat: [(t.observation, t.action) for t in g.episodes[0].turns]
             for g in groups}  # fmt: skip
    return views, player_1.seen


def test_negotiator_moves_ignore_the_other_seats_values():
    """The scripted negotiator acts from its own view: vary only player_1's private values and
    player_0 (the negotiator) sees and does exactly the same."""
    reference, _ = _play(TASK, NegotiatorAgent(seed=0))
    assert len(reference["player_0"]) >= 2
    for variant in VARIANTS:
        assert _play(variant, NegotiatorAgent(seed=0))[0]["player_0"] == reference["player_0"]


def test_engine_conversations_ignore_hidden_values():
    """Through the rollout engine: with both seats' actions fixed, each seat's conversations
    (instructions, history, observation) are identical whatever the other seat's values."""
    spy_0 = Spy(Script(SCRIPT_0))
    _, seen_1 = _play(TASK, spy_0)
    seen_0 = list(spy_0.seen)
    assert len(seen_0) >= 2 and len(seen_1) >= 2
    for variant in DealOrNoDeal().privacy_variants(TASK, "player_1"):
        assert _play(variant, Script(SCRIPT_0))[1] == seen_1
    for variant in VARIANTS:
        spy = Spy(Script(SCRIPT_0))
        _play(variant, spy)
        assert spy.seen == seen_0
    assert "opponent_values" not in repr(seen_0 + seen_1)


def test_privileged_values_are_stored_for_trainers_only():
    groups = collect("turngym/DealOrNoDeal-v0", NegotiatorAgent(), tasks=1,
                     options={"task": TASK})  # fmt: skip
    by_seat = {g.episodes[0].seat: g.episodes[0] for g in groups}
    assert by_seat["player_0"].privileged["opponent_values"] == [1, 1, 3]
    assert by_seat["player_1"].privileged["opponent_values"] == [4, 0, 3]
    for episode in by_seat.values():
        assert all("privileged" not in t.info for t in episode.turns)
