"""Client plumbing for :class:`~turngym.server.client.RemoteEnv`: URLs, server info, sockets.

* URLs: a server is named by its base URL (``http://host:port``, ``ws://host:port`` or either
  with ``/ws``); :func:`base_url` normalises it and :func:`ws_url` derives the socket URL.
* :func:`server_info` fetches ``GET /metadata`` once per server and process.
* :class:`Connection` is one WebSocket with request/reply framing and timeouts.
* :func:`background_loop` is one event loop thread shared by every synchronous ``RemoteEnv``
  of the process, so a thousand remote envs cost one thread, not a thousand.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from turngym.server.protocol import ErrorCode

__all__ = ["RemoteEnvError", "ConnectionLost", "base_url", "ws_url", "server_info",
           "Connection", "background_loop"]  # fmt: skip

_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
# Requests whose CAPACITY_REACHED refusal is a quota: the socket and the session stay as they were.
_KEEPS_SOCKET = frozenset({"fork", "snapshot"})
_MAX_REPLY_BYTES = 16 << 20  # observations are text; this only stops a runaway server


class RemoteEnvError(RuntimeError):
    """An error reply from the server, or a connection that could not be used.

    Attributes:
        code: The protocol's error code (``EXECUTION_ERROR``...), or ``"CONNECTION"``.
        data: The error reply's ``data`` (e.g. ``max_sessions`` for ``CAPACITY_REACHED``).
    """

    def __init__(self, message: str, code: str = "CONNECTION", data: dict | None = None) -> None:
        """Create the error."""
        super().__init__(message)
        self.code = code
        self.data = data or {}


class RemoteValueError(RemoteEnvError, ValueError):
    """The env raised ``ValueError`` on the server (bad reset options, bad knob values)."""


class ConnectionLost(RemoteEnvError):
    """The socket closed or stopped answering; the server-side session is gone."""


def base_url(url: str) -> str:
    """Normalise a server URL to ``http(s)://host:port[/prefix]`` (no ``/ws``, no slash).

    Example:
        >>> base_url("ws://127.0.0.1:8000/ws/")
        'http://127.0.0.1:8000'
    """
    url = url.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"{url!r} is not a URL; expected e.g. http://127.0.0.1:8000")
    schemes = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
    if scheme.lower() not in schemes:
        raise ValueError(f"{url!r}: the scheme must be http, https, ws or wss")
    rest = rest[: -len("/ws")] if rest.endswith("/ws") else rest
    return f"{schemes[scheme.lower()]}://{rest}"


def ws_url(url: str, session_id: str | None = None) -> str:
    """The WebSocket URL of a server (optionally attaching to a forked session)."""
    base = base_url(url)
    ws = "wss" + base[len("https") :] if base.startswith("https") else "ws" + base[len("http") :]
    query = f"?{urllib.parse.urlencode({'session_id': session_id})}" if session_id else ""
    return f"{ws}/ws{query}"


def _is_loopback(url: str) -> bool:
    return (urllib.parse.urlsplit(url).hostname or "") in _LOOPBACK


_INFO: dict[str, dict[str, Any]] = {}
_INFO_LOCK = threading.Lock()


def server_info(url: str, *, timeout: float = 10.0, refresh: bool = False) -> dict[str, Any]:
    """``GET /metadata`` of the server at ``url``, cached per process.

    Raises:
        ConnectionError: Nothing answers at ``url``, or it is not a turngym server.
    """
    base = base_url(url)
    with _INFO_LOCK:
        if base in _INFO and not refresh:
            return _INFO[base]
    handlers = [urllib.request.ProxyHandler({})] if _is_loopback(base) else []
    try:
        with urllib.request.build_opener(*handlers).open(f"{base}/metadata",
                                                         timeout=timeout) as reply:  # fmt: skip
            info = json.load(reply)
    except (OSError, ValueError) as err:
        raise ConnectionError(
            f"No turngym server answers at {base} ({err}). Start one with "
            "`turngym serve ENV_ID --port PORT` and check the URL."
        ) from err
    if not isinstance(info, dict) or "turngym" not in info:
        raise ConnectionError(f"{base}/metadata is not a turngym server's (no 'turngym' key)")
    with _INFO_LOCK:
        _INFO[base] = info
    return info


class Connection:
    """One WebSocket to a server, bound to the event loop that opened it.

    Requests are strictly one at a time (a lock), so replies can never be paired with the
    wrong request; a timed-out request drops the socket for the same reason.
    """

    def __init__(self, ws: Any, url: str) -> None:
        self.ws = ws
        self.url = url
        self.loop = asyncio.get_running_loop()
        self.lock = asyncio.Lock()
        self._dead = False
        self._pid = os.getpid()

    @property
    def dead(self) -> bool:
        """Whether the socket is closed, or belongs to the parent of a forked process."""
        return self._dead or self._pid != os.getpid()

    @dead.setter
    def dead(self, value: bool) -> None:
        self._dead = value

    @classmethod
    async def open(cls, url: str, *, timeout: float) -> Connection:
        """Connect to ``url`` (a ``ws://.../ws`` URL).

        Raises:
            ConnectionLost: The server refused or did not answer within ``timeout``.
        """
        from websockets.asyncio.client import connect

        proxy: Any = None if _is_loopback(url) else True  # loopback never goes via a proxy
        try:
            ws = await connect(url, open_timeout=timeout, max_size=_MAX_REPLY_BYTES,
                               compression=None, close_timeout=2.0, proxy=proxy)  # fmt: skip
        except Exception as err:  # refused, timed out, bad handshake, DNS: all mean "no server"
            raise ConnectionLost(
                f"cannot connect to {url}: {type(err).__name__}: {err}. Is `turngym serve` "
                "running there?"
            ) from err
        return cls(ws, url)

    async def request(self, message: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        """Send one message and return the reply's ``{"type", "data"}``.

        Raises:
            RemoteEnvError: The server answered with an error (``code`` says which).
            ConnectionLost: The socket closed, or no reply came within ``timeout``.
        """
        from websockets.exceptions import ConnectionClosed

        async with self.lock:
            if self.dead:
                raise ConnectionLost(f"the connection to {self.url} is closed")
            try:
                await self.ws.send(json.dumps(message))
            except ConnectionClosed:
                pass  # a refusal (capacity, idle reap) is queued before the close: read it
            try:
                raw = await self._recv(timeout)
            except asyncio.TimeoutError:
                self.abort()
                raise ConnectionLost(
                    f"no reply from {self.url} within {timeout} s; the connection was dropped"
                ) from None
            except ConnectionClosed as err:
                self.dead = True
                raise ConnectionLost(f"{self.url} closed the connection ({err})") from None
        reply = json.loads(raw)
        if reply.get("type") == "error":
            data = reply.get("data") or {}
            code = str(data.get("code", "UNKNOWN"))
            closing = code == ErrorCode.SESSION_ERROR.value or (
                code == ErrorCode.CAPACITY_REACHED.value
                and message.get("type") not in _KEEPS_SOCKET)  # fmt: skip
            if closing:
                self.dead = True  # the server closes the socket after these
            bad_input = code == ErrorCode.VALIDATION_ERROR.value
            bad_input = bad_input or data.get("exception") == "ValueError"
            kind = RemoteValueError if bad_input else RemoteEnvError
            raise kind(f"{data.get('message', 'error')} (code {code})", code, data)
        return reply

    async def _recv(self, timeout: float | None) -> str | bytes:
        if timeout is None:
            return await self.ws.recv()
        # asyncio.timeout (Python >= 3.11) puts a deadline on this task; wait_for (3.10) wraps
        # every reply in a task of its own, which costs per step.
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(timeout):
                return await self.ws.recv()
        return await asyncio.wait_for(self.ws.recv(), timeout)

    def abort(self) -> None:
        """Drop the socket without a goodbye (it may be out of sync)."""
        self.dead = True
        self.loop.create_task(self._close_quietly(graceful=False))

    async def close(self) -> None:
        """Say ``close`` to the server, then close the socket (never raises)."""
        if not self.dead:
            self.dead = True
            await self._close_quietly(graceful=True)

    async def _close_quietly(self, *, graceful: bool) -> None:
        try:
            if graceful:
                await self.ws.send('{"type":"close"}')
            await self.ws.close()
        except Exception:  # already closed by the peer
            pass


_BACKGROUND: dict[str, Any] = {}
_BACKGROUND_LOCK = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    """The process's shared event loop for synchronous remote envs (started on first use).

    A forked child gets its own: the parent's loop thread does not exist there.
    """
    with _BACKGROUND_LOCK:
        loop = _BACKGROUND.get("loop")
        if loop is None or not loop.is_running() or _BACKGROUND.get("pid") != os.getpid():
            loop = asyncio.new_event_loop()
            started = threading.Event()
            loop.call_soon(started.set)
            thread = threading.Thread(target=loop.run_forever, name="turngym-remote-envs",
                                      daemon=True)  # fmt: skip
            thread.start()
            started.wait()
            _BACKGROUND.update(loop=loop, thread=thread, pid=os.getpid())
        return loop
