"""Serve turngym envs over OpenEnv's WebSocket protocol, and play them from anywhere.

* ``turngym serve ENV_ID...`` (:mod:`turngym.server.cli`) runs the server;
  :func:`~turngym.server.app.create_app` builds its FastAPI app.
* :class:`~turngym.server.client.RemoteEnv` is a ``gymnasium.Env`` over the protocol, sync and
  async; the env id ``ENV_ID@URL`` (``turngym/Sokoban-v0@http://127.0.0.1:8000``) makes one
  through ``turngym.make``, so rollouts, evals and ``turngym check`` work unchanged.
* :mod:`turngym.server.protocol` documents the messages; :mod:`turngym.server.docker` runs the
  server in a container.

Names resolve on first use, so importing this package (the CLI does) needs no extra; the
server needs the ``serve`` extra (fastapi, uvicorn, websockets, pydantic).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from turngym.server.app import create_app
    from turngym.server.cli import serve
    from turngym.server.client import RemoteEnv, RemoteEnvError

__all__ = ["create_app", "serve", "RemoteEnv", "RemoteEnvError"]

_WHERE = {"create_app": "app", "serve": "cli", "RemoteEnv": "client", "RemoteEnvError": "client"}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access (PEP 562)."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
