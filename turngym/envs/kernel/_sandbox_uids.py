"""Host-side uid bookkeeping of the kernel sandbox; see :mod:`turngym.envs.kernel.sandbox`.

Each running sandbox gets its own unprivileged uid (``UID_BASE + slot``; no passwd entry is
needed), leased through a lock file per uid so that concurrent callers, threads of one
:class:`~turngym.envs.kernel.sandbox.SandboxPool` or separate processes, never share one. A
private uid makes ``RLIMIT_NPROC`` a per-sandbox limit and lets the host find everything a
sandbox left behind by owner: processes (killed with ``kill -9 -1`` run as that uid) and
files in the shared scratch dirs (deleted).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

UID_BASE = int(os.environ.get("TURNGYM_SANDBOX_UID_BASE", "62000"))
UID_SLOTS = 64
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


class _UidLeases:
    """Hands out distinct sandbox uids: a lock file per uid (across processes) plus a set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dir = Path("/run" if os.path.isdir("/run") else "/var/lock") / "turngym-sandbox"

    def acquire(self) -> tuple[int, int]:
        """Block until a uid is free; returns ``(uid, lock_fd)``."""
        self._dir.mkdir(mode=0o700, exist_ok=True)
        while True:
            with self._lock:
                for uid in range(UID_BASE, UID_BASE + UID_SLOTS):
                    fd = os.open(self._dir / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        return uid, fd
                    except BlockingIOError:
                        os.close(fd)
            time.sleep(0.05)

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
