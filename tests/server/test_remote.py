"""RemoteEnv against real uvicorn servers on loopback: conformance, CLI, async, failures."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import turngym
from turngym.agents import RandomAgent
from turngym.cli import main
from turngym.registry import UnknownNameError
from turngym.rollout import collect
from turngym.server.client import ConnectionLost, RemoteEnv, RemoteEnvError
from turngym.testing import check_env

from ._loopback import REPO, serve_app, serve_subprocess

pytestmark = pytest.mark.integration

ENVS = ["turngym/FrozenLake-v0", "test/Counter-v0", "turngym/Sokoban-v0"]


@pytest.fixture(scope="module")
def served():
    with serve_app(ENVS) as server:
        yield server


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), stdout=out), out.getvalue()


@pytest.mark.parametrize("env_id", ["turngym/FrozenLake-v0", "test/Counter-v0"])
def test_remote_env_passes_check_env(served, env_id):
    report = check_env(served.remote(env_id), fuzz_examples=20)
    assert report.ok, [r for r in report.results if not r.ok]
    assert report.env_id == served.remote(env_id)


def test_check_env_takes_a_remote_env_factory(served):
    report = check_env(lambda: RemoteEnv(served.url, "turngym/Sokoban-v0"), fuzz_examples=10,
                       only=["gymnasium", "info_keys", "snapshot", "leaks", "pickle"])  # fmt: skip
    assert report.ok, [r for r in report.results if not r.ok]


def test_turngym_check_rollout_and_eval_against_a_served_env(served, tmp_path):
    remote = served.remote("turngym/Sokoban-v0")
    code, out = run("check", remote, "--fuzz-examples", "10")
    assert code == 0 and "PASS" in out, out
    episodes = tmp_path / "episodes.jsonl"
    code, out = run("rollout", remote, "--agent", "random", "--tasks", "3", "--group-size", "2",
                    "--out", str(episodes), "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["episodes"] == 6 and json.loads(out)["errors"] == 0
    rows = [json.loads(line) for line in episodes.read_text().splitlines()]
    assert {r["env_id"] for r in rows} == {"turngym/Sokoban-v0"} and all(r["turns"] for r in rows)
    code, out = run("eval", remote, "--agents", "random", "--episodes", "3",
                    "--out", str(tmp_path / "run"))  # fmt: skip
    assert code == 0, out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["entries"][0]["env_id"] == remote and results["entries"][0]["env_version"] == 0


def test_readme_serve_example_runs(served):
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Serve envs.*?```python\n(.*?)```", readme, re.S)
    assert block is not None, "README has no Python example under 'Serve envs'"
    namespace: dict = {}
    exec(compile(block.group(1).replace("http://127.0.0.1:8000", served.url), "README", "exec"),
         namespace)  # fmt: skip
    asyncio.run(namespace["play"]())


def test_remote_episodes_equal_local_ones(served):
    remote = collect(served.remote("test/Counter-v0"), RandomAgent(seed=1), tasks=4, group_size=2)
    local = collect("test/Counter-v0", RandomAgent(seed=1), tasks=4, group_size=2)
    for r, loc in zip(remote, local, strict=True):
        for a, b in zip(r.episodes, loc.episodes, strict=True):
            assert a.env_id == b.env_id and a.task_id == b.task_id and a.outcome == b.outcome
            assert [(t.observation, t.action, t.reward, t.state_key) for t in a.turns] == [
                (t.observation, t.action, t.reward, t.state_key) for t in b.turns]  # fmt: skip
            assert a.privileged == {} and b.privileged  # ground truth stays on the server


def test_async_api_runs_envs_concurrently():
    async def play(url: str, seed: int) -> list[str]:
        env = RemoteEnv(url, "test/Counter-v0")
        obs, _ = await env.areset(seed=seed)
        seen = [obs]
        for _ in range(3):  # dec never reaches a target (targets are >= 1): no episode ends
            obs, *_ = await env.astep("<action>dec</action>")
            seen.append(obs)
        branch = await env.afork()
        assert (await branch.astep("<action>inc</action>"))[0].startswith("value=-2")
        await branch.aclose()
        await env.aclose()
        return seen

    async def all_of_them(url: str) -> list[list[str]]:
        return await asyncio.gather(*(play(url, seed) for seed in range(8)))

    with serve_app(["test/Counter-v0"]) as server:
        traces = asyncio.run(all_of_them(server.url))
        assert server.wait_for(lambda s: s["active_sessions"] == 0)["active_sessions"] == 0
    local = turngym.make("test/Counter-v0")
    for seed, trace in enumerate(traces):
        expected = [local.reset(seed=seed)[0]]
        expected += [local.step("<action>dec</action>")[0] for _ in range(3)]
        assert trace == expected


def test_snapshots_forks_and_pickles(served):
    env = RemoteEnv(served.url, "test/Counter-v0", render_mode="ansi")
    env.reset(seed=7)
    env.step("<action>inc</action>")
    state = env.get_state()
    after = env.step("<action>inc</action>")
    env.set_state(state)
    assert env.render().startswith("value=1")
    assert env.step("<action>inc</action>") == after
    fork = env.fork()
    clone = pickle.loads(pickle.dumps(env))  # reconnects and restores on first use
    assert fork.step("<action>dec</action>") == clone.step("<action>dec</action>") == env.step(
        "<action>dec</action>"
    )
    for e in (env, fork, clone):
        e.close()
        e.close()  # idempotent


def test_clear_errors(served):
    with pytest.raises(UnknownNameError, match="Did you mean 'turngym/Sokoban-v0'"):
        turngym.make(served.remote("turngym/Sokoban-v1"))
    with pytest.raises(UnknownNameError, match="No turngym server answers"):
        turngym.make("turngym/Sokoban-v0@http://127.0.0.1:9")
    env = turngym.make(served.remote("test/Counter-v0"))
    with pytest.raises(ValueError, match="Unknown reset option"):
        env.reset(options={"colour": "red"})
    with pytest.raises(ValueError, match="not allowed"):
        RemoteEnv(served.url, "test/Counter-v0", tasks_file="/etc/passwd").reset()
    env.close()


def test_capacity_error_from_remote_env():
    with serve_app(["test/Counter-v0"], max_sessions=1) as server:
        first = RemoteEnv(server.url)
        first.reset()
        with pytest.raises(RemoteEnvError, match="at capacity") as caught:
            RemoteEnv(server.url).reset()
        assert caught.value.code == "CAPACITY_REACHED" and caught.value.data["max_sessions"] == 1
        first.close()
        second = RemoteEnv(server.url)
        assert second.reset()[0].startswith("value=0")  # the slot was freed by close()
        second.close()


def test_reaped_session_fails_clearly_then_reset_reconnects():
    with serve_app(["test/Counter-v0"], idle_timeout_s=0.2) as server:
        env = RemoteEnv(server.url)
        env.reset(seed=0)
        time.sleep(0.6)
        with pytest.raises(RemoteEnvError, match="without a message"):
            env.step("<action>inc</action>")
        with pytest.raises(ConnectionLost, match=r"call reset\(\)"):
            env.step("<action>inc</action>")
        assert env.reset(seed=0)[0].startswith("value=0")  # reconnected
        assert env.step("<action>inc</action>")[0].startswith("value=1")
        env.close()


def test_server_crash_and_killed_clients(tmp_path):
    with serve_subprocess(["turngym/FrozenLake-v0"]) as server:
        env = RemoteEnv(server.url)
        env.reset(seed=0)
        # A client killed mid-episode: its session is closed when the socket drops.
        script = textwrap.dedent(f"""
            import sys, time
            from turngym.server.client import RemoteEnv
            env = RemoteEnv({server.url!r})
            env.reset(seed=1)
            print("ready", flush=True)
            time.sleep(60)
        """)  # fmt: skip
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                 text=True, cwd=REPO)  # fmt: skip
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        assert server.stats()["active_sessions"] == 2
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        assert server.wait_for(lambda s: s["active_sessions"] == 1)["active_sessions"] == 1
        os.kill(server.pid, signal.SIGKILL)  # the server dies mid-episode
        with pytest.raises(ConnectionLost, match="episode is lost"):
            env.step("<action>inc</action>")
        env.close()


def test_frame_limits_on_a_real_server():
    with serve_app(["test/Counter-v0"], max_message_bytes=64 * 1024) as server:
        with connect(server.ws, max_size=None) as ws:
            ws.send(json.dumps({"type": "reset"}))
            json.loads(ws.recv())
            ws.send(json.dumps({"type": "step", "data": {"message": "x" * 100_000}}))
            assert json.loads(ws.recv())["data"]["code"] == "MESSAGE_TOO_LARGE"
            ws.send(json.dumps({"type": "step", "data": {"message": "<action>inc</action>"}}))
            assert json.loads(ws.recv())["type"] == "observation"  # still usable
            # Beyond twice the limit: refused from the frame header, unread. The server closes
            # while the client is still sending, so either call may see the close.
            with pytest.raises(ConnectionClosed) as caught:
                ws.send("y" * (17 << 20))
                ws.recv()
            assert caught.value.rcvd is not None and caught.value.rcvd.code == 1009
        assert server.wait_for(lambda s: s["active_sessions"] == 0)["active_sessions"] == 0


def test_sigterm_shuts_down_gracefully():
    with serve_subprocess(["turngym/FrozenLake-v0"]) as server:
        env = RemoteEnv(server.url)
        env.reset()
        server.process.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once its graceful shutdown is done
        assert server.process.wait(timeout=15) in (0, -signal.SIGTERM)
        with pytest.raises(ConnectionLost, match="1012"):  # closed by the server, not dropped
            env.step("<action>up</action>")
        env.close()


def test_serve_cli_refuses_bad_input(capsys):
    assert run("serve", "turngym/FrozenLak-v0", "--port", "0")[0] == 2
    assert "Did you mean 'turngym/FrozenLake-v0'" in capsys.readouterr().err
    assert run("serve", "turngym/FrozenLake-v0", "--max-sessions", "0")[0] == 2
    assert "--max-sessions >= 1" in capsys.readouterr().err
