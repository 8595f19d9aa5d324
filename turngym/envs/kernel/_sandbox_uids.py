"""Host-side uid bookkeeping of the kernel sandbox; see :mod:`turngym.envs.kernel.sandbox`.

Each running sandbox gets its own unprivileged uid (``UID_BASE + slot``; no passwd entry is
needed), leased through a lock file per uid so that concurrent callers, threads of one
:class:`~turngym.envs.kernel.sandbox.SandboxPool` or separate processes, never share one. A
private uid makes ``RLIMIT_NPROC`` a per-sandbox limit and lets the host find everything a
sandbox left behind by owner: processes (killed with ``kill -9 -1`` run as that uid) and
files in the shared scratch dirs (deleted).

A caller that needs several sandboxes at once (a kernel grading runs three children) takes
their uids together with :meth:`_UidLeases.acquire_many`, all or none: holding some uids
while waiting for more would let concurrent gradings (threads of one process, or other
processes) each hold part of what they need until every uid is taken and none can go on.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

UID_BASE = int(os.environ.get("TURNGYM_SANDBOX_UID_BASE", "62000"))
UID_SLOTS = 256
"""Sandbox uids ``UID_BASE .. UID_BASE + UID_SLOTS - 1``: the sandboxes that may live at once
on this host, across processes (a grading holds three, an idle warm reference child one)."""
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


class _UidLeases:
    """Hands out distinct sandbox uids: a lock file per uid (across processes) plus a set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dir = Path("/run" if os.path.isdir("/run") else "/var/lock") / "turngym-sandbox"

    def acquire(self) -> tuple[int, int]:
        """Block until a uid is free; returns ``(uid, lock_fd)``."""
        return self.acquire_many(1)[0]

    def acquire_many(self, n: int, on_wait: Callable[[], None] | None = None,
                     ) -> list[tuple[int, int]]:  # fmt: skip
        """Block until ``n`` uids are free and take them together: ``[(uid, lock_fd), ...]``.

        Never holds a uid while it waits for another (see the module docstring). ``on_wait``
        runs before each wait (e.g. to close idle sandboxes this process keeps, whose uids
        another caller may need).
        """
        self._dir.mkdir(mode=0o700, exist_ok=True)
        while True:
            with self._lock:
                taken = self._try(n)
                if len(taken) == n:
                    return taken
                for _, fd in taken:
                    os.close(fd)
            if on_wait is not None:
                on_wait()
            time.sleep(0.05)

    def _try(self, n: int) -> list[tuple[int, int]]:
        """Up to ``n`` free uids, locked.

        The scan starts at a per-process offset, so that processes looking at the same time
        mostly try different uids.
        """
        taken: list[tuple[int, int]] = []
        first = os.getpid() % UID_SLOTS
        for slot in range(UID_SLOTS):
            uid = UID_BASE + (first + slot) % UID_SLOTS
            fd = os.open(self._dir / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            taken.append((uid, fd))
            if len(taken) == n:
                break
        return taken

    @staticmethod
    def release(fd: int) -> None:
        os.close(fd)  # closing drops the flock


_LEASES = _UidLeases()


def _uid_processes(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real uid is ``uid``, from the host's /proc."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                status = f.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        zombie = fields.get("State", "").split()[:1] == ["Z"]
        if int(fields.get("Uid", "-1").split()[0]) == uid and not zombie:
            found.append(int(name))
    return found


def _kill_uid(uid: int) -> int:
    """Kill every process of ``uid`` (``kill -9 -1`` run *as* that uid); returns how many."""
    pids = _uid_processes(uid)
    first = len(pids)
    for _ in range(50):
        if not pids:
            break
        subprocess.run(["/bin/sh", "-c", "kill -9 -1 2>/dev/null; exit 0"], user=uid, group=uid,
                       extra_groups=[], env={}, check=False)
        time.sleep(0.02)
        pids = _uid_processes(uid)
    return first


def _remove_scratch_files(uid: int, workdir: str) -> list[str]:
    """Delete top-level entries of the shared scratch dirs owned by ``uid`` (but ``workdir``)."""
    found = []
    for d in SCRATCH_DIRS:
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
            except OSError:
                continue
            if entry.path == workdir:
                continue
            found.append(entry.path)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
    return found
