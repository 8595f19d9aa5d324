"""Real turngym servers on loopback for the tests: in a thread, or in a subprocess.

:func:`serve_app` runs :func:`turngym.server.app.create_app` under uvicorn in a background
thread of the test process (the pattern of ``tests/openai_server.py``);
:func:`serve_subprocess` runs ``turngym serve`` as a separate process (its memory can be
measured, and killing it is a real server crash).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from turngym.server.app import create_app
from turngym.server.limits import ServerLimits, uvicorn_config

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    """A running server: its base URL, its app (thread servers only) and its process id."""

    url: str
    app: Any = None
    process: subprocess.Popen | None = None
    server: Any = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "only subprocess servers have a pid"
        return self.process.pid

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def remote(self, env_id: str) -> str:
        """The remote env id of ``env_id`` on this server."""
        return f"{env_id}@{self.url}"

    def stats(self) -> dict[str, Any]:
        """The session counts of ``GET /metadata``."""
        return httpx.get(f"{self.url}/metadata", timeout=5).json()["turngym"]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> dict[str, Any]:
        """Poll :meth:`stats` until ``predicate(stats)`` holds; return the stats."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if predicate(stats) or time.monotonic() > deadline:
                return stats
            time.sleep(0.02)


@contextmanager
def serve_app(env_ids: Sequence[str], limits: dict[str, Any] | None = None,
              **kwargs: Any) -> Iterator[Served]:  # fmt: skip
    """Serve ``create_app(env_ids, **kwargs)`` with uvicorn in a thread on a free port.

    ``limits`` are :class:`~turngym.server.limits.ServerLimits` fields (the ones of
    ``turngym serve``'s connection flags).
    """
    app = create_app(env_ids, **kwargs)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    limits = ServerLimits(**{"max_message_bytes": kwargs.get("max_message_bytes", 256 << 10),
                             **(limits or {})})  # fmt: skip
    config = uvicorn_config(app, limits, log_config=None, log_level="warning", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=2)  # fmt: skip
    import uvicorn

    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="turngym-loopback", daemon=True)  # fmt: skip
    thread.start()
    try:
        deadline = time.monotonic() + 30.0
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the loopback turngym server did not start (see log above)")
            time.sleep(0.01)
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", app=app, server=server)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def serve_subprocess(args: Sequence[str], *, timeout: float = 60.0) -> Iterator[Served]:
    """Run ``turngym serve ARGS --port 0`` in a subprocess; yield once it announces its URL."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "turngym.cli", "serve", *args, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    try:
        url = _read_url(proc, timeout)
        yield Served(url, process=proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _read_url(proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(r"on (http://[\d.]+:\d+)", line)
        if match:
            return match.group(1)
    raise RuntimeError("turngym serve did not start:\n" + "".join(seen))
