"""Per-client resource accounting of a server: who holds which snapshots and forks.

An :class:`Owner` is one client's share of the server. A WebSocket connection's session is an
owner; the forks it makes belong to the same owner, and so do the forks of those forks, so one
socket cannot fill the server by forking. A stateless HTTP episode (``POST /reset`` and the
``/step`` chain continuing from its snapshots) is an owner of its own.

Quotas (:class:`~turngym.server.limits.Quotas`) are per owner and evict only the owner's own data:

* **Snapshots.** An owner keeps at most ``snapshots`` snapshots and ``snapshot_bytes`` bytes of
  them; one beyond that forgets the owner's own least recently used snapshot, never another
  client's. When the last session of an owner closes, its snapshots move to a shared pool of
  ``orphans`` (least recently used forgotten first), so a pickled ``RemoteEnv`` can still
  restore them for a while.
* **Forks.** An owner has at most ``forks`` live forks; a fork beyond that (or beyond the
  server's capacity) is refused and the forking session is unchanged.
* **HTTP episodes.** At most ``http_episodes`` are kept, each with at most
  ``http_snapshots`` snapshots. When the table is full, a new ``/reset`` takes the place of the
  least recently used episode only if that one has had no request for :data:`HTTP_GRACE_S`
  seconds; otherwise it is refused with ``CAPACITY_REACHED``, so an episode in use is never
  forgotten and a burst of ``/reset`` requests blocks new episodes for seconds, not for the
  idle timeout. An episode without a request for the idle timeout is forgotten.

So the snapshot memory of a server is bounded by ``(max_sessions * snapshot_bytes +
http_episodes * http_snapshot_bytes + orphan_bytes)``, whatever its clients do.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from turngym.server.catalog import ServedEnv
from turngym.server.limits import Quotas
from turngym.server.protocol import ErrorCode, ObservationData, ProtocolError

__all__ = ["Quotas", "Owner", "Snapshot", "SnapshotStore", "HttpEpisodes", "HTTP_GRACE_S"]

HTTP_GRACE_S = 30.0
"""Seconds without a request after which a full HTTP episode table may forget an episode."""


@dataclass(frozen=True)
class Snapshot:
    """A saved session state, kept on the server under an opaque id."""

    served: ServedEnv
    env_kwargs: dict[str, Any]
    state: bytes
    turn: int
    episode_id: str | None
    last: ObservationData
    trusted_task: bool = True


@dataclass(eq=False)
class Owner:
    """One client's share: its snapshots (least recently used first), forks and sessions.

    Attributes:
        id: Unguessable id (an HTTP episode's id; a session owner's is its root session's).
        snapshot_limit: Snapshots kept at most.
        byte_limit: Bytes of snapshots kept at most.
        snapshots: Snapshot id -> snapshot, least recently used first.
        nbytes: Their total size.
        forks: Ids of the live forks made by the owner's sessions.
        sessions: Live sessions of this owner (its snapshots are orphaned at zero).
        last_active: ``time.monotonic()`` of the last use (HTTP episodes expire by it).
        host: The client's network address (``Quotas.per_host`` counts by it), if known.
    """

    id: str
    snapshot_limit: int
    byte_limit: int
    snapshots: OrderedDict[str, Snapshot] = field(default_factory=OrderedDict)
    nbytes: int = 0
    forks: set[str] = field(default_factory=set)
    sessions: int = 0
    last_active: float = field(default_factory=time.monotonic)
    host: str | None = None


def _size(snapshot: Snapshot) -> int:
    """Approximate bytes a snapshot holds: its state plus the observation replayed with it."""
    text = snapshot.last.observation.get("text")
    return len(snapshot.state) + (len(text) if isinstance(text, str) else 0) + 512


class SnapshotStore:
    """Every snapshot of a server, each charged to the owner that took it.

    Args:
        quotas: The limits.
        idle_timeout_s: How long a snapshot id stays valid in error messages (for the text).
    """

    def __init__(self, quotas: Quotas, idle_timeout_s: float | None = None) -> None:
        self.quotas = quotas
        self.idle_timeout_s = idle_timeout_s
        self._where: dict[str, Owner] = {}
        self._orphans = Owner("orphans", quotas.orphans, quotas.orphan_bytes)

    def put(self, owner: Owner, snapshot: Snapshot) -> str:
        """Keep ``snapshot`` for ``owner`` and return its id.

        Raises:
            ProtocolError: ``CAPACITY_REACHED`` when one snapshot alone exceeds the owner's
                byte quota (nothing is forgotten then).
        """
        size = _size(snapshot)
        if size > owner.byte_limit:
            raise ProtocolError(
                ErrorCode.CAPACITY_REACHED,
                f"This snapshot takes {size} bytes, more than a client may keep "
                f"({owner.byte_limit}); the session is unchanged.",
                snapshot_bytes=size, limit_bytes=owner.byte_limit,
            )  # fmt: skip
        snapshot_id = secrets.token_urlsafe(16)
        self._add(owner, snapshot_id, snapshot, size)
        return snapshot_id

    def _add(self, owner: Owner, snapshot_id: str, snapshot: Snapshot, size: int) -> None:
        owner.snapshots[snapshot_id] = snapshot
        owner.nbytes += size
        self._where[snapshot_id] = owner
        while owner.snapshots and (len(owner.snapshots) > owner.snapshot_limit
                                   or owner.nbytes > owner.byte_limit):  # fmt: skip
            old_id, old = owner.snapshots.popitem(last=False)
            owner.nbytes -= _size(old)
            self._where.pop(old_id, None)

    def get(self, snapshot_id: str) -> Snapshot:
        """Return a kept snapshot (and mark it recently used within its owner).

        Raises:
            ProtocolError: ``VALIDATION_ERROR`` for an unknown or forgotten id.
        """
        owner = self._where.get(snapshot_id)
        if owner is None:
            raise ProtocolError(
                ErrorCode.VALIDATION_ERROR,
                f"Unknown snapshot_id {snapshot_id!r}: snapshots live in the server's memory, "
                f"count against the client that took them (its {self.quotas.snapshots} most "
                "recent are kept) and are lost when the server restarts.",
            )
        owner.snapshots.move_to_end(snapshot_id)
        owner.last_active = time.monotonic()
        return owner.snapshots[snapshot_id]

    def owner_of(self, snapshot_id: str) -> Owner | None:
        """The owner a snapshot is charged to (``None`` for an unknown id or an orphan)."""
        owner = self._where.get(snapshot_id)
        return None if owner is self._orphans else owner

    def orphan(self, owner: Owner) -> None:
        """Move ``owner``'s snapshots to the shared pool (its last session closed)."""
        for snapshot_id, snapshot in owner.snapshots.items():
            self._where.pop(snapshot_id, None)
            size = _size(snapshot)
            if size <= self._orphans.byte_limit:
                self._add(self._orphans, snapshot_id, snapshot, size)
        owner.snapshots.clear()
        owner.nbytes = 0

    def drop(self, owner: Owner) -> None:
        """Forget ``owner``'s snapshots (an expired HTTP episode)."""
        for snapshot_id in owner.snapshots:
            self._where.pop(snapshot_id, None)
        owner.snapshots.clear()
        owner.nbytes = 0

    def clear(self) -> None:
        """Forget everything (server shutdown)."""
        self._where.clear()
        self._orphans.snapshots.clear()
        self._orphans.nbytes = 0

    def stats(self) -> dict[str, Any]:
        """Counts for ``/metadata``."""
        owners = {id(o): o for o in self._where.values()}.values()
        return {"snapshots": len(self._where),
                "snapshot_bytes": sum(o.nbytes for o in owners),
                "orphaned_snapshots": len(self._orphans.snapshots)}  # fmt: skip


class HttpEpisodes:
    """The owners of stateless HTTP episodes: bounded, expiring, never evicting a live one.

    Args:
        store: Where their snapshots are kept.
        idle_timeout_s: Forget an episode without a request for this long (``None``: never).
    """

    def __init__(self, store: SnapshotStore, idle_timeout_s: float | None) -> None:
        self.store = store
        self.idle_timeout_s = idle_timeout_s
        self.owners: OrderedDict[str, Owner] = OrderedDict()

    def new(self, host: str | None = None) -> Owner:
        """An owner for a new episode (``POST /reset``) of a client at ``host``.

        Raises:
            ProtocolError: ``CAPACITY_REACHED`` when the table is full of live episodes, or
                when ``host`` holds ``Quotas.per_host`` of them (none idle for the grace
                period: only the host's own are forgotten for it).
        """
        limit, per_host = self.store.quotas.http_episodes, self.store.quotas.per_host
        if len(self.owners) >= limit:
            self.expire()
        if per_host is not None and host is not None:
            own = [o for o in self.owners.values() if o.host == host]
            if len(own) >= per_host and not self._forget_idle(own[0]):
                raise ProtocolError(
                    ErrorCode.CAPACITY_REACHED,
                    f"Clients at {host} hold {len(own)} stateless HTTP episodes (at most "
                    f"{per_host} per address, none idle for {HTTP_GRACE_S:g} s yet); retry "
                    "in a few seconds.",
                    active_http_episodes=len(own), max_http_episodes_per_host=per_host,
                )  # fmt: skip
        if len(self.owners) >= limit:
            self._forget_idle(next(iter(self.owners.values())))  # least recently used first
        if len(self.owners) >= limit:
            raise ProtocolError(
                ErrorCode.CAPACITY_REACHED,
                f"{len(self.owners)} stateless HTTP episodes are in progress (this server keeps "
                f"{limit}, none idle for {HTTP_GRACE_S:g} s yet); retry in a few seconds or "
                "use WS /ws sessions.",
                active_http_episodes=len(self.owners), max_http_episodes=limit,
            )  # fmt: skip
        quotas = self.store.quotas
        owner = Owner(secrets.token_urlsafe(16), quotas.http_snapshots,
                      quotas.http_snapshot_bytes, host=host)  # fmt: skip
        self.owners[owner.id] = owner
        return owner

    def _forget_idle(self, owner: Owner) -> bool:
        """Forget ``owner`` if it has had no request for the grace period; say whether."""
        grace = min(HTTP_GRACE_S, self.idle_timeout_s or HTTP_GRACE_S)
        if time.monotonic() - owner.last_active < grace:
            return False
        self.discard(owner)
        return True

    def discard(self, owner: Owner) -> None:
        """Forget ``owner`` and its snapshots (its episode never started)."""
        self.owners.pop(owner.id, None)
        self.store.drop(owner)

    def touch(self, owner: Owner) -> None:
        """Mark ``owner`` as used now (it expires last)."""
        owner.last_active = time.monotonic()
        if owner.id in self.owners:
            self.owners.move_to_end(owner.id)

    def expire(self) -> int:
        """Forget episodes idle longer than the timeout; return how many."""
        if self.idle_timeout_s is None:
            return 0
        deadline = time.monotonic() - self.idle_timeout_s
        stale = [o for o in self.owners.values() if o.last_active < deadline]
        for owner in stale:
            self.owners.pop(owner.id, None)
            self.store.drop(owner)
        return len(stale)

    def clear(self) -> None:
        """Forget every episode (server shutdown)."""
        for owner in self.owners.values():
            self.store.drop(owner)
        self.owners.clear()
