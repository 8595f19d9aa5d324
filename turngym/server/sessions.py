"""Sessions of a server: capacity, attach, idle reaping, shutdown, snapshots, forks.

A :class:`Session` is one env and its episode bookkeeping; normally it belongs to one WebSocket
connection and dies with it (OpenEnv's "one env per connection"). A forked session exists
before any connection and waits to be attached through ``/ws?session_id=...``; it is charged to
the owner of the session that forked it (:mod:`turngym.server.accounting`) and closes with that
session's last connection if nobody attached it.

Everything here runs on the server's event loop, so the table needs no lock of its own;
each session has an ``asyncio.Lock`` that every operation holds, so the reaper, a fork and
shutdown never touch an env while one of its calls is in flight.

**Where env code runs.** ``step`` of a cheap env runs on the event loop: it is far cheaper than
a hop to a thread. Everything a client can make expensive runs in a worker pool, so it never
stalls the other sessions: building an env (``make``, a reset that switches env or kwargs),
``reset`` (a task draw can run a solver, and the first use of a knob preset builds its data),
``restore``, ``snapshot``, ``fork`` and ``leak_check`` (:meth:`SessionManager.offload`). Envs
that declare ``metadata["turngym.slow"] = True`` run every call in the pool.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import gymnasium

from turngym.server.accounting import HttpEpisodes, Owner, Snapshot, SnapshotStore
from turngym.server.catalog import EnvCatalog, ServedEnv
from turngym.server.limits import Quotas
from turngym.server.protocol import ErrorCode, ObservationData, ProtocolError

__all__ = ["Session", "Snapshot", "SessionManager", "Closer"]

log = logging.getLogger("turngym.server")
T = TypeVar("T")

Closer = Callable[[int, str, "ProtocolError | None"], Awaitable[None]]
"""Closes a session's socket: ``closer(close_code, reason, error_to_send_first)``."""

# WebSocket close codes (RFC 6455 section 7.4.1).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN_LATER = 1013

_MAX_SENT = 10_000  # texts per episode leak_check remembers (episodes are far shorter)
_CLOSE_TIMEOUT_S = 5.0  # a peer that does not read cannot hold the reaper or shutdown longer


@dataclass(eq=False)
class Session:
    """One env and its episode state.

    Attributes:
        id: Unguessable id (attaching to a fork needs it).
        owner: What the session's snapshots and forks count against (shared with the
            session it was forked from).
        served: Which env; ``None`` until the first ``make``/``reset``.
        env_kwargs: Its constructor kwargs.
        env: The env (built without time-limit or order wrappers).
        turn: Steps since the last reset (the session's time limit counts these).
        has_reset: Whether an episode is in progress (steps need one).
        last: The last observation reply (``restore`` and ``fork`` replay it).
        trusted_task: False while the episode plays a task dict sent by the client (its
            calls then run in the worker pool).
    """

    id: str
    last_active: float
    owner: Owner | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    attached: bool = False
    closer: Closer | None = None
    served: ServedEnv | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    env: gymnasium.Env | None = None
    turn: int = 0
    has_reset: bool = False
    episode_id: str | None = None
    last: ObservationData | None = None
    closed: bool = False
    trusted_task: bool = True
    sent: set[int] = field(default_factory=set)
    """Hashes of the texts sent this episode (``leak_check`` accepts only these)."""

    @property
    def done(self) -> bool:
        """Whether the current episode has ended (terminated or truncated)."""
        return self.last is not None and bool(self.last.done)

    def remember(self, data: ObservationData, *, new_episode: bool = False) -> None:
        """Record an observation reply: the last one, and its texts for ``leak_check``."""
        if new_episode:
            self.sent.clear()
        if len(self.sent) < _MAX_SENT:
            self.sent.add(hash(data.observation.get("text")))
            if "instructions" in data.metadata:
                self.sent.add(hash(data.metadata["instructions"]))
        self.last = data

    def touch(self) -> None:
        """Mark activity now (the idle clock restarts)."""
        self.last_active = time.monotonic()


class SessionManager:
    """The session table of one server.

    Args:
        catalog: The envs served.
        max_sessions: Live sessions at most (attached or waiting forks); more get
            ``CAPACITY_REACHED``.
        idle_timeout_s: Close sessions (and forget HTTP episodes) without a message for this
            long (``None``: never).
        quotas: What one client may hold (:class:`~turngym.server.accounting.Quotas`).
        workers: Threads for the calls that run off the event loop.
    """

    def __init__(
        self,
        catalog: EnvCatalog,
        *,
        max_sessions: int = 256,
        idle_timeout_s: float | None = 600.0,
        quotas: Quotas | None = None,
        workers: int = 32,
    ) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {max_sessions}")
        if idle_timeout_s is not None and idle_timeout_s <= 0:
            raise ValueError(f"idle_timeout_s must be > 0 (or None), got {idle_timeout_s}")
        self.catalog = catalog
        self.max_sessions = max_sessions
        self.idle_timeout_s = idle_timeout_s
        self.quotas = quotas or Quotas()
        self.workers = workers
        self.sessions: dict[str, Session] = {}
        self.snapshots = SnapshotStore(self.quotas, idle_timeout_s)
        self.http = HttpEpisodes(self.snapshots, idle_timeout_s)
        self.reaped = 0
        self._pool: ThreadPoolExecutor | None = None
        self._hosts: Counter[str] = Counter()  # live sessions by client address

    # --- Table --------------------------------------------------------------------------------
    def open(self, *, parent: Session | None = None, host: str | None = None) -> Session:
        """Create a session: a connection's own, or a fork of ``parent`` waiting to be attached.

        Args:
            parent: The session a fork is made from (the fork counts against its owner).
            host: The network address of the connection's client (a fork's is its parent's).

        Raises:
            ProtocolError: ``CAPACITY_REACHED`` with ``active_sessions`` and ``max_sessions``
                when the server is full, with ``max_forks`` when ``parent``'s owner has
                all the forks it may have, or with ``max_sessions_per_host`` when clients at
                ``host`` hold all the sessions one address may.
        """
        if parent is not None and parent.owner is not None:
            host = parent.owner.host
        per_host = self.quotas.per_host
        if per_host is not None and host is not None and self._hosts[host] >= per_host:
            what = "Fork refused: clients" if parent is not None else "Clients"
            raise ProtocolError(
                ErrorCode.CAPACITY_REACHED,
                f"{what} at {host} hold {self._hosts[host]} sessions (at most {per_host} per "
                "address, --max-sessions-per-host); close some first.",
                active_sessions=self._hosts[host], max_sessions_per_host=per_host,
            )  # fmt: skip
        if parent is not None and parent.owner is not None:
            forks = parent.owner.forks
            if len(forks) >= self.quotas.forks:
                raise ProtocolError(
                    ErrorCode.CAPACITY_REACHED,
                    f"Fork refused: this client already has {len(forks)} live forks (at most "
                    f"{self.quotas.forks}); close some first. This session is unchanged.",
                    active_forks=len(forks), max_forks=self.quotas.forks,
                )  # fmt: skip
        if len(self.sessions) >= self.max_sessions:
            what = "Fork refused: server" if parent is not None else "Server"
            raise ProtocolError(
                ErrorCode.CAPACITY_REACHED,
                f"{what} at capacity: {len(self.sessions)} of {self.max_sessions} sessions in "
                "use. Close idle envs, retry later, or start the server with a larger "
                "--max-sessions.",
                active_sessions=len(self.sessions),
                max_sessions=self.max_sessions,
            )
        session_id = secrets.token_urlsafe(16)
        if parent is not None and parent.owner is not None:
            owner = parent.owner
            owner.forks.add(session_id)
        else:
            owner = Owner(session_id, self.quotas.snapshots, self.quotas.snapshot_bytes,
                          host=host)  # fmt: skip
        owner.sessions += 1
        if host is not None:
            self._hosts[host] += 1
        session = Session(id=session_id, last_active=time.monotonic(), owner=owner,
                          attached=parent is None)  # fmt: skip
        self.sessions[session.id] = session
        return session

    def attach(self, session_id: str) -> Session:
        """Hand a waiting (forked) session to a new connection.

        Raises:
            ProtocolError: ``SESSION_ERROR`` for an unknown, reaped or already attached id.
        """
        session = self.sessions.get(session_id)
        if session is None:
            raise ProtocolError(
                ErrorCode.SESSION_ERROR,
                f"Unknown session_id {session_id!r}: it never existed, its parent session "
                f"closed before it was attached, or it waited longer than "
                f"{self.idle_timeout_s} s and was closed.",
            )
        if session.attached:
            raise ProtocolError(
                ErrorCode.SESSION_ERROR, f"Session {session_id!r} already has a connection."
            )
        session.attached = True
        session.touch()
        return session

    async def release(
        self, session: Session, *, code: int | None = None, reason: str = "",
        error: ProtocolError | None = None,
    ) -> None:  # fmt: skip
        """Close a session: forget it, close its env, and close its socket when ``code`` is set.

        Its fork quota is freed; when it was the last connected session of its owner, the
        forks nobody attached close too and its snapshots are orphaned. Idempotent; never
        raises (a failing ``env.close()`` is logged).
        """
        if session.closed:
            return
        session.closed = True
        self.sessions.pop(session.id, None)
        env, session.env = session.env, None
        if env is not None:
            try:
                await self.call(session, env.close)
            except Exception:
                log.warning("closing the env of session %s failed", session.id, exc_info=True)
        if code is not None and session.closer is not None:
            await _quietly(session.closer(code, reason, error))
        owner = session.owner
        if owner is None:
            return
        owner.forks.discard(session.id)
        owner.sessions -= 1
        if owner.host is not None:
            self._hosts[owner.host] -= 1
            if self._hosts[owner.host] <= 0:
                del self._hosts[owner.host]
        if session.attached and not any(s.attached for s in self._sessions_of(owner)):
            for waiting in self._sessions_of(owner):  # nobody can attach them any more
                await self.release(waiting)
        if owner.sessions <= 0:
            self.snapshots.orphan(owner)

    def _sessions_of(self, owner: Owner) -> list[Session]:
        return [s for s in self.sessions.values() if s.owner is owner]

    # --- Env calls ----------------------------------------------------------------------------
    async def call(self, session: Session, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call cheap env code (``step``): inline, unless the env or the episode is slow."""
        if session.trusted_task and (session.served is None or not session.served.slow):
            return fn(*args, **kwargs)
        return await self.offload(session, fn, *args, **kwargs)

    async def offload(
        self, session: Session | None, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:  # fmt: skip
        """Call env code a client can make expensive in the worker pool (never on the loop)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="turngym-env")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    # --- Snapshots ----------------------------------------------------------------------------
    def put_snapshot(self, owner: Owner, snapshot: Snapshot) -> str:
        """Keep ``snapshot`` for ``owner`` and return its id (its own oldest may be forgotten)."""
        return self.snapshots.put(owner, snapshot)

    def get_snapshot(self, snapshot_id: str) -> Snapshot:
        """Return a kept snapshot.

        Raises:
            ProtocolError: ``VALIDATION_ERROR`` for an unknown or forgotten id.
        """
        return self.snapshots.get(snapshot_id)

    # --- Reaping and shutdown -----------------------------------------------------------------
    async def reap_idle(self) -> int:
        """Close every session idle longer than the timeout; return how many were closed."""
        if self.idle_timeout_s is None:
            return 0
        self.http.expire()
        closed = 0
        deadline = time.monotonic() - self.idle_timeout_s
        for session in [s for s in self.sessions.values() if s.last_active < deadline]:
            if session.lock.locked():  # a call is in flight: it is not idle
                continue
            async with session.lock:
                if session.closed or session.last_active >= deadline:
                    continue
                error = ProtocolError(
                    ErrorCode.SESSION_ERROR,
                    f"Session closed after {self.idle_timeout_s:g} s without a message; "
                    "reconnect and reset to start a new episode.",
                )
                await self.release(session, code=CLOSE_NORMAL, reason="idle timeout",
                                   error=error)  # fmt: skip
                closed += 1
        self.reaped += closed
        return closed

    async def run_reaper(self) -> None:
        """Reap idle sessions forever (a background task; cancel it to stop)."""
        if self.idle_timeout_s is None:
            return
        interval = min(max(self.idle_timeout_s / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reap_idle()
            except Exception:  # keep reaping: one bad env must not stop the reaper
                log.warning("idle-session reaper failed; retrying", exc_info=True)

    async def shutdown(self, timeout_s: float = 5.0) -> None:
        """Close every session and its env (graceful shutdown); then the worker pool."""
        error = ProtocolError(ErrorCode.SESSION_ERROR, "The server is shutting down.")
        for session in list(self.sessions.values()):
            try:
                await asyncio.wait_for(session.lock.acquire(), timeout_s)
            except asyncio.TimeoutError:  # a call is stuck: close the env anyway
                log.warning("session %s still busy at shutdown; closing it anyway", session.id)
            await self.release(session, code=CLOSE_GOING_AWAY, reason="server shutdown",
                               error=error)  # fmt: skip
        self.http.clear()
        self.snapshots.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def stats(self) -> dict[str, Any]:
        """Counts for ``/metadata``: sessions, capacity, snapshots, quotas, reaped so far."""
        return {
            "active_sessions": len(self.sessions),
            "attached_sessions": sum(s.attached for s in self.sessions.values()),
            "max_sessions": self.max_sessions,
            "idle_timeout_s": self.idle_timeout_s,
            **self.snapshots.stats(),
            "http_episodes": len(self.http.owners),
            "quotas": dict(vars(self.quotas)),
            "reaped_sessions": self.reaped,
        }


async def _quietly(closing: Awaitable[None]) -> None:
    """Await a socket close for at most a few seconds; never raise (the peer may be gone)."""
    try:
        await asyncio.wait_for(closing, _CLOSE_TIMEOUT_S)
    except Exception:
        pass
