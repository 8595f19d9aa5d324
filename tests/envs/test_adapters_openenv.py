"""An echo env on OpenEnv's own server (openenv package), played through ``openenv+ws://``."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

pytest.importorskip("openenv.core.env_server", reason="OpenEnv is not installed")
uvicorn = pytest.importorskip("uvicorn")

from openenv.core.env_server import http_server, interfaces, types  # noqa: E402

import turngym  # noqa: E402
from turngym.cli import main  # noqa: E402

pytestmark = pytest.mark.integration


class EchoAction(types.Action):
    message: str


class EchoObservation(types.Observation):
    echoed_message: str = ""


class EchoEnv(interfaces.Environment):
    """OpenEnv's echo env, rewritten here on OpenEnv's own base classes: the reward is the
    message length / 10, and the episode ends after three steps."""

    SUPPORTS_CONCURRENT_SESSIONS = True  # each session gets its own instance

    def __init__(self):
        super().__init__()
        self._state = types.State(episode_id="e", step_count=0)

    def reset(self, seed=None, episode_id=None, **kwargs):
        self._state = types.State(episode_id="e", step_count=0)
        return EchoObservation(echoed_message="Echo env ready!", done=False, reward=0.0)

    def step(self, action, timeout_s=None, **kwargs):
        self._state.step_count += 1
        return EchoObservation(echoed_message=action.message, reward=len(action.message) / 10,
                               done=self._state.step_count >= 3)  # fmt: skip

    @property
    def state(self):
        return self._state


@pytest.fixture(scope="module")
def echo_url():
    app = http_server.create_fastapi_app(EchoEnv, EchoAction, EchoObservation,
                                         max_concurrent_envs=4)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"ws://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_make_plays_the_echo_env(echo_url):
    env = turngym.make(f"openenv+{echo_url}")
    obs, info = env.reset(seed=0)
    assert obs == "Echo env ready!" and info["task_id"] == ""
    obs, reward, done, cut, info = env.step("hello")
    assert obs == "hello" and reward == 0.5 and not done and info["action_valid"]
    env.step("ab")
    _, reward, done, _, _ = env.step("abcd")
    assert done and reward == 0.4
    env.close()


def test_server_refusals_are_invalid_actions(echo_url):
    env = turngym.make(f"openenv+{echo_url}", action_field="text")  # EchoAction has no "text"
    env.reset()
    obs, reward, done, _, info = env.step("hello")
    assert info["action_valid"] is False and "Invalid action" in obs and not done
    env.close()


def test_turngym_rollout_plays_the_served_env(echo_url, tmp_path, capsys):
    out = tmp_path / "episodes.jsonl"
    code = main(["rollout", f"openenv+{echo_url}", "--tasks", "2", "--agent", "random",
                 "--max-turns", "5", "--out", str(out), "--json"])  # fmt: skip
    episodes = [json.loads(line) for line in out.read_text().splitlines()]
    assert code == 0, [e.get("error") for e in episodes]
    assert len(episodes) == 2 and all(len(e["turns"]) == 3 for e in episodes)
    assert all(t["observation"] for e in episodes for t in e["turns"])
