"""Probe-based credit estimators as pure functions of precomputed probe values.

Known-answer tests reproduce worked examples of the reference code and papers to 1e-4 (IGPO,
A2TGPO, SIOP, PBSD, InfoPO; docs/methods.md#probe-based-methods describes the methods) plus
hand-computed examples for GRPO-VPS and SWAP; property tests cover ragged groups, groups of one
and constant probes, and compare IGPO and SIOP with loop references.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from turngym.testing import EstimatorCheckError, check_estimator
from turngym.trainers.credit import CreditContext, TurnBatch, resolve_estimator
from turngym.trainers.credit.a2tgpo import clip_scale
from turngym.trainers.credit.pbsd import turn_evidence
from turngym.trainers.credit.probe_values import (
    ProbeOptions,
    ProbeValues,
    TokenValues,
    answer_from_action,
    synthetic_probes,
)
from turngym.trainers.credit.siop import cluster_answers, outcome_targets, siop_turn_rewards
from turngym.types import Episode, Group, Turn

PROBE_ESTIMATORS = ("igpo", "a2tgpo", "siop", "pbsd", "grpo_vps", "swap", "infopo")
FAST = settings(max_examples=30, deadline=None, database=None, derandomize=True)
NAN = float("nan")


def batch_of(*groups):
    """``groups``: lists of (n_turns, outcome[, actions]) per episode."""
    out = []
    for g, episodes in enumerate(groups):
        eps = []
        for i, spec in enumerate(episodes):
            n, outcome = spec[0], spec[1]
            actions = spec[2] if len(spec) > 2 else ["act"] * n
            turns = tuple(Turn(t, "agent", f"obs {t}", actions[t], 0.0, t == n - 1, False, None,
                               True) for t in range(n))  # fmt: skip
            eps.append(Episode(f"g{g}/{i}", "toy-v0", f"g{g}", i, "train", turns, outcome,
                               outcome >= 1))  # fmt: skip
        out.append(Group(f"g{g}@0", f"g{g}", tuple(eps)))
    return TurnBatch.from_groups(out)


def probes_for(batch, before=None, after=None, tokens=None, answers=None, targets=1, **kw):
    n = batch.n_turns

    def col(v):
        return np.full((n, targets), NAN) if v is None else np.asarray(v, float).reshape(n, targets)

    return ProbeValues(
        golds=(("gold",),) * batch.n_episodes,
        answers=tuple(answers or ["gold"] * batch.n_episodes),
        targets=(("gold",),) * batch.n_episodes, before=col(before), after=col(after),
        action_tokens=np.ones(n, int) if tokens is None else tokens, **kw,
    )  # fmt: skip


def run(name, batch, probes, **params):
    return resolve_estimator(name, params, {"probe"})(batch, CreditContext(probe=probes))


# --- Known answers ------------------------------------------------------------------------------
def igpo_example():
    batch = batch_of([(3, 1.0), (2, 0.0)])
    before = np.log([0.10, 0.30, 0.60, 0.10, 0.05])
    return batch, probes_for(batch, before=before)


@pytest.mark.parametrize(
    "norm, expected",
    [("joint", [1.6695, 1.9080, 1.8815, -1.6695, -0.7685]),
     ("separate", [2.3587, 2.0190, 1.0, -2.3587, -1.0])],
)  # fmt: skip
def test_igpo_worked_example(norm, expected):
    batch, probes = igpo_example()
    credit = run("igpo", batch, probes, info_gain="prob_diff", norm=norm)
    assert credit.advantages == pytest.approx(expected, abs=1e-4)
    assert credit.returns == pytest.approx([0.2, 0.3, 1.0, -0.05, 0.0], abs=1e-12)


def test_igpo_boundaries_come_from_turns_not_from_zero_rewards():
    # The middle turn's gain is exactly 0: the reference code would merge it with the next turn.
    batch = batch_of([(3, 1.0), (3, 0.0)])
    before = np.log([0.1, 0.3, 0.3, 0.1, 0.2, 0.4])
    credit = run("igpo", batch, probes_for(batch, before=before), info_gain="prob_diff")
    rhat = np.diff(np.append(credit.advantages[:3][::-1], 0))  # back out the per-turn terms
    assert credit.returns[1] == 0.0 and abs(rhat[-2]) > 0  # the 0-gain turn kept its own term


def test_igpo_log_prob_diff_and_missing_gold_fall_back_to_outcome_only():
    batch = batch_of([(3, 1.0), (2, 0.0)])
    before = np.log([0.10, 0.30, 0.60, NAN, NAN])
    credit = run("igpo", batch, probes_for(batch, before=before), norm="separate")
    assert credit.returns[:2] == pytest.approx([math.log(3), math.log(2)])
    assert credit.metrics["ig_turn_frac"] == pytest.approx(2 / 5)


def test_a2tgpo_worked_example():
    batch = batch_of([(2, 0.0), (3, 0.0), (1, 0.0)])
    # IG a = [0.2, 0.3], b = [-0.1, 0.0, 0.4], c = [0.05]; the last gain runs to after the action.
    before = [0.0, 0.2, 0.0, -0.1, -0.1, 0.0]
    after = [NAN, 0.5, NAN, NAN, 0.3, 0.05]
    credit = run("a2tgpo", batch, probes_for(batch, before=before, after=after),
                 final_reward="info_gain")  # fmt: skip
    assert credit.advantages == pytest.approx([1.2071, 0.7071, -0.9856, -0.5, 0.0, 0.0], abs=1e-4)
    normalised = np.array([1.0, 0.7071068, -1.0, -0.7071068, 0.0, 0.0])
    assert credit.clip_ranges[:, 0] == pytest.approx(0.2 * clip_scale(normalised, 0.3), abs=1e-6)
    assert credit.clip_ranges[:, 1] == pytest.approx(credit.clip_ranges[:, 0])


def test_a2tgpo_clip_scale_worked_example():
    scale = clip_scale(np.array([-2.0, 0.0, 1.0, 3.0]), 0.3)
    assert scale == pytest.approx([0.7715, 1.0, 1.1386, 1.2715], abs=1e-4)
    assert 0.2 * scale == pytest.approx([0.154, 0.2, 0.228, 0.254], abs=1e-3)


def test_siop_turn_rewards_worked_example():
    batch = batch_of([(2, 0.0)])
    log_first = np.log([0.05, NAN])
    log_after = np.log([0.10, 0.40])
    r = siop_turn_rewards(batch, log_first, log_after, np.array([0.6]), 0.5)
    assert r == pytest.approx([0.4159, 1.1318], abs=1e-4)


def test_siop_reliability_worked_example():
    batch = batch_of([(1, 0.0)] * 4)
    answers = ["A", "A", "A", "B"]
    labels = cluster_answers(answers, str.__eq__)
    q = outcome_targets(batch, answers, labels, np.array([0.9, 0.9, 0.9, 0.1]), 1.0)
    assert q == pytest.approx([0.8697, 0.8697, 0.8697, 0.1303], abs=1e-4)
    # eta = 0: plain frequencies; fewer than two answers: the answering rollout gets 1
    assert outcome_targets(batch, answers, labels, np.full(4, NAN), 0.0) == pytest.approx(
        [0.75, 0.75, 0.75, 0.25]
    )
    lone = ["A", None, None, None]
    assert outcome_targets(batch, lone, cluster_answers(lone, str.__eq__), np.zeros(4), 1.0
                           ).tolist() == [1.0, 0.0, 0.0, 0.0]  # fmt: skip


def test_siop_advantage_worked_example():
    # q = 1 (gold reference), lam = 0.5: rewards s1 = [0.4159, 1.1318], s2 = [-0.2, 0.1]
    batch = batch_of([(2, 0.0), (2, 0.0)])
    before = [0.0, NAN, 0.0, NAN]
    after = [0.4159, 0.4159 + 0.6318, -0.2, -0.6]
    credit = run("siop", batch, probes_for(batch, before=before, after=after), reference="gold")
    assert credit.returns == pytest.approx([0.4159, 1.1318, -0.2, 0.1], abs=1e-6)
    assert credit.advantages == pytest.approx([1.4414, 1.3470, -1.4414, -0.4583], abs=1e-4)


def test_siop_clusters_the_groups_answers_and_probes_its_own_cluster():
    from turngym.trainers.credit.siop import _same_normalised, siop_targets

    batch = batch_of([(1, 0.0)] * 4)
    answers = ["Paris", "paris.", None, "Rome"]
    refs = siop_targets(batch, [()] * 4, answers, num_refs=3, equivalence=_same_normalised,
                        reference="clusters")  # fmt: skip
    assert refs == [("Paris", "paris."), ("Paris", "paris."), (), ("Rome",)]


def test_pbsd_identity_worked_example():
    batch = batch_of([(3, 1.0)])
    teacher = TokenValues.from_rows([[-5.0], [-3.0], [-1.0]])
    student = TokenValues.from_rows([[-5.5], [-2.5], [-1.2]])
    probes = probes_for(batch, teacher=teacher, student=student)
    c, evidence = turn_evidence(batch, probes)
    assert c == pytest.approx([0.5, -0.5, 0.2]) and evidence == pytest.approx([0.2])


def test_pbsd_gives_per_token_advantages_and_excludes_the_answer_turn():
    batch = batch_of([(2, 1.0), (2, 0.0)])
    tokens = np.array([2, 1, 1, 1])
    student = TokenValues.from_rows([[-1.0, -1.0], [-1.0], [-1.0], [-1.0]])
    teacher = TokenValues.from_rows([[-0.5, -1.5], [0.0], [-2.0], [0.0]])
    probes = probes_for(batch, tokens=tokens, teacher=teacher, student=student)
    credit = run("pbsd", batch, probes, alpha=1.0)
    base = 1 / math.sqrt(2)  # GRPO on outcomes [1, 0]
    gaps = np.array([0.5, -0.5, -1.0])  # credited tokens: turn 0 of each episode
    z = (gaps - gaps.mean()) / (gaps.std(ddof=1) + 1e-6)
    expected = [[base + z[0], base + z[1]], [base], [-base + z[2]], [-base]]
    for got, want in zip(credit.token_advantages, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    assert credit.advantages[1] == pytest.approx(base, abs=1e-5)  # the answer turn: GRPO only


def test_infopo_worked_example():
    batch = batch_of([(3, 1.0), (2, 1.0)])
    tokens = np.array([2, 1, 1, 3, 1])
    factual = np.array([0.2, NAN, 0.3, 0.15, NAN])
    probes = probes_for(batch, tokens=tokens, next_factual=factual,
                        next_counterfactual=np.zeros(5))  # fmt: skip
    credit = run("infopo", batch, probes, score="outcome")
    flat = np.concatenate(credit.token_advantages)
    assert flat == pytest.approx([-0.0043, -0.0043, 0, 0.0988, -0.0301, -0.0301, -0.0301, 0],
                                 abs=1e-4)  # fmt: skip
    assert credit.metrics["gate_mean"] == pytest.approx(0.5)


def test_infopo_gate_closes_when_outcomes_spread():
    batch = batch_of([(2, 1.0), (2, 0.0)])
    probes = probes_for(batch, next_factual=np.array([0.2, NAN, 0.1, NAN]),
                        next_counterfactual=np.zeros(4))  # fmt: skip
    credit = run("infopo", batch, probes, score="outcome")
    assert credit.metrics["gate_mean"] == pytest.approx(7.2e-7, rel=1e-2)


def test_grpo_vps_hand_computed():
    batch = batch_of([(2, 1.0), (1, 0.0)])
    before, after = [0.0, 0.0, 0.0], [0.1, 0.3, -0.1]  # progress d = [0.1, 0.3, -0.1]
    credit = run("grpo_vps", batch, probes_for(batch, before=before, after=after), alpha=0.5)
    a = 1 / math.sqrt(2)
    assert credit.advantages == pytest.approx([a, a + 0.5, -a - 0.5], abs=1e-5)


def test_swap_hand_computed():
    batch = batch_of([(2, 1.0), (1, 1.0), (1, 0.0)])
    tokens = np.array([3, 5, 4, 6])
    importance = np.array([2.0, 0.0, 0.0, 0.0])
    probes = probes_for(batch, before=np.zeros(4), after=importance, tokens=tokens)
    credit = run("swap", batch, probes)
    w = np.array([3 * math.exp(-2.0), 5.0])
    penalty = 4 * w / w.sum()  # excess 8 - 4 tokens, low-importance step pays more
    a = 1 / math.sqrt(3)
    assert credit.returns[:2] == pytest.approx(penalty)
    expected = [a - penalty[0] / 4, a - penalty[1] / 4, a, -2 * a]
    assert credit.advantages == pytest.approx(expected, abs=1e-5)


# --- Contract and properties --------------------------------------------------------------------
@pytest.mark.parametrize("name", PROBE_ESTIMATORS)
def test_probe_estimators_pass_check_estimator(name):
    if name == "siop":
        check_estimator(name, advantage="broadcast")
        with pytest.raises(EstimatorCheckError, match="equal outcomes gave advantage"):
            check_estimator(name)  # pooled turn normalisation: length changes advantages
        return
    check_estimator(name)


def test_igpo_joint_normalisation_mixes_reward_types():
    with pytest.raises(EstimatorCheckError, match="equal outcomes gave advantage"):
        check_estimator("igpo", norm="joint")  # the paper's variant, by design
    batch = batch_of([(2, 1.0), (3, 1.0)])
    credit = run("igpo", batch, probes_for(batch, before=np.zeros(5)), norm="joint")
    assert np.any(credit.advantages != 0)  # equal outcomes, but IG 0 vs outcome 1 are pooled


episode_st = st.tuples(st.integers(0, 5), st.sampled_from([0.0, 0.5, 1.0]))
groups_st = st.lists(st.lists(episode_st, min_size=1, max_size=5), min_size=1, max_size=4)


@FAST
@given(groups_st, st.integers(0, 2**16), st.booleans())
def test_ragged_and_singleton_groups_give_finite_credit(spec, seed, singletons):
    groups = [[e] for g in spec for e in g] if singletons else spec
    batch = batch_of(*groups)
    probes = synthetic_probes(batch, seed, targets=2)
    for name in PROBE_ESTIMATORS:
        credit = run(name, batch, probes)
        assert credit.advantages.shape == (batch.n_turns,), name
        assert np.all(np.isfinite(credit.advantages)), name
        if credit.token_advantages is not None:
            assert [t.size for t in credit.token_advantages] == probes.action_tokens.tolist()
        if singletons and name in ("igpo", "a2tgpo", "siop"):
            assert np.all(credit.advantages[batch.episode_length[batch.episode] == 1] == 0), name


@FAST
@given(st.lists(st.integers(2, 5), min_size=1, max_size=3), st.integers(1, 4),
       st.sampled_from([-3.0, -0.7, 0.0]), st.sampled_from([0.0, 0.7, 1 / 3]))  # fmt: skip
def test_constant_probes_and_outcomes_give_zero(sizes, length, value, outcome):
    batch = batch_of(*[[(length, outcome)] * size for size in sizes])
    probes = synthetic_probes(batch, 0, constant=value)
    for name in PROBE_ESTIMATORS:
        params = {"advantage": "broadcast"} if name == "siop" else {}
        assert np.all(run(name, batch, probes, **params).advantages == 0.0), name


def ref_igpo(batch, lp, gamma, separate):
    """Loop reference of IGPO straight from the formulas (population std + 1e-8, eps 1e-6)."""
    rewards, kinds = [], []
    for e in range(batch.n_episodes):
        s, n = batch.episode_start[e], batch.episode_length[e]
        r = [math.exp(lp[s + t + 1]) - math.exp(lp[s + t]) for t in range(n - 1)]
        rewards.append(r + [batch.episode_outcome[e]] if n else [])
        kinds.append(["ig"] * (n - 1) + ["out"] if n else [])
    out = []
    for e in range(batch.n_episodes):
        peers = [(r, k) for f in range(batch.n_episodes)
                 if batch.episode_group[f] == batch.episode_group[e]
                 for r, k in zip(rewards[f], kinds[f], strict=True)]  # fmt: skip
        rhat = []
        for r, k in zip(rewards[e], kinds[e], strict=True):
            pool = [p for p, kk in peers if kk == k or not separate]
            mean = sum(pool) / len(pool)
            std = math.sqrt(sum((p - mean) ** 2 for p in pool) / len(pool) + 1e-8)
            rhat.append(0.0 if len(pool) <= 1 else (r - mean) / (std + 1e-6))
        acc, adv = 0.0, []
        for x in reversed(rhat):
            acc = x + gamma * acc
            adv.append(acc)
        out += adv[::-1]
    return out


@FAST
@given(groups_st, st.integers(0, 2**16), st.sampled_from([1.0, 0.9]), st.booleans())
def test_igpo_matches_a_loop_reference(spec, seed, gamma, separate):
    batch = batch_of(*spec)
    lp = -np.random.default_rng(seed).gamma(2.0, 1.0, batch.n_turns)
    credit = run("igpo", batch, probes_for(batch, before=lp), info_gain="prob_diff", gamma=gamma,
                 norm="separate" if separate else "joint")  # fmt: skip
    assert credit.advantages == pytest.approx(ref_igpo(batch, lp, gamma, separate), abs=1e-6)


# --- Options and helpers ------------------------------------------------------------------------
def test_misspelt_options_fail_with_one_line():
    with pytest.raises(ValueError, match="Did you mean 'prob_diff'"):
        resolve_estimator("igpo", {"info_gain": "prob_dif"}, {"probe"})
    with pytest.raises(ValueError, match="Did you mean 'share_prefix'") as err:
        ProbeOptions.from_dict({"share_prefx": False})
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="batch_rows must be int"):
        ProbeOptions.from_dict({"batch_rows": "8"})


def test_estimators_refuse_a_context_without_probes():
    batch = batch_of([(2, 1.0)])
    with pytest.raises(TypeError, match="reads precomputed probes"):
        resolve_estimator("igpo", {}, {"probe"})(batch, CreditContext())
    other = batch_of([(3, 1.0)])
    with pytest.raises(ValueError, match="computed for this batch|compute them for this batch"):
        run("igpo", batch, synthetic_probes(other, 0))


@pytest.mark.parametrize(
    "action, template, answer",
    [("<answer> Paris </answer>", "<answer> {answer} </answer>", "Paris"),
     ("<action>guess: owl</action>", "<action>guess: {answer}</action>", "owl"),
     ("<action>ask: animal</action>", "<action>guess: {answer}</action>", None),
     ("<answer></answer>", "<answer>{answer}</answer>", None),
     ("I think <answer>42", "<answer>{answer}</answer>", "42")],
)  # fmt: skip
def test_answer_from_action(action, template, answer):
    assert answer_from_action(action, template) == answer
