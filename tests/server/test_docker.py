"""``turngym serve --docker``: what the launcher computes, and the real thing when Docker runs.

Nothing is mocked: the engine test builds the image from the repository's Dockerfile, runs
it, plays an env through the published port and stops it; it skips (saying how to run it)
when no Docker engine is reachable, as on the project's CI machines.
"""

from __future__ import annotations

import io

import pytest

from turngym.cli import main
from turngym.server.docker import (
    CONTAINER_PORT,
    DockerServeConfig,
    DockerServer,
    build_context,
    docker_client,
    server_command,
)

from ._loopback import REPO


def _engine() -> object | None:
    try:
        return docker_client()
    except RuntimeError:
        return None


def test_build_context_is_the_repository_with_a_lean_dockerfile():
    context = build_context()
    assert context == REPO
    dockerfile = (context / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile and '".[serve]"' in dockerfile
    assert 'CMD ["turngym", "serve"' in dockerfile and "USER turngym" in dockerfile
    ignored = (context / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") + 1 :][:3] == ["!pyproject.toml", "!README.md", "!turngym/"]
    with pytest.raises(FileNotFoundError, match="source checkout"):
        build_context(REPO.parent / "nowhere" / "x.py")


def test_command_and_run_arguments():
    config = DockerServeConfig(("turngym/Sokoban-v0", "turngym/FrozenLake-v0"), port=0,
                               max_sessions=8, idle_timeout_s=30, privileged=True,
                               limit_flags=("--max-forks", "4"))  # fmt: skip
    assert server_command(config) == [
        "turngym", "serve", "turngym/Sokoban-v0", "turngym/FrozenLake-v0", "--host", "0.0.0.0",
        "--port", "8000", "--max-sessions", "8", "--idle-timeout", "30",
        "--max-message-bytes", "262144", "--max-forks", "4", "--privileged",
    ]  # fmt: skip
    server = DockerServer(config, client=object())  # no engine is contacted to compute these
    run = server.run_kwargs()
    assert run["ports"] == {f"{CONTAINER_PORT}/tcp": ("127.0.0.1", None)}  # 0: a free port
    assert run["detach"] and run["remove"] and run["init"] and run["image"] == config.image
    assert run["command"] == server_command(config)
    build = server.build_kwargs()
    assert build["path"] == str(REPO) and build["tag"] == "turngym-server:latest"
    with pytest.raises(ValueError, match="at least one env id"):
        DockerServeConfig(())


def test_cli_without_an_engine_says_what_to_do(capsys):
    if _engine() is not None:
        pytest.skip("a Docker engine is reachable: the engine test below covers the CLI path")
    code = main(["serve", "turngym/FrozenLake-v0", "--docker"], stdout=io.StringIO())
    assert code == 2
    assert "No Docker engine is reachable" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.slow
def test_served_from_a_container():
    client = _engine()
    if client is None:
        pytest.skip("no Docker engine reachable: start Docker (or set DOCKER_HOST) to run this")
    from turngym.server.client import RemoteEnv

    config = DockerServeConfig(("turngym/FrozenLake-v0",), port=0, image="turngym-server:test")
    with DockerServer(config, client=client) as server:
        env = RemoteEnv(server.url, "turngym/FrozenLake-v0")
        obs, info = env.reset(seed=0, options={"split": "test"})
        assert info["task_id"].startswith("frozenlake-") and obs
        env.close()
