"""Known-answer tests of the critic, tree and update-order estimators.

Every expected number below is computed by hand in the comment next to it (or is the worked
example of the method's paper notes), never by running the code under test.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from turngym.testing import check_estimator
from turngym.trainers.credit import CreditContext, TurnBatch, method_of, resolve_estimator
from turngym.trainers.credit.archer import td_targets
from turngym.trainers.credit.gae import turn_gae, whiten
from turngym.trainers.credit.hiper import parse_switch, token_spans
from turngym.trainers.credit.seeupo import mirror_ratio, special_norm
from turngym.trainers.credit.tree_grpo import TREE_NODE
from turngym.trainers.credit.values import FixedCritic, TurnValues, reverse_scan
from turngym.types import Episode, Group, TokenTrace, Turn

CRITIC = frozenset({"critic"})


def _episode(rewards, *, terminated=True, truncated=False, actions=None, traces=None,
             outcome=0.0, nodes=None, name="e"):  # fmt: skip
    n = len(rewards)
    turns = tuple(
        Turn(t, "agent", f"obs{t}", actions[t] if actions else "<action>x</action>",
             float(r), terminated and t == n - 1, truncated and t == n - 1, None, True,
             info={TREE_NODE: nodes[t]} if nodes else {},
             trace=traces[t] if traces else None)
        for t, r in enumerate(rewards)
    )  # fmt: skip
    return Episode(name, "toy-v0", "task", 0, "train", turns, outcome, outcome >= 1)


def _batch(*episodes, group_sizes=None):
    sizes = group_sizes or [len(episodes)]
    groups, at = [], 0
    for g, size in enumerate(sizes):
        members = tuple(dataclasses.replace(ep, task_id=f"task{g}")
                        for ep in episodes[at : at + size])  # fmt: skip
        groups.append(Group(f"g{g}", f"task{g}", members))
        at += size
    return TurnBatch.from_groups(groups)


def _trace(n_tokens):
    return TokenTrace((1, 2), tuple(range(10, 10 + n_tokens)), (-0.5,) * n_tokens)


# --- GAE ---------------------------------------------------------------------------------------
def test_turn_gae_known_answer():
    # Episode A: r = [0, 0, 1], terminated; V = [.5, .6, .8]; gamma .9, lam .8 (gamma*lam .72):
    #   d2 = 1 - .8 = .2;  d1 = .9*.8 - .6 = .12;  d0 = .9*.6 - .5 = .04
    #   A2 = .2;  A1 = .12 + .72*.2 = .264;  A0 = .04 + .72*.264 = .23008
    # Episode B: r = [.5, 0], truncated; V = [.4, .3]:
    #   no bootstrap: d1 = -.3, d0 = .5 + .27 - .4 = .37 -> A = [.37 - .216, -.3] = [.154, -.3]
    #   bootstrap from V(last) = .3: d1 = .27 - .3 = -.03 -> A = [.37 - .0216, -.03]
    batch = _batch(_episode([0, 0, 1]), _episode([0.5, 0], terminated=False, truncated=True))
    values = np.array([0.5, 0.6, 0.8, 0.4, 0.3])
    adv, ret = turn_gae(batch, values, gamma=0.9, lam=0.8)
    np.testing.assert_allclose(adv, [0.23008, 0.264, 0.2, 0.154, -0.3], atol=1e-12)
    np.testing.assert_allclose(ret, adv + values)
    adv, _ = turn_gae(batch, values, gamma=0.9, lam=0.8, bootstrap_truncated=True)
    np.testing.assert_allclose(adv, [0.23008, 0.264, 0.2, 0.3484, -0.03], atol=1e-12)


def test_ppo_gae_reads_turn_end_values_and_sets_targets():
    # Two turns with 3 and 1 action tokens; "end" = position L - 1 -> values .3 and .5.
    # r = [0, 1] terminal, gamma = lam = 1: A1 = 1 - .5 = .5; A0 = (0 + .5 - .3) + .5 = .7.
    traces = [_trace(3), _trace(1)]
    batch = _batch(_episode([0, 1], traces=traces))
    critic = FixedCritic({"value": [[0.1, 0.2, 0.3, 0.9], [0.5, 0.9]]})
    estimate = resolve_estimator("ppo_gae", {"whiten_advantages": False}, CRITIC)
    credit = estimate(batch, CreditContext(critic=critic))
    np.testing.assert_allclose(credit.advantages, [0.7, 0.5])
    target = credit.value_targets["value"]
    assert target.positions.tolist() == [2, 0]
    np.testing.assert_allclose(target.targets, [1.0, 1.0])
    start = resolve_estimator("ppo_gae", {"whiten_advantages": False, "value_at": "start"},
                              CRITIC)(batch, CreditContext(critic=critic))  # fmt: skip
    # V = [.1, .5]: A1 = .5, A0 = (.5 - .1) + .5 = .9
    np.testing.assert_allclose(start.advantages, [0.9, 0.5])


def test_bilevel_gae_known_answer():
    # Turn 0: tokens v = [.1, .2, .3] (after-action .35 unused), r = 0.
    # Turn 1: tokens v = [.5, .6], r = 1, terminal. gamma = 1, lam = .5, turn_gamma = .9.
    # Turn values at the end token: V0 = .3, V1 = .6.
    #   turn GAE: d1 = 1 - .6 = .4; d0 = .9*.6 - .3 = .24; A1 = .4; A0 = .24 + .45*.4 = .42
    # Token GAE, turn 0: j2 = .42; j1 = (.3 - .2) + .5*.42 = .31; j0 = (.2 - .1) + .5*.31 = .255
    #            turn 1: j1 = .4;  j0 = (.6 - .5) + .5*.4 = .3
    # Token returns A + v: [.355, .51, .72], [.8, 1.0]
    batch = _batch(_episode([0, 1], traces=[_trace(3), _trace(2)]))
    critic = FixedCritic({"value": [[0.1, 0.2, 0.3, 0.35], [0.5, 0.6, 0.65]]})
    estimate = resolve_estimator(
        "bilevel_gae", {"lam": 0.5, "turn_gamma": 0.9, "whiten_advantages": False}, CRITIC
    )
    credit = estimate(batch, CreditContext(critic=critic))
    np.testing.assert_allclose(credit.token_advantages[0], [0.255, 0.31, 0.42])
    np.testing.assert_allclose(credit.token_advantages[1], [0.3, 0.4])
    np.testing.assert_allclose(credit.advantages, [0.42, 0.4])
    targets = credit.value_targets["value"]
    assert targets.rows.tolist() == [0, 0, 0, 1, 1]
    assert targets.positions.tolist() == [0, 1, 2, 0, 1]
    np.testing.assert_allclose(targets.targets, [0.355, 0.51, 0.72, 0.8, 1.0])


def test_whiten_is_verl_masked_whiten():
    # mean 2, unbiased var 1 -> (x - 2) / sqrt(1 + 1e-8)
    np.testing.assert_allclose(whiten(np.array([1.0, 2.0, 3.0])), [-1, 0, 1], atol=1e-7)


def test_odysseus_filter_and_state_critic():
    batch = _batch(_episode([0, 1], traces=[_trace(2), _trace(2)]))
    critic = FixedCritic({"value": [0.9, 0.2]})  # one value per turn, at every position
    credit = resolve_estimator("odysseus", {"advantage_filter": "positive", "gamma": 1.0,
                                            "lam": 1.0, "whiten_advantages": False},
                               CRITIC)(batch, CreditContext(critic=critic))  # fmt: skip
    # A1 = 1 - .2 = .8; A0 = (.2 - .9) + .8 = .1 -> both positive, both kept
    np.testing.assert_allclose(credit.advantages, [0.1, 0.8])
    assert credit.weights.tolist() == [1.0, 1.0]
    state_only = TurnValues(np.array([0, 1, 2]), {"value": [0.9, 0.2]}, np.array([2, 2]))
    with pytest.raises(ValueError, match="scores states only"):
        state_only.at("value", "end")
    assert state_only.at("value", "start").tolist() == [0.9, 0.2]


# --- HiPER ------------------------------------------------------------------------------------
def test_hae_worked_example():
    # HiPER worked example: 4 turns, switches at turns 0 and 2, gamma = lam_turn
    # = 1, lam_seg = .95, reward 1 at the last (terminal) turn, V_low = [.2, .3, .5, .8],
    # V_high(0) = .25, V_high(2) = .6 -> A_low = [.4, .3, .5, .2],
    # A_high = [.35 + .95 * .4 = .73, 1 - .6 = .4].
    actions = ["<switch>SWITCH</switch><subgoal>a</subgoal><action>x</action>",
               "<switch>KEEP</switch><subgoal>a</subgoal><action>x</action>",
               "<switch>SWITCH</switch><subgoal>b</subgoal><action>x</action>",
               "<switch>KEEP</switch><subgoal>b</subgoal><action>x</action>"]  # fmt: skip
    batch = _batch(_episode([0, 0, 0, 1], actions=actions))
    critic = FixedCritic({"low": [0.2, 0.3, 0.5, 0.8], "high": [0.25, 7.0, 0.6, 7.0]})
    credit = resolve_estimator("hiper", {}, CRITIC)(batch, CreditContext(critic=critic))
    np.testing.assert_allclose(credit.advantages, [0.4, 0.3, 0.5, 0.2], atol=1e-4)
    high = credit.value_targets["high"]
    assert high.rows.tolist() == [0, 2]
    np.testing.assert_allclose(high.targets - np.array([0.25, 0.6]), [0.73, 0.4], atol=1e-4)
    assert credit.metrics["segments_per_episode"] == 2.0


def test_hae_routes_advantages_to_token_spans():
    # One turn (a segment of its own): r = 1 terminal; V_low = .2 read after </subgoal>
    # (position 5), V_high = .4 and V_term = .1 at the first token.
    # A_low = 1 - .2 = .8 on action tokens, A_high = 1 - .4 = .6 on the subgoal block,
    # A_term = ret_term - V_term = 1 - .1 = .9 on the switch block.
    pieces = ["SWITCH", "</switch>", "<subgoal>", "key", "</subgoal>", "<action>", "up",
              "</action>"]  # fmt: skip
    action = "<switch>" + "".join(pieces)
    batch = _batch(_episode([1.0], actions=[action], traces=[_trace(len(pieces))]))
    low = [0.0] * 5 + [0.2, 0.0, 0.0, 0.0]
    critic = FixedCritic({"low": [low], "high": [[0.4] * 9], "term": [[0.1] * 9]},
                         pieces=[pieces])  # fmt: skip
    credit = resolve_estimator("hiper", {}, CRITIC)(batch, CreditContext(critic=critic))
    np.testing.assert_allclose(credit.token_advantages[0],
                               [0.9, 0.9, 0.6, 0.6, 0.6, 0.8, 0.8, 0.8])  # fmt: skip
    assert credit.value_targets["low"].positions.tolist() == [5]


def test_parse_switch_and_spans():
    assert parse_switch("<switch>keep</switch><action>x</action>") == (False, None)
    assert parse_switch("<Switch> switch </Switch><subgoal>go</subgoal>") == (True, "go")
    sw, sg, low = token_spans(["<action>", "up", "</action>"])
    assert not sw.any() and not sg.any() and low == 0
    from turngym.trainers.credit.hiper import _switch_flags

    answers = ["<switch>SWITCH</switch>x", "x", "<switch>keep</switch><switch>switch</switch>",
               "<Switch> switch </Switch>", "", "<switch>switch</switch>"]  # fmt: skip
    assert _switch_flags(answers).tolist() == [parse_switch(a)[0] for a in answers]


def test_hae_keep_penalty_normalized():
    # 3 turns, all KEEP after the first: normalized penalty -.3 * (2/3) / 2 = -.1 per KEEP
    # turn; gamma = lam = 1 and zero values -> A_low = reward-to-go = [-.2, -.2, -.1].
    actions = ["<switch>SWITCH</switch>", "<switch>KEEP</switch>", "<switch>KEEP</switch>"]
    batch = _batch(_episode([0, 0, 0], actions=actions))
    critic = FixedCritic({"low": [0.0] * 3, "high": [0.0] * 3})
    credit = resolve_estimator("hiper", {"keep_penalty": -0.3}, CRITIC)(
        batch, CreditContext(critic=critic))
    np.testing.assert_allclose(credit.advantages, [-0.2, -0.2, -0.1], atol=1e-12)


# --- ArCHer -----------------------------------------------------------------------------------
def test_archer_worked_example():
    # r = 0, done = 0, gamma = .95, V_targ(s') = .6 -> y_Q = .57
    assert td_targets(0.0, 0.0, 0.6, 0.95) == pytest.approx(0.57, abs=1e-4)
    assert td_targets(1.0, 1.0, 0.6, 0.95) == pytest.approx(1.0)
    # Q = (.70, .65), V = (.50, .55) -> A = min Q - min V = .65 - .50 = .15
    batch = _batch(_episode([0.0]))
    critic = FixedCritic({"q1": [0.70], "q2": [0.65], "v1": [0.50], "v2": [0.55]})
    credit = resolve_estimator("archer", {}, CRITIC)(batch, CreditContext(critic=critic))
    np.testing.assert_allclose(credit.advantages, [0.15], atol=1e-4)
    warm = resolve_estimator("archer", {"warmup": 3}, CRITIC)
    assert warm(batch, CreditContext(critic=critic, step=2)).advantages.tolist() == [0.0]


# --- SeeUPO -----------------------------------------------------------------------------------
def test_seeupo_worked_example():
    # Groups {[1,0,0,0], [1,1,0,1]} at one turn: centred [.75,-.25,-.25,-.25,.25,.25,-.75,.25],
    # unbiased std .4629 -> [1.6202, -.5401, -.5401, -.5401, .5401, .5401, -1.6202, .5401].
    outcomes = [1, 0, 0, 0, 1, 1, 0, 1]
    episodes = [_episode([0.0], outcome=o, name=f"e{i}") for i, o in enumerate(outcomes)]
    credit = resolve_estimator("seeupo", {})(_batch(*episodes, group_sizes=[4, 4]),
                                            CreditContext())  # fmt: skip
    expected = [1.6202, -0.5401, -0.5401, -0.5401, 0.5401, 0.5401, -1.6202, 0.5401]
    np.testing.assert_allclose(credit.advantages, expected, atol=1e-4)
    centred = np.array([0.75, -0.25, -0.25, -0.25, 0.25, 0.25, -0.75, 0.25])
    np.testing.assert_allclose(special_norm(centred), expected, atol=1e-4)
    assert special_norm(np.full(3, 0.5)).tolist() == [0.0, 0.0, 0.0]


def test_seeupo_mirror_ratio_worked_example():
    # mean log-ratios [.05, .3, -.4] -> s = [e^.05, clip(e^.3), clip(e^-.4)] = [1.0513, 1.2, .8]
    first = mirror_ratio(None, np.array([0.05, 0.3, -0.4]))
    np.testing.assert_allclose(first, [1.0513, 1.2, 0.8], atol=1e-4)
    # next turn, mean log-ratio .1 each (s = 1.1052): [1.1618, clip(1.326) = 1.2, .8841]
    np.testing.assert_allclose(mirror_ratio(first, np.full(3, 0.1)), [1.1618, 1.2, 0.8841],
                               atol=1e-4)  # fmt: skip


# --- Tree GRPO --------------------------------------------------------------------------------
def test_tree_grpo_known_answer():
    # Roots e0 (a, b; R = 1) and e1 (c, d; R = 0); e2 branches from e0 at turn 1 (a, e; R = 0).
    # Centred R = [2/3, -1/3, -1/3]; Q(a) = (2/3 - 1/3)/2 = 1/6, Q(b) = 2/3, Q(c) = Q(e) = -1/3.
    # e0: t0 Q(a) - V(root) = 1/6; t1 Q(b) - Q(a) = 1/2.
    # e1: t0 -1/3; t1 (no branch at c) -> latest branch t0 -> -1/3.
    # e2: t0 copy of a: 1/6 (weight 0); t1 Q(e) - Q(a) = -1/2.
    e0 = _episode([0, 1], outcome=1.0, nodes=["a", "b"], name="e0")
    e1 = _episode([0, 0], outcome=0.0, nodes=["c", "d"], name="e1")
    e2 = _episode([0, 0], outcome=0.0, nodes=["a", "e"], name="e2")
    batch = _batch(e0, e1, e2)
    credit = resolve_estimator("tree_grpo", {"scale": "none"})(batch, CreditContext())
    np.testing.assert_allclose(credit.advantages, [1 / 6, 1 / 2, -1 / 3, -1 / 3, 1 / 6, -1 / 2])
    assert credit.weights.tolist() == [1, 1, 1, 1, 0, 1]
    scaled = resolve_estimator("tree_grpo", {})(batch, CreditContext())
    np.testing.assert_allclose(scaled.advantages * np.sqrt(1 / 3),
                               credit.advantages, atol=1e-5)  # fmt: skip


def test_tree_grpo_without_tree_is_centred_outcome():
    episodes = [_episode([0, 0], outcome=o, name=f"e{i}") for i, o in enumerate([1, 0, 0, 1])]
    credit = resolve_estimator("tree_grpo", {"scale": "none"})(_batch(*episodes), CreditContext())
    np.testing.assert_allclose(credit.advantages, np.repeat([0.5, -0.5, -0.5, 0.5], 2))
    assert credit.weights is None


# --- Contracts --------------------------------------------------------------------------------
def _random_critic(heads):
    def make(batch):
        rng = np.random.default_rng(batch.n_turns)
        return CreditContext(critic=FixedCritic({h: rng.random(batch.n_turns) for h in heads}))

    return make


@pytest.mark.parametrize("name, heads", [("ppo_gae", ["value"]), ("bilevel_gae", ["value"]),
                                         ("odysseus", ["value"]), ("hiper", ["low", "high"]),
                                         ("archer", ["q1", "q2", "v1", "v2"])])  # fmt: skip
def test_critic_estimators_pass_the_checker(name, heads):
    check_estimator(name, context=_random_critic(heads), shared_rewards_zero=False)


@pytest.mark.parametrize("name", ["seeupo", "tree_grpo"])
def test_critic_free_estimators_pass_the_checker(name):
    check_estimator(name)


def test_methods_declare_their_parts():
    assert method_of("ppo_gae").critic.name == "value"
    assert method_of("hiper").critic.params["heads"] == ("low", "high", "term")
    assert method_of("archer").critic.name == "twin_q"
    assert method_of("seeupo").schedule.name == "reverse_turn"
    assert method_of("tree_grpo").strategy.name == "tree"
    assert method_of("grpo").critic is None and method_of("grpo").strategy is None
    assert "critic value" in method_of("ppo_gae").describe()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=8),
       st.floats(0.0, 1.0), st.integers(0, 10_000))  # fmt: skip
def test_reverse_scan_matches_loop(lengths, decay, seed):
    rng = np.random.default_rng(seed)
    length = np.array(lengths)
    start = np.concatenate([[0], np.cumsum(length)[:-1]])
    x = rng.normal(size=int(length.sum()))
    expected = np.zeros_like(x)
    for s, n in zip(start, length, strict=True):
        acc = 0.0
        for i in range(s + n - 1, s - 1, -1):
            acc = x[i] + (decay * acc if i < s + n - 1 else 0.0)
            expected[i] = acc
    np.testing.assert_allclose(reverse_scan(start, length, x, np.full(x.size, decay)), expected)
