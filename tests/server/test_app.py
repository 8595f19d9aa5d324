"""The server app through Starlette's in-process client: protocol, robustness, extensions."""

from __future__ import annotations

import json
import time
from typing import Any

import gymnasium
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from toy_envs import Counter

from turngym.server.app import create_app

BUILT: list[int] = []
CLOSED: list[int] = []


class ClosingCounter(Counter):
    """Counter that records which instances were built and closed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        BUILT.append(id(self))

    def close(self) -> None:
        CLOSED.append(id(self))
        super().close()


if "test/ClosingCounter-v0" not in gymnasium.registry:
    gymnasium.register(id="test/ClosingCounter-v0", entry_point=ClosingCounter,
                       max_episode_steps=15)  # fmt: skip


def ask(ws: Any, kind: str, data: dict | None = None) -> dict:
    """Send one message and return the reply."""
    ws.send_text(json.dumps({"type": kind} if data is None else {"type": kind, "data": data}))
    return ws.receive_json()


@pytest.fixture
def client():
    with TestClient(create_app(["test/Counter-v0", "turngym/FrozenLake-v0"])) as c:
        yield c


def stats(client: TestClient) -> dict:
    return client.get("/metadata").json()["turngym"]


def settled(client: TestClient, sessions: int, timeout: float = 5.0) -> int:
    """Active sessions once they reach ``sessions`` (closing sockets release asynchronously)."""
    deadline = time.monotonic() + timeout
    while (active := stats(client)["active_sessions"]) != sessions and time.monotonic() < deadline:
        time.sleep(0.02)
    return active


def test_reset_step_state_round_trip(client):
    with client.websocket_connect("/ws") as ws:
        reply = ask(ws, "reset", {"seed": 0, "split": "test", "episode_id": "ep-1"})
        assert reply["type"] == "observation" and reply["data"]["done"] is False
        data = reply["data"]
        assert data["reward"] is None and data["observation"]["text"].startswith("value=0")
        meta = data["metadata"]
        assert data["observation"]["metadata"] == meta  # mirrored, as OpenEnv does
        assert meta["privileged"] == {} and meta["instructions"] and meta["task_id"]
        assert meta["state_key"] == "v=0" and meta["terminated"] is meta["truncated"] is False
        data = ask(ws, "step", {"message": "<action>inc</action>"})["data"]
        assert data["metadata"]["action_valid"] is True and data["metadata"]["state_key"] == "v=1"
        assert isinstance(data["reward"], float) and "reward_components" in data["metadata"]
        state = ask(ws, "state")
        assert state == {"type": "state", "data": {
            "episode_id": "ep-1", "step_count": 1, "env_id": "test/Counter-v0",
            "task_id": meta["task_id"], "state_key": "v=1", "done": data["done"]}}  # fmt: skip


def test_the_session_applies_the_time_limit(client):
    with client.websocket_connect("/ws") as ws:
        ask(ws, "reset", {"seed": 0})
        for turn in range(1, 16):
            data = ask(ws, "step", {"message": "no tag"})["data"]
            assert data["metadata"]["truncated"] is (turn == 15)
            assert data["metadata"]["terminated"] is False and data["done"] is (turn == 15)


def test_malformed_frames_get_errors_and_the_socket_stays_usable():
    app = create_app(["test/Counter-v0"], max_message_bytes=4096)
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ask(ws, "reset", {"seed": 1})
        for frame, code in [("{oops", "INVALID_JSON"), ('{"type": "fly"}', "UNKNOWN_TYPE"),
                            ('{"type": "step", "data": {"act": 1}}', "VALIDATION_ERROR"),
                            ('"just a string"', "VALIDATION_ERROR"),
                            (json.dumps({"type": "step", "data": {"message": "é" * 3000}}),
                             "MESSAGE_TOO_LARGE")]:  # fmt: skip
            ws.send_text(frame)
            reply = ws.receive_json()
            assert reply["type"] == "error" and reply["data"]["code"] == code, reply
        ws.send_bytes(json.dumps({"type": "step", "data": {"message": "<action>inc</action>"}})
                      .encode())  # fmt: skip
        assert ws.receive_json()["data"]["metadata"]["state_key"] == "v=1"  # same episode


def test_close_message_ends_the_session(client):
    with client.websocket_connect("/ws") as ws:
        ask(ws, "reset")
        assert stats(client)["active_sessions"] == 1
        ws.send_text('{"type": "close"}')
        with pytest.raises(WebSocketDisconnect):
            ws.receive_json()
    assert stats(client)["active_sessions"] == 0


def test_capacity_limit():
    with TestClient(create_app(["test/Counter-v0"], max_sessions=2)) as client:
        with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b:
            ask(a, "reset"), ask(b, "reset")
            with client.websocket_connect("/ws") as c:
                reply = c.receive_json()
                assert reply["data"]["code"] == "CAPACITY_REACHED"
                assert reply["data"]["active_sessions"] == reply["data"]["max_sessions"] == 2
                assert "--max-sessions" in reply["data"]["message"]
                with pytest.raises(WebSocketDisconnect):
                    c.receive_json()
        with client.websocket_connect("/ws") as d:  # the others left: room again
            assert ask(d, "reset")["type"] == "observation"


def test_idle_sessions_are_reaped():
    with TestClient(create_app(["test/Counter-v0"], idle_timeout_s=0.2)) as client:
        with client.websocket_connect("/ws") as ws:
            ask(ws, "reset")
            time.sleep(0.6)
            reply = ws.receive_json()  # sent by the reaper without being asked
            assert reply["data"]["code"] == "SESSION_ERROR" and "0.2 s" in reply["data"]["message"]
            with pytest.raises(WebSocketDisconnect):
                ws.receive_json()
        assert stats(client)["active_sessions"] == 0 and stats(client)["reaped_sessions"] == 1


def test_env_errors_stay_in_their_session(client):
    with client.websocket_connect("/ws") as bad, client.websocket_connect("/ws") as good:
        ask(bad, "make", {"env_id": "test/Counter-v0", "env_kwargs": {"fail_at_turn": 1}})
        ask(bad, "reset", {"seed": 0}), ask(good, "reset", {"seed": 0})
        error = ask(bad, "step", {"message": "<action>inc</action>"})["data"]
        assert error["code"] == "EXECUTION_ERROR" and error["exception"] == "RuntimeError"
        assert "simulated env crash" in error["message"]
        assert ask(good, "step", {"message": "<action>inc</action>"})["type"] == "observation"
        reply = ask(bad, "reset", {"seed": 0, "env_kwargs": {}})  # same socket, healthy env
        assert ask(bad, "step", {"message": "<action>inc</action>"})["type"] == "observation"
        assert reply["type"] == "observation"


def test_step_before_reset_and_bad_options_are_errors(client):
    with client.websocket_connect("/ws") as ws:
        assert "send 'reset'" in ask(ws, "step", {"message": "x"})["data"]["message"]
        error = ask(ws, "reset", {"options": {"colour": "red"}})["data"]
        # Checked before the env is touched: a bad-input reply, the session unchanged.
        assert error["code"] == "VALIDATION_ERROR" and error["exception"] == "ValueError"
        assert "Unknown reset option" in error["message"]


def test_make_checks_env_ids_and_kwargs(client):
    with client.websocket_connect("/ws") as ws:
        info = ask(ws, "make", {"env_id": "turngym/FrozenLake-v0", "env_kwargs": {"level": 1}})
        assert info["type"] == "env" and info["data"]["max_episode_steps"] == 20
        assert info["data"]["env_kwargs"] == {"level": 1} and info["data"]["action_examples"]
        error = ask(ws, "make", {"env_id": "turngym/FrozenLak-v0"})["data"]
        assert error["code"] == "VALIDATION_ERROR" and "Did you mean" in error["message"]
        error = ask(ws, "make", {"env_id": "test/Counter-v0",
                                 "env_kwargs": {"tasks_file": "/etc/passwd"}})["data"]
        assert error["code"] == "VALIDATION_ERROR" and "--privileged" in error["message"]
        error = ask(ws, "make", {"env_id": "test/Counter-v0", "env_kwargs": {"level": 99}})["data"]
        assert error["code"] == "FACTORY_ERROR" and error["exception"] == "ValueError"
        reply = ask(ws, "reset", {"env_id": "turngym/FrozenLake-v0", "seed": 0})  # OpenEnv style
        assert reply["data"]["metadata"]["task_id"].startswith("frozenlake-")


def test_privileged_info_only_with_the_flag():
    for privileged in (False, True):
        app = create_app(["test/Counter-v0"], privileged=privileged)
        with TestClient(app) as client, client.websocket_connect("/ws") as ws:
            meta = ask(ws, "reset", {"seed": 3})["data"]["metadata"]
            assert ("target" in meta["privileged"]) is privileged
            text = json.dumps(ask(ws, "step", {"message": "<action>inc</action>"}))
            assert ("THE-TARGET-IS" in text) is privileged
            assert client.get("/metadata").json()["turngym"]["privileged"] is privileged


def test_snapshot_restore_and_fork(client):
    with client.websocket_connect("/ws") as ws:
        ask(ws, "reset", {"seed": 5, "episode_id": "root"})
        ask(ws, "step", {"message": "<action>inc</action>"})
        snapshot_id = ask(ws, "snapshot")["data"]["snapshot_id"]
        first = ask(ws, "step", {"message": "<action>inc</action>"})
        restored = ask(ws, "restore", {"snapshot_id": snapshot_id})
        assert restored["data"]["metadata"]["state_key"] == "v=1"
        assert ask(ws, "step", {"message": "<action>inc</action>"}) == first
        assert ask(ws, "state")["data"]["step_count"] == 2
        session_id = ask(ws, "fork")["data"]["session_id"]
        with client.websocket_connect(f"/ws?session_id={session_id}") as child:
            assert ask(child, "state")["data"]["step_count"] == 2
            assert ask(child, "step", {"message": "<action>dec</action>"})["type"] == "observation"
            with client.websocket_connect(f"/ws?session_id={session_id}") as again:
                assert again.receive_json()["data"]["code"] == "SESSION_ERROR"
        assert ask(ws, "state")["data"]["state_key"] == "v=2"  # the parent is untouched
        error = ask(ws, "restore", {"snapshot_id": "nope"})["data"]
        assert error["code"] == "VALIDATION_ERROR" and "Unknown snapshot_id" in error["message"]
    with client.websocket_connect("/ws?session_id=unknown") as ws:
        assert ws.receive_json()["data"]["code"] == "SESSION_ERROR"


def test_leak_check_accepts_only_texts_the_session_sent(client):
    with client.websocket_connect("/ws") as ws:
        obs = ask(ws, "reset", {"seed": 2})["data"]["observation"]["text"]
        assert ask(ws, "leak_check", {"text": obs})["data"] == {"problems": []}
        error = ask(ws, "leak_check", {"text": "THE-TARGET-IS-3"})["data"]
        assert error["code"] == "VALIDATION_ERROR"


def test_http_endpoints(client):
    assert client.get("/health").json() == {"status": "healthy"}
    meta = client.get("/metadata").json()
    assert meta["name"] == "turngym" and isinstance(meta["description"], str)
    assert set(meta["turngym"]["envs"]) == {"test/Counter-v0", "turngym/FrozenLake-v0"}
    schema = client.get("/schema").json()
    assert schema["action"]["properties"]["message"]["type"] == "string"
    assert {"observation", "state"} <= schema.keys()
    reset = client.post("/reset", json={"seed": 4, "split": "test"}).json()
    assert reset["done"] is False and reset["observation"]["text"].startswith("value=0")
    step = client.post("/step", json={"action": {"message": "<action>inc</action>"},
                                      "snapshot_id": reset["metadata"]["snapshot_id"]}).json()
    assert step["metadata"]["state_key"] == "v=1" and step["metadata"]["snapshot_id"]
    state = client.get("/state", params={"snapshot_id": step["metadata"]["snapshot_id"]}).json()
    assert state["step_count"] == 1 and state["state_key"] == "v=1"
    missing = client.post("/step", json={"action": {"message": "x"}})
    assert missing.status_code == 422 and "snapshot_id" in missing.json()["detail"]["message"]
    assert client.post("/reset", json={"seed": 1, "bogus": 1}).status_code == 422
    assert client.get("/state").json()["step_count"] == 0
    tools = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert tools.json()["result"] == {"tools": []}
    assert client.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "x"}).json()["error"]
    assert stats(client)["active_sessions"] == 0  # HTTP episodes hold no session


def test_shutdown_closes_every_env():
    BUILT.clear(), CLOSED.clear()
    with TestClient(create_app(["test/ClosingCounter-v0"])) as client:
        with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b:
            ask(a, "reset"), ask(b, "reset")
            ask(a, "fork")  # a fork nobody attached: it closes with a's socket
            assert stats(client)["active_sessions"] == 3
        with client.websocket_connect("/ws") as c:
            ask(c, "reset")
            assert settled(client, 1) == 1  # c only: a's waiting fork went with a
    assert len(BUILT) == 5 and sorted(BUILT) == sorted(CLOSED)  # probe, a, b, fork, c
