"""Structured-reward estimators: worked examples, hand-computed known answers, options.

Worked examples come from the methods' published numbers where they exist (Rank-GRPO,
MatchTIR; the MAPO and SCRL reconstructions of their abstracts); the others are computed by
hand in the comments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from turngym.testing import check_estimator
from turngym.trainers.credit import CreditContext, TurnBatch, resolve_estimator
from turngym.trainers.credit.matchtir import greedy_match, sinkhorn_match
from turngym.trainers.credit.r3 import R3Hooks
from turngym.trainers.credit.skill_r1 import SkillHooks
from turngym.trainers.credit.slea_rl import ExperienceHooks
from turngym.trainers.hooks import hooks_for
from turngym.types import Conversation, Episode, Group, TokenTrace, Turn

S = 1 / math.sqrt(2)


class Chars:
    """A tokenizer with one token per character (token id = code point)."""

    def decode(self, ids, **_):
        return "".join(map(chr, ids))


def trace(text: str, logprobs=None) -> TokenTrace:
    ids = tuple(map(ord, text))
    return TokenTrace((1,), ids, None if logprobs is None else tuple(logprobs))


def turn(t, reward=0.0, info=None, obs="o", action="a", end=False, state=None, tr=None,
         valid=True):  # fmt: skip
    return Turn(t, "agent", obs, action, float(reward), end, False, state, valid, dict(info or {}),
                tr)  # fmt: skip


def ep(task, i, turns, outcome=0.0, success=None, round_=0):
    success = outcome >= 1.0 if success is None else success
    return Episode(f"train/{task}@{round_}/{i}", "toy", task, i, "train", tuple(turns),
                   float(outcome), success)  # fmt: skip


def batch_of(*groups):
    return TurnBatch.from_groups(list(groups))


def grp(task, episodes, round_=0):
    return Group(f"{task}@{round_}", task, tuple(episodes))


def run(name, batch, ctx=None, **params):
    return resolve_estimator(name, params)(batch, ctx or CreditContext())


# --- Rank-GRPO ----------------------------------------------------------------------------------
def ranked(hits_per_episode):
    return batch_of(grp("t", [ep("t", i, [turn(0, info={"rank_hits": h}, end=True)])
                              for i, h in enumerate(hits_per_episode)]))  # fmt: skip


def test_rank_grpo_worked_example_per_rank_advantages():
    hits = [[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 0, 0]]
    want = np.array([[0.8659, -0.4999, 0.8659], [-0.8659, -0.4999, 0.8659],
                     [0.8659, 1.4997, -0.8659], [-0.8659, -0.4999, -0.8659]])  # fmt: skip
    texts = ["A;B;C", "D;E;F", "G;H;I", "J;K;L"]
    groups = grp("t", [ep("t", i, [turn(0, info={"rank_hits": h}, end=True, tr=trace(x))])
                       for i, (h, x) in enumerate(zip(hits, texts, strict=True))])  # fmt: skip
    credit = run("rank_grpo", batch_of(groups), CreditContext(tokenizer=Chars()))
    for i in range(4):  # item k's tokens (letter, then the closing ';') carry A_{i,k}
        tokens = credit.token_advantages[i]
        np.testing.assert_allclose(tokens[[0, 2, 4]], want[i], atol=1e-4)
        np.testing.assert_allclose(tokens[[1, 3]], want[i, :2], atol=1e-4)
    np.testing.assert_allclose(credit.advantages, want.mean(axis=1), atol=1e-4)


def test_rank_grpo_log_decay_rewards_and_padding():
    from turngym.trainers.credit.rank_grpo import rank_rewards

    r = rank_rewards(np.array([0, 1, 0, 1.0]), np.zeros(4, int), np.arange(4), "log_decay")
    np.testing.assert_allclose(r, [1.0616, 1.0616, 0.4307, 0.4307], atol=1e-4)
    # A parse failure (no hits at all) counts as zeros at every rank of the group's list:
    # rank 1 = [1, 0] -> +-0.7071; with pad=False the lone list has no one to compare with.
    padded = run("rank_grpo", ranked([[1, 0], []]))
    np.testing.assert_allclose(padded.advantages, [0.7071 / 2 - 0.0, -0.7071 / 2], atol=1e-3)
    lone = run("rank_grpo", ranked([[1, 0], []]), pad=False)
    np.testing.assert_allclose(lone.advantages, [0.0, 0.0])


def test_rank_grpo_convrec_layout_ranks_run_across_turns():
    # Episode 0 asks, then recommends twice (miss, hit); episode 1 recommends once (hit).
    # Ranks: e0 = [0, 1], e1 = [1, 0 (pad)]; rank 1: [0, 1] -> [-.7071, .7071], rank 2: [1, 0].
    e0 = ep("t", 0, [turn(0, info={"rank_hits": []}), turn(1, info={"rank_hits": [0]}),
                     turn(2, info={"rank_hits": [1]}, end=True)], 1.0)  # fmt: skip
    e1 = ep("t", 1, [turn(0, info={"rank_hits": [1]}, end=True)], 1.0)
    credit = run("rank_grpo", batch_of(grp("t", [e0, e1])), eps=0.0)
    np.testing.assert_allclose(credit.advantages, [-S, -S, S, S], atol=1e-9)  # ask: next rank's
    zero = run("rank_grpo", batch_of(grp("t", [e0, e1])), eps=0.0, between="zero")
    np.testing.assert_allclose(zero.advantages, [0.0, -S, S, S], atol=1e-9)


def test_rank_grpo_overflow_tokens_get_the_extra_token_penalty():
    groups = grp("t", [ep("t", 0, [turn(0, info={"rank_hits": [1]}, end=True, tr=trace("A;B"))]),
                       ep("t", 1, [turn(0, info={"rank_hits": [0]}, end=True, tr=trace("C"))])])
    credit = run("rank_grpo", batch_of(groups), CreditContext(tokenizer=Chars()), eps=0.0)
    np.testing.assert_allclose(credit.token_advantages[0], [S, S, -0.1], atol=1e-9)


# --- F-GRPO -------------------------------------------------------------------------------------
def test_f_grpo_separate_phase_advantages_known_answer():
    # (R_gen, R_rank) = (1, 0), (.5, 1), (0, .5): A_gen = [1, 0, -1], A_rank = [-1, 1, 0]
    # (means .5, unbiased stds .5); a search turn before the answer takes A_gen.
    phases = [(1.0, 0.0), (0.5, 1.0), (0.0, 0.5)]
    episodes = [ep("t", i, [turn(0), turn(1, info={"phase_rewards": {"generation": g,
                                                                      "ranking": r}},
                                          end=True, tr=trace("x;y ranking: y"))])
                for i, (g, r) in enumerate(phases)]  # fmt: skip
    credit = run("f_grpo", batch_of(grp("t", episodes)), CreditContext(tokenizer=Chars()),
                 eps=0.0)  # fmt: skip
    np.testing.assert_allclose(credit.advantages, [1, 0, 0, 0.5, -1, -0.5], atol=1e-9)
    # The answer turn alone gets the mean of its phases; its tokens are split at the marker:
    tokens = credit.token_advantages[1]  # "x;y " -> A_gen = 1, "ranking: y" -> A_rank = -1
    np.testing.assert_allclose(tokens, [1.0] * 4 + [-1.0] * 10)
    assert credit.metrics["phase_disagreement"] == pytest.approx(1 / 3)  # episode 0
    zero = run("f_grpo", batch_of(grp("t", episodes)), eps=0.0, earlier_turns="zero")
    assert zero.advantages[0] == 0.0


# --- MatchTIR -----------------------------------------------------------------------------------
def test_matchtir_worked_example():
    t1 = ep("t", 0, [turn(0, 1.0), turn(1, 0.5), turn(2, 1.0, end=True)])
    t2 = ep("t", 1, [turn(0, 0.0), turn(1, 0.3, end=True)])
    credit = run("matchtir", batch_of(grp("t", [t1, t2])))
    np.testing.assert_allclose(credit.advantages, [S, S, 0.8536, -S, -S], atol=1e-4)
    np.testing.assert_allclose(credit.returns, [2.26, 1.4, 1.0, 0.27, 0.3], atol=1e-9)


def test_matchtir_matches_calls_to_gold_greedily_one_to_one():
    assert greedy_match(np.array([[0.9, 0.8], [0.95, 0.0]])).tolist() == [0.8, 0.95]
    assert greedy_match(np.array([[0.5, 0.5], [0.5, 0.0]])).tolist() == [0.5, 0.0]  # ties: i, j
    soft = sinkhorn_match(np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(soft, [0.5, 0.5], atol=1e-3)  # the plan's mass sums to 1

    def call(sims):
        return {"call_match": {"call": {"similarities": sims}}}

    # Both calls best match gold 0; greedy gives it to the second (0.9), the first gets 0.4.
    e0 = ep("t", 0, [turn(0, info=call([0.6, 0.4])), turn(1, info=call([0.9, 0.1])),
                     turn(2, 1.0, info=call([0.0, 0.0]), end=True)], 1.0)  # fmt: skip
    e1 = ep("t", 1, [turn(0, info=call([0.0, 0.0]), end=True)])
    credit = run("matchtir", batch_of(grp("t", [e0, e1])))
    np.testing.assert_allclose(credit.metrics["matched_reward_mean"], (0.4 + 0.9 + 1.0) / 4)


# --- MAPO ---------------------------------------------------------------------------------------
def test_mapo_worked_example_mixed_turn_and_batch_normalisation():
    d1 = ep("t", 0, [turn(0, info={"j": 0.2}), turn(1, info={"j": 0.5}),
                     turn(2, info={"j": 0.9}, end=True)])  # fmt: skip
    d2 = ep("t", 1, [turn(0, info={"j": 0.1}), turn(1, info={"j": 0.1}, end=True)])
    credit = run("mapo", batch_of(grp("t", [d1, d2])), gamma=1.0, lam=0.5, mix="sum",
                 source="info", info_key="j", turn_singleton="zero")  # fmt: skip
    np.testing.assert_allclose(credit.advantages, [0.9120, 0.7651, 0.0441, -0.8238, -0.8973],
                               atol=1e-4)  # fmt: skip
    np.testing.assert_allclose(credit.returns, [1.6, 1.4, 0.9, 0.2, 0.1], atol=1e-12)
    batch_fallback = run("mapo", batch_of(grp("t", [d1, d2])), gamma=1.0, lam=0.5, mix="sum",
                         source="info", info_key="j")  # fmt: skip
    assert batch_fallback.advantages[2] == pytest.approx(0.0882, abs=1e-4)


def test_mapo_reads_the_judge_from_the_context():
    d1 = ep("t", 0, [turn(0, 0.0), turn(1, 0.0, end=True)])
    d2 = ep("t", 1, [turn(0, 0.0), turn(1, 0.0, end=True)])
    ctx = CreditContext(judge=lambda batch: np.array([1.0, 0.0, 0.0, 0.0]))
    credit = run("mapo", batch_of(grp("t", [d1, d2])), ctx, source="judge")
    assert credit.advantages[0] > 0 > credit.advantages[2]
    with pytest.raises(ValueError, match="needs CreditContext"):
        run("mapo", batch_of(grp("t", [d1, d2])), source="judge")


# --- SCRL ---------------------------------------------------------------------------------------
def test_scrl_worked_example_prefix_rewards_per_subproblem():
    correct = [[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]]
    texts = ["1;2;3", "1;2;3", "1;2;3", "1;2;3"]
    episodes = [ep("t", i, [turn(0, info={"subproblem_correct": c}, end=True, tr=trace(x))])
                for i, (c, x) in enumerate(zip(correct, texts, strict=True))]  # fmt: skip
    credit = run("scrl", batch_of(grp("t", episodes)), CreditContext(tokenizer=Chars()), eps=0.0)
    want = np.array([[0.5, 0.866, -0.5], [0.5, -0.866, -0.5], [-1.5, -0.866, -0.5],
                     [0.5, 0.866, 1.5]])  # fmt: skip
    for i in range(4):
        np.testing.assert_allclose(credit.token_advantages[i][[0, 2, 4]], want[i], atol=1e-3)
    plain = run("scrl", batch_of(grp("t", episodes)), eps=0.0, progress=False)
    # Without the prefix rule sub-problem 3 is [0, 1, 1, 1]: the first attempt alone is low.
    assert plain.advantages[0] < credit.advantages[0]


# --- PRE-GRPO -----------------------------------------------------------------------------------
def test_pre_grpo_peak_retention_efficiency_known_answer():
    # e0 q = [0.2, 0.9, 0.5]: 0.9 - 0.5 * 0.4 - 0.1 * (3 - 2) / 3 = 0.6667
    # e1 q = [0.6, 0.6]:      0.6 - 0.5 * 0.0 - 0.1 * (2 - 1) / 3 = 0.5667 (T_max = 3)
    e0 = ep("t", 0, [turn(0, 0.2), turn(1, 0.9), turn(2, 0.5, end=True)])
    e1 = ep("t", 1, [turn(0, 0.6), turn(1, 0.6, end=True)])
    credit = run("pre_grpo", batch_of(grp("t", [e0, e1])), eps=0.0)
    np.testing.assert_allclose(credit.advantages, [S] * 3 + [-S] * 2, atol=1e-9)
    assert credit.metrics["pre_reward_mean"] == pytest.approx((0.66667 + 0.56667) / 2, abs=1e-4)
    # With equal peak and retention weights only the final quality and the waste count:
    final = run("pre_grpo", batch_of(grp("t", [e0, e1])), eps=0.0, w_retention=1.0)
    np.testing.assert_allclose(final.advantages, [-S] * 3 + [S] * 2, atol=1e-9)
    info = run("pre_grpo", batch_of(grp("t", [
        ep("t", 0, [turn(0, info={"score": 1.0}, end=True)]),
        ep("t", 1, [turn(0, info={"score": 0.5}, end=True)])])), source="info")  # fmt: skip
    assert info.advantages[0] > 0 > info.advantages[1]


# --- SLEA-RL ------------------------------------------------------------------------------------
def test_slea_rl_step_groups_over_structural_clusters():
    # Turn 0 observations differ only in a number: one cluster. Returns (gamma 1): e0 [1, 1],
    # e1 [0, 0]; episode level +-0.7071, cluster at turn 0: +-0.7071; turn 1 observations
    # differ in words: singletons, no step term.
    e0 = ep("t", 0, [turn(0, obs="You have 3 coins"), turn(1, 1.0, obs="door open", end=True)])
    e1 = ep("t", 1, [turn(0, obs="You have 5 coins"), turn(1, 0.0, obs="wall", end=True)])
    credit = run("slea_rl", batch_of(grp("t", [e0, e1])), gamma=1.0, eps=0.0)
    np.testing.assert_allclose(credit.advantages, [2 * S, S, -2 * S, -S], atol=1e-9)
    exact = run("slea_rl", batch_of(grp("t", [e0, e1])), gamma=1.0, eps=0.0, cluster="state")
    np.testing.assert_allclose(exact.advantages, [S, S, -S, -S], atol=1e-9)


def test_slea_rl_library_is_retrieved_into_the_prompt():
    hooks = hooks_for(resolve_estimator("slea_rl", {"retrieve": 1}))
    assert isinstance(hooks, ExperienceHooks)
    ctx = CreditContext()
    e0 = ep("t", 0, [turn(0, 1.0, obs="You have 3 coins", action="<action>buy</action>",
                          end=True)])  # fmt: skip
    e1 = ep("t", 1, [turn(0, 0.0, obs="You have 4 coins", action="<action>wait</action>",
                          end=True)])  # fmt: skip
    hooks.after_collect([grp("t", [e0, e1])], ctx)
    seen = hooks.augment(Conversation("Play.", (), "You have 12 coins", "x", "t2"), ctx)
    assert seen.instructions.endswith("- <action>buy</action> (return 1.00)")
    other = hooks.augment(Conversation("Play.", (), "A door.", "x", "t2"), ctx)
    assert other.instructions == "Play."


# --- PIPO ---------------------------------------------------------------------------------------
def test_pipo_replays_the_previous_update_scaled_by_the_verdict():
    estimate = resolve_estimator("pipo", {"eps": 0.0})
    hooks, ctx = hooks_for(estimate), CreditContext()
    first = [grp("a", [ep("a", 0, [turn(0, end=True)], 1.0), ep("a", 1, [turn(0, end=True)])])]
    groups = hooks.after_collect(first, ctx)
    c0 = estimate(TurnBatch.from_groups(groups), ctx)
    np.testing.assert_allclose(c0.advantages, [S, -S])  # plain GRPO, nothing to verify yet
    second = [grp("b", [ep("b", i, [turn(0, end=True)], 1.0, round_=1) for i in range(2)], 1)]
    groups = hooks.after_collect(second, ctx)
    assert [g.group_id for g in groups] == ["b@1", "pipo-replay:a@0"]
    c1 = estimate(TurnBatch.from_groups(groups), ctx)
    # mu rose from 0.5 to 1.0; window std 0 -> floor 0.05 -> xi = 10, clipped to 3.
    assert c1.metrics["pipo_xi"] == 3.0
    np.testing.assert_allclose(c1.advantages, [0, 0, 3 * S, -3 * S], atol=1e-9)


# --- R³ -----------------------------------------------------------------------------------------
def test_r3_replays_a_past_success_reflects_and_ranks_failures():
    estimate = resolve_estimator("r3", {"eps": 0.0})
    hooks, ctx = hooks_for(estimate), CreditContext()
    assert isinstance(hooks, R3Hooks)
    win = ep("q", 0, [turn(0, action="<action>42</action>", end=True)], 1.0)
    hooks.after_collect([grp("q", [win, ep("q", 1, [turn(0, end=True)])])], ctx)
    # Next visit: both fail -> the stored success replaces the last rollout.
    calm = trace("ab", [-0.1, -0.1])  # low, steady surprisal
    wild = trace("ab", [-0.1, -3.0])  # one high-entropy fork
    fails = [ep("q", i, [turn(0, action="<action>7</action>", end=True, tr=t)], 0.0, round_=1)
             for i, t in enumerate([calm, wild, calm])]  # fmt: skip
    groups = hooks.after_collect([grp("q", fails, 1)], ctx)
    assert groups[0].episodes[-1] is win and ctx.state["r3"]["replayed"] == [win.episode_id]
    convo = hooks.augment(Conversation("Solve.", (), "?", "x", "q"), ctx)
    assert "Earlier attempts at this task failed" in convo.instructions
    assert "<action>7</action>" in convo.instructions
    credit = estimate(TurnBatch.from_groups(groups), ctx)
    # Failures ranked: calm (score 0.1) below wild (3.0 - 0.5 * 1.45 = 2.275): bonus 0, 0.1.
    scores = np.array([0.0, 0.1, 1.0])
    want = (scores - scores.mean()) / scores.std(ddof=1)
    np.testing.assert_allclose(credit.advantages, want, atol=1e-9)
    assert credit.metrics["replayed_episodes"] == 1.0


# --- Skill-R1 -----------------------------------------------------------------------------------
def test_skill_r1_conditions_on_a_revised_skill_and_adds_the_inter_generation_gain():
    estimate = resolve_estimator("skill_r1", {"eps": 0.0})
    hooks, ctx = hooks_for(estimate), CreditContext()
    assert isinstance(hooks, SkillHooks)
    g0 = grp("q", [ep("q", 0, [turn(0, action="look", end=True)], 0.0),
                   ep("q", 1, [turn(0, action="open", end=True)], 0.0)])  # fmt: skip
    c0 = estimate(TurnBatch.from_groups(hooks.after_collect([g0], ctx)), ctx)
    np.testing.assert_allclose(c0.advantages, [0.0, 0.0])  # generation 0: no inter term
    convo = hooks.augment(Conversation("Play.", (), "?", "x", "q"), ctx)
    assert "Skill (generation 1)" in convo.instructions
    assert "Avoid ending with: look | open" in convo.instructions
    g1 = grp("q", [ep("q", i, [turn(0, end=True)], o, round_=1) for i, o in enumerate([1.0, 0.0])],
             1)  # fmt: skip
    c1 = estimate(TurnBatch.from_groups(hooks.after_collect([g1], ctx)), ctx)
    # intra +-0.7071, inter = mean 0.5 - previous mean 0.0
    np.testing.assert_allclose(c1.advantages, [S + 0.5, -S + 0.5], atol=1e-9)


# --- UFO ----------------------------------------------------------------------------------------
def test_ufo_recomputes_the_try_again_return():
    def attempt(t, correct, answer, end=False):
        parts = {"correct": 0.5**t if correct else 0.0}
        return turn(t, info={"success": correct, "reward_components": parts},
                    action=f"<answer>{answer}</answer>", end=end)  # fmt: skip

    # e0: 5, 5, 7 (right at attempt 2): 0.25 - 0.5 * (1 - 2/3) = 0.0833; e1: right at once: 1.
    e0 = ep("t", 0, [attempt(0, False, 5), attempt(1, False, " 5 "), attempt(2, True, 7, True)])
    e1 = ep("t", 1, [attempt(0, True, 7, True)])
    credit = run("ufo", batch_of(grp("t", [e0, e1])), eps=0.0)
    assert credit.metrics["ufo_return_mean"] == pytest.approx((0.25 - 0.5 / 3 + 1.0) / 2)
    np.testing.assert_allclose(credit.advantages, [-S] * 3 + [S])


def test_ufo_matches_the_env_return_on_try_again_rollouts():
    from turngym.agents import RandomAgent
    from turngym.rollout import collect
    from turngym.trainers.credit.ufo import _ufo_returns

    groups = collect("turngym/TryAgain-v0", RandomAgent(seed=1), 6, 3, split="test")
    batch = TurnBatch.from_groups(groups)
    env_returns = [e.total_reward for g in groups for e in g.episodes]
    np.testing.assert_allclose(_ufo_returns(batch, 0.5, 0.5, "answer"), env_returns, atol=1e-9)


# --- Contract on the options --------------------------------------------------------------------
@pytest.mark.parametrize(("name", "params"), [
    ("rank_grpo", {"reward": "log_decay", "scale_rewards": False, "between": "zero"}),
    ("f_grpo", {"singleton": "raw", "earlier_turns": "zero"}),
    ("matchtir", {"matching": "ot", "answer": "match"}),
    ("mapo", {"mix": "whiten", "outcome_weight": 1.0}),
    ("scrl", {"progress": False, "singleton": "raw"}),
    ("pre_grpo", {"max_turns": 10, "singleton": "zero"}),
    ("slea_rl", {"cluster": "state", "score": "outcome"}),
    ("pipo", {"replay": False, "score": "return"}),
    ("r3", {"rank_reward": 0.0, "replay": False}),
    ("skill_r1", {"inter_weight": 0.5}),
    ("ufo", {"gamma": 1.0, "lam": 0.0}),
])  # fmt: skip
def test_structured_options_pass_check_estimator(name, params):
    check_estimator(name, **params)


def test_vectorised_matching_equals_the_per_episode_reference():
    from turngym.trainers.credit.matchtir import greedy_match_batch, sinkhorn_match_batch

    rng = np.random.default_rng(0)
    for _ in range(30):
        shapes = [(int(rng.integers(0, 5)), int(rng.integers(1, 4))) for _ in range(4)]
        width_p = max(p for p, _ in shapes)
        width_g = max(g for _, g in shapes)
        tensor = np.zeros((4, width_p, width_g))
        valid = np.zeros(tensor.shape, bool)
        for e, (p, g) in enumerate(shapes):
            values = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=(p, g))  # ties on purpose
            tensor[e, :p, :g], valid[e, :p, :g] = values, True
        greedy = greedy_match_batch(tensor)
        soft = sinkhorn_match_batch(tensor, valid)
        for e, (p, g) in enumerate(shapes):
            np.testing.assert_allclose(greedy[e, :p], greedy_match(tensor[e, :p, :g]))
            np.testing.assert_allclose(soft[e, :p], sinkhorn_match(tensor[e, :p, :g]), atol=1e-9)


def test_judge_source_is_required_at_config_time():
    from turngym.trainers.credit import MissingRequirementError, resolve_estimator

    # With source="judge" MAPO and PRE-GRPO read a judge: no judge, no run (at config time).
    for name in ("mapo", "pre_grpo"):
        with pytest.raises(MissingRequirementError, match="requires judge"):
            resolve_estimator(name, {"source": "judge"}, {"probe", "critic", "state"})
        resolve_estimator(name, {"source": "reward"}, set())  # other sources need nothing
        resolve_estimator(name, {"source": "judge"}, {"judge"})
