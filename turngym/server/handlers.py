"""What each message does to a session: make, reset, step, state, snapshot, restore, fork.

Every handler runs under the session's lock and returns ``(reply type, reply data)``;
:func:`handle` encodes it, and turns exceptions into error replies so that an env's crash is
confined to its own session (``EXECUTION_ERROR``; the session stays usable and a ``reset``
starts over). The HTTP endpoints call the same handlers on a throwaway session.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from turngym.core import PRIVILEGED, STATE_KEY, TASK_ID
from turngym.server.catalog import ServedEnv
from turngym.server.protocol import (
    ErrorCode,
    ObservationData,
    ProtocolError,
    ResetData,
    SessionState,
    TextAction,
    encode,
    error_message,
)
from turngym.server.sessions import Session, SessionManager, Snapshot

__all__ = ["handle", "make", "reset", "step", "state", "snapshot", "restore", "restore_snapshot",
           "fork", "leak_check", "observation_data", "execution_error"]  # fmt: skip

log = logging.getLogger("turngym.server")
Reply = tuple[str, BaseModel | dict[str, Any]]


def observation_data(
    text: Any, reward: float | None, terminated: bool, truncated: bool, info: dict[str, Any],
    *, privileged: bool,
) -> ObservationData:  # fmt: skip
    """The reply data of a reset or step: the info dict becomes the per-turn record.

    ``privileged`` is always present (an empty dict unless the server is privileged), and
    ``terminated``/``truncated`` are added, so a client rebuilds Gymnasium's 5-tuple exactly.
    """
    metadata = dict(info)
    hidden = metadata.pop(PRIVILEGED, {})
    metadata[PRIVILEGED] = hidden if privileged else {}
    metadata["terminated"] = bool(terminated)
    metadata["truncated"] = bool(truncated)
    # model_construct: the fields are built right here, so pydantic's validation (which copies
    # every dict) would only cost time on the hot path.
    return ObservationData.model_construct(
        observation={"text": text, "metadata": metadata},
        reward=None if reward is None else float(reward),
        done=bool(terminated or truncated),
        metadata=metadata,
    )


def _require_episode(session: Session) -> Any:
    if not session.has_reset or session.env is None:
        raise ProtocolError(
            ErrorCode.EXECUTION_ERROR, "No episode in progress: send 'reset' before this."
        )
    return session.env


async def _switch(manager: SessionManager, session: Session, served: ServedEnv,
                  env_kwargs: dict[str, Any]) -> None:  # fmt: skip
    """Give the session a fresh env of ``served`` unless it already has exactly that one."""
    if session.env is not None and session.served is served and session.env_kwargs == env_kwargs:
        return
    manager.catalog.check_kwargs(served, env_kwargs)
    old, session.env = session.env, None
    if old is not None:
        await manager.call(session, old.close)
    session.served, session.env_kwargs = served, dict(env_kwargs)
    session.has_reset, session.turn, session.last = False, 0, None
    session.env = await manager.call(session, manager.catalog.build, served, env_kwargs)


async def make(manager: SessionManager, session: Session, data: Any) -> Reply:
    """``make``: choose the session's env and constructor kwargs."""
    served = manager.catalog.get(data.env_id)
    await _switch(manager, session, served, data.env_kwargs)
    return "env", served.info.model_copy(update={"env_kwargs": dict(data.env_kwargs)})


async def reset(manager: SessionManager, session: Session, data: ResetData) -> Reply:
    """``reset``: start an episode (switching env first when ``env_id``/``env_kwargs`` say so)."""
    options = data.reset_options()
    if data.env_id is not None or data.env_kwargs is not None or session.env is None:
        current = session.served.env_id if session.served is not None else None
        served = manager.catalog.get(data.env_id or current)
        same_env = session.served is served
        kwargs = data.env_kwargs if data.env_kwargs is not None else (
            session.env_kwargs if same_env else {})  # fmt: skip
        await _switch(manager, session, served, kwargs)
    env = session.env
    assert env is not None
    session.has_reset = False  # stays False if the env's reset raises
    obs, info = await manager.call(session, env.reset, seed=data.seed, options=options)
    session.turn, session.has_reset = 0, True
    session.episode_id = data.episode_id or uuid.uuid4().hex
    reply = observation_data(obs, None, False, False, info, privileged=manager.catalog.privileged)
    session.remember(reply, new_episode=True)
    return "observation", reply


async def step(manager: SessionManager, session: Session, action: TextAction) -> Reply:
    """``step``: apply one action; the session's time limit may truncate the episode."""
    env = _require_episode(session)
    obs, reward, terminated, truncated, info = await manager.call(session, env.step,
                                                                  action.message)  # fmt: skip
    session.turn += 1
    limit = session.served.max_episode_steps if session.served else None
    if limit is not None and session.turn >= limit:
        truncated = True  # what Gymnasium's TimeLimit does, counted by the session
    reply = observation_data(obs, reward, terminated, truncated, info,
                             privileged=manager.catalog.privileged)  # fmt: skip
    session.remember(reply)
    return "observation", reply


async def state(manager: SessionManager, session: Session, data: Any = None) -> Reply:
    """``state``: OpenEnv's ``State`` (episode id, step count) plus turngym's ids."""
    metadata = session.last.metadata if session.last is not None else {}
    return "state", SessionState(
        episode_id=session.episode_id if session.has_reset else None,
        step_count=session.turn,
        env_id=session.served.env_id if session.served else manager.catalog.default_id,
        task_id=metadata.get(TASK_ID),
        state_key=metadata.get(STATE_KEY),
        done=bool(session.last.done) if session.last is not None else False,
    )


async def _get_state(manager: SessionManager, session: Session) -> bytes:
    env = _require_episode(session)
    base = env.unwrapped
    if not callable(getattr(base, "get_state", None)):
        raise ProtocolError(
            ErrorCode.EXECUTION_ERROR,
            f"{type(base).__name__} has no get_state()/set_state(): it cannot be snapshotted "
            "or forked (turngym.TextEnv subclasses can).",
        )
    return await manager.call(session, base.get_state)


async def snapshot(manager: SessionManager, session: Session, data: Any = None) -> Reply:
    """``snapshot``: keep the session's state on the server; reply with its id."""
    saved = await _get_state(manager, session)
    assert session.served is not None and session.last is not None
    snap = Snapshot(session.served, dict(session.env_kwargs), saved, session.turn,
                    session.episode_id, session.last)  # fmt: skip
    return "snapshot", {"snapshot_id": manager.put_snapshot(snap)}


async def _load(manager: SessionManager, session: Session, snap: Snapshot) -> None:
    await _switch(manager, session, snap.served, snap.env_kwargs)
    assert session.env is not None
    await manager.call(session, session.env.unwrapped.set_state, snap.state)  # type: ignore[attr-defined]
    session.turn, session.has_reset = snap.turn, True
    session.episode_id = snap.episode_id
    session.remember(snap.last, new_episode=True)


async def restore(manager: SessionManager, session: Session, data: Any) -> Reply:
    """``restore``: continue from a snapshot; replies with the observation saved with it."""
    return await restore_snapshot(manager, session, data.snapshot_id)


async def restore_snapshot(manager: SessionManager, session: Session, snapshot_id: str) -> Reply:
    """Load the snapshot ``snapshot_id`` into ``session`` (``restore`` and HTTP ``/step``)."""
    snap = manager.get_snapshot(snapshot_id)
    await _load(manager, session, snap)
    return "observation", snap.last


async def fork(manager: SessionManager, session: Session, data: Any = None) -> Reply:
    """``fork``: a copy of this session that a new socket attaches to by its id."""
    saved = await _get_state(manager, session)
    assert session.served is not None and session.last is not None
    snap = Snapshot(session.served, dict(session.env_kwargs), saved, session.turn,
                    session.episode_id, session.last)  # fmt: skip
    child = manager.open(attached=False)
    try:
        await _load(manager, child, snap)
    except BaseException:
        await manager.release(child)
        raise
    return "fork", {"session_id": child.id}


async def leak_check(manager: SessionManager, session: Session, data: Any) -> Reply:
    """``leak_check``: the env's own leak check on a text this session sent this episode."""
    env = _require_episode(session)
    if hash(data.text) not in session.sent:
        raise ProtocolError(
            ErrorCode.VALIDATION_ERROR,
            "leak_check takes only a text this session sent during the current episode "
            "(an observation or the instructions).",
        )
    check = getattr(env.unwrapped, "leak_check", None)
    if not callable(check):
        raise ProtocolError(ErrorCode.EXECUTION_ERROR,
                            f"{type(env.unwrapped).__name__} has no leak_check()")  # fmt: skip
    problems = await manager.call(session, check, data.text)
    return "leak_check", {"problems": [str(p) for p in problems]}


def execution_error(err: Exception) -> ProtocolError:
    """``EXECUTION_ERROR`` for an exception raised by env code.

    ``exception`` names its type, and is ``"ValueError"`` for every ``ValueError`` subclass, so
    a client can re-raise bad input (unknown reset options, bad knob values) as ``ValueError``.
    """
    kind = "ValueError" if isinstance(err, ValueError) else type(err).__name__
    return ProtocolError(ErrorCode.EXECUTION_ERROR, f"{type(err).__name__}: {err}", exception=kind)


_HANDLERS: dict[str, Callable[[SessionManager, Session, Any], Awaitable[Reply]]] = {
    "make": make, "reset": reset, "step": step, "state": state, "snapshot": snapshot,
    "restore": restore, "fork": fork, "leak_check": leak_check,
}  # fmt: skip


async def handle(manager: SessionManager, session: Session, message: Any) -> str:
    """Run one validated message on its session and return the encoded reply (never raises)."""
    session.touch()
    try:
        async with session.lock:
            if session.closed:
                raise ProtocolError(ErrorCode.SESSION_ERROR, "This session has been closed.")
            kind, data = await _HANDLERS[message.type](manager, session, message.data)
        return encode(kind, data)
    except ProtocolError as err:
        return error_message(err)
    except Exception as err:  # an env bug: report it to this session only, keep serving
        log.warning("session %s: %s failed", session.id, message.type, exc_info=True)
        return error_message(execution_error(err))
    finally:
        session.touch()
