"""Credit estimators: batch/record types, registry and resolution, known answers, properties.

Known-answer tests reproduce worked examples computed by hand from the papers' reference code
(the examples of docs/methods.md); property tests compare the vectorised estimators with loop
references written straight from the formulas.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from turngym.registry import UnknownNameError
from turngym.testing import EstimatorCheckError, check_estimator
from turngym.trainers.credit import (
    Credit,
    CreditContext,
    MissingRequirementError,
    TurnBatch,
    UnknownParameterError,
    estimator_registry,
    method_of,
    register_estimator,
    resolve_estimator,
)
from turngym.trainers.credit.values import FixedCritic
from turngym.types import Episode, Group, Turn

FAST = settings(max_examples=40, deadline=None, database=None, derandomize=True)
# Parameters check_estimator needs beyond the defaults: the random batches have even groups.
CHECK_PARAMS = {"mc_grpo": {"require_odd": False},
                # SIOP's default pooled turn normalisation (the reference code's) does not give
                # 0 for equal outcomes; tests/trainers/test_probe_credit.py pins that down.
                "siop": {"advantage": "broadcast"}}  # fmt: skip


# --- Building batches by hand -------------------------------------------------------------------
def episode(task, i, rewards, outcome=0.0, states=None, observations=None, agent="agent"):
    states = list(states) if states is not None else [None] * len(rewards)
    observations = observations or [f"obs {s}" for s in states]
    turns = tuple(
        Turn(t, agent, o, "act", float(r), t == len(rewards) - 1, False, s, True)
        for t, (r, s, o) in enumerate(zip(rewards, states, observations, strict=True))
    )
    return Episode(f"{task}/{i}", "toy/Test-v0", task, i, "train", turns, float(outcome), False)


def group(task, *specs):
    """``specs``: (rewards, outcome[, states[, observations]]) per episode."""
    return Group(f"{task}@0", task, tuple(episode(task, i, *s) for i, s in enumerate(specs)))


def outcomes(*rows):
    """One single-turn episode (reward 0) per outcome; one group per row."""
    return TurnBatch.from_groups(
        [group(f"g{k}", *[([0.0], o) for o in row]) for k, row in enumerate(rows)]
    )


def run(name, batch, ctx=None, **params):
    return resolve_estimator(name, params)(batch, ctx or CreditContext())


# --- TurnBatch and Credit -----------------------------------------------------------------------
def test_turn_batch_columns_on_ragged_groups():
    g0 = group("a", ([1, 2], 1.0, ["x", None]), ([], 0.5), ([3], 0.0, ["x"]))
    g1 = Group("b@0", "b", (episode("b", 0, [4, 5, 6], 0.25, ["y", "x", "y"], agent="p2"),))
    batch = TurnBatch.from_groups([g0, g1])
    assert (batch.n_groups, batch.n_episodes, batch.n_turns) == (2, 4, 6)
    assert batch.group.tolist() == [0, 0, 0, 1, 1, 1]
    assert batch.episode.tolist() == [0, 0, 2, 3, 3, 3]
    assert batch.turn.tolist() == [0, 1, 0, 0, 1, 2]
    assert batch.reward.tolist() == [1, 2, 3, 4, 5, 6] and batch.reward.dtype == np.float64
    assert batch.outcome.tolist() == [1.0, 1.0, 0.0, 0.25, 0.25, 0.25]
    x, y = batch.state[0], batch.state[3]
    assert batch.state.tolist() == [x, -1, x, y, x, y] and x != y
    assert batch.state_keys[x] == "x" and batch.agent_ids[batch.agent[3]] == "p2"
    assert batch.terminated.tolist() == [False, True, True, False, False, True]
    assert batch.episode_length.tolist() == [2, 0, 1, 3]
    assert batch.episode_start.tolist() == [0, 2, 2, 3]
    assert batch.episode_group.tolist() == [0, 0, 0, 1]
    parts = batch.split_by_episode(np.arange(6))
    assert [p.tolist() for p in parts] == [[0, 1], [], [2], [3, 4, 5]]
    with pytest.raises(ValueError, match="read-only"):
        batch.reward[0] = 9.0
    with pytest.raises(ValueError, match="one value per turn"):
        batch.split_by_episode(np.zeros(5))


def test_turn_batch_rejects_bad_input():
    assert TurnBatch.from_groups([]).n_turns == 0
    with pytest.raises(TypeError, match="expects Group records"):
        TurnBatch.from_groups([episode("a", 0, [1.0])])
    with pytest.raises(ValueError, match="non-finite reward"):
        TurnBatch.from_groups([group("a", ([0.0, float("nan")], 1.0))])
    with pytest.raises(ValueError, match="non-finite outcome"):
        TurnBatch.from_groups([group("a", ([0.0], float("inf")))])


def test_credit_validates_shapes_and_splits_per_episode():
    batch = TurnBatch.from_groups([group("a", ([0, 0], 1.0), ([0], 0.0))])
    credit = Credit(np.array([1, 2, 3]), weights=[1, 1, 0], metrics={"m": np.float32(0.5)})
    assert [a.tolist() for a in credit.per_episode(batch)] == [[1.0, 2.0], [3.0]]
    assert credit.advantages.dtype == np.float64 and credit.metrics == {"m": 0.5}
    with pytest.raises(ValueError, match="one value per turn"):
        Credit(np.zeros(3), returns=np.zeros(2))
    with pytest.raises(ValueError, match="clip_ranges"):
        Credit(np.zeros(3), clip_ranges=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="token_advantages"):
        Credit(np.zeros(2), token_advantages=(np.zeros(4),))
    with pytest.raises(ValueError, match="one value per turn"):
        Credit(np.zeros(2)).per_episode(batch)


# --- Registry and resolution --------------------------------------------------------------------
def test_builtins_are_registered_lazily():
    assert {"grpo", "drgrpo", "rloo", "trloo", "mc_grpo", "gigpo", "a_grae"} <= set(
        estimator_registry.names()
    )
    code = (
        "import sys, turngym, turngym.trainers.credit as c; "
        "print(sorted(m for m in sys.modules if m.startswith('turngym.trainers.credit.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['turngym.trainers.credit.types']"


def test_unknown_estimator_suggests():
    with pytest.raises(UnknownNameError, match="Did you mean 'trloo'"):
        resolve_estimator("trlo", {})


def test_misspelt_or_bad_params_fail_at_resolve_time():
    with pytest.raises(TypeError, match="no parameter 'gama'. Did you mean 'gamma'"):
        resolve_estimator("trloo", {"gama": 0.9})
    with pytest.raises(ValueError, match="Did you mean 'mean_norm'"):
        resolve_estimator("gigpo", {"mode": "mean-norm"})
    with pytest.raises(UnknownParameterError, match="gamma must be float"):
        resolve_estimator("gigpo", {"gamma": "0.9"})
    with pytest.raises(UnknownParameterError, match="enabled must be bool"):
        resolve_estimator("a_grae", {"enabled": 1})
    estimate = resolve_estimator("trloo", {"gamma": 1})  # an int is a fine float
    assert estimate.keywords == {"gamma": 1}


def test_missing_requirement_fails_and_names_it():
    @register_estimator("test_needs_probe", requires={"probe"})
    def needs_probe(batch, ctx, /, *, scale: float = 1.0):
        return Credit(np.zeros(batch.n_turns))

    assert needs_probe.requires == frozenset({"probe"})
    with pytest.raises(MissingRequirementError, match="requires probe"):
        resolve_estimator("test_needs_probe", {}, available={"critic"})
    ctx = CreditContext(probe=object())
    assert ctx.available() == {"probe"}
    estimate = resolve_estimator("test_needs_probe", {"scale": 2.0}, ctx.available())
    assert estimate(outcomes([1, 0]), ctx).advantages.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="already registered"):
        register_estimator("test_needs_probe")(lambda batch, ctx, /: None)


def test_estimator_without_the_signature_is_refused():
    @register_estimator("test_bad_signature")
    def bad(batch, *, gamma: float = 1.0):
        return Credit(np.zeros(batch.n_turns))

    with pytest.raises(TypeError, match="must have the signature"):
        resolve_estimator("test_bad_signature", {})


# --- Known answers (worked examples, also in docs/methods.md) ---------------------------------
def test_grpo_known_answers():
    assert run("grpo", outcomes([1, 0, 0, 1])).advantages == pytest.approx(
        [0.8660, -0.8660, -0.8660, 0.8660], abs=1e-4
    )
    credit = run("grpo", outcomes([1, 1, 1, 1]))
    assert credit.advantages.tolist() == [0.0] * 4
    assert credit.metrics["zero_adv_group_frac"] == 1.0


def test_grpo_options():
    batch = outcomes([1, 0, 0, 1], [0.7])
    population = run("grpo", batch, std="population").advantages
    assert population[:4] == pytest.approx([1, -1, -1, 1], abs=1e-5)
    assert run("grpo", batch).advantages[4] == 0.7  # verl: a group of one keeps A = R
    assert run("grpo", batch, singleton="zero").advantages[4] == 0.0
    assert run("grpo", batch, norm_by_std=False).advantages[:4].tolist() == [0.5, -0.5, -0.5, 0.5]
    # cross_steps: the 3-turn episode counts 3 times in the statistics.
    long = TurnBatch.from_groups([group("a", ([0, 0, 0], 1.0), ([0], 0.0))])
    mean, std = 0.75, statistics.stdev([1, 1, 1, 0])
    expected = [(1 - mean) / (std + 1e-6)] * 3 + [(0 - mean) / (std + 1e-6)]
    assert run("grpo", long, cross_steps=True).advantages == pytest.approx(expected)
    assert run("grpo", long).advantages == pytest.approx([0.7071] * 3 + [-0.7071], abs=1e-4)


def test_drgrpo_and_rloo_known_answers():
    batch = outcomes([1, 0, 0, 1])
    assert run("drgrpo", batch).advantages.tolist() == [0.5, -0.5, -0.5, 0.5]
    assert run("rloo", batch).advantages == pytest.approx(
        [0.6667, -0.6667, -0.6667, 0.6667], abs=1e-4
    )
    lone = outcomes([0.4])
    assert run("rloo", lone).advantages.tolist() == [0.4]
    assert run("drgrpo", lone).advantages.tolist() == [0.4]
    assert run("rloo", lone, singleton="zero").advantages.tolist() == [0.0]


def test_trloo_known_answer():
    batch = TurnBatch.from_groups(
        [group("k", ([0, 0.5, 1.0], 0.0), ([0, 0, 0.2], 0.0), ([0.3, 0], 0.0))]
    )
    credit = run("trloo", batch)
    assert credit.returns == pytest.approx([1.5, 1.5, 1.0, 0.2, 0.2, 0.2, 0.3, 0.0])
    by_turn = credit.advantages  # rows: A0 A1 A2 | B0 B1 B2 | C0 C1
    assert by_turn == pytest.approx([1.25, 1.40, 0.80, -0.70, -0.55, -0.80, -0.55, -0.85], abs=1e-4)


def test_trloo_singleton_turn_group_keeps_its_return_and_gamma_discounts():
    batch = TurnBatch.from_groups([group("k", ([1.0, 2.0], 0.0), ([1.0], 0.0))])
    assert run("trloo", batch, gamma=0.5).advantages.tolist() == [2.0 - 1.0, 2.0, 1.0 - 2.0]
    assert run("trloo", batch, gamma=0.5, singleton="zero").advantages[1] == 0.0


def gigpo_example():
    return TurnBatch.from_groups(
        [group("p", ([0, 0, 10], 1.0, ["s0", "s1", "s2"]), ([0, 0, 0], 0.0, ["s0", "s1", "s3"]))]
    )


def test_gigpo_known_answers():
    batch = gigpo_example()
    mean_norm = run("gigpo", batch, mode="mean_norm")
    assert mean_norm.returns == pytest.approx([9.025, 9.5, 10, 0, 0, 0])
    assert mean_norm.advantages == pytest.approx([9.5125, 9.75, 5.0, -9.5125, -9.75, -5.0])
    std_norm = run("gigpo", batch)  # mean_std_norm, cross-steps by default
    assert std_norm.advantages == pytest.approx(
        [1.62, 1.62, 0.9129, -1.62, -1.62, -0.9129], abs=1e-4
    )
    per_episode = run("gigpo", batch, cross_steps=False).advantages
    assert per_episode == pytest.approx(
        [1.4142, 1.4142, 0.7071, -1.4142, -1.4142, -0.7071], abs=1e-4
    )
    assert std_norm.metrics["anchor_turn_frac"] == pytest.approx(4 / 6)
    omega0 = run("gigpo", batch, omega=0.0).advantages
    assert omega0 == pytest.approx([0.9129] * 3 + [-0.9129] * 3, abs=1e-4)


def test_gigpo_similarity_groups_near_identical_observations():
    texts_a = ["You are in room 12. Exits: north, east.", "You are in the hall."]
    texts_b = ["You are in room 12. Exits: north, east!", "You see a locked door."]
    batch = TurnBatch.from_groups(
        [group("p", ([0, 1], 1.0, ["k1", "k2"], texts_a), ([0, 0], 0.0, ["k3", "k4"], texts_b))]
    )
    exact = run("gigpo", batch, mode="mean_norm", gamma=1.0)
    assert exact.metrics["anchor_turn_frac"] == 0.0  # every state key differs
    similar = run("gigpo", batch, mode="mean_norm", gamma=1.0, similarity=True)
    assert similar.metrics["anchor_turn_frac"] == 0.5  # the two "room 12" texts merge
    assert similar.advantages - exact.advantages == pytest.approx([0.5, 0, -0.5, 0])
    with pytest.raises(ValueError, match="similarity_threshold"):
        run("gigpo", batch, similarity=True, similarity_threshold=1.0)


def test_mc_grpo_known_answers():
    batch = outcomes([1, 0, 1])
    credit = run("mc_grpo", batch)
    assert credit.advantages == pytest.approx([0, -1000, 0])
    assert credit.weights.tolist() == [0.0, 1.0, 1.0]  # one of the tied medians is the pivot
    assert run("mc_grpo", batch, rescale_nonzero=True).advantages == pytest.approx([0, -3000, 0])
    assert run("mc_grpo", batch, mad_scale=False).advantages.tolist() == [0.0, -1.0, 0.0]
    spread = run("mc_grpo", outcomes([0.0, 0.5, 2.0])).advantages  # MAD = 0.5
    assert spread == pytest.approx([-0.5 / 0.501, 0.0, 1.5 / 0.501])
    with pytest.raises(ValueError, match="odd number of episodes"):
        run("mc_grpo", outcomes([1, 0]))
    even = run("mc_grpo", outcomes([1, 0]), require_odd=False)  # lower median, as torch
    assert even.weights.tolist() == [1.0, 0.0] and even.advantages == pytest.approx([1000, 0])


def test_a_grae_known_answer_and_history():
    batch = outcomes([1, 0, 0, 0], [1, 1, 1, 0])
    ctx = CreditContext()
    credit = run("a_grae", batch, ctx)
    expected = [0.75, -0.5, -0.5, -0.5, 0.5387, 0.5387, 0.5387, -3.2320]
    assert credit.advantages == pytest.approx(expected, abs=1e-4)
    assert credit.metrics["p_bar"] == 0.5 and ctx.state["a_grae.batch_accuracy"] == [0.5]
    plain = run("a_grae", batch, enabled=False).advantages
    assert plain == pytest.approx(run("grpo", batch).advantages)
    # accuracy_window (UNVERIFIED option) averages the recorded batch accuracies.
    ctx.state["a_grae.batch_accuracy"] = [0.1]
    assert run("a_grae", batch, ctx, accuracy_window=2).metrics["p_bar"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match=r"outcomes in \[0, 1\]"):
        run("a_grae", outcomes([2.0, 0.0]))


def test_diagnostics():
    credit = run("mc_grpo", outcomes([1, 0, 0], [1, 1, 1]))
    assert credit.metrics["zero_adv_group_frac"] == 0.5  # the constant group
    # Median 0: both zero-reward episodes get A = 0 (one is the pivot), while the mean
    # baseline 1/3 gives them a negative advantage: 2 of 6 turns flip sign.
    assert credit.metrics["sign_flips_vs_mean"] == pytest.approx(2 / 6)
    assert run("rloo", outcomes([1, 0, 0])).metrics["sign_flips_vs_mean"] == 0.0


# --- check_estimator ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", estimator_registry.names())
def test_every_registered_estimator_passes_check_estimator(name):
    plug = method_of(name).critic
    if plug is None:
        check_estimator(name, **CHECK_PARAMS.get(name, {}))
        return
    # Critic methods: random fixed critic values; their advantages are relative to the
    # critic, not to the group, so shared rewards need not give 0.
    from turngym.trainers.plugs import critic_heads

    def context(batch):
        rng = np.random.default_rng(batch.n_turns)
        heads = {h: rng.random(batch.n_turns) for h in critic_heads(plug)}
        return CreditContext(critic=FixedCritic(heads))

    check_estimator(name, context=context, shared_rewards_zero=False, **CHECK_PARAMS.get(name, {}))


@pytest.mark.parametrize(
    "params",
    [{"similarity": True}, {"mode": "mean_norm", "cross_steps": False, "singleton": "zero"}],
)
def test_gigpo_options_pass_check_estimator(params):
    check_estimator("gigpo", **params)


def no_baseline(batch, ctx, /):
    return Credit(batch.outcome.copy())


def wrong_length(batch, ctx, /):
    return Credit(np.zeros(batch.n_turns + 1))


def noisy(batch, ctx, /):
    return Credit(np.random.default_rng().normal(size=batch.n_turns))


def edits_info(batch, ctx, /):
    for g in batch.groups:
        for e in g.episodes:
            for t in e.turns:
                t.info["seen"] = True  # type: ignore[index]
    return Credit(np.zeros(batch.n_turns))


def writes_rewards(batch, ctx, /):
    batch.reward[:] = 0.0
    return Credit(np.zeros(batch.n_turns))


def no_eps(batch, ctx, /):
    out = np.zeros(batch.n_episodes)
    for k in range(batch.n_groups):
        members = batch.episode_group == k
        r = batch.episode_outcome[members]
        with np.errstate(all="ignore"):  # 0/0 on singleton and constant groups
            out[members] = (r - r.mean()) / r.std(ddof=1) if r.size > 1 else np.nan
    return Credit(out[batch.episode])


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (no_baseline, "shared rewards must give 0"),
        (wrong_length, "advantages for"),
        (noisy, "differ"),
        (edits_info, "mutated its input"),
        (writes_rewards, "read-only"),
        (no_eps, "non-finite advantages"),
        (lambda batch, ctx, /: batch.reward, "not Credit"),
    ],
)
def test_check_estimator_catches_broken_estimators(fn, message):
    with pytest.raises(EstimatorCheckError, match=message):
        check_estimator(fn)


def test_check_estimator_reports_estimator_errors():
    with pytest.raises(EstimatorCheckError, match="odd number of episodes"):
        check_estimator("mc_grpo")  # default require_odd refuses the even random groups


# --- Properties ---------------------------------------------------------------------------------
turn_st = st.tuples(st.sampled_from([0.0, 0.5, 1.0, -1.0, 0.25]), st.sampled_from(["a", "b", None]))
episode_st = st.tuples(st.lists(turn_st, max_size=5), st.sampled_from([0.0, 0.25, 0.5, 1.0]))
groups_st = st.lists(st.lists(episode_st, min_size=1, max_size=6), min_size=1, max_size=5)


def build(spec):
    groups = []
    for k, episodes in enumerate(spec):
        specs = [
            ([r for r, _ in turns], outcome, [s for _, s in turns]) for turns, outcome in episodes
        ]
        groups.append(group(f"g{k}", *specs))
    return TurnBatch.from_groups(groups)


def all_estimators(batch):
    # Estimators that need a context capability (critic methods) have their own checks.
    return {n: run(n, batch, **CHECK_PARAMS.get(n, {})) for n in estimator_registry.names()
            if not n.startswith("test_") and not method_of(n).requires}  # fmt: skip


@FAST
@given(groups_st)
def test_every_estimator_is_finite_with_one_advantage_per_turn(spec):
    batch = build(spec)
    for name, credit in all_estimators(batch).items():
        assert credit.advantages.shape == (batch.n_turns,), name
        assert np.all(np.isfinite(credit.advantages)), name
        assert 0.0 <= credit.metrics["zero_adv_group_frac"] <= 1.0


@FAST
@given(st.lists(st.integers(2, 6), min_size=1, max_size=4), st.integers(1, 4), st.data())
def test_constant_rewards_give_zero(sizes, length, data):
    # Values like 0.7 are not exact binary fractions: n * 0.7 / n need not give 0.7 back.
    outcome = data.draw(st.sampled_from([0.0, 0.7, 0.1, 1 / 3, 1.0]))
    reward = data.draw(st.sampled_from([0.0, 0.7, -0.3, 1 / 3]))
    spec = [[([(reward, f"s{k}.{i}.{t}") for t in range(length)], outcome) for i in range(size)]
            for k, size in enumerate(sizes)]  # fmt: skip
    batch = build(spec)
    for name, credit in all_estimators(batch).items():
        assert np.all(credit.advantages == 0.0), name
        assert credit.metrics["zero_adv_group_frac"] == 1.0, name


@FAST
@given(groups_st)
def test_rloo_is_zero_sum_within_groups(spec):
    batch = build(spec)
    per_episode = np.zeros(batch.n_episodes)
    credit = run("rloo", batch, score="return")
    per_episode[batch.episode] = credit.advantages
    sizes = np.bincount(batch.episode_group, minlength=batch.n_groups)
    sums = np.bincount(batch.episode_group, weights=per_episode, minlength=batch.n_groups)
    full = np.bincount(batch.episode_group, batch.episode_length > 0, batch.n_groups) == sizes
    assert sums[(sizes > 1) & full] == pytest.approx(0.0, abs=1e-9)


single_turn_st = st.lists(
    st.lists(st.sampled_from([0.0, 0.25, 1.0, -0.5]), min_size=1, max_size=6),
    min_size=1,
    max_size=4,
)


@FAST
@given(single_turn_st, st.sampled_from([1.0, 0.9]))
def test_single_turn_episodes_reduce_to_outcome_methods(rows, gamma):
    no_state = build([[([(r, None)], r) for r in row] for row in rows])
    trloo = run("trloo", no_state, gamma=gamma).advantages
    assert trloo == pytest.approx(run("rloo", no_state, score="return").advantages)
    grpo = run("grpo", no_state, score="return").advantages
    assert run("gigpo", no_state, gamma=gamma).advantages == pytest.approx(grpo)
    assert run("grpo", no_state, cross_steps=True).advantages == pytest.approx(grpo)
    # All episodes of a single-turn task start from the same state: A_S equals A_E.
    shared = build([[([(r, "start")], r) for r in row] for row in rows])
    sizes = np.bincount(shared.group)[shared.group]
    expected = np.where(sizes > 1, 2 * grpo, grpo)
    assert run("gigpo", shared).advantages == pytest.approx(expected, abs=1e-9)


# --- Loop references (reference vs vectorised, docs/design.md#quality-bars) ---------------------
def returns_of(e, gamma):
    out, running = [], 0.0
    for t in reversed(e.turns):
        running = t.reward + gamma * running
        out.append(running)
    return out[::-1]


def ref_gigpo(batch, gamma, by_std, cross_steps, eps=1e-6):
    out = []
    for g in batch.groups:
        scores = [sum(t.reward for t in e.turns) for e in g.episodes]
        rows = [s for e, s in zip(g.episodes, scores, strict=True) for _ in e.turns]
        pool = rows if cross_steps else scores
        mu = statistics.fmean(pool) if pool else 0.0
        sd = statistics.stdev(pool) if len(pool) > 1 else 0.0
        steps: dict[object, list[float]] = {}
        rets = [returns_of(e, gamma) for e in g.episodes]
        for e, r in zip(g.episodes, rets, strict=True):
            for t, value in zip(e.turns, r, strict=True):
                steps.setdefault(t.state_key if t.state_key is not None else id(t), []).append(
                    value
                )
        for e, s, r in zip(g.episodes, scores, rets, strict=True):
            a_e = s if len(g.episodes) == 1 else (s - mu) / (sd + eps if by_std else 1.0)
            for t, value in zip(e.turns, r, strict=True):
                peers = steps[t.state_key if t.state_key is not None else id(t)]
                a_s = 0.0
                if len(peers) > 1:
                    spread = statistics.stdev(peers) + eps if by_std else 1.0
                    a_s = (value - statistics.fmean(peers)) / spread
                out.append(a_e + a_s)
    return out


def ref_trloo(batch, gamma):
    out = []
    for g in batch.groups:
        rets = [returns_of(e, gamma) for e in g.episodes]
        for r in rets:
            for t, value in enumerate(r):
                others = [o[t] for o in rets if len(o) > t]
                n = len(others)
                out.append(value if n == 1 else value - (sum(others) - value) / (n - 1))
    return out


def ref_mc_grpo(batch):
    out = []
    for g in batch.groups:
        r = [e.outcome for e in g.episodes]
        order = sorted(range(len(r)), key=lambda i: r[i])  # stable
        m = r[order[(len(r) - 1) // 2]]
        dev = sorted(abs(x - m) for x in r)
        mad = dev[(len(r) - 1) // 2]
        for e, x in zip(g.episodes, r, strict=True):
            out += [(x - m) / (mad + 1e-3)] * len(e.turns)
    return out


@FAST
@given(groups_st, st.sampled_from([1.0, 0.95]), st.booleans(), st.booleans())
def test_vectorised_estimators_match_loop_references(spec, gamma, by_std, cross_steps):
    batch = build(spec)
    mode = "mean_std_norm" if by_std else "mean_norm"
    gigpo = run("gigpo", batch, gamma=gamma, mode=mode, cross_steps=cross_steps).advantages
    assert gigpo == pytest.approx(ref_gigpo(batch, gamma, by_std, cross_steps), abs=1e-7)
    assert run("trloo", batch, gamma=gamma).advantages == pytest.approx(
        ref_trloo(batch, gamma), abs=1e-9
    )
    mc = run("mc_grpo", batch, require_odd=False).advantages
    assert mc == pytest.approx(ref_mc_grpo(batch), abs=1e-6)


@FAST
@given(groups_st, st.randoms(use_true_random=False))
def test_advantages_follow_their_groups_when_groups_are_reordered(spec, rnd):
    order = list(range(len(spec)))
    rnd.shuffle(order)
    batch, shuffled = build(spec), build([spec[k] for k in order])
    moved_all = all_estimators(shuffled)
    for name, credit in all_estimators(batch).items():
        moved = moved_all[name]
        by_group = [credit.advantages[batch.group == k] for k in order]
        expected = np.concatenate([np.zeros(0), *by_group])
        assert moved.advantages == pytest.approx(expected, abs=1e-12), name
