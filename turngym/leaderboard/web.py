"""The leaderboard page: ``turngym leaderboard serve`` (FastAPI) and ``export`` (static HTML).

Both commands show the same document, built by :func:`~turngym.leaderboard.page.render_page`
(in :mod:`turngym.leaderboard.page`, re-exported here) from the dict that
``LeaderboardStore.page_data(metric)`` returns. This module holds what delivers it: the
:class:`PageSource` protocol, :func:`export_html` (a static, self-contained file),
:func:`create_app` (the FastAPI app) and :func:`serve`.

fastapi and uvicorn (the ``harness`` extra) are imported only by :func:`create_app` and
:func:`serve`, so rendering and exporting need nothing beyond the standard library.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from turngym.evals.results import EPISODE_METRICS
from turngym.leaderboard.assets import SECURITY_HEADERS
from turngym.leaderboard.page import render_page

if TYPE_CHECKING:
    import fastapi

__all__ = ["PageSource", "SecurityHeaders", "render_page", "export_html", "create_app", "serve"]


class PageSource(Protocol):
    """Anything that produces page data: a ``LeaderboardStore``, or a stand-in in tests."""

    def page_data(self, metric: str = "success") -> dict[str, Any]:
        """Return the page data for ``metric`` (see :func:`render_page` for its shape)."""
        ...


class SecurityHeaders:
    """ASGI middleware adding :data:`~turngym.leaderboard.assets.SECURITY_HEADERS` to responses."""

    _HEADERS = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    def __init__(self, app: Any) -> None:
        """Wrap ``app``."""
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass the request on; add the headers a response does not set itself."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in self._HEADERS if h[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_secured)


# --- Export, app and server --------------------------------------------------------------------
def _page_data(store: PageSource, metric: str) -> dict[str, Any]:
    """``store.page_data(metric)``, refusing a metric the store does not have."""
    data = store.page_data(metric)
    # The episode metrics are always valid, so an empty board (whose store may list no metrics
    # yet) still renders its "no submissions" page instead of refusing the default metric.
    known = [*data["metrics"], *(m for m in EPISODE_METRICS if m not in data["metrics"])]
    if metric not in known:
        raise ValueError(f"unknown metric {metric!r}; choose one of {known}")
    return data


def export_html(store: PageSource, path: str | os.PathLike[str], metric: str = "success") -> Path:
    """Write the leaderboard page for ``metric`` as a static HTML file.

    Args:
        store: An open ``LeaderboardStore`` (or anything with ``page_data(metric)``).
        path: The file to write; missing parent directories are created.
        metric: The metric to rank by.

    Returns:
        The path written.

    Raises:
        ValueError: If ``metric`` is not one of the store's metrics.
    """
    page = render_page(_page_data(store, metric))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a web server publishing the file never serves half a page.
    partial = target.with_name(target.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(target)
    return target


def _import_web() -> tuple[Any, Any]:
    """Import fastapi and uvicorn, or say which extra provides them."""
    try:
        import fastapi
        import uvicorn
    except ImportError as error:
        raise ImportError(
            f"the leaderboard page needs fastapi and uvicorn ({error.name} is missing): "
            "pip install 'turngym[harness]'"
        ) from error
    return fastapi, uvicorn


def _open_store(store: str | os.PathLike[str] | PageSource) -> PageSource:
    """A store URL or path opened as a ``LeaderboardStore``; a store object as it is."""
    if isinstance(store, (str, os.PathLike)):
        from turngym.leaderboard.store import LeaderboardStore  # lazy: needs the harness extra

        return LeaderboardStore(os.fspath(store))
    return store


def _close(store: PageSource) -> None:
    """Close a store this module opened (``LeaderboardStore`` holds a database connection)."""
    close = getattr(store, "close", None)  # a stand-in store may have nothing to close
    if callable(close):
        close()


def create_app(store_url: str | os.PathLike[str] | PageSource) -> fastapi.FastAPI:
    """The FastAPI app behind ``turngym leaderboard serve``.

    Routes: ``GET /`` (the page; ``?metric=`` picks the metric), ``GET /api/leaderboard`` (the
    page data as JSON, same query) and ``GET /health``. An unknown metric answers 400 with the
    metrics to choose from. Every response carries :data:`~turngym.leaderboard.assets.
    SECURITY_HEADERS` (a Content-Security-Policy allowing only the page's own script and style,
    ``nosniff``, no framing). Creating the app opens nothing; a store URL is opened when the app
    starts and closed when it stops.

    Args:
        store_url: A store URL or path (opened with ``LeaderboardStore``), or an already open
            store (anything with ``page_data(metric)``), which the app uses and leaves open.

    Returns:
        The app, ready for ``uvicorn.run``.
    """
    fastapi, _ = _import_web()
    from fastapi.responses import HTMLResponse

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:  # a fastapi.FastAPI
        app.state.store = _open_store(store_url)
        try:
            yield
        finally:
            if app.state.store is not store_url:  # a store handed in belongs to the caller
                _close(app.state.store)

    app = fastapi.FastAPI(title="turngym leaderboard", lifespan=lifespan)
    app.add_middleware(SecurityHeaders)

    # The handlers reach the store through the enclosing ``app`` rather than a ``Request``
    # parameter: FastAPI resolves parameter annotations in this module's globals, where fastapi
    # is deliberately not imported. They are plain (sync) functions, so FastAPI runs them in its
    # thread pool and a slow database query does not block the event loop.
    def data_or_400(metric: str) -> dict[str, Any]:
        try:
            return _page_data(app.state.store, metric)
        except ValueError as error:
            raise fastapi.HTTPException(status_code=400, detail=str(error)) from error

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/leaderboard")
    def api_leaderboard(metric: str = "success") -> dict[str, Any]:
        return data_or_400(metric)

    # response_model=None: the route returns a Response itself, nothing for FastAPI to validate.
    @app.get("/", response_class=HTMLResponse, response_model=None)
    def page(metric: str = "success") -> HTMLResponse:
        try:
            data = data_or_400(metric)
        except fastapi.HTTPException as error:
            message = f"<h1>400 Bad Request</h1><p>{escape(str(error.detail))}</p>"
            return HTMLResponse(message, status_code=400)
        return HTMLResponse(render_page(data, metric_links=True))

    return app


def serve(store_url: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the leaderboard page with uvicorn until interrupted.

    The store is opened before the server starts, so a wrong URL fails here with the store's
    own message instead of as an app startup error.

    Args:
        store_url: A store URL or path (see ``LeaderboardStore``).
        host: Interface to bind; the default keeps the page on this machine.
        port: TCP port.
    """
    _, uvicorn = _import_web()
    store = _open_store(store_url)
    try:
        uvicorn.run(create_app(store), host=host, port=port)
    finally:
        _close(store)
