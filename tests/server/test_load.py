"""Load test: 200 concurrent sessions x 500 steps on one server, zero errors, flat memory.

Slow (under a minute on 2 busy cores): ``pytest -m slow tests/server/test_load.py``. Bounded:
every reply has a timeout and the whole run a deadline, so it always stops by itself.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from turngym.server.client import RemoteEnv

from ._loopback import serve_subprocess

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SESSIONS = 200
STEPS = 500
ENV_ID = "turngym/FrozenLake-v0"
ACTIONS = ("<action>left</action>", "<action>down</action>", "<action>right</action>",
           "<action>up</action>", "no tag at all")  # fmt: skip


def rss_mib(pid: int) -> float:
    """Resident memory of a process (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def _session(url: str, index: int, steps: int, errors: list[str]) -> int:
    env = RemoteEnv(url, ENV_ID, message_timeout=60.0)
    done = 0
    try:
        await env.areset(seed=index)
        for k in range(steps):
            _, _, terminated, truncated, info = await env.astep(ACTIONS[(index + k) % 5])
            assert "state_key" in info and info["privileged"] == {}
            done += 1
            if terminated or truncated:
                await env.areset(seed=index * STEPS + k)
    except Exception as err:  # counted, not raised: the test reports every failure at once
        errors.append(f"session {index}: {type(err).__name__}: {err}")
    finally:
        await env.aclose()
    return done


async def _round(url: str, steps: int, errors: list[str]) -> int:
    counts = await asyncio.wait_for(
        asyncio.gather(*(_session(url, i, steps, errors) for i in range(SESSIONS))), timeout=600
    )
    return sum(counts)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for RSS")
def test_200_sessions_x_500_steps_without_errors_and_with_flat_memory():
    with serve_subprocess([ENV_ID, "--max-sessions", "256", "--idle-timeout", "300"]) as server:
        errors: list[str] = []
        # Warm-up: imports, buffers, and the env's bounded caches (FrozenLake keeps its last
        # 4,096 solved maps, turngym.core its last 4,096 task draws: ~15 MiB once full). The
        # warm-up plays more than 4,096 distinct tasks, so what follows is steady state.
        asyncio.run(_round(server.url, 250, errors))
        before = rss_mib(server.pid)
        steps = asyncio.run(_round(server.url, STEPS, errors))
        after = rss_mib(server.pid)
        assert errors == [], errors[:5]
        assert steps == SESSIONS * STEPS
        stats = server.wait_for(lambda s: s["active_sessions"] == 0)
        assert stats["active_sessions"] == 0 and stats["reaped_sessions"] == 0
        # Flat: 100,000 steps and thousands of resets and sessions may move RSS only by
        # allocator slack; a leak of 40 bytes per step or 1 KiB per session would show.
        assert after - before < 4.0, f"server RSS grew from {before:.1f} to {after:.1f} MiB"
