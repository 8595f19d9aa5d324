"""A hostile load cannot grow a server's memory without bound, nor lock other clients out.

A ``turngym serve`` subprocess (default limits) takes, round after round: oversized WebSocket frames
on 32 sockets at once (some just under the hard cap, some announcing 8 MiB), sockets that fork
until refused and leave, thousands of snapshots, thousands of stateless HTTP episodes and
bodies that declare 100 MB. Its resident memory must level off (the last of four rounds adds
little) and stay within a bound set by the quotas, and a well-behaved client must still play.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from turngym.server.client import RemoteEnv
from turngym.server.limits import Quotas, ServerLimits

from ._loopback import serve_subprocess

pytestmark = [pytest.mark.slow, pytest.mark.integration]

LIMIT = ServerLimits().max_message_bytes
ROUNDS = 4


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def _frames(ws_url: str) -> None:
    """Frames just under the hard cap (MESSAGE_TOO_LARGE, socket kept), then one far over it."""
    async with connect(ws_url, max_size=None, compression=None) as ws:
        for _ in range(4):
            await ws.send("x" * (2 * LIMIT - 64))
            assert json.loads(await ws.recv())["data"]["code"] == "MESSAGE_TOO_LARGE"
    async with connect(ws_url, max_size=None, compression=None) as ws:
        try:
            await ws.send("y" * (8 << 20))
            await ws.recv()
        except Exception:  # closed with 1009, as it should be
            pass


async def _forker(ws_url: str) -> int:
    """Fork until refused, then leave without closing anything."""
    async with connect(ws_url, compression=None) as ws:
        await ws.send(json.dumps({"type": "reset"}))
        await ws.recv()
        for count in range(Quotas().forks + 5):
            await ws.send(json.dumps({"type": "fork"}))
            if json.loads(await ws.recv())["type"] == "error":
                return count
    return -1


async def _snapshotter(ws_url: str, count: int) -> None:
    async with connect(ws_url, compression=None) as ws:
        await ws.send(json.dumps({"type": "reset"}))
        await ws.recv()
        for _ in range(0, count, 200):
            for _i in range(200):
                await ws.send('{"type": "snapshot"}')
            for _i in range(200):
                await ws.recv()


async def _http(url: str, count: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for _ in range(0, count, 50):
            # A hostile client does not care about its own failures (a keep-alive connection
            # closed under it): only the server's memory and the victim's service count here.
            await asyncio.gather(*(client.post("/reset", json={}) for _ in range(50)),
                                 return_exceptions=True)  # fmt: skip


def _declared_bodies(url: str, count: int) -> None:
    host, port = url.removeprefix("http://").split(":")
    for _ in range(count):
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"POST /step HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.1 413")


async def _battery(url: str) -> None:
    ws_url = url.replace("http://", "ws://") + "/ws"
    await asyncio.gather(*(_frames(ws_url) for _ in range(32)))
    forks = await asyncio.gather(*(_forker(ws_url) for _ in range(8)))
    assert all(f == Quotas().forks for f in forks), forks
    await asyncio.gather(*(_snapshotter(ws_url, 600) for _ in range(4)))  # > quota each
    await _http(url, 1100)  # > http_episodes
    await asyncio.to_thread(_declared_bodies, url, 50)


def test_hostile_load_keeps_memory_bounded_and_others_served():
    with serve_subprocess(["turngym/FrozenLake-v0", "--max-sessions", "200"]) as server:
        victim = RemoteEnv(server.url, "turngym/FrozenLake-v0")
        victim.reset(seed=0)
        base = rss_mb(server.pid)
        growth = []
        for _ in range(ROUNDS):
            asyncio.run(_battery(server.url))
            growth.append(rss_mb(server.pid) - base)
            started = time.monotonic()
            victim.reset(seed=1)
            victim.step("<action>up</action>")
            assert time.monotonic() - started < 2.0
            time.sleep(0.5)
        stats = server.stats()
        assert stats["http_episodes"] <= Quotas().http_episodes
        assert stats["active_sessions"] <= 2  # the victim (and nothing the hostile ones left)
        victim.close()
    print("RSS growth over the baseline after each round (MB):", [round(g) for g in growth])
    assert max(growth) < 300, growth
    # It levels off: the last round adds little (the first ones also fill the bounded caches,
    # the quotas' tables and the worker threads' malloc arenas).
    assert growth[-1] - growth[-2] < 30, growth
