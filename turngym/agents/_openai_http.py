"""HTTP plumbing of :class:`~turngym.agents.openai.OpenAIAgent`, private to that module.

``httpx`` connection pools belong to the event loop that opened them, so the agent runs every
request on one :class:`_LoopThread`: an event loop in a daemon thread that owns the agent's
``httpx.AsyncClient`` and the semaphore that caps its requests in flight (the module docstring
of :mod:`turngym.agents.openai` explains why). :func:`_retry_after` reads how long a server
asked the agent to wait before retrying.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


class _LoopThread:
    """An event loop in a daemon thread that owns the agent's HTTP client and semaphore.

    It holds no reference to the agent, so the agent can be garbage collected (a finalizer
    then closes this loop).
    """

    def __init__(self, client_kwargs: dict[str, Any], max_concurrency: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(**client_kwargs)
        self.semaphore = asyncio.Semaphore(max_concurrency)  # binds to self.loop on first use
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="turngym-openai", daemon=True
        )
        self.thread.start()
        self.closed = False

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the private loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        """Close the client's connections, stop the loop and join the thread."""
        if self.closed:
            return
        self.closed = True
        if threading.current_thread() is self.thread:  # collected from inside the loop
            self.loop.call_soon(self.loop.stop)
            return
        try:
            self.submit(self.client.aclose()).result(timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            if not self.thread.is_alive():
                self.loop.close()


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds a server asked us to wait (``retry-after-ms`` or ``Retry-After`` in seconds).

    The rare HTTP-date form of ``Retry-After`` is ignored: the exponential backoff applies.
    """
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers[name]) * scale)
        except (KeyError, ValueError):
            continue
    return None
