"""Sandbox uid leases under contention: concurrent gradings never wait on each other forever.

A grading runs three sandboxed children, each under its own leased uid. When gradings took
their uids one at a time, concurrent ones (threads of one process, or several processes on one
host) could each hold one or two and wait for the rest until every uid was taken: a deadlock
that turned into missed deadlines on a loaded machine. Here other holders keep all but four
uids, and four gradings run at once: they must all finish, correct.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time

import pytest

from turngym.envs.kernel import _sandbox_uids as sbx_uids
from turngym.envs.kernel import refpool
from turngym.envs.kernel import tasks as kt
from turngym.envs.kernel.runner import evaluate_candidate

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="sandbox uids are leased only as root"),
]


def _hold_all_but(free: int) -> list[int]:
    """Lock every free uid slot but ``free`` of them, as another process would hold them."""
    held: list[int] = []
    sbx_uids._LEASES._dir.mkdir(mode=0o700, exist_ok=True)
    for uid in range(sbx_uids.UID_BASE, sbx_uids.UID_BASE + sbx_uids.UID_SLOTS):
        fd = os.open(sbx_uids._LEASES._dir / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append(fd)
        except BlockingIOError:
            os.close(fd)
    for fd in held[len(held) - free :]:
        os.close(fd)
    return held[: len(held) - free]


def test_concurrent_gradings_share_scarce_sandbox_uids():
    reference, oracle = kt.render("softmax", {"B": 16, "D": 128})
    refpool.default_pool().close()  # idle children hold uids too
    held = _hold_all_but(4)
    results: dict[int, dict] = {}
    try:
        threads = [threading.Thread(target=lambda i=i: results.setdefault(
            i, evaluate_candidate(reference, oracle)), daemon=True) for i in range(4)]  # fmt: skip
        for t in threads:
            t.start()
        deadline = time.monotonic() + 180
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in threads), "gradings waited on each other's uids"
    finally:
        for fd in held:
            os.close(fd)
        refpool.default_pool().close()
    assert [results[i]["status"] for i in range(4)] == ["correct"] * 4
