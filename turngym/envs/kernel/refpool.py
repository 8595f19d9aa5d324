"""Warm reference children, reused across evaluations of the same task (issue 17 item 5).

A reference child (role ``reference`` of :mod:`~turngym.envs.kernel.harness`) only ever runs
the task's own ``Model``: it draws inputs, computes reference outputs and is timed; no
candidate code or data reaches it. So one can serve many evaluations of the same reference
source, one at a time, which saves a fork, a load and a teardown per evaluation. Its
``init_seed`` is drawn (``os.urandom``) when it starts and shared with every candidate graded
against it, so candidate and reference weights match as before. A child that misbehaved,
missed a deadline or died is closed instead of returned.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections import OrderedDict

from turngym.envs.kernel import channel as ch
from turngym.envs.kernel import forkserver as fs
from turngym.envs.kernel._sandbox_uids import _LEASES
from turngym.envs.kernel.sandbox import SandboxLimits
from turngym.envs.kernel.verdict import ChildLink, Verdict, fresh_seed

__all__ = ["ReferencePool", "default_pool"]


class ReferencePool:
    """Idle reference children by reference hash (at most ``max_idle`` kept, LRU)."""

    def __init__(self, max_idle: int = 4) -> None:
        self.max_idle = max_idle
        self._idle: OrderedDict[int, tuple[str, ChildLink]] = OrderedDict()
        self._lock = threading.Lock()

    def checkout(self, key: str, reference: str, server: fs.ForkServer, limits: SandboxLimits,
                 deadline: float, lease: tuple[int, int] | None = None) -> ChildLink:  # fmt: skip
        """An idle child loaded with ``reference`` (or a new one); it has ``init``/``init_seed``.

        ``lease``: the sandbox uid a new child would run as (released if an idle one serves).
        """
        found, dead = None, []
        with self._lock:
            for slot, (k, link) in list(self._idle.items()):
                if k == key and link.server is server and link.limits == limits:
                    del self._idle[slot]
                    if not link.proc.alive():
                        dead.append(link)
                        continue
                    found = link
                    break
        for link in dead:
            link.close()
        if found is not None:
            if lease is not None:
                _LEASES.release(lease[1])
            found.deadline, found.cpu = deadline, {"load": found.cpu.get("load", [])}
            return found
        link = ChildLink("reference", server, limits, deadline, lease)
        try:
            link.hello()
            link.init_seed = fresh_seed() % (1 << 62)
            reply, _ = link.ask({"kind": "load", "source": reference, "init_seed": link.init_seed},
                                label="load")
            if reply["kind"] != "ok" or not isinstance(reply.get("init"), list):
                raise Verdict("reference_error", str(reply.get("error", "no init"))[-1500:])
            link.init = reply["init"]
        except (Verdict, ch.ProtocolViolation):
            link.close()
            raise
        return link

    def checkin(self, key: str, link: ChildLink, healthy: bool) -> None:
        """Return a child after an evaluation; unhealthy or surplus ones are closed."""
        used = ch.cpu_time(link.pid)
        # RLIMIT_CPU counts the child's whole life: retire it well before the limit.
        if not healthy or time.monotonic() > link.deadline or used is None or (
                used > link.limits.cpu_seconds / 2):
            link.close()
            return
        evicted = []
        with self._lock:
            self._idle[id(link)] = (key, link)
            while len(self._idle) > self.max_idle:
                evicted.append(self._idle.popitem(last=False)[1][1])
        for old in evicted:
            old.close()

    def close(self) -> None:
        """Close every idle child."""
        with self._lock:
            links = [link for _, link in self._idle.values()]
            self._idle.clear()
        for link in links:
            link.close()


_POOL = ReferencePool()
_REGISTERED: list[bool] = []


def default_pool() -> ReferencePool:
    """The process-wide pool used by :func:`~turngym.envs.kernel.grader.grade`.

    Its children are closed at exit, before the fork server (atexit runs handlers in reverse
    order, and the server registers its own on first use, before any checkout).
    """
    if not _REGISTERED:
        _REGISTERED.append(True)
        atexit.register(_POOL.close)
    return _POOL
