"""An agent for any OpenAI-compatible chat-completions server (docs/design.md#agents).

:class:`OpenAIAgent` sends one ``POST <base url>/chat/completions`` per conversation, all of a
batch concurrently (at most ``max_concurrency`` in flight per agent), over ``httpx``. It works
with vLLM, SGLang, llama.cpp's server and hosted APIs alike, and retries what is worth
retrying: 408, 409, 429 (honouring ``Retry-After``), 5xx, connection errors and timeouts, with
exponential backoff and seeded jitter. Other 4xx answers fail at once with the server's message.

**Event loop.** ``httpx`` pools belong to the event loop that opened them, so the agent runs
every request on ONE private loop in a daemon thread (:mod:`turngym.agents._openai_http`).
``aact_batch`` awaits its work without blocking the caller's loop, ``act_batch`` blocks on it;
pooled (keep-alive, TLS) connections thus survive across steps, ``asyncio.run`` calls and the
sync and async drivers. :meth:`OpenAIAgent.close` (or ``with agent:``) releases them.

**Seeds.** With ``seed`` set, each request carries a seed derived from the agent seed, the
episode id, the seat and the turn number, never from the order of requests: a batch answered
with any concurrency sends the same seeds, and the G episodes of one group get different
ones. Servers that honour ``seed`` (vLLM, SGLang) then reply deterministically.

**Logprobs.** A chat server returns token *strings* and logprobs, never token ids, so a
:class:`~turngym.types.TokenTrace` cannot be filled honestly and actions carry ``trace=None``.
With ``logprobs=True`` the per-token logprobs are on :class:`ChatCompletion`, returned by
:meth:`OpenAIAgent.complete_batch` / :meth:`OpenAIAgent.acomplete_batch`, and the last
batch's are kept in :attr:`OpenAIAgent.last_completions`.

**Spec strings** ``openai:<model>@<base url>[?<option>=<value>&...]`` (``make_agent``) are read
by :func:`parse_spec`; it and the settings checks live in :mod:`turngym.agents.openai_spec`.

**Credentials.** The API key comes from ``api_key`` or the environment variable
``api_key_env`` and is sent only as ``Authorization: Bearer``: it never appears in
:meth:`OpenAIAgent.config`, the repr, error messages or :attr:`OpenAIAgent.stats`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import random
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from turngym.agents._openai_http import _LoopThread, _retry_after
from turngym.agents.base import ActionResult, BaseAgent, prompt_messages
from turngym.agents.openai_spec import DEFAULT_BASE_URL, _validate, parse_spec
from turngym.evals.results import redact
from turngym.types import Conversation

__all__ = [
    "DEFAULT_BASE_URL",
    "OpenAIAgentError",
    "ChatCompletion",
    "UsageStats",
    "OpenAIAgent",
    "parse_spec",
]

# The official client retries these too: 408 request timeout, 409 lock conflict, 429 rate
# limit, and any 5xx (https://platform.openai.com/docs/guides/error-codes).
_RETRY_STATUSES = frozenset({408, 409, 429})
_MAX_DELAY_S = 60.0  # a huge Retry-After must not stall an eval for hours
_SNIPPET_CHARS = 300


class OpenAIAgentError(RuntimeError):
    """A chat-completions request failed for good (the message says why and what to do).

    Attributes:
        status: The last HTTP status, or ``None`` when no answer came (connection error,
            timeout, malformed reply).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ChatCompletion:
    """One parsed chat-completions reply.

    Attributes:
        text: ``choices[0].message.content`` (``""`` when the server sent none).
        finish_reason: ``"stop"``, ``"length"``... as the server reported it.
        tokens: The completion's token strings, when logprobs were requested and offered.
        logprobs: Their log-probabilities, one per token, under the same condition.
        prompt_tokens: ``usage.prompt_tokens`` (0 when the server reports no usage).
        completion_tokens: ``usage.completion_tokens`` (0 when the server reports no usage).
    """

    text: str
    finish_reason: str | None = None
    tokens: tuple[str, ...] | None = None
    logprobs: tuple[float, ...] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(slots=True)
class UsageStats:
    """What an agent has spent so far (updated as replies arrive).

    Attributes:
        requests: HTTP requests sent, retries included.
        completions: Successful replies.
        retries: Requests repeated after a retryable failure.
        rate_limited: 429 answers received.
        prompt_tokens: Sum of ``usage.prompt_tokens``.
        completion_tokens: Sum of ``usage.completion_tokens``.
    """

    requests: int = 0
    completions: int = 0
    retries: int = 0
    rate_limited: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        """Return the counters as a plain dict (for results files)."""
        return dataclasses.asdict(self)


# --- The agent ---------------------------------------------------------------------------


class OpenAIAgent(BaseAgent):
    """Answers conversations through an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: The model name the server knows (``"gpt-4o-mini"``, ``"Qwen/Qwen2.5-7B"``).
        base_url: The API root, usually ending in ``/v1``.
        api_key: The key; default: the environment variable ``api_key_env``. Without either,
            requests go unauthenticated (fine for a local vLLM).
        api_key_env: The environment variable read when ``api_key`` is ``None``.
        temperature: Sampling temperature (0: greedy on most servers).
        top_p: Nucleus sampling mass in (0, 1].
        max_tokens: Most tokens per action; ``None`` leaves it to the server (reasoning
            models that refuse ``max_tokens`` take ``extra_body={"max_completion_tokens": n}``).
        stop: Stop strings; OpenAI semantics: the server leaves the stop string OUT of the
            reply.
        seed: Base of the per-request seeds (module docstring) and of the retry jitter;
            ``None`` sends no seed.
        history: Past turns shown: ``None`` all, ``k`` the last ``k``.
        include_instructions: Send the env's instructions as the system message.
        max_concurrency: Most requests in flight at once, over all concurrent calls.
        max_retries: Retries per request after a retryable failure (0: try once).
        backoff: Base delay in seconds: retry ``k`` (from 0) waits ``backoff * 2**k`` times a
            jitter factor in [0.5, 1), at most 60 s; a ``Retry-After`` header wins.
        timeout: Seconds allowed for connecting, each read and each write of a request.
        logprobs: Ask for per-token logprobs (see :attr:`last_completions`).
        extra_body: More JSON fields for every request (``top_k``, ``min_tokens``...); they
            override the fields the agent sets.

    Raises:
        ValueError: A setting is out of range or the base URL is not http(s).
    """

    prefers_async = True
    """Tells the eval runner to drive this agent with :func:`~turngym.rollout.acollect`."""

    def __init__(
        self,
        model: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_tokens: int | None = 256,
        stop: str | Sequence[str] | None = None,
        seed: int | None = 0,
        history: int | None = None,
        include_instructions: bool = True,
        max_concurrency: int = 16,
        max_retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 60.0,
        logprobs: bool = False,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        _validate(model, base_url, temperature, top_p, max_tokens, history, max_concurrency)
        if max_retries < 0 or backoff < 0 or timeout <= 0:
            raise ValueError(
                f"need max_retries >= 0, backoff >= 0 and timeout > 0; got {max_retries}, "
                f"{backoff} and {timeout}"
            )
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self._api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.max_tokens = None if max_tokens is None else int(max_tokens)
        self.stop = (stop,) if isinstance(stop, str) else tuple(stop or ())
        self.seed = None if seed is None else int(seed)
        self.history = history
        self.include_instructions = include_instructions
        self.max_concurrency = int(max_concurrency)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.timeout = float(timeout)
        self.logprobs = bool(logprobs)
        self.extra_body = dict(extra_body or {})
        self.stats = UsageStats()
        self.last_completions: list[ChatCompletion] = []
        """The replies behind the last finished batch, in order (overlapping async calls:
        whichever finished last; use :meth:`acomplete_batch` to get each call's own)."""
        self._rng = random.Random(self.seed)  # jitter only; never the global RNG
        self._runner: _LoopThread | None = None
        self._runner_lock = threading.Lock()
        url = httpx.URL(self.base_url)
        self._url = url.copy_with(path=url.path.rstrip("/") + "/chat/completions")

    @classmethod
    def from_spec(cls, arg: str, *, seed: int = 0, **kwargs: Any) -> OpenAIAgent:
        """Build from the argument of an ``openai:`` spec (:func:`parse_spec`).

        Options in the spec's query win over ``seed`` and ``kwargs``.
        """
        return cls(**{"seed": seed, **kwargs, **parse_spec(arg)})

    # --- Public API --------------------------------------------------------------------------
    def act_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        """Return one action per conversation, in order (blocks until all replies are in)."""
        return [ActionResult(c.text) for c in self.complete_batch(conversations)]

    async def aact_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        """Async twin of :meth:`act_batch`; the caller's event loop stays free meanwhile."""
        return [ActionResult(c.text) for c in await self.acomplete_batch(conversations)]

    def complete_batch(self, conversations: Sequence[Conversation]) -> list[ChatCompletion]:
        """Like :meth:`act_batch` but return the parsed replies (logprobs, usage, finish).

        Raises:
            OpenAIAgentError: A request failed for good; the other requests are cancelled.
        """
        if not conversations:
            self.last_completions = []
            return []
        runner = self._get_runner()
        if threading.current_thread() is runner.thread:
            raise RuntimeError("complete_batch() called from the agent's own event loop")
        future = runner.submit(self._complete_all(runner, list(conversations)))
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. Ctrl-C: stop the requests still in flight
            raise

    async def acomplete_batch(self, conversations: Sequence[Conversation]) -> list[ChatCompletion]:
        """Async twin of :meth:`complete_batch`."""
        if not conversations:
            self.last_completions = []
            return []
        runner = self._get_runner()
        future = runner.submit(self._complete_all(runner, list(conversations)))
        # Cancelling the awaiting task cancels the requests on the private loop too.
        return await asyncio.wrap_future(future)

    def reseed(self, seed: int | None) -> None:
        """Use ``seed`` as the base of the request seeds and restart the jitter stream.

        The eval runner and trainers call this so that a run seed, not the agent's history of
        calls, decides what is sampled.
        """
        self.seed = None if seed is None else int(seed)
        self._rng = random.Random(self.seed)

    @property
    def last_logprobs(self) -> list[tuple[float, ...] | None]:
        """Per-token logprobs of the last batch's actions (``None`` where not offered)."""
        return [c.logprobs for c in self.last_completions]

    def messages(self, conversation: Conversation) -> list[dict[str, str]]:
        """Chat messages sent for ``conversation`` (history window and instructions applied)."""
        return prompt_messages(conversation, self.history, self.include_instructions)

    def request_seed(self, conversation: Conversation) -> int | None:
        """The seed sent with ``conversation``'s request (module docstring), or ``None``."""
        if self.seed is None:
            return None
        key = f"{self.seed}|{conversation.episode_id}|{conversation.agent_id}"
        key += f"|{len(conversation.turns)}"
        digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % 2**31  # fits every server's int32 seed

    def config(self) -> dict[str, Any]:
        """Settings that shape the actions, for results files (never the API key)."""
        return {
            "type": "openai",
            "model": self.model,
            "base_url": redact(self.base_url),
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop),
            "seed": self.seed,
            "history": self.history,
            "include_instructions": self.include_instructions,
            "logprobs": self.logprobs,
            "extra_body": dict(self.extra_body),
            "max_concurrency": self.max_concurrency,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
            "api_key_env": self.api_key_env,
        }

    def close(self) -> None:
        """Close pooled connections and stop the private loop (a later call restarts it)."""
        with self._runner_lock:
            runner, self._runner = self._runner, None
        if runner is not None:
            runner.close()

    def __enter__(self) -> OpenAIAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        key = ", api_key='***'" if self._api_key else ""
        return f"OpenAIAgent(model={self.model!r}, base_url={redact(self.base_url)!r}{key})"

    # --- Requests --------------------------------------------------------------------------
    def _get_runner(self) -> _LoopThread:
        with self._runner_lock:
            if self._runner is None:
                headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
                client_kwargs = {
                    "headers": headers,
                    "timeout": httpx.Timeout(self.timeout),
                    # One pooled connection per request slot: the semaphore, not the pool,
                    # limits concurrency, so no request ever waits for a connection.
                    "limits": httpx.Limits(
                        max_connections=self.max_concurrency,
                        max_keepalive_connections=self.max_concurrency,
                    ),
                }
                self._runner = _LoopThread(client_kwargs, self.max_concurrency)
                weakref.finalize(self, self._runner.close)
            return self._runner

    def _payload(self, conversation: Conversation) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages(conversation),
            "temperature": self.temperature,
            "top_p": self.top_p,
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.stop:
            body["stop"] = list(self.stop)
        seed = self.request_seed(conversation)
        if seed is not None:
            body["seed"] = seed
        if self.logprobs:
            body["logprobs"] = True
        return {**body, **self.extra_body}

    async def _complete_all(
        self, runner: _LoopThread, conversations: list[Conversation]
    ) -> list[ChatCompletion]:
        tasks = [asyncio.ensure_future(self._complete_one(runner, c)) for c in conversations]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            # One failure ends the batch: cancel the rest rather than leave them running.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        self.last_completions = list(results)
        return list(results)

    async def _complete_one(
        self, runner: _LoopThread, conversation: Conversation
    ) -> ChatCompletion:
        payload = self._payload(conversation)
        async with runner.semaphore:
            data = await self._post(runner.client, payload)
        completion = _parse_completion(data, self._scrub)
        self.stats.completions += 1
        self.stats.prompt_tokens += completion.prompt_tokens
        self.stats.completion_tokens += completion.completion_tokens
        return completion

    async def _post(self, client: httpx.AsyncClient, payload: dict[str, Any]) -> Any:
        """POST with retries; return the decoded JSON of the first 200 answer."""
        where = f"POST {redact(str(self._url))} (model {self.model!r})"
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            self.stats.requests += 1
            try:
                response = await client.post(self._url, json=payload)
            except httpx.TimeoutException:
                status, problem = None, f"timed out after {self.timeout:g} s (raise timeout=)"
            except httpx.TransportError as err:
                status, problem = None, f"connection failed: {type(err).__name__}: {err}"
            else:
                status, problem = response.status_code, self._server_message(response)
                if status == 200:
                    try:
                        return response.json()
                    except ValueError:
                        raise OpenAIAgentError(
                            f"{where}: the reply is not JSON: {problem}", status
                        ) from None
                if status not in _RETRY_STATUSES and status < 500:
                    raise OpenAIAgentError(self._fatal_message(where, status, problem), status)
                if status == 429:
                    self.stats.rate_limited += 1
                retry_after = _retry_after(response.headers)
            if attempt == self.max_retries:
                break
            self.stats.retries += 1
            await asyncio.sleep(self._delay(attempt, retry_after))
        last = f"HTTP {status}: {problem}" if status is not None else problem
        raise OpenAIAgentError(
            f"{where} failed {self.max_retries + 1} times; last error: {last}. The server is "
            "down or overloaded: check it, lower max_concurrency, or raise max_retries.",
            status,
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, _MAX_DELAY_S)
        # Jitter spreads the retries of concurrent requests so they do not collide again.
        return min(self.backoff * 2**attempt, _MAX_DELAY_S) * (0.5 + 0.5 * self._rng.random())

    def _fatal_message(self, where: str, status: int, problem: str) -> str:
        message = f"{where} was refused with HTTP {status}: {problem}."
        if status in (401, 403):
            if self._api_key:
                message += f" The API key (from api_key= or ${self.api_key_env}) was rejected."
            else:
                message += f" No API key was sent: set {self.api_key_env} or pass api_key=."
        elif status == 404:
            message += " Check the model name and the base URL (it usually ends in /v1)."
        return message

    def _server_message(self, response: httpx.Response) -> str:
        """The error text of an answer (OpenAI ``error.message``, FastAPI ``detail``...)."""
        try:
            data = response.json()
        except ValueError:
            data = None
        text: Any = response.text
        if isinstance(data, dict):
            error = data.get("error")
            if isinstance(error, dict) and "message" in error:
                text = error["message"]
            elif isinstance(error, str):
                text = error
            elif "detail" in data:
                text = data["detail"]
        return self._scrub(str(text).strip()[:_SNIPPET_CHARS] or response.reason_phrase)

    def _scrub(self, text: str) -> str:
        """Remove the API key from text a server may have echoed it in."""
        return text.replace(self._api_key, "***") if self._api_key else text


def _parse_completion(data: Any, scrub: Any) -> ChatCompletion:
    """Read text, finish reason, logprobs and usage from a chat-completions reply.

    Raises:
        OpenAIAgentError: The reply does not have the chat-completions shape.
    """
    try:
        choice = data["choices"][0]
        tokens = logprobs = None
        content = (choice.get("logprobs") or {}).get("content")
        if isinstance(content, list):
            tokens = tuple(str(item.get("token", "")) for item in content)
            logprobs = tuple(float(item["logprob"]) for item in content)
        usage = data.get("usage") or {}
        return ChatCompletion(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason"),
            tokens=tokens,
            logprobs=logprobs,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise OpenAIAgentError(
            "The server's reply is not a chat completion; is the base URL an OpenAI-compatible "
            f"API? Reply: {scrub(str(data))[:_SNIPPET_CHARS]}"
        ) from None
