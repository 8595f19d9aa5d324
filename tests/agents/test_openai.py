from __future__ import annotations

import asyncio
import socket
import time

import pytest

pytest.importorskip("httpx")
pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from openai_server import serve_openai  # noqa: E402

import turngym  # noqa: E402
from turngym.agents import make_agent  # noqa: E402
from turngym.agents.openai import (  # noqa: E402
    DEFAULT_BASE_URL,
    OpenAIAgent,
    OpenAIAgentError,
    parse_spec,
)
from turngym.rollout import acollect, collect  # noqa: E402
from turngym.types import Conversation  # noqa: E402

LAKE = "turngym/FrozenLake-v0"
KEY = "sk-test-0123456789"


@pytest.fixture(scope="module")
def _server():
    with serve_openai(LAKE) as server:
        yield server


@pytest.fixture
def server(_server):
    _server.reset()
    yield _server
    _server.reset()


@pytest.fixture(scope="module")
def conversations() -> list[Conversation]:
    env = turngym.make(LAKE)
    out = []
    for k in range(4):
        observation, info = env.reset(seed=k)
        turns = tuple(("____\n_P__", "<action>down</action>") for _ in range(k % 2))
        out.append(Conversation(info["instructions"], turns, observation, episode_id=f"test/{k}"))
    return out


def _agent(server, **kwargs) -> OpenAIAgent:
    kwargs = {"max_tokens": 6, "backoff": 0.001, **kwargs}
    return OpenAIAgent("tiny", server.base_url, **kwargs)


# --- Spec strings and settings (no server) ------------------------------------------------


def test_parse_spec_splits_at_the_first_at_before_a_scheme():
    spec = parse_spec("org/Model:v2@beta@https://user:pw@host:8000/v1?temperature=0&stop=a&stop=b")
    assert spec == {
        "model": "org/Model:v2@beta",
        "base_url": "https://user:pw@host:8000/v1",
        "temperature": 0.0,
        "stop": ["a", "b"],
    }
    assert parse_spec("gpt-4o-mini") == {"model": "gpt-4o-mini", "base_url": DEFAULT_BASE_URL}
    assert parse_spec("m@http://h/v1?seed=none&logprobs=yes&max_tokens=4") == {
        "model": "m", "base_url": "http://h/v1", "seed": None, "logprobs": True, "max_tokens": 4,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("arg", "match"),
    [
        ("m@http://h/v1?temprature=0", "Did you mean 'temperature'"),
        ("m@http://h/v1?temperature=hot", "temperature='hot'"),
        ("m@http://h/v1?api_key=sk-1", "OPENAI_API_KEY"),
        ("@http://h/v1", "names no model"),
    ],
)
def test_parse_spec_errors(arg, match):
    with pytest.raises(ValueError, match=match):
        parse_spec(arg)


def test_make_agent_builds_from_a_spec():
    agent = make_agent("openai:tiny@http://127.0.0.1:8001/v1?temperature=0.5", seed=3)
    assert isinstance(agent, OpenAIAgent) and agent.prefers_async
    assert (agent.model, agent.base_url, agent.seed, agent.temperature) == (
        "tiny", "http://127.0.0.1:8001/v1", 3, 0.5,
    )  # fmt: skip
    with pytest.raises(ValueError, match="openai needs a model"):
        make_agent("openai")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base_url": "127.0.0.1:8000/v1"}, "http://"),
        ({"top_p": 0.0}, "top_p"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"history": -1}, "history"),
    ],
)
def test_invalid_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OpenAIAgent("m", **{"base_url": "http://h/v1", **kwargs})


def test_messages_window_and_instructions():
    conversation = Conversation("rules", (("o1", "a1"), ("o2", "a2")), "o3", episode_id="e")
    agent = OpenAIAgent("m", "http://h/v1", history=1, include_instructions=False)
    assert agent.messages(conversation) == [
        {"role": "user", "content": "o2"},
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "o3"},
    ]
    assert OpenAIAgent("m", "http://h/v1").messages(conversation)[0]["role"] == "system"


def test_request_seeds_depend_on_episode_and_turn_not_on_order():
    agent = OpenAIAgent("m", "http://h/v1", seed=0)
    a, b = Conversation("", (), "x", episode_id="t/0@0/0"), Conversation("", (), "x", "t/0@0/1")
    assert agent.request_seed(a) == OpenAIAgent("m", "http://h/v1", seed=0).request_seed(a)
    assert agent.request_seed(a) != agent.request_seed(b)  # group members differ
    assert agent.request_seed(a) != OpenAIAgent("m", "http://h/v1", seed=1).request_seed(a)
    assert OpenAIAgent("m", "http://h/v1", seed=None).request_seed(a) is None
    agent.reseed(1)
    assert agent.request_seed(a) == OpenAIAgent("m", "http://h/v1", seed=1).request_seed(a)
    assert agent.act_batch([]) == [] and agent.last_completions == []  # no request, no thread


def test_api_key_stays_out_of_config_and_repr(monkeypatch):
    monkeypatch.setenv("MY_KEY", KEY)
    agent = OpenAIAgent("m", "https://user:pw@host/v1", api_key_env="MY_KEY")
    assert KEY not in str(agent.config()) and KEY not in repr(agent)
    assert "pw" not in agent.config()["base_url"] and "***" in repr(agent)


# --- Against the loopback server ----------------------------------------------------------


@pytest.mark.integration
def test_batch_is_ordered_and_deterministic(server, conversations):
    with _agent(server) as agent:
        batch = agent.act_batch(conversations)
        one_by_one = [agent.act_batch([c])[0] for c in conversations]
    assert batch == one_by_one  # request seeds do not depend on batching or order
    assert all(result.text and result.trace is None for result in batch)
    with _agent(server) as again, _agent(server, seed=1) as other:
        assert again.act_batch(conversations) == batch
        assert other.act_batch(conversations) != batch
    sent = server.requests[0].body
    assert sent["model"] == "tiny" and sent["max_tokens"] == 6 and sent["seed"] is not None
    assert sent["messages"][0] == {"role": "system", "content": conversations[0].instructions}


@pytest.mark.integration
def test_usage_stop_and_extra_body(server, conversations):
    with _agent(server, stop="</action>", extra_body={"top_k": 5}, seed=None) as agent:
        agent.act_batch(conversations)
        stats = agent.stats.to_dict()
        completions = agent.last_completions
    assert stats["requests"] == stats["completions"] == 4 and stats["retries"] == 0
    assert stats["completion_tokens"] == sum(c.completion_tokens for c in completions) > 0
    assert stats["prompt_tokens"] == sum(c.prompt_tokens for c in completions) > 0
    body = server.requests[0].body
    assert body["stop"] == ["</action>"] and body["top_k"] == 5 and "seed" not in body


@pytest.mark.integration
def test_logprobs_when_requested(server, conversations):
    with _agent(server, logprobs=True) as agent:
        agent.act_batch(conversations[:2])
        completions = agent.last_completions
    assert all(len(c.logprobs) == len(c.tokens) == c.completion_tokens for c in completions)
    assert all(lp <= 0 for c in completions for lp in c.logprobs)
    assert agent.last_logprobs == [c.logprobs for c in completions]
    with _agent(server) as agent:
        assert agent.complete_batch(conversations[:1])[0].logprobs is None


@pytest.mark.integration
def test_retries_recover_from_server_errors(server, conversations):
    server.reset(fail_first=2)
    with _agent(server, max_concurrency=1) as agent:
        assert len(agent.act_batch(conversations[:2])) == 2
    assert agent.stats.retries == 2 and agent.stats.requests == 4
    assert [r.status for r in server.requests] == [500, 500, 200, 200]


@pytest.mark.integration
def test_rate_limits_honour_retry_after(server, conversations):
    server.reset(rate_limit_every=2)
    start = time.monotonic()
    # A 5 s backoff would take 7 s; Retry-After: 0 makes the retries immediate.
    with _agent(server, backoff=5.0) as agent:
        assert len(agent.act_batch(conversations)) == 4
    assert time.monotonic() - start < 4.0
    # Requests 2, 4, 6 are refused: 7 requests give the 4 answers, whatever the order.
    assert agent.stats.rate_limited == agent.stats.retries == 3
    assert sorted(r.status for r in server.requests) == [200] * 4 + [429] * 3


@pytest.mark.integration
def test_persistent_failure_raises_after_max_retries(server, conversations):
    server.reset(fail_first=100)
    with _agent(server, max_retries=2) as agent, pytest.raises(OpenAIAgentError) as info:
        agent.act_batch(conversations[:1])
    assert info.value.status == 500 and len(server.requests) == 3
    assert "failed 3 times" in str(info.value) and "HTTP 500" in str(info.value)
    assert "Injected failure" in str(info.value)


@pytest.mark.integration
def test_missing_key_is_not_retried_and_says_what_to_set(server, conversations, monkeypatch):
    server.reset(require_key=KEY)
    monkeypatch.delenv("TURNGYM_TEST_KEY", raising=False)
    with _agent(server, api_key_env="TURNGYM_TEST_KEY") as agent, pytest.raises(
        OpenAIAgentError, match="set TURNGYM_TEST_KEY"
    ) as info:  # fmt: skip
        agent.act_batch(conversations[:1])
    assert info.value.status == 401 and len(server.requests) == 1
    monkeypatch.setenv("TURNGYM_TEST_KEY", KEY)
    with _agent(server, api_key_env="TURNGYM_TEST_KEY") as agent:
        assert agent.act_batch(conversations[:1])[0].text
    assert server.requests[-1].authorization == f"Bearer {KEY}"


@pytest.mark.integration
def test_rejected_key_never_shows_in_errors(server, conversations):
    server.reset(require_key=KEY)
    wrong = "sk-wrong-9876543210"
    with _agent(server, api_key=wrong) as agent, pytest.raises(OpenAIAgentError) as info:
        agent.act_batch(conversations[:1])
    assert server.requests[0].status == 401  # the server echoed the key in its message...
    assert wrong not in str(info.value) and "was rejected" in str(info.value)  # ...we did not
    assert wrong not in repr(agent) and wrong not in str(agent.config())


@pytest.mark.integration
def test_unknown_model_fails_at_once_with_a_hint(server, conversations):
    with OpenAIAgent("nope", server.base_url) as agent, pytest.raises(OpenAIAgentError) as info:
        agent.act_batch(conversations[:1])
    assert info.value.status == 404 and len(server.requests) == 1
    assert "`nope` does not exist" in str(info.value) and "model name" in str(info.value)


@pytest.mark.integration
def test_timeouts_are_retried_then_raise(server, conversations):
    server.reset(delay_s=1.5)
    start = time.monotonic()
    with _agent(server, timeout=0.2, max_retries=1) as agent, pytest.raises(
        OpenAIAgentError, match="timed out after 0.2 s"
    ) as info:  # fmt: skip
        agent.act_batch(conversations[:1])
    assert time.monotonic() - start < 1.2  # two 0.2 s attempts, not the 1.5 s delay
    assert info.value.status is None and agent.stats.requests == 2 and agent.stats.retries == 1


@pytest.mark.integration
def test_connection_errors_are_retried_then_raise(conversations):
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    agent = OpenAIAgent("tiny", f"http://127.0.0.1:{port}/v1", max_retries=1, backoff=0.001)
    with agent, pytest.raises(OpenAIAgentError, match="connection failed") as info:
        agent.act_batch(conversations[:1])
    assert info.value.status is None and agent.stats.retries == 1


@pytest.mark.integration
def test_concurrency_limit_is_respected(server, conversations):
    server.reset(delay_s=0.15)
    with _agent(server, max_concurrency=2) as agent:
        agent.act_batch(conversations + conversations[:2])
    assert server.max_in_flight == 2 and len(server.requests) == 6


@pytest.mark.integration
def test_async_twin_and_sync_call_inside_a_running_loop(server, conversations):
    with _agent(server) as agent:
        expected = agent.act_batch(conversations)

        async def both():
            return await agent.aact_batch(conversations), agent.act_batch(conversations)

        assert asyncio.run(both()) == (expected, expected)
        assert asyncio.run(agent.aact_batch(conversations)) == expected  # a second loop


@pytest.mark.integration
def test_collect_and_acollect_play_episodes(server):
    with _agent(server, history=2) as agent:
        groups = collect(LAKE, agent, tasks=4, max_turns=3)
        again = asyncio.run(acollect(LAKE, agent, tasks=4, max_turns=3))
    assert len(groups) == 4
    episodes = [ep for group in groups for ep in group.episodes]
    assert all(ep.error is None and ep.turns for ep in episodes)
    assert all(turn.action for ep in episodes for turn in ep.turns)
    actions = [[t.action for t in ep.turns] for g in groups for ep in g.episodes]
    assert actions == [[t.action for t in ep.turns] for g in again for ep in g.episodes]
