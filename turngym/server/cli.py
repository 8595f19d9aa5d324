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

from turngym.server.limits import Quotas, ServerLimits, uvicorn_config

__all__ = ["add_parser", "serve", "limits_from_args", "limit_flags"]

DEFAULT_PORT = 8000


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Show each flag's default, except where there is none to show (None, False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


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
        "served env from turngym with the id ENV_ID@http://HOST:PORT. Every limit below "
        "bounds what one client can make the server hold or do; the defaults are safe for "
        "untrusted clients.",
        formatter_class=_DefaultsHelp,
    )
    p.add_argument("env_ids", nargs="+", metavar="ENV_ID",
                   help="env ids (the first is the default), or module:Name-v0")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="interface (0.0.0.0: all)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0: any free port)")
    p.add_argument("--privileged", action="store_true",
                   help="trusted clients only: send info['privileged'] (ground truth), answer "
                   "'oracle', accept any env kwargs, knob values and task dicts")  # fmt: skip
    g = p.add_argument_group("sessions and quotas (per client)")
    g.add_argument("--max-sessions", type=int, default=256,
                   help="concurrent sessions (connections and waiting forks) at most")  # fmt: skip
    g.add_argument("--idle-timeout", type=float, default=600.0,
                   help="close sessions and forget HTTP episodes idle this many seconds "
                   "(0: never)")  # fmt: skip
    g.add_argument("--max-forks", type=int, default=Quotas.forks,
                   help="live forks per client (a fork nobody attached closes with the "
                   "session that made it)")  # fmt: skip
    g.add_argument("--max-snapshots", type=int, default=Quotas.snapshots,
                   help="snapshots per client; beyond, its own least recently used go")
    g.add_argument("--max-snapshot-bytes", type=int, default=Quotas.snapshot_bytes,
                   help="bytes of snapshots per client")  # fmt: skip
    g.add_argument("--max-http-episodes", type=int, default=Quotas.http_episodes,
                   help="stateless HTTP episodes (/reset chains) kept at once; beyond, "
                   "/reset answers 503")  # fmt: skip
    g.add_argument("--max-sessions-per-host", type=int, default=None,
                   help="sessions (with their forks) and, separately, HTTP episodes that "
                   "clients at one network address may hold (default: no cap; every client "
                   "on one machine or behind one proxy shares an address)")  # fmt: skip
    g = p.add_argument_group("connection limits")
    g.add_argument("--max-message-bytes", type=int, default=ServerLimits.max_message_bytes,
                   help="WebSocket frames over this get MESSAGE_TOO_LARGE; over twice this "
                   "the socket closes (1009) before the frame is read")  # fmt: skip
    g.add_argument("--max-body-bytes", type=int, default=None,
                   help="HTTP bodies over this get 413 unread (default: --max-message-bytes)")
    g.add_argument("--max-header-bytes", type=int, default=ServerLimits.max_header_bytes,
                   help="HTTP request heads over this are refused")  # fmt: skip
    g.add_argument("--header-timeout", type=float, default=ServerLimits.header_timeout_s,
                   help="seconds a request's headers may take (slow clients are dropped)")
    g.add_argument("--body-timeout", type=float, default=ServerLimits.body_timeout_s,
                   help="seconds a request's body may take (then 408)")  # fmt: skip
    g.add_argument("--keep-alive", type=float, default=ServerLimits.keep_alive_s,
                   help="seconds an idle HTTP keep-alive connection stays open")  # fmt: skip
    g.add_argument("--max-connections", type=int, default=None,
                   help="open connections before HTTP answers 503 (default: --max-sessions "
                   "+ 256)")  # fmt: skip
    p.add_argument("--docker", action="store_true",
                   help="build an image from the repo's Dockerfile and run the server in a "
                   "container (docker extra)")  # fmt: skip
    p.add_argument("--image", default=None, help="with --docker: image tag to build and run")
    p.add_argument("--log-level", default="warning",
                   choices=["critical", "error", "warning", "info", "debug"])  # fmt: skip
    p.set_defaults(handler=_cmd_serve)


def limits_from_args(args: argparse.Namespace) -> tuple[ServerLimits, Quotas]:
    """The limits and quotas the flags ask for.

    Raises:
        ValueError: A limit out of range (the message names it).
    """
    connections = args.max_connections or args.max_sessions + 256
    limits = ServerLimits(
        max_message_bytes=args.max_message_bytes, max_body_bytes=args.max_body_bytes,
        max_header_bytes=args.max_header_bytes, header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout, keep_alive_s=args.keep_alive,
        max_connections=connections,
    )  # fmt: skip
    quotas = Quotas(forks=args.max_forks, snapshots=args.max_snapshots,
                    snapshot_bytes=args.max_snapshot_bytes,
                    http_episodes=args.max_http_episodes,
                    per_host=args.max_sessions_per_host)  # fmt: skip
    return limits, quotas


def limit_flags(args: argparse.Namespace) -> list[str]:
    """The limit flags of ``args`` as arguments again (for the server in a container)."""
    names = ("max_forks", "max_snapshots", "max_snapshot_bytes", "max_http_episodes",
             "max_sessions_per_host", "max_body_bytes", "max_header_bytes", "header_timeout",
             "body_timeout", "keep_alive", "max_connections")  # fmt: skip
    flags = []
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            flags += ["--" + name.replace("_", "-"), f"{value:g}" if isinstance(value, float)
                      else str(value)]  # fmt: skip
    return flags


def _cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    if args.max_sessions < 1 or args.idle_timeout < 0:
        print("turngym serve: need --max-sessions >= 1 and --idle-timeout >= 0",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        limits, quotas = limits_from_args(args)
    except ValueError as err:
        print(f"turngym serve: {err}", file=sys.stderr)
        return 2
    if args.docker:
        from turngym.server.docker import run_cli

        args.limit_flags = limit_flags(args)
        return run_cli(args, out)
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        print(f"turngym serve needs the serve extra: pip install 'turngym[serve]' ({err})",
              file=sys.stderr)  # fmt: skip
        return 2
    serve(args.env_ids, host=args.host, port=args.port, max_sessions=args.max_sessions,
          idle_timeout_s=args.idle_timeout or None, limits=limits, quotas=quotas,
          privileged=args.privileged, log_level=args.log_level,
          announce=lambda m: print(m, file=out, flush=True))  # fmt: skip
    return 0


def serve(
    env_ids: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    max_sessions: int = 256,
    idle_timeout_s: float | None = 600.0,
    limits: ServerLimits | None = None,
    quotas: Quotas | None = None,
    privileged: bool = False,
    log_level: str = "warning",
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve ``env_ids`` until interrupted (see :func:`turngym.server.app.create_app`).

    ``limits`` bound connections, bodies and frames (:class:`~turngym.server.limits.
    ServerLimits`), ``quotas`` what each client holds. ``announce`` receives one line with the
    bound URL once the port is bound (``port=0`` picks a free one), e.g. ``turngym serve: ...
    on http://127.0.0.1:8000``.
    """
    import uvicorn

    from turngym.server.app import create_app

    limits = limits or ServerLimits()
    app = create_app(env_ids, max_sessions=max_sessions, idle_timeout_s=idle_timeout_s,
                     max_message_bytes=limits.max_message_bytes, privileged=privileged,
                     quotas=quotas)  # fmt: skip
    # Bind here so port 0 works and the announced URL is the real one.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # from here connections wait in the backlog until uvicorn accepts them
    config = uvicorn_config(app, limits, log_level=log_level, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=5)  # fmt: skip
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
