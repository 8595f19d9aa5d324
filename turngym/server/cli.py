"""``turngym serve ENV_ID...``: run envs behind the OpenEnv-compatible server.

:func:`add_parser` adds the subcommand to the ``turngym`` parser and sets its
``handler(args, out) -> exit code`` (0 after a clean shutdown, 2 for bad input or a missing
extra). :func:`serve` is the same server as a function (blocking until Ctrl-C / SIGTERM).

Examples::

    turngym serve turngym/Sokoban-v0 turngym/FrozenLake-v0 --port 8000
    turngym rollout turngym/Sokoban-v0@http://127.0.0.1:8000 --agent random --tasks 20
    turngym serve turngym/Sokoban-v0 --docker --port 8000    # the same, in a container

fastapi and uvicorn are imported only when a server starts, so the CLI itself needs no extra.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

__all__ = ["add_parser", "serve", "ws_max_size"]

DEFAULT_PORT = 8000


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the CLI's subcommands.

    Args:
        sub: What ``parser.add_subparsers()`` returned for the ``turngym`` parser.
    """
    p = sub.add_parser(
        "serve",
        help="serve envs over OpenEnv's WebSocket protocol (serve extra)",
        description="Serve envs to trainers and OpenEnv clients: WS /ws (one env per "
        "connection), GET /health /metadata /schema, stateless POST /reset /step. Play a "
        "served env from turngym with the id ENV_ID@http://HOST:PORT.",
    )
    p.add_argument("env_ids", nargs="+", metavar="ENV_ID",
                   help="env ids (the first is the default), or module:Name-v0")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="interface (0.0.0.0: all)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0: any free port)")
    p.add_argument("--max-sessions", type=int, default=256, help="concurrent sessions at most")
    p.add_argument("--idle-timeout", type=float, default=600.0,
                   help="close sessions idle this many seconds (0: never)")  # fmt: skip
    p.add_argument("--max-message-bytes", type=int, default=1 << 20,
                   help="refuse larger frames (the socket stays open)")  # fmt: skip
    p.add_argument("--privileged", action="store_true",
                   help="send info['privileged'] (ground truth) and accept any env kwargs: "
                   "only for trusted trainers")  # fmt: skip
    p.add_argument("--docker", action="store_true",
                   help="build an image from the repo's Dockerfile and run the server in a "
                   "container (docker extra)")  # fmt: skip
    p.add_argument("--image", default=None, help="with --docker: image tag to build and run")
    p.add_argument("--log-level", default="warning",
                   choices=["critical", "error", "warning", "info", "debug"])  # fmt: skip
    p.set_defaults(handler=_cmd_serve)


def _cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    if args.max_sessions < 1 or args.idle_timeout < 0 or args.max_message_bytes < 1024:
        print("turngym serve: need --max-sessions >= 1, --idle-timeout >= 0 and "
              "--max-message-bytes >= 1024", file=sys.stderr)  # fmt: skip
        return 2
    if args.docker:
        from turngym.server.docker import run_cli

        return run_cli(args, out)
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        print(f"turngym serve needs the serve extra: pip install 'turngym[serve]' ({err})",
              file=sys.stderr)  # fmt: skip
        return 2
    serve(args.env_ids, host=args.host, port=args.port, max_sessions=args.max_sessions,
          idle_timeout_s=args.idle_timeout or None, max_message_bytes=args.max_message_bytes,
          privileged=args.privileged, log_level=args.log_level,
          announce=lambda m: print(m, file=out, flush=True))  # fmt: skip
    return 0


def ws_max_size(max_message_bytes: int) -> int:
    """Return uvicorn's hard frame limit for a server refusing frames over ``max_message_bytes``.

    It is far enough above ours that an oversized frame still gets a ``MESSAGE_TOO_LARGE``
    reply, yet bounded: a bigger frame closes the socket (code 1009) before it is buffered.
    """
    return max(16 << 20, 4 * max_message_bytes)


def serve(
    env_ids: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    max_sessions: int = 256,
    idle_timeout_s: float | None = 600.0,
    max_message_bytes: int = 1 << 20,
    privileged: bool = False,
    log_level: str = "warning",
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve ``env_ids`` until interrupted (see :func:`turngym.server.app.create_app`).

    ``announce`` receives one line with the bound URL once the port is bound (``port=0``
    picks a free one), e.g. ``turngym serve: ... on http://127.0.0.1:8000``.
    """
    import uvicorn

    from turngym.server.app import create_app

    app = create_app(env_ids, max_sessions=max_sessions, idle_timeout_s=idle_timeout_s,
                     max_message_bytes=max_message_bytes, privileged=privileged)  # fmt: skip
    # Bind here so port 0 works and the announced URL is the real one.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # from here connections wait in the backlog until uvicorn accepts them
    config = uvicorn.Config(
        app, log_level=log_level, access_log=False, lifespan="on",
        ws_max_size=ws_max_size(max_message_bytes), timeout_graceful_shutdown=5,
    )  # fmt: skip
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if announce is not None:
        names = ", ".join(app.state.manager.catalog.envs)
        announce(
            f"turngym serve: {names} on http://{shown}:{bound} (WebSocket "
            f"ws://{shown}:{bound}/ws; play with ENV_ID@http://{shown}:{bound})"
        )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
