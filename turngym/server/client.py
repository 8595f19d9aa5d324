"""``RemoteEnv``: a ``gymnasium.Env[str, str]`` whose env runs on a ``turngym serve`` server.

Two ways to get one::

    env = RemoteEnv("http://127.0.0.1:8000", "turngym/Sokoban-v0", level=2)
    env = turngym.make("turngym/Sokoban-v0@http://127.0.0.1:8000", level=2)

The second is a **remote env id**, ``ENV_ID@URL``: ``turngym.make`` and the registry resolve
it (with the server's time limit in the spec), so everything that takes an env id — ``collect``,
``turngym rollout``, ``turngym eval``, ``turngym check`` — runs against a served env with no
other change. Episodes keep the served env's own id (``turngym/Sokoban-v0``): the env, its
version and its tasks are the same wherever it runs.

``reset``/``step`` return exactly what the env on the server returned: the observation text,
the reward, ``terminated``/``truncated``, and the info dict (the per-turn record;
``privileged`` is empty unless the server was started with ``--privileged``).

* **Sync and async.** ``reset``/``step``/``close`` block; ``areset``/``astep``/``aclose`` are
  their coroutines. Synchronous envs share one background event-loop thread per process; an
  env first used from a coroutine keeps its socket on that coroutine's loop.
* **Branching.** ``get_state()`` returns a snapshot handle (bytes) kept by the server and
  ``set_state()`` restores it, so tree rollouts and ``turngym check``'s snapshot test work;
  ``fork()`` returns a second ``RemoteEnv`` continuing from the same state. Both count against
  this client's quotas on the server; a refused fork raises :class:`RemoteEnvError`
  (``CAPACITY_REACHED``) and this env keeps its connection and episode. A fork nobody has used
  yet closes with the env that made it.
* **Episodes end.** A ``step`` after ``terminated`` or ``truncated`` raises
  :class:`RemoteValueError`; ``reset()`` starts the next episode.
* **Oracle.** ``oracle_action()`` asks a ``--privileged`` server for the optimal action, so
  ``--agent oracle`` plays served envs; other servers refuse it with a clear error.
* **Pickling** keeps a snapshot handle; the copy reconnects and restores on first use.
* **Failures.** A reset that finds the connection gone reconnects (nothing is lost: a reset
  starts over). A step whose connection is gone raises :class:`RemoteEnvError` saying the
  episode is lost (server restart, idle timeout); the next ``reset()`` reconnects.
* ``metadata["turngym.slow"]`` is set, so the rollout engine steps remote envs from a thread
  pool, concurrently, instead of one round trip after another.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, SupportsFloat, TypeVar

import gymnasium
from gymnasium.envs.registration import EnvSpec

from turngym.core import TextSpace
from turngym.registry import UnknownNameError, unknown_name_message
from turngym.server._connection import (
    Connection,
    ConnectionLost,
    RemoteEnvError,
    RemoteValueError,
    background_loop,
    base_url,
    server_info,
    ws_url,
)

__all__ = ["RemoteEnv", "RemoteEnvError", "RemoteValueError", "ConnectionLost", "remote_spec",
           "split_remote_id"]  # fmt: skip

T = TypeVar("T")
_LIVE: weakref.WeakSet[RemoteEnv] = weakref.WeakSet()


def split_remote_id(remote_id: str) -> tuple[str, str]:
    """Split ``ENV_ID@URL`` into the served env id and the server's base URL.

    Example:
        >>> split_remote_id("turngym/Sokoban-v0@ws://127.0.0.1:8000/ws")
        ('turngym/Sokoban-v0', 'http://127.0.0.1:8000')
    """
    env_id, sep, url = remote_id.partition("@")
    if not sep or not env_id or "://" not in url:
        raise ValueError(f"{remote_id!r} is not a remote env id; expected ENV_ID@URL, e.g. "
                         "turngym/Sokoban-v0@http://127.0.0.1:8000")  # fmt: skip
    return env_id, base_url(url)


def remote_spec(remote_id: str) -> EnvSpec:
    """The spec ``turngym.make`` builds a :class:`RemoteEnv` from (asks the server once).

    Raises:
        turngym.registry.UnknownNameError: The server does not serve the env, or no server
            answers at the URL.
    """
    env_id, url = split_remote_id(remote_id)
    try:
        envs = server_info(url)["turngym"]["envs"]
    except ConnectionError as err:
        raise UnknownNameError(f"Cannot resolve {remote_id!r}: {err}") from err
    if env_id not in envs:
        message = unknown_name_message("env id", env_id, list(envs))
        raise UnknownNameError(f"{message[:-1]} on {url}.")
    return EnvSpec(id=env_id, entry_point="turngym.server.client:RemoteEnv",
                   kwargs={"url": url, "env_id": env_id},
                   max_episode_steps=envs[env_id].get("max_episode_steps"))  # fmt: skip


class RemoteEnv(gymnasium.Env[str, str]):
    """An env served by ``turngym serve``, used like a local one.

    Args:
        url: The server (``http://host:port``; ``ws://`` and a trailing ``/ws`` work too).
        env_id: A served env id (default: the server's first).
        render_mode: ``None`` or ``"ansi"`` (``render()`` returns the last observation).
        connect_timeout: Seconds to wait for the connection.
        message_timeout: Seconds to wait for each reply (``None``: forever).
        **env_kwargs: The env's constructor kwargs (a non-privileged server accepts only
            ``level`` and difficulty knobs).

    Raises:
        ConnectionError: No turngym server answers at ``url``.
        ValueError: The server does not serve ``env_id``.

    Example:
        >>> env = RemoteEnv("http://127.0.0.1:8000", "turngym/Sokoban-v0")  # doctest: +SKIP
        >>> obs, info = env.reset(seed=0, options={"split": "test"})  # doctest: +SKIP
        >>> obs, reward, done, cut, info = env.step("<action>up</action>")  # doctest: +SKIP
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 1,
                                "turngym.slow": True}  # fmt: skip

    def __init__(
        self,
        url: str,
        env_id: str | None = None,
        *,
        render_mode: str | None = None,
        connect_timeout: float = 10.0,
        message_timeout: float | None = 60.0,
        **env_kwargs: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r} is not supported; use 'ansi' or None")
        url = base_url(url)
        info = server_info(url, timeout=connect_timeout)["turngym"]
        env_id = env_id or info["default_env_id"]
        if env_id not in info["envs"]:
            raise ValueError(f"{url} does not serve {env_id!r}; it serves "
                             f"{', '.join(info['envs'])}.")  # fmt: skip
        self._configure(url, env_id, env_kwargs, info["envs"][env_id], render_mode,
                        connect_timeout, message_timeout)  # fmt: skip

    def _configure(self, url: str, env_id: str, env_kwargs: dict[str, Any], env_info: dict,
                   render_mode: str | None, connect_timeout: float,
                   message_timeout: float | None) -> None:  # fmt: skip
        self.url, self.env_id, self.env_kwargs = url, env_id, dict(env_kwargs)
        self.render_mode = render_mode
        self.connect_timeout, self.message_timeout = connect_timeout, message_timeout
        self._env_info = dict(env_info)
        self.action_space = TextSpace(env_info.get("max_action_chars", 32_768),
                                      examples=env_info.get("action_examples", ()))  # fmt: skip
        self.observation_space = TextSpace(env_info.get("max_observation_chars", 32_768))
        self._conn: Connection | None = None
        self._in_episode = False
        self._attach: str | None = None  # a forked session to attach to on connect
        self._pending_restore: str | None = None  # a snapshot to load on connect (unpickled)
        self._last_obs: str | None = None
        _LIVE.add(self)

    # --- Gymnasium API ------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start an episode on the server (reconnecting first if the connection is gone)."""
        super().reset(seed=seed)  # the client's own RNG; Gymnasium's checker expects it
        return self._sync(lambda: self._areset(seed, options))

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Apply one action on the server.

        Raises:
            RemoteEnvError: The server reported an error, or the connection (and with it the
                episode) is lost; ``reset()`` starts a new one.
        """
        return self._sync(lambda: self._astep(action))

    def render(self) -> str | None:
        """Return the last observation in ``"ansi"`` mode, else ``None``."""
        return self._last_obs if self.render_mode == "ansi" else None

    def close(self) -> None:
        """Close the session on the server (waits up to a few seconds; idempotent)."""
        conn, self._conn, self._in_episode = self._conn, None, False
        if conn is None or conn.dead or not conn.loop.is_running():
            return
        future = asyncio.run_coroutine_threadsafe(conn.close(), conn.loop)
        if _running_loop() is not conn.loop:
            try:
                future.result(timeout=5.0)
            except Exception:  # a slow goodbye is no reason to fail a close
                pass

    async def areset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Coroutine twin of :meth:`reset`."""
        super().reset(seed=seed)
        return await self._async(lambda: self._areset(seed, options))

    async def astep(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Coroutine twin of :meth:`step`."""
        return await self._async(lambda: self._astep(action))

    async def aclose(self) -> None:
        """Coroutine twin of :meth:`close`."""
        conn, self._conn, self._in_episode = self._conn, None, False
        if conn is not None and conn.loop.is_running():
            if conn.loop is asyncio.get_running_loop():
                await conn.close()
            else:
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(conn.close(), conn.loop))

    # --- Snapshots and forks ------------------------------------------------------------------
    def get_state(self) -> bytes:
        """Snapshot the episode on the server; returns the handle ``set_state`` takes."""
        return self._sync(self._aget_state)

    def set_state(self, state: bytes) -> None:
        """Continue from a snapshot taken by ``get_state`` on this server (any session)."""
        self._sync(lambda: self._aset_state(state))

    def fork(self) -> RemoteEnv:
        """Return a new env continuing from this one's current state (a server-side copy)."""
        return self._sync(self._afork)

    def oracle_action(self) -> str:
        """The served env's optimal action now (what the ``oracle`` agent plays).

        Raises:
            RemoteValueError: The server was not started with ``--privileged`` (the oracle
                reads the ground truth), or the episode is over.
        """
        return self._sync(self._aoracle_action)

    async def _aoracle_action(self) -> str:
        reply = await self._request({"type": "oracle", "data": {}})
        return str(reply["data"]["action"])

    def leak_check(self, text: str) -> list[str]:
        """Run the served env's own leak check on a text this env received this episode.

        This is what ``turngym check`` calls; the server refuses texts it did not send.
        """
        return self._sync(lambda: self._aleak_check(text))

    async def _aleak_check(self, text: str) -> list[str]:
        reply = await self._request({"type": "leak_check", "data": {"text": text}})
        return [str(p) for p in reply["data"]["problems"]]

    async def aget_state(self) -> bytes:
        """Coroutine twin of :meth:`get_state`."""
        return await self._async(self._aget_state)

    async def aset_state(self, state: bytes) -> None:
        """Coroutine twin of :meth:`set_state`."""
        await self._async(lambda: self._aset_state(state))

    async def afork(self) -> RemoteEnv:
        """Coroutine twin of :meth:`fork`."""
        return await self._async(self._afork)

    # --- The requests -------------------------------------------------------------------------
    async def _areset(self, seed: int | None, options: dict[str, Any] | None) -> tuple:
        data: dict[str, Any] = {}
        if seed is not None:
            data["seed"] = int(seed)
        if options:
            data["options"] = options
        reply = await self._request({"type": "reset", "data": data}, starts_episode=True)
        obs, _, _, _, info = self._unpack(reply)
        self._in_episode = True
        return obs, info

    async def _astep(self, action: str) -> tuple:
        reply = await self._request({"type": "step", "data": {"message": action}})
        return self._unpack(reply)

    async def _aget_state(self) -> bytes:
        reply = await self._request({"type": "snapshot", "data": {}})
        return str(reply["data"]["snapshot_id"]).encode()

    async def _aset_state(self, state: bytes) -> None:
        snapshot_id = state.decode() if isinstance(state, bytes) else str(state)
        reply = await self._request({"type": "restore", "data": {"snapshot_id": snapshot_id}},
                                    starts_episode=True)  # fmt: skip
        self._unpack(reply)
        self._in_episode = True

    async def _afork(self) -> RemoteEnv:
        reply = await self._request({"type": "fork", "data": {}})
        child = RemoteEnv.__new__(RemoteEnv)
        child._configure(
            self.url,
            self.env_id,
            self.env_kwargs,
            self._env_info,
            self.render_mode,
            self.connect_timeout,
            self.message_timeout,
        )
        child.spec, child._attach = self.spec, str(reply["data"]["session_id"])
        child._in_episode, child._last_obs = True, self._last_obs
        return child

    def _unpack(self, reply: dict[str, Any]) -> tuple[str, float, bool, bool, dict[str, Any]]:
        data = reply["data"]
        info = dict(data.get("metadata") or {})
        terminated = bool(info.pop("terminated", False))
        truncated = bool(info.pop("truncated", False))
        obs = str(data["observation"]["text"])
        self._last_obs = obs
        return obs, float(data.get("reward") or 0.0), terminated, truncated, info

    async def _request(self, message: dict[str, Any], *, starts_episode: bool = False) -> dict:
        """Send one message on this env's connection, opening (or reopening) it as needed."""
        for attempt in (0, 1):
            conn = await self._connection(starts_episode)
            try:
                return await conn.request(message, self.message_timeout)
            except ConnectionLost as err:
                self._conn = None
                if starts_episode and attempt == 0:
                    continue  # a reset loses nothing: retry once on a fresh connection
                self._in_episode = False
                raise ConnectionLost(
                    f"{self.env_id} on {self.url}: {err}. The server-side episode is lost "
                    "(server restart, idle timeout or network); call reset() to start a new "
                    "one (it reconnects).", err.code, err.data,
                ) from None  # fmt: skip
            except RemoteEnvError:
                if conn.dead:
                    self._conn = None  # the server closed the socket (and any episode with it)
                raise
        raise AssertionError("unreachable")

    async def _connection(self, starts_episode: bool) -> Connection:
        conn = self._conn
        if conn is not None and (conn.dead or conn.loop is not asyncio.get_running_loop()):
            self._conn = conn = None  # closed by the server, or its event loop is gone
        if conn is not None:
            return conn
        if self._in_episode and not starts_episode and not (self._attach or self._pending_restore):
            raise ConnectionLost(
                f"{self.env_id} on {self.url}: the connection was closed mid-episode, so the "
                "episode is lost; call reset() to start a new one (it reconnects)."
            )  # fmt: skip
        conn = await Connection.open(ws_url(self.url, self._attach), timeout=self.connect_timeout)
        make = {"type": "make", "data": {"env_id": self.env_id, "env_kwargs": self.env_kwargs}}
        try:
            if self._attach is None:
                await conn.request(make, self.message_timeout)
        except RemoteEnvError:  # refused kwargs, capacity: the socket is of no further use
            await conn.close()
            raise
        self._attach, self._conn = None, conn
        if self._pending_restore is not None and not starts_episode:
            restore = {"type": "restore", "data": {"snapshot_id": self._pending_restore}}
            self._pending_restore = None
            await conn.request(restore, self.message_timeout)
        self._pending_restore = None
        return conn

    # --- Running coroutines from sync and async callers --------------------------------------
    def _sync(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        conn = self._conn
        usable = conn is not None and not conn.dead and conn.loop.is_running()
        loop = conn.loop if conn is not None and usable else background_loop()
        if _running_loop() is loop:
            raise RuntimeError(
                "RemoteEnv: a blocking call from inside the event loop that owns its "
                "connection would deadlock; use `await env.astep(...)`/`areset(...)` there."
            )
        return asyncio.run_coroutine_threadsafe(make(), loop).result()

    async def _async(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        conn = self._conn
        here = asyncio.get_running_loop()
        if conn is None or conn.dead or conn.loop is here or not conn.loop.is_running():
            return await make()
        future = asyncio.run_coroutine_threadsafe(make(), conn.loop)
        return await asyncio.wrap_future(future)

    # --- Pickling and clean-up ----------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        snapshot = self.get_state().decode() if self._in_episode else None
        return {"url": self.url, "env_id": self.env_id, "env_kwargs": self.env_kwargs,
                "env_info": self._env_info, "render_mode": self.render_mode,
                "connect_timeout": self.connect_timeout, "message_timeout": self.message_timeout,
                "spec": self.spec, "snapshot": snapshot,
                "np_random": self._np_random}  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._configure(state["url"], state["env_id"], state["env_kwargs"], state["env_info"],
                        state["render_mode"], state["connect_timeout"],
                        state["message_timeout"])  # fmt: skip
        self.spec, self._np_random = state["spec"], state["np_random"]
        self._pending_restore = state["snapshot"]
        self._in_episode = state["snapshot"] is not None

    def __del__(self) -> None:
        conn = self.__dict__.get("_conn")
        if conn is not None and not conn.dead and conn.loop.is_running():
            try:  # never block or raise in a finaliser: schedule the goodbye on its loop
                asyncio.run_coroutine_threadsafe(conn.close(), conn.loop)
            except Exception:
                pass

    def __repr__(self) -> str:
        return f"RemoteEnv({self.url!r}, {self.env_id!r})"


def _close_all_at_exit() -> None:
    """Say goodbye for every open remote env, so servers free their sessions at once."""
    futures = []
    for env in list(_LIVE):
        conn = env.__dict__.get("_conn")
        if conn is not None and not conn.dead and conn.loop.is_running():
            futures.append(asyncio.run_coroutine_threadsafe(conn.close(), conn.loop))
    concurrent.futures.wait(futures, timeout=2.0)


atexit.register(_close_all_at_exit)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
