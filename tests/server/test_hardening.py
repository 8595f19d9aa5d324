"""Hostile clients cannot hurt other clients (issue 18): one regression test per defect.

Defects 1-5 and the minor ones of the issue, each with the behaviour the protocol documents:
costly knobs take preset values only and expensive calls run off the event loop (1), forks
are charged to their client and a refused fork costs nothing (2), snapshots are per client (3),
a failed ``make`` leaves the session as it was (4), HTTP bodies, headers and WebSocket frames
are refused before they are read (5), steps after ``done`` are refused, an unknown reset option
over HTTP is a 422, and the oracle works over the wire on a ``--privileged`` server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from typing import Any

import gymnasium
import httpx
import pytest
from fastapi.testclient import TestClient
from toy_envs import Counter
from websockets.sync.client import connect

from turngym.cli import main
from turngym.server.app import create_app
from turngym.server.client import RemoteEnv, RemoteEnvError
from turngym.server.limits import Quotas

from ._loopback import serve_app, serve_subprocess

pytestmark = pytest.mark.integration


class SlowReset(Counter):
    """Counter whose task draw takes ``reset_sleep`` seconds (a solver, a corpus build...)."""

    difficulty_defaults = {**Counter.difficulty_defaults, "reset_sleep": 0.0}

    def generate_task(self, rng: Any, difficulty: Any) -> dict[str, Any]:
        time.sleep(difficulty["reset_sleep"])
        return super().generate_task(rng, difficulty)


if "test/SlowReset-v0" not in gymnasium.registry:
    gymnasium.register(id="test/SlowReset-v0", entry_point=SlowReset, max_episode_steps=15,
                       kwargs={"reset_sleep": 1.5})  # fmt: skip
if "test/SearchQASmall-v0" not in gymnasium.registry:
    gymnasium.register(id="test/SearchQASmall-v0", entry_point="turngym.envs.search.env:SearchQA",
                       max_episode_steps=8, kwargs={"corpus_size": 800})  # fmt: skip


def ask(ws: Any, kind: str, data: dict | None = None) -> dict:
    """Send one message on a TestClient socket and return the reply."""
    ws.send_text(json.dumps({"type": kind} if data is None else {"type": kind, "data": data}))
    return ws.receive_json()


def stats(client: TestClient) -> dict:
    return client.get("/metadata").json()["turngym"]


def settled(client: TestClient, key: str, value: int, timeout: float = 5.0) -> int:
    """``stats[key]`` once it reaches ``value`` (closing sockets release asynchronously)."""
    deadline = time.monotonic() + timeout
    while (now := stats(client)[key]) != value and time.monotonic() < deadline:
        time.sleep(0.02)
    return now


# --- 1. Work an untrusted client can trigger is bounded ----------------------------------------
def test_costly_knobs_take_only_preset_values(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNGYM_CACHE", str(tmp_path))
    with TestClient(create_app(["test/SearchQASmall-v0"])) as client:
        with client.websocket_connect("/ws") as ws:
            error = ask(ws, "make", {"env_id": "test/SearchQASmall-v0",
                                     "env_kwargs": {"corpus_seed": 7}})["data"]  # fmt: skip
            assert error["code"] == "VALIDATION_ERROR" and "corpus_seed=7" in error["message"]
            assert "--privileged" in error["message"] and error["knob"] == "corpus_seed"
            for options in ({"difficulty": {"corpus_size": 600}},
                            {"task": {"question": "q", "answers": ["a"]}}):  # fmt: skip
                error = ask(ws, "reset", {"options": options})["data"]
                assert error["code"] == "VALIDATION_ERROR", options
            # Registered and preset values are fine (the registered 800 and level 0's 5000...).
            reply = ask(ws, "reset", {"seed": 0, "difficulty": {"corpus_size": 800}})
            assert reply["type"] == "observation"
    with TestClient(create_app(["test/SearchQASmall-v0"], privileged=True)) as client:
        with client.websocket_connect("/ws") as ws:  # trusted clients choose freely
            reply = ask(ws, "make", {"env_id": "test/SearchQASmall-v0",
                                     "env_kwargs": {"corpus_seed": 7, "corpus_size": 600}})
            assert reply["type"] == "env"


def test_an_expensive_reset_does_not_stall_other_sessions():
    """A task draw that takes 1.5 s runs off the event loop: other sessions keep stepping."""
    with serve_app(["test/Counter-v0", "test/SlowReset-v0"]) as server:
        fast = RemoteEnv(server.url, "test/Counter-v0")
        fast.reset(seed=0)
        slow = RemoteEnv(server.url, "test/SlowReset-v0")
        resetting = threading.Thread(target=slow.reset, kwargs={"seed": 12345})
        resetting.start()
        time.sleep(0.3)  # the slow reset is in progress now
        started = time.monotonic()
        for _ in range(5):
            fast.step("<action>dec</action>")
        waited = time.monotonic() - started
        resetting.join()
        assert waited < 0.75, f"5 steps took {waited:.2f} s while another session reset"
        fast.close(), slow.close()


# --- 2. Forks are charged to their client; a refused fork costs nothing ----------------------
def test_forks_of_a_socket_that_left_free_their_slots():
    with TestClient(create_app(["test/Counter-v0"], max_sessions=4)) as client:
        with client.websocket_connect("/ws") as hostile:
            ask(hostile, "reset", {"seed": 0})
            for _ in range(3):
                assert ask(hostile, "fork")["type"] == "fork"
            assert ask(hostile, "fork")["data"]["code"] == "CAPACITY_REACHED"  # server full
            assert ask(hostile, "state")["type"] == "state"  # and the socket stays usable
        assert settled(client, "active_sessions", 0) == 0
        with client.websocket_connect("/ws") as other:
            assert ask(other, "reset", {"seed": 1})["type"] == "observation"


def test_fork_quota_per_client_and_the_refused_fork_leaves_the_session():
    app = create_app(["test/Counter-v0"], quotas=Quotas(forks=2))
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ask(ws, "reset", {"seed": 3})
        ask(ws, "step", {"message": "<action>dec</action>"})
        child = ask(ws, "fork")["data"]["session_id"]
        with client.websocket_connect(f"/ws?session_id={child}") as attached:
            assert ask(attached, "fork")["type"] == "fork"  # a fork's fork: the same client
            error = ask(ws, "fork")["data"]
            assert error["code"] == "CAPACITY_REACHED" and error["max_forks"] == 2
        assert ask(ws, "state")["data"]["step_count"] == 1  # the parent is untouched
        assert ask(ws, "step", {"message": "<action>dec</action>"})["type"] == "observation"


def test_remote_fork_refused_keeps_the_parent_episode():
    with serve_app(["test/Counter-v0"], max_sessions=2) as server:
        env = RemoteEnv(server.url, "test/Counter-v0")
        env.reset(seed=0)
        env.step("<action>dec</action>")
        first = env.fork()
        with pytest.raises(RemoteEnvError) as caught:
            env.fork()  # the server is full now
        assert caught.value.code == "CAPACITY_REACHED"
        obs, *_ = env.step("<action>dec</action>")  # the same connection, the same episode
        assert obs.startswith("value=-2")
        assert first.step("<action>inc</action>")[0].startswith("value=0")
        first.close(), env.close()


def test_one_address_cannot_take_every_session_or_http_episode():
    """With a per-address cap, clients at one address leave room for the others."""
    app = create_app(["test/Counter-v0"], max_sessions=8, quotas=Quotas(per_host=2))
    with TestClient(app) as client:
        elsewhere = TestClient(app, client=("192.0.2.7", 40000))
        with client.websocket_connect("/ws") as a, client.websocket_connect("/ws"):
            ask(a, "reset", {"seed": 0})
            error = ask(a, "fork")["data"]  # a fork counts against the address too
            assert error["code"] == "CAPACITY_REACHED" and error["max_sessions_per_host"] == 2
            assert ask(a, "state")["type"] == "state"  # the refused fork changed nothing
            with client.websocket_connect("/ws") as third:
                refused = third.receive_json()["data"]
            assert refused["code"] == "CAPACITY_REACHED" and "testclient" in refused["message"]
            with elsewhere.websocket_connect("/ws") as other:
                assert ask(other, "reset", {"seed": 1})["type"] == "observation"
        with client.websocket_connect("/ws") as again:  # closing freed the address's slots
            assert settled(client, "active_sessions", 1) == 1
            assert ask(again, "reset", {"seed": 2})["type"] == "observation"
        for _ in range(2):
            assert client.post("/reset", json={}).status_code == 200
        full = client.post("/reset", json={})
        assert full.status_code == 503 and full.json()["detail"]["max_http_episodes_per_host"] == 2
        assert elsewhere.post("/reset", json={}).status_code == 200


# --- 3. Snapshots count against the client that took them ------------------------------------
def _flood(ws: Any, kind: str, count: int, batch: int = 256) -> None:
    """Send ``count`` bare messages, ``batch`` in flight at a time, and read every reply."""
    for start in range(0, count, batch):
        n = min(batch, count - start)
        for _ in range(n):
            ws.send(json.dumps({"type": kind}))
        for _ in range(n):
            ws.recv()


def test_another_clients_snapshots_do_not_evict_yours():
    with serve_app(["test/Counter-v0"]) as server:
        with connect(server.ws) as mine, connect(server.ws) as hostile:
            mine.send(json.dumps({"type": "reset", "data": {"seed": 4}}))
            mine.recv()
            mine.send(json.dumps({"type": "snapshot"}))
            kept = json.loads(mine.recv())["data"]["snapshot_id"]
            hostile.send(json.dumps({"type": "reset"}))
            hostile.recv()
            _flood(hostile, "snapshot", 4200)  # more than any server-wide table would keep
            mine.send(json.dumps({"type": "restore", "data": {"snapshot_id": kept}}))
            assert json.loads(mine.recv())["type"] == "observation"
        # The hostile client's own snapshots are capped by its quota.
        assert server.stats()["snapshots"] <= Quotas().snapshots + Quotas().orphans


def test_http_episodes_in_use_are_never_evicted(monkeypatch):
    from turngym.server import accounting

    monkeypatch.setattr(accounting, "HTTP_GRACE_S", 1.0)
    app = create_app(["test/Counter-v0"], quotas=Quotas(http_episodes=3, http_snapshots=4))
    with TestClient(app) as client:
        first = client.post("/reset", json={"seed": 1}).json()["metadata"]["snapshot_id"]
        for _ in range(2):
            assert client.post("/reset", json={}).status_code == 200
        full = client.post("/reset", json={})
        assert full.status_code == 503 and full.json()["detail"]["max_http_episodes"] == 3
        step = client.post("/step", json={"action": {"message": "<action>inc</action>"},
                                          "snapshot_id": first})  # fmt: skip
        assert step.status_code == 200  # the first chain survived the others
        chain = step.json()["metadata"]["snapshot_id"]
        for _ in range(12):  # a chain longer than its quota stays within it
            chain = client.post("/step", json={"action": {"message": "<action>dec</action>"},
                                               "snapshot_id": chain}).json()  # fmt: skip
            chain = chain["metadata"]["snapshot_id"]
        assert stats(client)["snapshots"] <= 3 * Quotas(http_snapshots=4).http_snapshots
        # Once the others have been idle for the grace period, a new episode takes the place
        # of the least recently used one; the chain in use survives.
        time.sleep(1.1)
        step = client.post("/step", json={"action": {"message": "<action>dec</action>"},
                                          "snapshot_id": chain})  # fmt: skip
        assert step.status_code == 200
        assert client.post("/reset", json={}).status_code == 200
        step = client.post("/step", json={"action": {"message": "<action>dec</action>"},
                                          "snapshot_id": step.json()["metadata"]["snapshot_id"]})
        assert step.status_code == 200


# --- 4. A failed make leaves the session as it was -------------------------------------------
def test_failed_make_or_reset_keeps_the_env_and_the_episode():
    with TestClient(create_app(["test/Counter-v0"])) as client:
        with client.websocket_connect("/ws") as ws:
            ask(ws, "reset", {"seed": 2})
            ask(ws, "step", {"message": "<action>dec</action>"})
            error = ask(ws, "make", {"env_id": "test/Counter-v0", "env_kwargs": {"level": 99}})
            assert error["data"]["code"] == "FACTORY_ERROR"
            error = ask(ws, "reset", {"env_kwargs": {"level": 99}})
            assert error["data"]["code"] == "FACTORY_ERROR"
            error = ask(ws, "reset", {"options": {"colour": "red"}})
            assert error["data"]["code"] == "VALIDATION_ERROR"
            reply = ask(ws, "step", {"message": "<action>dec</action>"})  # the same episode
            assert reply["data"]["metadata"]["state_key"] == "v=-2"
            assert ask(ws, "reset", {"seed": 2})["type"] == "observation"  # no make needed


# --- 5. HTTP and WebSocket limits --------------------------------------------------------------
def _raw(url: str, payload: bytes, *, wait: float = 5.0) -> bytes:
    """Send ``payload`` on a raw socket; return what the server answers before it closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(payload)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            chunks.append(b"<timeout>")
        return b"".join(chunks)


def test_http_bodies_over_the_limit_are_refused_unread():
    with serve_app(["test/Counter-v0"]) as server:
        declared = (b"POST /step HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000000\r\n\r\n{}")  # fmt: skip
        started = time.monotonic()
        answer = _raw(server.url, declared)
        assert answer.startswith(b"HTTP/1.1 413") and time.monotonic() - started < 3
        # A chunked body (no length up front) one byte over the 256 KiB limit: refused. (Its last
        # byte crosses the limit, so nothing is left unread to turn the close into a reset.)
        chunked = (b"POST /reset HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + b"".join(b"10000\r\n" + b" " * 65536 + b"\r\n" for _ in range(4))
                   + b"1\r\n ")  # fmt: skip
        assert _raw(server.url, chunked).startswith(b"HTTP/1.1 413")
        big = httpx.post(f"{server.url}/retrieve", content=b"[" * (1 << 20), timeout=10)
        assert big.status_code == 413


def test_partial_requests_and_slow_bodies_are_dropped():
    args = ["turngym/FrozenLake-v0", "--header-timeout", "1", "--body-timeout", "1"]
    with serve_subprocess(args) as server:
        started = time.monotonic()
        answer = _raw(server.url, b"POST /reset HTTP/1.1\r\nHost: x\r\n", wait=10)
        assert answer == b"" and time.monotonic() - started < 5  # closed, not held
        slow = b"POST /reset HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
        assert _raw(server.url, slow, wait=10).startswith(b"HTTP/1.1 408")
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200


def test_websocket_frames_over_the_cap_are_refused_from_their_header():
    with serve_app(["test/Counter-v0"]) as server:
        host, port = server.url.removeprefix("http://").split(":")
        key = base64.b64encode(b"0123456789abcdef").decode()
        handshake = (f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n").encode()  # fmt: skip
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(handshake)
            assert b" 101 " in sock.recv(4096)
            # A masked text frame announcing 8 MiB, of which only 1 KiB is ever sent.
            header = bytes([0x81, 0x80 | 127]) + (8 << 20).to_bytes(8, "big") + b"mask"
            started = time.monotonic()
            sock.sendall(header + b"x" * 1024)
            answer = sock.recv(4096)  # the close frame, at once: the payload is never read
            assert answer[:1] == b"\x88" and int.from_bytes(answer[2:4], "big") == 1009
            assert time.monotonic() - started < 3


def test_a_message_split_into_small_frames_is_capped_as_a_whole():
    """Continuation frames each under the cap cannot add up to a message over it."""
    with serve_app(["test/Counter-v0"]) as server:
        host, port = server.url.removeprefix("http://").split(":")
        key = base64.b64encode(b"0123456789abcdef").decode()
        handshake = (f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n").encode()  # fmt: skip
        fragment = 200 << 10  # each under the 512 KiB hard cap; three are over it

        def header(opcode: int) -> bytes:  # not final, masked with zeros (payload as sent)
            return bytes([opcode, 0x80 | 127]) + fragment.to_bytes(8, "big") + bytes(4)

        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(handshake)
            assert b" 101 " in sock.recv(4096)
            sock.sendall(header(0x01) + b"x" * fragment + header(0x00) + b"x" * fragment)
            started = time.monotonic()
            sock.sendall(header(0x00) + b"x" * 1024)  # the third announces too much
            answer = sock.recv(4096)
            assert answer[:1] == b"\x88" and int.from_bytes(answer[2:4], "big") == 1009
            assert time.monotonic() - started < 3
        assert server.wait_for(lambda s: s["active_sessions"] == 0)["active_sessions"] == 0


# --- Minor: episodes end, HTTP errors, the oracle ----------------------------------------------
def test_steps_after_done_are_refused_and_change_nothing():
    with TestClient(create_app(["test/Counter-v0"])) as client:
        with client.websocket_connect("/ws") as ws:
            ask(ws, "reset", {"seed": 0})
            reply = {"data": {"done": False}}
            while not reply["data"]["done"]:
                reply = ask(ws, "step", {"message": "<action>inc</action>"})
            turns = ask(ws, "state")["data"]["step_count"]
            error = ask(ws, "step", {"message": "<action>inc</action>"})["data"]
            assert error["code"] == "VALIDATION_ERROR" and error["episode_done"] is True
            assert "send 'reset'" in error["message"]
            state = ask(ws, "state")["data"]
            assert state["step_count"] == turns and state["done"] is True
        snapshot = client.post("/reset", json={"seed": 0}).json()["metadata"]["snapshot_id"]
        for _ in range(20):
            step = client.post("/step", json={"action": {"message": "<action>inc</action>"},
                                              "snapshot_id": snapshot})  # fmt: skip
            if step.status_code != 200:
                break
            snapshot = step.json()["metadata"]["snapshot_id"]
        assert step.status_code == 422 and step.json()["detail"]["episode_done"] is True


def test_http_bad_reset_options_are_422_not_500():
    with TestClient(create_app(["test/Counter-v0"]), raise_server_exceptions=False) as client:
        for body in ({"options": {"colour": "red"}}, {"difficulty": {"max_target": -3}},
                     {"level": 99}, {"env_kwargs": {"level": 99}}):  # fmt: skip
            reply = client.post("/reset", json=body)
            assert reply.status_code == 422, (body, reply.text)
            assert reply.json()["detail"]["message"] and "Traceback" not in reply.text


def test_oracle_over_the_wire_only_when_privileged(capsys, tmp_path):
    with serve_app(["test/Counter-v0"], privileged=True) as server:
        code = main(["rollout", server.remote("test/Counter-v0"), "--agent", "oracle",
                     "--tasks", "3"])  # fmt: skip
        assert code == 0
        code = main(["eval", server.remote("test/Counter-v0"), "--agents", "oracle",
                     "--episodes", "3", "--out", str(tmp_path / "run")])  # fmt: skip
        results = json.loads((tmp_path / "run" / "results.json").read_text())
        assert code == 0 and results["entries"][0]["metrics"]["success"]["mean"] == 1.0
        env = RemoteEnv(server.url, "test/Counter-v0")
        env.reset(seed=5)
        done = False
        while not done:
            _, reward, done, _, _ = env.step(env.oracle_action())
        assert reward == 1.0
        env.close()
    capsys.readouterr()
    with serve_app(["test/Counter-v0"]) as server:
        code = main(["rollout", server.remote("test/Counter-v0"), "--agent", "oracle",
                     "--tasks", "1"])  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert code == 2 and "--privileged" in err and len(err.splitlines()) == 1
        assert "AttributeError" not in err and "Traceback" not in err


def test_validation_errors_are_listed_briefly():
    """A frame with thousands of bad fields gets a short reply, not one error per field."""
    with TestClient(create_app(["test/Counter-v0"])) as client:
        with client.websocket_connect("/ws") as ws:
            data = {f"k{i}": i for i in range(5000)}
            error = ask(ws, "reset", data)["data"]
            assert error["code"] == "VALIDATION_ERROR" and error["error_count"] == 5000
            assert len(error["errors"]) <= 20


def test_a_client_that_does_not_read_its_reply_is_dropped():
    """BodyLimit gives a response up when the client stops reading (a slow reader)."""
    from turngym.server.limits import BodyLimit

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * 1000})

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def never_drains(message: dict) -> None:
        await asyncio.sleep(3600)  # as uvicorn's send waits for a peer that does not read

    async def run() -> float:
        started = time.monotonic()
        await BodyLimit(app, 1024, 0.2)({"type": "http", "headers": []}, receive, never_drains)
        return time.monotonic() - started

    assert asyncio.run(run()) < 2.0


def test_composed_envs_cannot_smuggle_kwargs_or_other_envs():
    """A composition's ``envs``/``env_kwargs`` knobs would build any env with any kwargs."""
    with TestClient(create_app(["turngym/ComposedGames-v0"])) as client:
        with client.websocket_connect("/ws") as ws:
            smuggled = [{"difficulty": {"env_kwargs": [{"tasks_file": "/etc/passwd"}] * 3}},
                        {"difficulty": {"envs": ["turngym/SearchQA-v0"],
                                        "env_kwargs": [{"corpus_size": 1_000_000}]}},
                        {"difficulty": {"envs": ["turngym/Shop-v0"]}}]  # fmt: skip
            for options in smuggled:
                error = ask(ws, "reset", {"options": options})["data"]
                assert error["code"] == "VALIDATION_ERROR", options
                assert "--privileged" in error["message"], error
            error = ask(ws, "make", {"env_id": "turngym/ComposedGames-v0",
                                     "env_kwargs": {"envs": ["turngym/Wordle-v0"]}})["data"]
            assert error["code"] == "VALIDATION_ERROR"
            assert ask(ws, "reset", {"seed": 0})["type"] == "observation"  # as registered


def test_a_ping_flood_that_never_reads_its_pongs_is_dropped():
    """Pongs are written by the WebSocket layer itself: unread, they must not pile up."""
    with serve_app(["test/Counter-v0"]) as server:
        host, port = server.url.removeprefix("http://").split(":")
        key = base64.b64encode(b"0123456789abcdef").decode()
        handshake = (f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n").encode()  # fmt: skip
        ping = bytes([0x89, 0x80 | 125]) + b"mask" + b"p" * 125  # masked, 125-byte payload
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(handshake)
            answer = b""
            while b"\r\n\r\n" not in answer:  # the 101 (pings sent with it would be lost)
                answer += sock.recv(1)
            assert b" 101 " in answer
            sent, dropped = 0, False  # from here on, nothing is read: the pongs pile up
            try:
                while sent < (64 << 20):
                    sock.sendall(ping * 1000)
                    sent += len(ping) * 1000
            except OSError:  # reset or broken pipe: the server dropped the connection
                dropped = True
        assert dropped, f"sent {sent >> 20} MiB of pings without being dropped"
        assert sent < (32 << 20)
        assert server.wait_for(lambda s: s["active_sessions"] == 0)["active_sessions"] == 0
