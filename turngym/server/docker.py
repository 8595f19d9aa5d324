"""``turngym serve --docker``: build the server image and run it in a container (docker SDK).

:class:`DockerServer` builds an image from the repository's ``Dockerfile`` (python:3.11-slim,
``pip install ".[serve]"``, ``CMD turngym serve ...``), runs it with the server port
published on the host, waits until ``GET /health`` answers, and stops (and removes) the
container on exit. Isolation is the point: env code runs in the container as an unprivileged
user, away from the trainer's machine state.

What it computes without an engine — the build context, the command, the ``containers.run``
arguments — is exposed (:func:`build_context`, :func:`server_command`, :meth:`DockerServer.
run_kwargs`) so it can be checked on machines without Docker. The ``docker`` package (the
``docker`` extra) is imported only when an engine is contacted.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

__all__ = ["DockerServeConfig", "DockerServer", "build_context", "server_command",
           "docker_client", "run_cli", "CONTAINER_PORT", "DEFAULT_IMAGE"]  # fmt: skip

CONTAINER_PORT = 8000
"""The port the server listens on inside the container."""
DEFAULT_IMAGE = "turngym-server:latest"


@dataclass(frozen=True)
class DockerServeConfig:
    """What to serve and how to publish it.

    Attributes:
        env_ids: Env ids to serve (registered in the image: built-ins or installed plugins).
        host: Host interface the port is published on.
        port: Host port (0: Docker picks a free one).
        image: Tag of the image to build and run.
        max_sessions, idle_timeout_s, max_message_bytes, privileged: As for ``turngym serve``.
        limit_flags: The other limit flags of ``turngym serve`` (quotas, timeouts, sizes).
    """

    env_ids: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 8000
    image: str = DEFAULT_IMAGE
    max_sessions: int = 256
    idle_timeout_s: float = 600.0
    max_message_bytes: int = 256 << 10
    privileged: bool = False
    limit_flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.env_ids:
            raise ValueError("name at least one env id to serve")


def build_context(start: Path | None = None) -> Path:
    """The repository root holding the ``Dockerfile`` (searched upwards from this package).

    Raises:
        FileNotFoundError: turngym is installed without its sources (e.g. from a wheel).
    """
    here = (start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        if (folder / "Dockerfile").is_file() and (folder / "pyproject.toml").is_file():
            return folder
    raise FileNotFoundError(
        "turngym serve --docker builds its image from a source checkout (Dockerfile and "
        "pyproject.toml at the repository root), and none was found above "
        f"{here}. Clone the repository and install it with pip install -e '.[serve,docker]'."
    )


def server_command(config: DockerServeConfig) -> list[str]:
    """The command the container runs (the image's ``CMD``, with this config's values)."""
    command = ["turngym", "serve", *config.env_ids, "--host", "0.0.0.0",
               "--port", str(CONTAINER_PORT), "--max-sessions", str(config.max_sessions),
               "--idle-timeout", f"{config.idle_timeout_s:g}",
               "--max-message-bytes", str(config.max_message_bytes),
               *config.limit_flags]  # fmt: skip
    if config.privileged:
        command.append("--privileged")
    return command


def docker_client() -> Any:
    """A docker SDK client connected to a reachable engine.

    Raises:
        RuntimeError: The ``docker`` package is missing, or no engine answers.
    """
    try:
        import docker
    except ImportError as err:
        raise RuntimeError(
            f"--docker needs the docker extra: pip install 'turngym[docker]' ({err})"
        ) from err
    try:
        client = docker.from_env()
        client.ping()
    except Exception as err:  # DockerException, connection refused, missing socket...
        raise RuntimeError(
            f"No Docker engine is reachable ({type(err).__name__}: {err}). Start Docker (or "
            "set DOCKER_HOST), or run turngym serve without --docker."
        ) from err
    return client


class DockerServer:
    """A server in a container: ``build()``, ``start()`` (waits for health), ``stop()``.

    Also a context manager (``with DockerServer(config) as server: server.url``) that builds,
    starts and always stops.

    Args:
        config: What to serve.
        client: A docker SDK client (default: :func:`docker_client`, contacted on first use).
        context: The build context (default: :func:`build_context`).
    """

    def __init__(self, config: DockerServeConfig, client: Any = None,
                 context: Path | None = None) -> None:  # fmt: skip
        self.config = config
        self.context = context or build_context()
        self._client = client
        self.container: Any = None
        self.url = ""

    @property
    def client(self) -> Any:
        """The docker SDK client (connected on first use)."""
        if self._client is None:
            self._client = docker_client()
        return self._client

    def build_kwargs(self) -> dict[str, Any]:
        """Arguments of ``client.images.build``."""
        return {"path": str(self.context), "dockerfile": "Dockerfile", "tag": self.config.image,
                "rm": True, "labels": {"org.turngym.role": "env-server"}}  # fmt: skip

    def run_kwargs(self) -> dict[str, Any]:
        """Arguments of ``client.containers.run``: detached, removed on stop, port published."""
        host_port = self.config.port or None  # None: Docker picks a free port
        return {
            "image": self.config.image,
            "command": server_command(self.config),
            "ports": {f"{CONTAINER_PORT}/tcp": (self.config.host, host_port)},
            "detach": True,
            "remove": True,
            "init": True,  # a real PID 1 forwards SIGTERM, so the server shuts down gracefully
            "labels": {"org.turngym.role": "env-server"},
            "stop_signal": "SIGTERM",
        }

    def build(self) -> None:
        """Build the image from the repository's ``Dockerfile``."""
        self.client.images.build(**self.build_kwargs())

    def start(self, timeout_s: float = 60.0) -> str:
        """Run the container and wait for ``/health``; return the server's base URL.

        Raises:
            RuntimeError: The container exited or did not become healthy (with its logs).
        """
        self.container = self.client.containers.run(**self.run_kwargs())
        self.container.reload()
        binding = self.container.ports[f"{CONTAINER_PORT}/tcp"][0]
        self.url = f"http://{self.config.host}:{binding['HostPort']}"
        self._wait_healthy(timeout_s)
        return self.url

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            self.container.reload()
            if self.container.status in ("exited", "dead"):
                break
            time.sleep(0.5)
        logs = self.logs()
        self.stop()
        raise RuntimeError(f"the server container did not become healthy at {self.url}:\n{logs}")

    def logs(self) -> str:
        """The container's output so far (empty once it is gone)."""
        try:
            return self.container.logs().decode(errors="replace") if self.container else ""
        except Exception:  # removed already
            return ""

    def stop(self, timeout_s: int = 10) -> None:
        """Stop the container (SIGTERM, then SIGKILL after ``timeout_s``); it removes itself."""
        container, self.container = self.container, None
        if container is None:
            return
        try:
            container.stop(timeout=timeout_s)
        except Exception:  # already gone
            pass

    def __enter__(self) -> DockerServer:
        self.build()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_cli(args: argparse.Namespace, out: TextIO) -> int:
    """``turngym serve --docker``: build, run, print the URL, stream logs until Ctrl-C."""
    config = DockerServeConfig(
        tuple(args.env_ids), host=args.host, port=args.port, image=args.image or DEFAULT_IMAGE,
        max_sessions=args.max_sessions, idle_timeout_s=args.idle_timeout,
        max_message_bytes=args.max_message_bytes, privileged=args.privileged,
        limit_flags=tuple(getattr(args, "limit_flags", ())),
    )  # fmt: skip
    try:
        server = DockerServer(config, client=docker_client())
        print(f"turngym serve --docker: building {config.image} from {server.context}",
              file=out, flush=True)  # fmt: skip
        server.build()
        url = server.start()
    except (RuntimeError, FileNotFoundError) as err:
        print(f"turngym serve: {err}", file=sys.stderr)
        return 2
    print(f"turngym serve: {', '.join(config.env_ids)} on {url} in container "
          f"{server.container.short_id} (play with ENV_ID@{url}); Ctrl-C stops it",
          file=out, flush=True)  # fmt: skip
    try:
        for line in server.container.logs(stream=True, follow=True):
            out.write(line.decode(errors="replace"))
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
