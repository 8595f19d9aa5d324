"""A direct line between the driver and an env actor on the same machine.

A Ray actor call costs ~0.3 ms to submit and ~1.3 ms per round trip on a busy 2-core machine
(measured with empty payloads), paid once per actor per tick of the rollout engine; for an env
that steps in microseconds that is most of a tick. When an :class:`~turngym.backends.ray_host.
EnvHost` actor runs on the driver's node, the driver therefore sends its per-tick batches
(reset, step, act-and-step, close) over a Unix socket to a thread of the actor instead, with
the same packed bytes, and gets the reply back the same way (~0.04-0.08 ms per round trip). Ray
still does everything else: it places, starts, restarts and kills the actors, runs the calls of
actors on other nodes, and carries the one call that opens the line (which hands the driver
the socket's address and key).

**Trust.** The socket is a file in a folder the driver made for it (:func:`new_folder`: only
its user can open it; an actor running as another user cannot bind there and goes through
Ray), and a client must also answer an HMAC challenge with a random 32-byte key that the driver
gets only through Ray (:mod:`multiprocessing.connection`'s ``authkey``) before anything it
sends is unpickled. The driver removes the folder when the actor is gone.

**Order and failures.** Each connection's requests are answered in order, under the actor's
lock (the methods Ray calls take it too), so a batch never runs beside another. A request that
needs no reply (``close``) gets none. An actor that dies closes its end: the driver's read
fails, and the pool replaces the actor as it does when a Ray call fails.

``TURNGYM_RAY_CHANNEL=0`` turns the line off (every call then goes through Ray).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing import AuthenticationError
from multiprocessing.connection import (
    Client,
    Connection,
    Listener,
    answer_challenge,
    deliver_challenge,
    wait,
)
from typing import Any

__all__ = [
    "ENV_SWITCH",
    "THREAD_NAME",
    "REPLY_ERROR",
    "ChannelServer",
    "channel_enabled",
    "connect",
    "new_folder",
    "remove_folder",
    "REQUEST_CODES",
    "CLOSE",
    "Pending",
    "wait_replies",
]

ENV_SWITCH = "TURNGYM_RAY_CHANNEL"
"""Environment variable: ``0`` sends every actor call through Ray."""

THREAD_NAME = "turngym-channel"
"""Name of the actor threads that answer a channel's requests."""

REPLY_ERROR = b"!"
"""First byte of a reply that carries an error message instead of a packed batch."""


def channel_enabled() -> bool:
    """Whether the driver may talk to same-node actors directly (see :data:`ENV_SWITCH`)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


class ChannelServer:
    """The actor's end: accepts the driver's connections and answers their requests.

    ``handle(request)`` returns the reply bytes, or ``None`` for a request that takes no reply;
    it runs under ``lock``. Each connection has its own thread (a rollout of a warm actor
    connects while the last rollout's final ``close`` requests may still be queued).
    """

    def __init__(self, handle: Callable[[bytes], bytes | None], lock: Any, folder: str) -> None:
        """Listen on a socket in ``folder`` (made by the driver, :func:`new_folder`).

        Raises:
            OSError: The socket cannot be made there (another user's folder, another node).
        """
        self._handle = handle
        self._lock = lock
        self.authkey = secrets.token_bytes(32)
        self.address = os.path.join(folder, "channel")
        self._listener = Listener(self.address, family="AF_UNIX")  # the key: see _answer
        self._closed = False
        threading.Thread(target=self._accept, name="turngym-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn = self._listener.accept()
            except OSError:
                if self._closed:
                    return
                time.sleep(0.01)  # a client that hung up at once, or no file handle left
                continue
            # The key challenge runs in the connection's own thread: a client that connects
            # and says nothing holds that thread, not the next rollout's connection.
            threading.Thread(target=self._answer, args=(conn,), name=THREAD_NAME,
                             daemon=True).start()  # fmt: skip

    def _answer(self, conn: Connection) -> None:
        with conn:
            try:  # what Listener(authkey=...).accept() does, here in this thread
                deliver_challenge(conn, self.authkey)
                answer_challenge(conn, self.authkey)
            except (AuthenticationError, EOFError, OSError):
                return  # not our driver: nothing it sent is unpickled
            while True:
                try:
                    request = conn.recv_bytes()
                except (EOFError, OSError):  # the driver closed its end: the rollout is over
                    return
                with self._lock:
                    try:
                        reply = self._handle(request)
                    except Exception as err:  # a malformed request: say so, keep serving
                        reply = REPLY_ERROR + f"{type(err).__name__}: {err}".encode()
                if reply is not None:
                    try:
                        conn.send_bytes(reply)
                    except OSError:
                        return

    def close(self) -> None:
        """Stop accepting (the driver removes the folder)."""
        self._closed = True
        self._listener.close()


def connect(address: str, authkey: bytes) -> Connection | None:
    """The driver's end of an actor's channel, or ``None`` when it cannot be reached."""
    try:
        conn: Connection = Client(address, family="AF_UNIX", authkey=authkey)
    except (OSError, EOFError, ValueError, AuthenticationError):
        return None  # a gone actor, another file system, or not the listener we were told of
    return conn


def new_folder() -> str:
    """A folder for one actor's socket, readable by this user only (``mkdtemp``: mode 0700)."""
    return tempfile.mkdtemp(prefix="turngym-ray-")


def remove_folder(folder: str) -> None:
    """Remove a channel's socket folder (best effort: it may be gone already)."""
    shutil.rmtree(folder, ignore_errors=True)


REQUEST_CODES = {"reset": b"r", "step": b"s", "act_step": b"a"}
"""First byte of a channel request, by the :class:`EnvHost` method it calls (with a reply);
any other method goes through Ray."""

CLOSE = b"c"
"""First byte of a request that closes instances (no reply, as a fire-and-forget Ray call)."""


class Pending:
    """A request sent over a channel, whose reply has not been read yet."""

    __slots__ = ("conn", "broken")

    def __init__(self, conn: Connection, broken: bool) -> None:
        self.conn = conn
        self.broken = broken

    @classmethod
    def send(cls, conn: Connection, request: bytes) -> Pending:
        """Send ``request``; a broken channel is reported when the reply is read."""
        try:
            conn.send_bytes(request)
        except OSError:
            return cls(conn, True)
        return cls(conn, False)

    def reply(self) -> bytes:
        """The reply (call once it is ready).

        Raises:
            EOFError: The actor's end is closed (its process is gone).
        """
        if self.broken:
            raise EOFError("the channel was closed before the request went out")
        data: bytes = self.conn.recv_bytes()
        return data


def wait_replies(pending: list[Pending], timeout: float | None) -> list[Pending]:
    """Those of ``pending`` whose reply (or end of channel) is there, waiting up to ``timeout``."""
    broken = [p for p in pending if p.broken]
    if broken:
        return broken
    by_conn = {p.conn: p for p in pending}
    return [by_conn[c] for c in wait(list(by_conn), timeout)]  # type: ignore[index]
