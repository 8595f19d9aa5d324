"""OpenEnv's own published client plays turngym envs through our server.

OpenEnv's client is the PyPI package ``openenv`` (0.10.0; ``openenv-core`` is its older name).
Its declared dependencies include gradio, fastmcp, huggingface_hub and openai (111 packages in
all, no torch), so it is not in the ``dev`` extra. Its client imports only a slice of them;
install that slice with::

    pip install --no-deps -r tests/server/openenv-client.txt
"""

from __future__ import annotations

import pytest

import turngym

from ._loopback import serve_app

openenv = pytest.importorskip(
    "openenv",
    reason="OpenEnv's client is not installed: pip install --no-deps -r "
    "tests/server/openenv-client.txt",
)
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server():
    with serve_app(["turngym/FrozenLake-v0", "turngym/Sokoban-v0"]) as served:
        yield served


def test_openenv_client_plays_an_env_to_the_end(server):
    local = turngym.make("turngym/FrozenLake-v0")  # mirrors the served episode, for the oracle
    obs, _ = local.reset(seed=3, options={"split": "test"})
    with openenv.GenericEnvClient(base_url=server.url).sync() as env:
        result = env.reset(seed=3, split="test")
        assert result.observation["text"] == obs and result.done is False
        assert result.metadata["task_id"].startswith("frozenlake-")
        turns = 0
        while not result.done:
            action = local.unwrapped.oracle_action()
            obs, reward, terminated, truncated, _ = local.step(action)
            result = env.step({"message": action})
            turns += 1
            assert result.observation["text"] == obs and result.reward == reward
            assert result.metadata["terminated"] is terminated
            assert result.metadata["action_valid"] is True and result.metadata["privileged"] == {}
        assert terminated and result.metadata["success"] is True
        state = env.state()
        assert state["step_count"] == turns and state["env_id"] == "turngym/FrozenLake-v0"


def test_openenv_client_chooses_the_env_and_sees_errors(server):
    with openenv.GenericEnvClient(base_url=server.url).sync() as env:
        result = env.reset(seed=0, env_id="turngym/Sokoban-v0", level=1)
        assert result.metadata["task_id"].startswith("sokoban-")
        result = env.step({"message": "walk north"})
        assert result.metadata["action_valid"] is False and "Invalid action" in result.observation[
            "text"]  # fmt: skip
        with pytest.raises(RuntimeError, match="VALIDATION_ERROR"):
            env.step({"text": "wrong field"})
        assert env.step({"message": "<action>up</action>"}).metadata["state_key"]  # still usable


def test_openenv_validate_accepts_the_server(server):
    validation = pytest.importorskip("openenv.cli._validation")
    report = validation.validate_running_environment(server.url)
    failed = [c for c in report["criteria"] if not c["passed"]]
    assert report["passed"], failed
    assert report["mode"] == "simulation"
