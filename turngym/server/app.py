"""The FastAPI app of ``turngym serve``: WebSocket sessions plus OpenEnv's HTTP endpoints.

=====================  ==========================================================================
``WS /ws``             one session per connection (``?session_id=`` attaches to a fork); the
                       messages are in :mod:`turngym.server.protocol`
``GET /health``        ``{"status": "healthy"}``
``GET /metadata``      OpenEnv's ``name``/``description``/``version`` plus ``turngym``: the
                       served envs, capacity, quotas and session counts
``GET /schema``        JSON schemas of the action, observation and state
``POST /reset``        stateless episode over HTTP: the reply's ``metadata.snapshot_id`` is the
``POST /step``         handle the next ``/step`` continues from (``{"action": {"message": ...},
                       "snapshot_id": ...}``)
``GET /state``         the state of a snapshot (``?snapshot_id=``), or of a fresh env
``POST /mcp``          a JSON-RPC stub (no tools), so ``openenv validate`` finds the endpoint
=====================  ==========================================================================

HTTP errors: bad input (malformed bodies, unknown options, refused knobs, a step after the
episode ended) answers 422 with ``{"detail": {"code", "message"}}``; a full server 503; an env
that crashed 500 with the exception's type and message (never a traceback).

The server refuses frames larger than ``max_message_bytes`` with ``MESSAGE_TOO_LARGE`` and keeps
the socket open; the WebSocket layer refuses frames over twice that from their header (see
:mod:`turngym.server.limits`, which also bounds HTTP bodies, headers and idle connections).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

import turngym
from turngym.server import handlers
from turngym.server.accounting import Owner
from turngym.server.catalog import EnvCatalog
from turngym.server.limits import Quotas
from turngym.server.protocol import (
    PROTOCOL_VERSION,
    ErrorCode,
    HttpObservation,
    ProtocolError,
    ResetRequest,
    SessionState,
    StepRequest,
    TextAction,
    TextObservation,
    error_message,
    invalid_input,
    parse_message,
)
from turngym.server.sessions import (
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN_LATER,
    Session,
    SessionManager,
)

__all__ = ["create_app", "DEFAULT_MAX_MESSAGE_BYTES"]

DEFAULT_MAX_MESSAGE_BYTES = 256 << 10
"""256 KiB: above the longest action a TextSpace accepts (32,768 characters, JSON-escaped)."""
_RETRIEVE_CONCURRENCY = 4  # /retrieve batches at once (each can be 256 BM25 queries)

_HTTP_STATUS = {ErrorCode.VALIDATION_ERROR: 422, ErrorCode.FACTORY_ERROR: 422,
                ErrorCode.CAPACITY_REACHED: 503, ErrorCode.EXECUTION_ERROR: 500}  # fmt: skip


def create_app(
    env_ids: Sequence[str],
    *,
    max_sessions: int = 256,
    idle_timeout_s: float | None = 600.0,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    privileged: bool = False,
    quotas: Quotas | None = None,
) -> FastAPI:
    """Build the server app for ``env_ids`` (the first one is each session's default).

    Args:
        env_ids: Registered env ids, or ``module:Name-v0`` to import a module first.
        max_sessions: Concurrent sessions at most; further connections get
            ``CAPACITY_REACHED`` and are closed.
        idle_timeout_s: Close a session after this long without a message (``None``: never).
        max_message_bytes: Larger frames get ``MESSAGE_TOO_LARGE`` (the socket stays open).
        privileged: Send ``info["privileged"]`` (ground truth) to clients, answer ``oracle``,
            and accept any env constructor kwargs and reset options. Only for trusted
            trainers: agents must never see this data.
        quotas: What one client may hold (forks, snapshots, HTTP episodes); see
            :class:`~turngym.server.accounting.Quotas`.

    Returns:
        The FastAPI app; its lifespan runs the idle reaper and, on shutdown, closes every env.

    Raises:
        ValueError: No env ids, a non-text env or a bad limit.
        turngym.registry.UnknownNameError: An unknown env id (with suggestions).

    Example:
        >>> from fastapi.testclient import TestClient
        >>> app = create_app(["turngym/FrozenLake-v0"])
        >>> with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ...     ws.send_json({"type": "reset", "data": {"seed": 0}})
        ...     reply = ws.receive_json()
        >>> reply["type"], reply["data"]["done"], reply["data"]["metadata"]["privileged"]
        ('observation', False, {})
    """
    if max_message_bytes < 1024:
        raise ValueError(f"max_message_bytes must be >= 1024, got {max_message_bytes}")
    catalog = EnvCatalog(env_ids, privileged=privileged)
    manager = SessionManager(catalog, max_sessions=max_sessions, idle_timeout_s=idle_timeout_s,
                             quotas=quotas)  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reaper = asyncio.create_task(manager.run_reaper())
        try:
            yield
        finally:
            reaper.cancel()
            await manager.shutdown()  # graceful: every env is closed

    app = FastAPI(
        title="turngym env server",
        version=turngym.__version__,
        lifespan=lifespan,
        description="OpenEnv-compatible server for turngym's text environments.",
    )
    app.state.manager = manager
    app.state.max_message_bytes = max_message_bytes

    @app.websocket("/ws")
    async def websocket_session(ws: WebSocket) -> None:
        await _websocket_session(ws, manager, max_message_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        # FastAPI's own reply quotes the whole input back; this one lists a few errors only.
        refused = invalid_input("Invalid request", err.errors())
        detail = {"code": refused.code.value, "message": refused.message, **refused.extra}
        return JSONResponse({"detail": detail}, status_code=422)

    _add_info_routes(app, manager)
    _add_http_episode_routes(app, manager)
    _add_retrieve_route(app, catalog)
    return app


def _add_retrieve_route(app: FastAPI, catalog: EnvCatalog) -> None:
    """Mount Search-R1's ``POST /retrieve`` when a SearchQA env is served.

    It searches the corpus of the first served SearchQA id with its registered kwargs; see
    :func:`turngym.envs.search.corpus.search_r1_retrieve` for the request and reply, and
    docs/design.md#the-env-server.
    """
    served = next((s for s in catalog.envs.values()
                   if str(s.spec.entry_point).startswith("turngym.envs.search")), None)  # fmt: skip
    if served is None:
        return
    from turngym.envs.search.corpus import search_r1_retrieve
    from turngym.envs.search.env import SearchQA

    env = catalog.build(served, {})
    base = env.unwrapped
    assert isinstance(base, SearchQA)  # the one env of turngym.envs.search
    corpus = base.corpus
    env.close()
    busy = asyncio.Semaphore(_RETRIEVE_CONCURRENCY)  # CPU-bound: more at once only queue

    @app.post("/retrieve")
    async def retrieve(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(status_code=422, detail="the body must be JSON") from None
        try:
            async with busy:
                return await asyncio.to_thread(search_r1_retrieve, body, corpus)
        except ValueError as err:
            raise HTTPException(status_code=422, detail=str(err)) from None


# --- WebSocket ----------------------------------------------------------------------------------
async def _websocket_session(ws: WebSocket, manager: SessionManager, limit: int) -> None:
    await ws.accept()
    session_id = ws.query_params.get("session_id")
    try:
        host = ws.client.host if ws.client is not None else None
        session = manager.attach(session_id) if session_id else manager.open(host=host)
    except ProtocolError as err:  # OpenEnv: error frame, then close
        full = err.code is ErrorCode.CAPACITY_REACHED
        await _close(ws, CLOSE_TRY_AGAIN_LATER if full else CLOSE_POLICY, err.code.value, err)
        return

    async def closer(code: int, reason: str, error: ProtocolError | None) -> None:
        await _close(ws, code, reason, error)

    session.closer = closer
    try:
        await _serve(ws, manager, session, limit)
    except WebSocketDisconnect:
        pass
    finally:
        await manager.release(session)  # closes the env; a no-op if reaped already
        await _close(ws, 1000, "")


async def _serve(ws: WebSocket, manager: SessionManager, session: Session, limit: int) -> None:
    """Answer frames until the client sends ``close`` or disconnects."""
    while True:
        frame = await ws.receive()
        if frame["type"] == "websocket.disconnect":
            return
        raw = frame.get("text")
        if raw is None:
            raw = frame.get("bytes") or b""
        if _too_large(raw, limit):
            await ws.send_text(error_message(ProtocolError(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"Message of more than {limit} bytes refused (this server's "
                "max_message_bytes); the session is unchanged.", limit_bytes=limit,
            )))  # fmt: skip
            continue
        try:
            message = parse_message(raw)
        except ProtocolError as err:
            await ws.send_text(error_message(err))
            continue
        if message.type == "close":
            return
        await ws.send_text(await handlers.handle(manager, session, message))


def _too_large(raw: str | bytes, limit: int) -> bool:
    # A character takes 1-4 bytes in UTF-8: encode only when the length leaves doubt.
    if len(raw) > limit:
        return True
    return (
        isinstance(raw, str)
        and len(raw) * 4 > limit
        and len(raw.encode("utf-8", "replace")) > limit
    )


async def _close(ws: WebSocket, code: int, reason: str, error: ProtocolError | None = None
                 ) -> None:  # fmt: skip
    """Close the socket (after sending ``error``, if any); never raises, never hangs.

    A peer that stops reading could block the send; after a few seconds it is given up (the
    WebSocket layer drops the peer when it stops answering pings).
    """

    async def goodbye() -> None:
        if error is not None:
            await ws.send_text(error_message(error))
        await ws.close(code=code, reason=reason)

    try:
        await asyncio.wait_for(goodbye(), 5.0)
    except Exception:  # already closed by the peer, the reaper or the server's shutdown
        pass


# --- HTTP ---------------------------------------------------------------------------------------
def _add_info_routes(app: FastAPI, manager: SessionManager) -> None:
    catalog = manager.catalog

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        return {
            "name": "turngym",
            "description": "turngym text environments: " + ", ".join(catalog.envs),
            "readme_content": None,
            "version": turngym.__version__,
            "author": "turngym developers",
            "documentation_url": None,
            "turngym": {
                "protocol": PROTOCOL_VERSION,
                "default_env_id": catalog.default_id,
                "envs": catalog.describe(),
                "privileged": catalog.privileged,
                **manager.stats(),
            },  # fmt: skip
        }

    schemas = {"action": TextAction.model_json_schema(),
               "observation": TextObservation.model_json_schema(),
               "state": SessionState.model_json_schema()}  # fmt: skip

    @app.get("/schema")
    async def schema() -> dict[str, Any]:
        return schemas

    @app.post("/mcp")
    async def mcp(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            return {"jsonrpc": "2.0", "id": None,
                    "error": {"code": -32700, "message": "Parse error"}}  # fmt: skip
        rid = body.get("id") if isinstance(body, dict) else None
        if isinstance(body, dict) and body.get("method") == "tools/list":
            return {"jsonrpc": "2.0", "id": rid, "result": {"tools": []}}
        return {
            "jsonrpc": "2.0",
            "id": rid,
            "error": {"code": -32601, "message": "turngym serves envs over WS /ws, not MCP tools"},
        }


def _add_http_episode_routes(app: FastAPI, manager: SessionManager) -> None:
    """Add the stateless ``/reset``, ``/step`` and ``/state``.

    Each request uses a throwaway session; the env state travels between requests as a
    server-side snapshot id, charged to the HTTP episode the chain started with (its own
    quota, so another client's requests never evict it).
    """

    @app.post("/reset", response_model=HttpObservation)
    async def http_reset(raw: Request, request: ResetRequest | None = None) -> HttpObservation:
        data = request or ResetRequest()
        try:
            owner = manager.http.new(_host(raw))
        except ProtocolError as err:
            raise _http_error(err) from None
        return await _throwaway(manager, lambda s: handlers.reset(manager, s, data), owner)

    @app.post("/step", response_model=HttpObservation)
    async def http_step(raw: Request, request: StepRequest) -> HttpObservation:
        if request.snapshot_id is None:
            raise HTTPException(422, {"code": ErrorCode.VALIDATION_ERROR.value, "message": (
                "Stateless /step continues from 'snapshot_id' (metadata.snapshot_id of the "
                "previous /reset or /step reply). For sessions use WS /ws.")})  # fmt: skip
        snapshot_id = request.snapshot_id
        owner = manager.snapshots.owner_of(snapshot_id)
        try:
            if owner is not None and owner.id in manager.http.owners:
                manager.http.touch(owner)
            else:  # a WS session's snapshot (or an orphan): the chain is a new HTTP episode
                manager.get_snapshot(snapshot_id)  # unknown ids: 422 before taking a slot
                owner = manager.http.new(_host(raw))
        except ProtocolError as err:
            raise _http_error(err) from None

        async def run(session: Session) -> Any:
            await handlers.restore_snapshot(manager, session, snapshot_id)
            return await handlers.step(manager, session, request.action)

        return await _throwaway(manager, run, owner)

    @app.get("/state", response_model=SessionState)
    async def http_state(snapshot_id: str | None = Query(default=None, max_length=128)
                         ) -> SessionState:  # fmt: skip
        session = Session(id="http", last_active=0.0)
        try:
            if snapshot_id is not None:
                snap = manager.get_snapshot(snapshot_id)
                session.served, session.turn, session.has_reset = snap.served, snap.turn, True
                session.episode_id, session.last = snap.episode_id, snap.last
            _, data = await handlers.state(manager, session)
        except ProtocolError as err:
            raise _http_error(err) from None
        assert isinstance(data, SessionState)
        return data


def _host(request: Request) -> str | None:
    """The client's network address (what ``Quotas.per_host`` counts by)."""
    return request.client.host if request.client is not None else None


async def _throwaway(manager: SessionManager, run: Any, owner: Owner) -> HttpObservation:
    """Run one episode call on a session outside the table, snapshot it for ``owner``."""
    session = Session(id="http", last_active=0.0)
    kept = False
    try:
        _, data = await run(session)
        metadata = dict(data.metadata)
        if session.env is not None and callable(getattr(session.env.unwrapped, "get_state",
                                                        None)):  # fmt: skip
            _, saved = await handlers.snapshot(manager, session, owner=owner)
            assert isinstance(saved, dict)  # snapshot replies with a plain {"snapshot_id": id}
            metadata["snapshot_id"] = saved["snapshot_id"]
            kept = True
        return HttpObservation(observation=data.observation, reward=data.reward, done=data.done,
                               metadata=metadata)  # fmt: skip
    except ProtocolError as err:
        raise _http_error(err) from None
    except Exception as err:  # an env bug: a 500 that says what happened
        raise _http_error(handlers.execution_error(err)) from None
    finally:
        if not kept and not owner.snapshots:
            manager.http.discard(owner)  # nothing to continue from: free the slot
        await manager.release(session)


def _http_error(err: ProtocolError) -> HTTPException:
    """The HTTP error for ``err``: 422 for bad input (a ``ValueError`` from the env included)."""
    detail = {"code": err.code.value, "message": err.message, **err.extra}
    status = _HTTP_STATUS.get(err.code, 400)
    if err.code is ErrorCode.EXECUTION_ERROR and err.extra.get("exception") == "ValueError":
        status = 422  # envs raise ValueError for bad options and knob values
    return HTTPException(status, detail)
