"""Size and time limits of a server's connections, so no client can hold its memory or sockets.

What each limit stops (defaults in :class:`ServerLimits`):

* **HTTP bodies** (:class:`BodyLimit`): a body over ``max_body_bytes`` is refused with 413 from
  its ``Content-Length`` before any of it is read, or as soon as a chunked body passes the
  limit; a body that does not arrive within ``body_timeout_s`` gets 408 and the connection
  closes. A response the client does not read within ``body_timeout_s`` is abandoned and its
  connection closed, so a slow reader cannot hold a reply in memory.
* **HTTP headers** (:func:`guarded_h11`): a request whose headers are not complete within
  ``header_timeout_s`` of the connection (or of the previous response) is dropped, and headers
  over ``max_header_bytes`` are refused by h11, so a slow or endless header never holds a
  socket. Idle keep-alive connections close after ``keep_alive_s``.
* **Connections**: at most ``max_connections`` at once (HTTP requests beyond get 503).
* **WebSocket frames**: uvicorn's ``ws_max_size`` is twice ``max_message_bytes``; a bigger frame
  is refused from its header, before its payload is buffered, and closes the socket (1009). The
  server reads one message at a time per socket (uvicorn pauses reading until the app takes
  it), so a socket holds at most a couple of frames in memory. Peers that stop answering pings
  are dropped, and so is a peer that makes the server buffer more than
  :data:`MAX_UNREAD_BYTES` it does not read (:func:`guarded_websockets`: a flood of pings
  whose pongs it never reads would otherwise grow the server's write buffer without bound).

:func:`uvicorn_config` applies all of them to a uvicorn ``Config``. :class:`Quotas` are the
per-client limits on what a server keeps (see :mod:`turngym.server.accounting`). This module
imports nothing beyond the standard library until a server starts, so the CLI can read its
defaults.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ServerLimits", "Quotas", "BodyLimit", "guarded_h11", "guarded_websockets",
           "uvicorn_config", "MAX_UNREAD_BYTES"]

MAX_UNREAD_BYTES = 1 << 20
"""Bytes a WebSocket peer may leave unread in the server's write buffer before it is dropped."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class ServerLimits:
    """Connection limits of ``turngym serve`` (each is a CLI flag).

    Attributes:
        max_message_bytes: Larger WebSocket frames get ``MESSAGE_TOO_LARGE``; frames over twice
            this close the socket unread.
        max_body_bytes: Larger HTTP bodies get 413 (``None``: ``max_message_bytes``).
        max_header_bytes: Larger HTTP request heads are refused.
        header_timeout_s: Seconds a request's headers may take to arrive.
        body_timeout_s: Seconds a request's body may take to arrive.
        keep_alive_s: Seconds an idle HTTP keep-alive connection stays open.
        max_connections: Concurrent connections (WebSockets included) before HTTP answers 503.
        ws_ping_s: Seconds between WebSocket pings; a peer that does not answer within as
            long again is dropped.
    """

    max_message_bytes: int = 256 << 10
    max_body_bytes: int | None = None
    max_header_bytes: int = 16 << 10
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 5.0
    max_connections: int = 1024
    ws_ping_s: float = 20.0

    def __post_init__(self) -> None:
        if self.max_message_bytes < 1024:
            raise ValueError(f"max_message_bytes must be >= 1024, got {self.max_message_bytes}")
        for name in ("max_header_bytes", "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_body_bytes is not None and self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {self.max_body_bytes}")
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_s", "ws_ping_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def body_bytes(self) -> int:
        """The HTTP body limit in effect."""
        return self.max_body_bytes if self.max_body_bytes is not None else self.max_message_bytes

    @property
    def ws_max_size(self) -> int:
        """Uvicorn's hard frame limit: frames over it close the socket before being read."""
        return 2 * self.max_message_bytes


@dataclass(frozen=True)
class Quotas:
    """What one client may hold on a server (see :mod:`turngym.server.accounting`).

    Attributes:
        forks: Live forks per owner.
        snapshots: Snapshots per owner (the owner's own least recently used go first).
        snapshot_bytes: Bytes of snapshots per owner.
        http_episodes: Stateless HTTP episodes kept at once.
        http_snapshots: Snapshots per HTTP episode (its most recent states).
        http_snapshot_bytes: Bytes of snapshots per HTTP episode.
        orphans: Snapshots kept after their owner closed (shared, least recently used first).
        orphan_bytes: Bytes of those.
        per_host: Sessions (with their forks) and, separately, HTTP episodes that clients at
            one network address may hold at once (``None``: no cap). Every client on one
            machine (or behind one proxy) shares an address, so set it on servers that
            remote clients reach directly, above what one trainer there needs.
    """

    forks: int = 16
    snapshots: int = 256
    snapshot_bytes: int = 4 << 20
    http_episodes: int = 1024
    http_snapshots: int = 16
    http_snapshot_bytes: int = 256 << 10
    orphans: int = 1024
    orphan_bytes: int = 32 << 20
    per_host: int | None = None

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if name == "per_host" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"quota {name} must be a positive integer, got {value!r}")


class BodyLimit:
    """ASGI middleware: read each HTTP body under a size and a time limit, then hand it on.

    The body is read here (at most ``max_bytes``) and replayed to the app as one message, so
    an app never parses more than the limit and never waits on a slow client.
    """

    def __init__(self, app: App, max_bytes: int, timeout_s: float) -> None:
        """Wrap ``app``."""
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass WebSocket and lifespan scopes through; limit HTTP bodies."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _refuse(send, 413, f"the body has {declared} bytes; this server accepts at "
                          f"most {self.max_bytes} (--max-body-bytes)", close=True)  # fmt: skip
            return
        try:
            body = await asyncio.wait_for(self._read(receive), self.timeout_s)
        except asyncio.TimeoutError:
            await _refuse(send, 408, f"the body did not arrive within {self.timeout_s:g} s",
                          close=True)  # fmt: skip
            return
        if body is None:
            await _refuse(send, 413, f"the body has more than {self.max_bytes} bytes "
                          "(--max-body-bytes)", close=True)  # fmt: skip
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only http.disconnect comes

        async def send_in_time(message: Message) -> None:
            try:
                await asyncio.wait_for(send(message), self.timeout_s)
            except asyncio.TimeoutError:  # the client stopped reading: give the reply up
                raise _SlowReader from None

        try:
            await self.app(scope, replay, send_in_time)
        except _SlowReader:
            pass  # uvicorn closes a connection whose response the app left unfinished

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or ``None`` once it passes the limit (the rest is not read)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class _SlowReader(Exception):
    """The client did not read a response within the time limit."""


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, status: int, message: str, *, close: bool) -> None:
    """Answer ``status`` with the message; ``close`` when the rest of the body is unread."""
    body = json.dumps({"detail": {"code": "REQUEST_REFUSED", "message": message}}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]  # fmt: skip
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def guarded_h11(header_timeout_s: float) -> type:
    """Uvicorn's h11 protocol with a deadline on each request's headers (slow-header guard).

    The deadline starts when the connection opens and again after each response; it ends once
    the request line and headers are parsed (or the connection becomes a WebSocket).
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout_s, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            upgraded = self.transport.get_protocol() is not self
            if upgraded or self.conn.their_state is not h11.IDLE:
                self._disarm()  # headers are in: the body has its own limit

        def on_response_complete(self) -> None:
            super().on_response_complete()  # may already parse a pipelined request
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol


def guarded_websockets() -> type | str:
    """The WebSocket protocol of uvicorn, dropping a peer that leaves too much unread.

    The protocol answers pings itself, writing each pong at once; a peer that floods pings and
    never reads would grow the write buffer without bound. Past :data:`MAX_UNREAD_BYTES` the
    connection is aborted. (The app's own replies wait for the buffer to drain instead.) An
    older uvicorn without the sans-I/O protocol gets its default (``"auto"``).
    """
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:  # pragma: no cover - uvicorn < 0.35
        return "auto"

    class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            transport = self.transport
            if transport is not None and transport.get_write_buffer_size() > MAX_UNREAD_BYTES:
                transport.abort()

    return GuardedWebSocketProtocol


def uvicorn_config(app: Any, limits: ServerLimits, **kwargs: Any) -> Any:
    """A ``uvicorn.Config`` for ``app`` with every limit of ``limits`` applied.

    ``kwargs`` (``log_level``, ``timeout_graceful_shutdown``...) pass through to uvicorn.
    """
    import uvicorn

    return uvicorn.Config(
        BodyLimit(app, limits.body_bytes, limits.body_timeout_s),
        http=guarded_h11(limits.header_timeout_s),
        ws=guarded_websockets(),
        h11_max_incomplete_event_size=limits.max_header_bytes,
        timeout_keep_alive=max(1, round(limits.keep_alive_s)),
        limit_concurrency=limits.max_connections,
        ws_max_size=limits.ws_max_size,
        ws_max_queue=1,
        ws_ping_interval=limits.ws_ping_s,
        ws_ping_timeout=limits.ws_ping_s,
        ws_per_message_deflate=False,  # a compressed frame could inflate past the limits
        **kwargs,
    )
