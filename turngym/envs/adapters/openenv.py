"""Any OpenEnv server as a Gymnasium text env: ``turngym.make("openenv+ws://host:port")``.

OpenEnv (Meta PyTorch's environment interface, PyPI ``openenv``) servers speak JSON over a
WebSocket at ``/ws``: ``{"type": "reset", "data": {...}}`` and ``{"type": "step", "data":
{action fields}}`` are answered with ``{"type": "observation", "data": {"observation": {...},
"reward": r, "done": d}}`` (the shapes :mod:`turngym.server.protocol` documents). This adapter
is a client of that protocol, so it plays any OpenEnv server, not only ``turngym serve``:

* the action text goes into one field of the action (``action_field``, default ``"message"``,
  the field of OpenEnv's echo and text envs);
* the observation text is ``observation_field`` of the observation when given, else its first
  text field among ``text``, ``message``, ``echoed_message``, ``prompt``, ``content``, else the
  observation as JSON;
* ``reward`` (``None`` counts as 0) and ``done`` (``terminated``) are the server's;
  ``info["metrics"]["openenv"]`` carries the observation's ``metadata``.

What such an env cannot offer, and so which checks of ``turngym check`` it cannot meet: a
generic OpenEnv server has no tasks or splits (the seed goes to the server's ``reset``, which
may ignore it; ``task_id`` is ``""``), no state key beyond a hash of the observation, no
snapshot/restore (``get_state`` raises), no privileged data, oracle or leak check. So
``determinism``, ``splits``, ``snapshot`` and ``pickle`` depend on the server and are not
claimed; ``turngym rollout`` and ``turngym eval`` work.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any, SupportsFloat

import gymnasium
from gymnasium.envs.registration import EnvSpec

from turngym.core import TextSpace

__all__ = ["OpenEnvEnv", "OPENENV_PREFIX", "is_openenv_id", "openenv_spec"]

OPENENV_PREFIX = "openenv+"
"""Env ids ``openenv+ws://host:port`` (or ``openenv+http://...``) name an OpenEnv server."""

_TEXT_FIELDS = ("text", "message", "echoed_message", "prompt", "content")


def is_openenv_id(env_id: str) -> bool:
    """Whether ``env_id`` names an OpenEnv server.

    Example:
        >>> is_openenv_id("openenv+ws://127.0.0.1:8000"), is_openenv_id("turngym/Maze-v0")
        (True, False)
    """
    return env_id.startswith(OPENENV_PREFIX) and "://" in env_id


def openenv_spec(env_id: str) -> EnvSpec:
    """The spec ``turngym.make`` builds an :class:`OpenEnvEnv` from (no connection yet)."""
    url = env_id[len(OPENENV_PREFIX) :]
    return EnvSpec(id="openenv/Server-v0", entry_point="turngym.envs.adapters.openenv:OpenEnvEnv",
                   kwargs={"url": url})  # fmt: skip


class OpenEnvEnv(gymnasium.Env[str, str]):
    """A client of one OpenEnv server session (see the module doc).

    Args:
        url: ``ws://host:port`` or ``http://host:port`` (``/ws`` is added).
        action_field: The action field the text goes into.
        observation_field: The observation field shown as text (default: found by name).
        timeout: Seconds to wait for the connection and for each reply.
    """

    metadata: dict[str, Any] = {"render_modes": [], "turngym.slow": True}

    def __init__(self, url: str, action_field: str = "message",
                 observation_field: str | None = None, timeout: float = 30.0) -> None:  # fmt: skip
        """Create the env; the connection opens on the first reset."""
        self.url, self.action_field = url, action_field
        self.observation_field, self.timeout = observation_field, timeout
        self.observation_space = TextSpace()
        self.action_space = TextSpace(examples=("hello", "<action>hello</action>"))
        self._conn: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        from turngym.server._connection import Connection, background_loop, ws_url

        if self._loop is None:
            self._loop = background_loop()
        if self._conn is None or self._conn.dead:
            opened = Connection.open(ws_url(self.url), timeout=self.timeout)
            self._conn = asyncio.run_coroutine_threadsafe(opened, self._loop).result()
        future = asyncio.run_coroutine_threadsafe(
            self._conn.request(message, self.timeout), self._loop)  # fmt: skip
        return future.result()

    def _text(self, observation: Any) -> str:
        if isinstance(observation, dict):
            if self.observation_field is not None:
                return str(observation.get(self.observation_field, ""))
            for name in _TEXT_FIELDS:
                if isinstance(observation.get(name), str):
                    return observation[name]
        return json.dumps(observation, sort_keys=True, default=str)

    def _result(self, reply: dict[str, Any], valid: bool) -> tuple[str, float, bool, dict]:
        data = reply.get("data") or {}
        observation = data.get("observation") or {}
        reward = float(data.get("reward") or 0.0)
        done = bool(data.get("done"))
        text = self._text(observation)
        meta = observation.get("metadata", {}) if isinstance(observation, dict) else {}
        key = hashlib.sha256(json.dumps(observation, sort_keys=True, default=str).encode())
        info = {"task_id": "", "state_key": key.hexdigest()[:16], "success": done and reward > 0,
                "score": min(1.0, max(0.0, reward)) if done else 0.0, "privileged": {},
                "metrics": {"openenv": meta}, "action_valid": valid,
                "reward_components": {}}  # fmt: skip
        return text, reward, done, info

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:  # fmt: skip
        """Reset the server's env (``seed`` and ``options`` become reset kwargs)."""
        super().reset(seed=seed)
        data = dict(options or {})
        data.pop("split", None)  # a generic server has no splits
        if seed is not None:
            data["seed"] = seed
        text, _, _, info = self._result(self._request({"type": "reset", "data": data}), True)
        for key in ("action_valid", "reward_components"):
            info.pop(key)
        info["instructions"] = ""
        return text, info

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Send the action text in ``action_field``; a server error is an invalid action."""
        from turngym.server._connection import RemoteValueError

        try:
            reply = self._request({"type": "step", "data": {self.action_field: action}})
        except RemoteValueError as err:  # the server refused the action: nothing happened
            info = {"task_id": "", "state_key": "", "success": False, "score": 0.0,
                    "privileged": {}, "metrics": {}, "action_valid": False,
                    "reward_components": {}}  # fmt: skip
            return f"Invalid action: {err}", 0.0, False, False, info
        text, reward, done, info = self._result(reply, True)
        return text, reward, done, False, info

    def get_state(self) -> bytes:
        """OpenEnv has no snapshot message, so there is nothing to save."""
        raise NotImplementedError("OpenEnv servers offer no snapshot/restore")

    def close(self) -> None:
        """Say goodbye to the server and close the socket."""
        if self._conn is not None and self._loop is not None and not self._conn.dead:
            asyncio.run_coroutine_threadsafe(self._conn.close(), self._loop).result()
        self._conn = None
