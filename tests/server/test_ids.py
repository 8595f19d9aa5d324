"""Ids cannot be guessed, and a guessed or oversized one costs the server nothing (issue 18).

Session, fork and snapshot ids are capabilities: whoever holds one may attach to the fork or
continue from the snapshot. They must be long random tokens, never sequential; a made-up id is
refused without taking a slot (an HTTP episode) and without echoing a huge string back.
"""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from turngym.server.app import create_app

pytestmark = pytest.mark.integration

TOKEN = re.compile(r"[A-Za-z0-9_-]{22,}")  # 16 random bytes, URL-safe base64


def ask(ws, kind: str, data: dict | None = None) -> dict:
    ws.send_text(json.dumps({"type": kind} if data is None else {"type": kind, "data": data}))
    return ws.receive_json()


def test_ids_are_long_random_tokens_never_sequential():
    with TestClient(create_app(["test/Counter-v0"])) as client:
        ids = []
        with client.websocket_connect("/ws") as ws:
            ask(ws, "reset", {"seed": 0})
            ids += [ask(ws, "snapshot")["data"]["snapshot_id"] for _ in range(100)]
            ids += [ask(ws, "fork")["data"]["session_id"] for _ in range(8)]
        ids += [client.post("/reset", json={}).json()["metadata"]["snapshot_id"]
                for _ in range(50)]  # fmt: skip
    assert all(TOKEN.fullmatch(i) for i in ids), [i for i in ids if not TOKEN.fullmatch(i)]
    assert len(set(ids)) == len(ids)
    assert len({i[:6] for i in ids}) == len(ids)  # no shared prefixes: not counters


def test_guessed_or_oversized_ids_take_nothing_and_echo_little():
    with TestClient(create_app(["test/Counter-v0"])) as client:
        before = client.get("/metadata").json()["turngym"]["http_episodes"]
        step = {"action": {"message": "<action>inc</action>"}}
        for guess in ("AAAAAAAAAAAAAAAAAAAAAA", "0", "x" * 200_000):
            reply = client.post("/step", json={**step, "snapshot_id": guess})
            assert reply.status_code == 422 and len(reply.content) < 4096, guess[:20]
            state = client.get("/state", params={"snapshot_id": guess[:5000]})
            assert state.status_code == 422 and len(state.content) < 4096
        assert client.get("/metadata").json()["turngym"]["http_episodes"] == before
        with client.websocket_connect("/ws") as ws:
            ask(ws, "reset", {"seed": 0})
            error = ask(ws, "restore", {"snapshot_id": "y" * 100_000})["data"]
            assert error["code"] == "VALIDATION_ERROR" and len(json.dumps(error)) < 4096
            assert ask(ws, "state")["type"] == "state"  # the session is unchanged
