"""What each message does to a session: make, reset, step, state, snapshot, restore, fork, oracle.

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
from turngym.server.accounting import Owner
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
           "fork", "leak_check", "oracle", "observation_data", "execution_error"]  # fmt: skip

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


def _require_episode(session: Session, *, playing: bool = False) -> Any:
    """The session's env; with ``playing``, also refuse an episode that has ended."""
    if not session.has_reset or session.env is None:
        raise ProtocolError(
            ErrorCode.EXECUTION_ERROR, "No episode in progress: send 'reset' before this."
        )
    if playing and session.done:
        raise ProtocolError(
            ErrorCode.VALIDATION_ERROR,
            f"The episode is over (done after {session.turn} steps): send 'reset' to start a "
            "new one. The session is unchanged.",
            episode_done=True,
        )
    return session.env


# --- Envs: build first, swap after, so a failure leaves the session as it was ---------------
async def _build(manager: SessionManager, session: Session, served: ServedEnv,
                 env_kwargs: dict[str, Any]) -> Any:  # fmt: skip
    """A fresh env of ``served`` (kwargs checked, built off the event loop); nothing swapped."""
    manager.catalog.check_kwargs(served, env_kwargs)
    return await manager.offload(session, manager.catalog.build, served, env_kwargs)


def _is_current(session: Session, served: ServedEnv, env_kwargs: dict[str, Any]) -> bool:
    return session.env is not None and session.served is served and (
        session.env_kwargs == env_kwargs)  # fmt: skip


async def _install(manager: SessionManager, session: Session, served: ServedEnv,
                   env_kwargs: dict[str, Any], env: Any) -> None:  # fmt: skip
    """Give the session ``env`` (already built) and close the one it replaces."""
    old, session.env = session.env, env
    session.served, session.env_kwargs = served, dict(env_kwargs)
    session.has_reset, session.turn, session.last = False, 0, None
    if old is not None and old is not env:
        await _discard(manager, session, old)


async def _discard(manager: SessionManager, session: Session, env: Any) -> None:
    try:
        await manager.call(session, env.close)
    except Exception:
        log.warning("closing a replaced env of session %s failed", session.id, exc_info=True)


async def make(manager: SessionManager, session: Session, data: Any) -> Reply:
    """``make``: choose the session's env and constructor kwargs (the old env stays on failure)."""
    served = manager.catalog.get(data.env_id)
    kwargs = dict(data.env_kwargs)
    if not _is_current(session, served, kwargs):
        env = await _build(manager, session, served, kwargs)
        await _install(manager, session, served, kwargs, env)
    return "env", served.info.model_copy(update={"env_kwargs": kwargs})


def _reset_target(manager: SessionManager, session: Session,
                  data: ResetData) -> tuple[ServedEnv, dict[str, Any]]:  # fmt: skip
    """The env and kwargs a reset plays: the session's, unless it names others."""
    if data.env_id is None and data.env_kwargs is None and session.served is not None:
        return session.served, session.env_kwargs
    current = session.served.env_id if session.served is not None else None
    served = manager.catalog.get(data.env_id or current)
    if data.env_kwargs is not None:
        return served, dict(data.env_kwargs)
    return served, dict(session.env_kwargs) if session.served is served else {}


def _validated_reset(env: Any, seed: int | None, options: dict[str, Any] | None) -> tuple:
    """Check the options without touching the env, then reset it (runs in the worker pool)."""
    validate = getattr(env.unwrapped, "validate_options", None)
    if callable(validate):
        try:
            validate(options or {})
        except ValueError as err:  # the env is untouched: a plain bad-input reply
            raise ProtocolError(ErrorCode.VALIDATION_ERROR, str(err),
                                exception="ValueError") from None  # fmt: skip
    return env.reset(seed=seed, options=options)


async def reset(manager: SessionManager, session: Session, data: ResetData) -> Reply:
    """``reset``: start an episode (on a new env first when ``env_id``/``env_kwargs`` say so).

    Transactional: a new env is built and reset before it replaces the session's, and options
    are checked before the env is touched, so a refused reset leaves the session as it was.
    """
    options = data.reset_options()
    served, kwargs = _reset_target(manager, session, data)
    manager.catalog.check_options(served, options)
    switching = not _is_current(session, served, kwargs)
    env = await _build(manager, session, served, kwargs) if switching else session.env
    trusted = not (options and "task" in options)
    try:
        obs, info = await manager.offload(session, _validated_reset, env, data.seed, options)
    except ProtocolError:
        if switching:
            await _discard(manager, session, env)
        raise
    except BaseException:
        if switching:
            await _discard(manager, session, env)
        else:
            session.has_reset = False  # the env's own reset failed half-way
        raise
    if switching:
        await _install(manager, session, served, kwargs, env)
    session.turn, session.has_reset, session.trusted_task = 0, True, trusted
    session.episode_id = data.episode_id or uuid.uuid4().hex
    reply = observation_data(obs, None, False, False, info, privileged=manager.catalog.privileged)
    session.remember(reply, new_episode=True)
    return "observation", reply


async def step(manager: SessionManager, session: Session, action: TextAction) -> Reply:
    """``step``: apply one action; refused once the episode is over (send ``reset``).

    The session's time limit may truncate the episode.
    """
    env = _require_episode(session, playing=True)
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
        done=session.done,
    )


async def _saved(manager: SessionManager, session: Session) -> Snapshot:
    env = _require_episode(session)
    base = env.unwrapped
    if not callable(getattr(base, "get_state", None)):
        raise ProtocolError(
            ErrorCode.EXECUTION_ERROR,
            f"{type(base).__name__} has no get_state()/set_state(): it cannot be snapshotted "
            "or forked (turngym.TextEnv subclasses can).",
        )
    saved = await manager.call(session, base.get_state)  # bounded by the episode: cheap
    assert session.served is not None and session.last is not None
    return Snapshot(session.served, dict(session.env_kwargs), saved, session.turn,
                    session.episode_id, session.last, session.trusted_task)  # fmt: skip


async def snapshot(manager: SessionManager, session: Session, data: Any = None, *,
                   owner: Owner | None = None) -> Reply:  # fmt: skip
    """``snapshot``: keep the session's state on the server (charged to its owner)."""
    owner = owner or session.owner
    assert owner is not None, "HTTP sessions pass the owner of their episode"
    snap = await _saved(manager, session)
    return "snapshot", {"snapshot_id": manager.put_snapshot(owner, snap)}


async def _load(manager: SessionManager, session: Session, snap: Snapshot) -> None:
    """Put ``snap`` into ``session``: on a new env built aside, or on its own env in place."""
    switching = not _is_current(session, snap.served, snap.env_kwargs)
    env = await _build(manager, session, snap.served, snap.env_kwargs) if switching else (
        session.env)  # fmt: skip
    assert env is not None  # a snapshot is only ever taken of a session with an env
    base: Any = env.unwrapped  # set_state is optional: checked when the snapshot was taken
    try:
        await manager.offload(session, base.set_state, snap.state)
    except BaseException:
        if switching:
            await _discard(manager, session, env)
        else:
            session.has_reset = False  # the env's state is undefined now
        raise
    if switching:
        await _install(manager, session, snap.served, snap.env_kwargs, env)
    session.turn, session.has_reset = snap.turn, True
    session.episode_id, session.trusted_task = snap.episode_id, snap.trusted_task
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
    """``fork``: a copy of this session that a new socket attaches to by its id.

    The fork counts against this session's owner; a refusal (``CAPACITY_REACHED``: the
    owner's fork quota or the server's capacity) leaves this session and its socket as they
    were.
    """
    snap = await _saved(manager, session)
    child = manager.open(parent=session)
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
    problems = await manager.offload(session, check, data.text)
    return "leak_check", {"problems": [str(p) for p in problems]}


async def oracle(manager: SessionManager, session: Session, data: Any = None) -> Reply:
    """``oracle``: the env's optimal action now (``--privileged`` servers only)."""
    if not manager.catalog.privileged:
        raise ProtocolError(
            ErrorCode.VALIDATION_ERROR,
            "The oracle reads the env's ground truth, so only a server started with "
            "--privileged answers it (`turngym serve ENV_ID --privileged`, for trusted "
            "clients only).",
        )
    env = _require_episode(session, playing=True)
    act = getattr(env.unwrapped, "oracle_action", None)
    if not callable(act):
        raise ProtocolError(ErrorCode.EXECUTION_ERROR,
                            f"{type(env.unwrapped).__name__} has no oracle_action()")  # fmt: skip
    try:
        action = await manager.offload(session, act)
    except NotImplementedError as err:
        raise ProtocolError(ErrorCode.EXECUTION_ERROR, str(err),
                            exception="NotImplementedError") from None  # fmt: skip
    return "oracle", {"action": str(action)}


def execution_error(err: Exception) -> ProtocolError:
    """``EXECUTION_ERROR`` for an exception raised by env code.

    ``exception`` names its type, and is ``"ValueError"`` for every ``ValueError`` subclass, so
    a client can re-raise bad input (unknown reset options, bad knob values) as ``ValueError``.
    """
    kind = "ValueError" if isinstance(err, ValueError) else type(err).__name__
    return ProtocolError(ErrorCode.EXECUTION_ERROR, f"{type(err).__name__}: {err}", exception=kind)


_HANDLERS: dict[str, Callable[[SessionManager, Session, Any], Awaitable[Reply]]] = {
    "make": make, "reset": reset, "step": step, "state": state, "snapshot": snapshot,
    "restore": restore, "fork": fork, "leak_check": leak_check, "oracle": oracle,
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
