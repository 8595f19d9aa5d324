"""Throughput and step latency of ``turngym serve`` at 1, 32 and 128 concurrent sessions.

The server runs in its own process (as in production: one process per server), the clients
are :class:`turngym.server.client.RemoteEnv` objects driven by ``astep`` from one asyncio
process, over loopback. Each configuration runs for a fixed wall time; every session loops
reset -> steps until done -> reset, and only steps are timed.

Envs: ``bench/Echo-v0`` (defined here: one dict lookup per step, so it measures the server
and the protocol, not an env) and ``turngym/Sokoban-v0`` (a real game: parsing, moves, a
rendered grid of text per step). Target: >= 3,000 steps/s at 32 sessions for the cheap env on
2 CPU cores (server and client share them).

    python benchmarks/server_throughput.py                 # about a minute
    python benchmarks/server_throughput.py --seconds 10 --sessions 1 32 128 256
    python benchmarks/server_throughput.py --compare-openenv --rounds 5   # side by side

``--compare-openenv`` runs turngym's server and OpenEnv's (the ``openenv`` package, formerly
``openenv-core``; see ``_openenv_echo.py`` for how to install it without its ~110 declared
dependencies) on equivalent echo envs (``bench/PlainEcho-v0``, a bare Gymnasium text env, and
its OpenEnv twin), each in its own process, and drives both with the same
client: raw OpenEnv-protocol WebSocket frames (``reset``, then ``step`` with ``{"message"}``
until ``done``), 32 concurrent sessions, the servers alternating round by round so that load
from elsewhere on the machine hits both alike. The figure is the ratio, not the absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import time
from typing import Any

import gymnasium

from turngym.core import TextEnv, Transition

ECHO_ID = "bench/Echo-v0"


class Echo(TextEnv):
    """The cheapest TextEnv: echoes the command; an episode is 50 turns."""

    family = "echo"
    example_actions = ("<action>ping</action>", "<action>pong</action>")

    def generate_task(self, rng: Any, difficulty: Any) -> dict:
        return {"n": int(rng.integers(1_000_000))}

    def load_task(self, task: dict) -> None:
        self.last = ""

    def instructions(self) -> str:
        return "Say anything in <action></action> tags."

    def render_text(self) -> str:
        return f"turn {self.turn}: {self.last}"

    def apply(self, command: str) -> Transition:
        self.last = command
        return Transition(reward=1.0)

    def state_key(self) -> str:
        return str(self.turn)

    def score(self) -> float:
        return 0.0


class PlainEcho(gymnasium.Env[str, str]):
    """The OpenEnv echo env's twin for the side-by-side rows: a bare Gymnasium text env.

    It does per step what ``_openenv_echo.Echo`` does (echo the text, reward 1, 50 steps) and
    nothing else (no action tags, no per-turn record), so both servers serve the same work.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention)

    def __init__(self) -> None:
        self.action_space = gymnasium.spaces.Text(32_768)
        self.observation_space = gymnasium.spaces.Text(32_768)
        self.turn = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        self.turn = 0
        return "turn 0: ", {}

    def step(self, action: str) -> tuple:
        self.turn += 1
        return f"turn {self.turn}: {action}", 1.0, self.turn >= 50, False, {}


PLAIN_ECHO_ID = "bench/PlainEcho-v0"
if ECHO_ID not in gymnasium.registry:  # the server process imports this module too
    gymnasium.register(id=ECHO_ID, entry_point=Echo, max_episode_steps=50)
    gymnasium.register(id=PLAIN_ECHO_ID, entry_point=PlainEcho)


def _serve(env_ids: list[str], max_sessions: int, queue: Any) -> None:
    from turngym.server.cli import serve

    serve(env_ids, port=0, max_sessions=max_sessions, idle_timeout_s=None,
          announce=queue.put)  # fmt: skip


def start_server(env_ids: list[str], max_sessions: int) -> tuple[Any, str]:
    """Start a server process; return it and its base URL."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(env_ids, max_sessions, queue), daemon=True)
    proc.start()
    line = queue.get(timeout=60)
    url = line.split(" on ", 1)[1].split(" ", 1)[0]
    return proc, url


async def _session(url: str, env_id: str, deadline: float, latencies: list[float],
                   seed: int) -> int:  # fmt: skip
    from turngym.server.client import RemoteEnv

    env = RemoteEnv(url, env_id)
    actions = env.action_space.examples
    errors = 0
    try:
        await env.areset(seed=seed)
        i = 0
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                _, _, terminated, truncated, _ = await env.astep(actions[i % len(actions)])
            except Exception:
                errors += 1
                await env.areset(seed=seed + i)
                continue
            latencies.append(time.perf_counter() - start)
            i += 1
            if terminated or truncated:
                await env.areset(seed=seed + i)
    finally:
        await env.aclose()
    return errors


async def measure(url: str, env_id: str, sessions: int, seconds: float) -> dict[str, Any]:
    """Run ``sessions`` concurrent sessions for ``seconds`` (after a short warm-up)."""
    warmup: list[float] = []
    await asyncio.gather(*(_session(url, env_id, time.perf_counter() + 0.3, warmup, s)
                           for s in range(min(sessions, 8))))  # fmt: skip
    latencies: list[float] = []
    start = time.perf_counter()
    errors = await asyncio.gather(*(_session(url, env_id, start + seconds, latencies, 1000 + s)
                                    for s in range(sessions)))  # fmt: skip
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "env": env_id,
        "sessions": sessions,
        "steps": len(latencies),
        "steps_per_s": len(latencies) / elapsed,
        "p50_ms": 1e3 * statistics.median(latencies),
        "p99_ms": 1e3 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "errors": sum(errors),
    }


# --- Side by side with OpenEnv's server ---------------------------------------------------------
async def _raw_session(url: str, deadline: float, counts: list[int]) -> None:
    """One session of OpenEnv-protocol frames: reset, step until done, reset... (no RemoteEnv)."""
    from websockets.asyncio.client import connect

    reset, steps = json.dumps({"type": "reset", "data": {}}), 0
    actions = [json.dumps({"type": "step", "data": {"message": m}})
               for m in ("<action>ping</action>", "<action>pong</action>")]  # fmt: skip
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(reset)
        json.loads(await ws.recv())
        while time.perf_counter() < deadline:
            await ws.send(actions[steps % 2])
            reply = json.loads(await ws.recv())
            if reply["type"] != "observation":
                raise RuntimeError(f"server error: {reply}")
            steps += 1
            if reply["data"]["done"]:
                await ws.send(reset)
                json.loads(await ws.recv())
    counts.append(steps)


async def _raw_rate(url: str, sessions: int, seconds: float, pid: int) -> tuple[float, float]:
    """Steps per second, and the server's CPU microseconds per step (robust to other load)."""
    warm: list[int] = []
    await asyncio.gather(*(_raw_session(url, time.perf_counter() + 0.3, warm)
                           for _ in range(min(sessions, 8))))  # fmt: skip
    counts: list[int] = []
    cpu, start = _cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(_raw_session(url, start + seconds, counts) for _ in range(sessions)))
    elapsed, used = time.perf_counter() - start, _cpu_seconds(pid) - cpu
    return sum(counts) / elapsed, 1e6 * used / max(1, sum(counts))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux ``/proc``)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve_openenv(kind: str, max_sessions: int, queue: Any) -> None:
    import socket

    import _openenv_echo
    import uvicorn

    env = _openenv_echo.EchoAsync if kind == "async" else _openenv_echo.Echo
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    queue.put(f"openenv on http://127.0.0.1:{sock.getsockname()[1]} ")
    config = uvicorn.Config(_openenv_echo.app(env, max_sessions), log_level="warning",
                            access_log=False)  # fmt: skip
    uvicorn.Server(config).run(sockets=[sock])


def _start(target: Any, args: tuple) -> tuple[Any, str]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue), daemon=True)
    proc.start()
    line = queue.get(timeout=60)
    return proc, line.split(" on ", 1)[1].split(" ", 1)[0]


async def _asgi_cpu_per_step(app: Any, steps: int, sessions: int) -> float:
    """CPU microseconds per step of an ASGI app driven in process, without sockets.

    Every session is a fake ``/ws`` connection fed OpenEnv-protocol frames through queues; the
    process CPU time (all threads: a server's worker threads count) is divided by the steps.
    Only the app's own work is left in (uvicorn, the network and a client are the same for
    both servers), so the ratio is not the end-to-end one, but it does not depend on load.
    """
    reset = {"type": "websocket.receive", "text": json.dumps({"type": "reset", "data": {}})}
    step = {"type": "websocket.receive",
            "text": json.dumps({"type": "step", "data": {"message": "<action>ping</action>"}})}

    async def session(count: int) -> None:
        inbox: asyncio.Queue = asyncio.Queue()
        outbox: asyncio.Queue = asyncio.Queue()
        scope = {"type": "websocket", "path": "/ws", "raw_path": b"/ws", "root_path": "",
                 "query_string": b"", "headers": [], "scheme": "ws", "subprotocols": [],
                 "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 1),
                 "asgi": {"version": "3.0"}, "state": {}}  # fmt: skip
        task = asyncio.create_task(app(scope, inbox.get, outbox.put))
        await inbox.put({"type": "websocket.connect"})
        await outbox.get()  # websocket.accept
        await inbox.put(reset)
        await outbox.get()
        for _ in range(count):
            await inbox.put(step)
            reply = json.loads((await outbox.get())["text"])
            if reply["data"]["done"]:
                await inbox.put(reset)
                await outbox.get()
        await inbox.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(task, 10)

    await asyncio.gather(*(session(20) for _ in range(4)))  # warm-up
    started = time.process_time()
    await asyncio.gather(*(session(steps // sessions) for _ in range(sessions)))
    return 1e6 * (time.process_time() - started) / (steps // sessions * sessions)


def _app_costs(steps: int, sessions: int) -> dict[str, float]:
    import _openenv_echo

    from turngym.server.app import create_app

    apps = {"turngym serve": lambda: create_app([PLAIN_ECHO_ID], max_sessions=sessions + 16,
                                                idle_timeout_s=None),
            "openenv (sync step)": lambda: _openenv_echo.app(_openenv_echo.Echo, sessions + 16),
            "openenv (step_async)": lambda: _openenv_echo.app(_openenv_echo.EchoAsync,
                                                              sessions + 16)}  # fmt: skip
    costs: dict[str, list[float]] = {name: [] for name in apps}
    built = {name: make() for name, make in apps.items()}
    for _ in range(3):  # alternate, as the end-to-end rounds do
        for name, app in built.items():
            costs[name].append(asyncio.run(_asgi_cpu_per_step(app, steps, sessions)))
    return {name: statistics.median(values) for name, values in costs.items()}


def compare_openenv(seconds: float, rounds: int, sessions: int = 32) -> None:
    """Alternate turngym's and OpenEnv's servers, same client; print rates and the ratios."""
    servers = {"turngym serve": _start(_serve, ([PLAIN_ECHO_ID], sessions + 16)),
               "openenv (sync step)": _start(_serve_openenv, ("sync", sessions + 16)),
               "openenv (step_async)": _start(_serve_openenv, ("async", sessions + 16))}
    rates: dict[str, list[float]] = {name: [] for name in servers}
    cpu: dict[str, list[float]] = {name: [] for name in servers}
    try:
        time.sleep(1.0)  # let the servers settle
        for _ in range(rounds):
            for name, (proc, url) in servers.items():
                ws = url.replace("http://", "ws://") + "/ws"
                rate, us = asyncio.run(_raw_rate(ws, sessions, seconds, proc.pid))
                rates[name].append(rate)
                cpu[name].append(us)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.join(10)
    load = os.getloadavg()
    print(f"echo env, {sessions} concurrent sessions, same raw WebSocket client, {rounds} "
          f"alternating rounds of {seconds:g} s; {os.cpu_count()} CPUs, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip
    print("| server | steps/s (median) | min | max | turngym / this, steps/s (median of "
          "rounds) | server CPU µs/step (median) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    ours = rates["turngym serve"]
    for name, values in rates.items():
        ratio = statistics.median(a / b for a, b in zip(ours, values, strict=True))
        print(f"| {name} | {statistics.median(values):,.0f} | {min(values):,.0f} | "
              f"{max(values):,.0f} | {ratio:.2f}x | {statistics.median(cpu[name]):,.0f} |")
    if load[0] > (os.cpu_count() or 1):
        print(f"\nThe machine is loaded (load average {load[0]:.1f} on {os.cpu_count()} CPUs): "
              "the scheduler shares CPU time per runnable thread, so a server that runs steps "
              "in a thread pool gets more of it than one event-loop thread, whatever either "
              "costs per step. Compare the CPU µs/step columns; steps/s ratios need an idle "
              "machine.")  # fmt: skip
    costs = _app_costs(steps=6400, sessions=sessions)
    print(f"\nThe apps alone, in process (no uvicorn, no sockets), {sessions} sessions:")
    print("| server app | CPU µs/step (median of 3) | this / turngym |")
    print("|---|---:|---:|")
    for name, cost in costs.items():
        print(f"| {name} | {cost:,.0f} | {cost / costs['turngym serve']:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="wall time per row")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 32, 128])
    parser.add_argument("--envs", nargs="+", default=[ECHO_ID, "turngym/Sokoban-v0"])
    parser.add_argument("--compare-openenv", action="store_true",
                        help="side by side with OpenEnv's server on an echo env (32 sessions)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (compare)")
    args = parser.parse_args()
    if args.compare_openenv:
        compare_openenv(args.seconds, args.rounds, sessions=32)
        return
    proc, url = start_server(args.envs, max_sessions=max(args.sessions) + 16)
    rows = []
    try:
        for env_id in args.envs:
            for sessions in args.sessions:
                rows.append(asyncio.run(measure(url, env_id, sessions, args.seconds)))
    finally:
        proc.terminate()
        proc.join(10)
    load = os.getloadavg()
    print(f"turngym serve throughput: {os.cpu_count()} CPUs, load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}; server and clients on this machine, loopback; "
          f"{args.seconds:g} s per row")  # fmt: skip
    print("| env | sessions | steps/s | p50 step (ms) | p99 step (ms) | steps | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['env']} | {r['sessions']} | {r['steps_per_s']:,.0f} | {r['p50_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {r['steps']:,} | {r['errors']} |")


if __name__ == "__main__":
    main()
