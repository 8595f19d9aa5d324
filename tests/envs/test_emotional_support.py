from __future__ import annotations

import statistics

import pytest

import turngym
from turngym.agents import OracleAgent, RandomAgent
from turngym.envs.dialogue.emotional_support import JUDGE_SCORE, EmotionalSupport
from turngym.envs.dialogue.support_judge import JUDGE_PROMPT, LLMJudge, RuleJudge, make_judge
from turngym.envs.dialogue.support_world import recognise, wellbeing
from turngym.evals.stats import mean_interval
from turngym.rollout import collect
from turngym.trainers.hooks import InfoJudge, env_judge

ES = "turngym/EmotionalSupport-v0"


def fresh(seed: int = 0, **knobs) -> EmotionalSupport:
    env = EmotionalSupport(**knobs)
    env.reset(seed=seed, options={"split": "test"})
    return env


def test_strategies_are_recognised_in_free_text():
    def found(text, told=(), past=()):
        return {k for k, v in recognise(text, list(told), list(past)).items() if v}

    assert found("It sounds like you feel scared. What happened?") == {
        "reflection", "question_open"}  # fmt: skip
    assert "restatement" in found("Losing the bakery job is a lot.", told=["bakery"])
    assert "restatement" not in found("Losing the bakery job is a lot.")  # not told yet
    assert found("Your feelings are valid.") == {"validation"}
    assert found("Maybe try a walk?") >= {"suggestion", "question_closed"}
    assert "minimising" in found("At least it could be worse.")
    assert "unsafe" in found("Just drink it away tonight.")
    assert "repetition" in found("Tell me more about your week please.",
                                 past=["tell me more about your week"])  # fmt: skip
    assert "too_short" in found("Okay.")


def test_good_support_helps_and_faults_hurt():
    env = fresh()
    before = env.score()
    _, reward, *_ = env.step("<action>It sounds like you feel hurt. What happened?</action>")
    assert reward > 0 and env.score() == pytest.approx(before + reward)
    bad = fresh()
    _, reward, *_, info = bad.step("<action>Just drink it away and get even with them.</action>")
    assert reward < 0 and info["metrics"]["strategies_used"] == {}
    rep = fresh()
    text = "<action>It sounds like you feel hurt. What happened?</action>"
    rep.step(text)
    _, reward, *_ = rep.step(text)
    assert reward < 0
    assert any(line in rep.render_text() for line in ("already said", "same thing"))


def test_advice_backfires_before_trust():
    env = fresh()
    _, reward, *_ = env.step("<action>You could make a plan and talk to a friend.</action>")
    assert reward < 0
    assert any(line in env.render_text() for line in ("not ready", "whole story"))


def test_judge_score_is_the_reward_in_info_and_an_info_judge():
    env = turngym.make(ES)
    env.reset(seed=3, options={"split": "test"})
    _, reward, _, _, info = env.step(env.unwrapped.oracle_action())
    assert info[JUDGE_SCORE] == reward == info["rule_judge_score"]
    assert info["reward_components"] == {"judge": reward}
    _, reward, _, _, info = env.step("no tags")
    assert reward == 0.0 and info[JUDGE_SCORE] == 0.0 and not info["action_valid"]
    judge = env_judge(env)
    assert isinstance(judge, InfoJudge) and judge.key == JUDGE_SCORE
    assert env_judge(turngym.make("turngym/FrozenLake-v0")) is None


def test_untold_details_never_reach_the_agent_before_the_seeker_tells_them():
    for agent_kind in ("oracle", "random"):
        for seed in range(8):
            env = fresh(seed)
            texts = [env.instructions(), env.render_text()]
            assert not env.leak_check("\n".join(texts)), seed
            for turn in range(12):
                action = (env.oracle_action() if agent_kind == "oracle"
                          else env.action_space.sample())  # fmt: skip
                obs, _, done, _, _ = env.step(action)
                assert not env.leak_check(obs), (agent_kind, seed, turn, obs)
                if done:
                    break
    env = fresh(1)
    secret = env.persona["facts"][0]["secrets"][0]
    assert env.leak_check(f"is it about {secret}?")  # the check can fail


def test_oracle_uncovers_facts_and_succeeds_more_than_random():
    oracle = collect(ES, OracleAgent(), 12, 1, split="test")
    random = collect(ES, RandomAgent(seed=0), 12, 1, split="test")
    told = [e.turns[-1].info["metrics"]["facts_told"] for g in oracle for e in g.episodes]
    assert statistics.fmean(told) > 2.5
    success = [statistics.fmean(e.success for g in run for e in g.episodes)
               for run in (oracle, random)]  # fmt: skip
    assert success[0] > 0.4 and success[1] == 0.0


@pytest.mark.slow
def test_oracle_judge_score_is_above_random_with_intervals_apart_over_200_tasks():
    intervals = {}
    for name, agent in (("oracle", OracleAgent()), ("random", RandomAgent(seed=0))):
        groups = collect(ES, agent, 200, 1, split="test")
        scores = [t.info[JUDGE_SCORE] for g in groups for e in g.episodes for t in e.turns]
        mean = statistics.fmean(scores)
        intervals[name] = mean_interval(mean, statistics.stdev(scores), len(scores))
    assert intervals["oracle"][0] > intervals["random"][1], intervals


def test_knobs_and_levels_are_validated():
    with pytest.raises(ValueError, match="needs must be a non-empty list"):
        EmotionalSupport(needs=["hugs"])
    with pytest.raises(ValueError, match="trust_start"):
        EmotionalSupport(trust_start=0.9)
    with pytest.raises(ValueError, match="not a judge"):
        EmotionalSupport(judge="gpt")
    easy, hard = fresh(2, level=0), fresh(2, level=3)
    assert len(easy.persona["facts"]) == 2 and len(hard.persona["facts"]) == 3
    assert EmotionalSupport(needs=["advice"]).reset(seed=0)[1]["privileged"]["need"] == "advice"


def test_make_judge_and_rule_judge():
    assert isinstance(make_judge(None), RuleJudge) and isinstance(make_judge("rule"), RuleJudge)
    judge = make_judge("openai:m@http://127.0.0.1:9/v1?temperature=0.5")
    assert isinstance(judge, LLMJudge) and judge.options["temperature"] == 0.5
    assert wellbeing({"distress": 1.0, "trust": 0.0, "understood": 0.0}) == 0.0


# --- The LLM judge against the loopback OpenAI-compatible server --------------------------------
@pytest.fixture(scope="module")
def server():
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from openai_server import serve_openai

    with serve_openai(ES) as running:
        yield running


def test_llm_judge_scores_turns_with_a_cached_seeded_prompt(server):
    server.reset()
    env = EmotionalSupport(judge=f"openai:tiny@{server.base_url}?max_retries=1")
    env.reset(seed=4, options={"split": "test"})
    reply = "<action>It sounds like you feel hurt. What happened?</action>"
    _, reward, _, _, info = env.step(reply)
    assert len(server.requests) == 1
    body = server.requests[0].body
    assert body["messages"][0] == {"role": "system", "content": JUDGE_PROMPT}
    sent = body["messages"][1]["content"]
    assert "Supporter's last reply:\nIt sounds like you feel hurt." in sent
    assert body["temperature"] == 0.0 and body["seed"] is not None
    judge = env.judge
    assert judge.calls == 1 and -0.15 <= reward <= 0.15
    if judge.fallbacks:  # the random tiny model rarely writes a rating: the rule judge stands in
        assert reward == info["rule_judge_score"]
    # The same turn again (a fresh episode of the same task): answered from the cache.
    env.reset(seed=4, options={"split": "test"})
    _, again, *_ = env.step(reply)
    assert again == reward and len(server.requests) == 1 and judge.calls == 1
    # Another env with the same judge spec sends the same seeded request.
    other = EmotionalSupport(judge=f"openai:tiny@{server.base_url}?max_retries=1")
    other.reset(seed=4, options={"split": "test"})
    _, third, *_ = other.step(reply)
    assert third == reward and server.requests[1].body["seed"] == body["seed"]
    env.judge.close()
    other.judge.close()


def test_llm_judge_parses_ratings_and_survives_pickling(server):
    judge = LLMJudge(f"tiny@{server.base_url}")
    from turngym.envs.dialogue.support_judge import JudgeInput

    turn = JudgeInput("Seeker: hi", "hello", "Okay.", 0.2, 0.25)
    judge.rate = lambda t: 3.0  # type: ignore[method-assign]
    assert judge.score(turn) == pytest.approx(0.15)
    judge.rate = lambda t: None  # type: ignore[method-assign]
    assert judge.score(turn) == pytest.approx(0.05) and judge.fallbacks == 1
    import pickle

    clone = pickle.loads(pickle.dumps(LLMJudge(f"tiny@{server.base_url}")))
    assert clone.spec.startswith("openai:tiny@") and clone._agent is None
