"""A loopback OpenAI-compatible server that serves a tiny offline model, with fault injection.

:func:`serve_openai` runs a real uvicorn server in a background thread on a free loopback
port and yields the :class:`LoopbackOpenAI` behind it::

    with serve_openai("turngym/FrozenLake-v0", fail_first=2) as server:
        agent = make_agent(f"openai:tiny@{server.base_url}")
        ...
        assert server.requests[0].status == 500

It implements ``POST /v1/chat/completions`` and ``GET /v1/models`` in the OpenAI response
shape. The model is :func:`turngym.agents.tiny.build_tiny` (random weights, word-level
vocabulary of the env), prompts are rendered with its chat template, and each request samples
from its own ``torch.Generator`` seeded with the request's ``seed`` (or, without one, the
request's number), so a reply depends only on the request. Like vLLM with ``min_tokens=1`` the
first token is never end-of-sequence and special tokens are never sampled, so every reply is a
non-empty text. Stop strings follow OpenAI: the reply is cut BEFORE the stop string. Logprobs
are those of the sampled tokens under the tempered distribution (before top-p).

Faults (constructor or :meth:`LoopbackOpenAI.reset` keywords, counted over chat requests):

* ``require_key="sk-test"``: 401 unless ``Authorization: Bearer sk-test`` (checked first);
* ``fail_first=N``: requests 1..N answer 500;
* ``rate_limit_every=K``: every K-th request answers 429 with ``Retry-After: 0``;
* ``delay_s``: sleep this long before answering anything (timeouts, concurrency).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from transformers import DynamicCache

from turngym.agents.hf import cache_argument
from turngym.agents.tiny import build_tiny

__all__ = ["RecordedRequest", "LoopbackOpenAI", "serve_openai"]

_SPACE = "▁"  # the tiny tokenizer's space marker


class ChatMessage(BaseModel):
    """One chat message of a request."""

    role: str
    content: str


class ChatRequest(BaseModel):
    """The fields of a chat-completions request this server reads (extra fields allowed)."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage]
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    """One chat request as the server saw it."""

    number: int
    status: int
    body: dict[str, Any]
    authorization: str | None


@dataclass
class _Sample:
    text: str
    finish_reason: str
    tokens: list[str] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


def _error(status: int, message: str, code: str, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


class LoopbackOpenAI:
    """The server state: model, fault knobs, request log and in-flight counters.

    Attributes:
        base_url: ``http://127.0.0.1:<port>/v1`` once served by :func:`serve_openai`.
        requests: Every chat request, in the order the answers were sent.
        in_flight: Chat requests being answered now.
        max_in_flight: The most chat requests ever answered at once (since :meth:`reset`).
    """

    def __init__(
        self,
        env_id: str = "turngym/FrozenLake-v0",
        *,
        seed: int = 0,
        model_name: str = "tiny",
        max_positions: int = 2048,
        **faults: Any,
    ) -> None:
        self.model, self.tokenizer = build_tiny(env_id, seed=seed, max_positions=max_positions)
        self.model_name = model_name
        self.max_positions = max_positions
        self.base_url = ""
        self._generate_lock = threading.Lock()  # one generation at a time on 2 cores
        special = set(self.tokenizer.all_special_ids) - {self.tokenizer.eos_token_id}
        self._banned = torch.tensor(sorted(special), dtype=torch.long)
        self.reset(**faults)
        self.app = self._build_app()

    def __str__(self) -> str:
        return self.base_url

    def reset(
        self,
        *,
        fail_first: int = 0,
        rate_limit_every: int = 0,
        delay_s: float = 0.0,
        require_key: str | None = None,
    ) -> None:
        """Set the faults and clear the log and counters, once earlier requests are done."""
        deadline = time.monotonic() + 10.0
        while getattr(self, "in_flight", 0) and time.monotonic() < deadline:
            time.sleep(0.01)  # a delayed request of the last test must not log into the next
        self.fail_first = fail_first
        self.rate_limit_every = rate_limit_every
        self.delay_s = delay_s
        self.require_key = require_key
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._count = 0

    # --- HTTP -----------------------------------------------------------------------------
    def _build_app(self) -> FastAPI:
        app = FastAPI(title="turngym loopback OpenAI")

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            entry = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "turngym"}
            return {"object": "list", "data": [entry]}

        @app.post("/v1/chat/completions")
        async def chat(body: ChatRequest, request: Request) -> JSONResponse:
            # Counters change on the server's event loop only, so they need no lock.
            self._count += 1
            number = self._count
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            authorization = request.headers.get("authorization")
            try:
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                response = await self._answer(number, body, authorization)
            finally:
                self.in_flight -= 1
            sent = body.model_dump(exclude_unset=True)  # what the client sent, no defaults
            record = RecordedRequest(number, response.status_code, sent, authorization)
            self.requests.append(record)
            return response

        return app

    async def _answer(
        self, number: int, body: ChatRequest, authorization: str | None
    ) -> JSONResponse:
        if self.require_key is not None and authorization != f"Bearer {self.require_key}":
            given = (authorization or "").removeprefix("Bearer ")
            # Echo the key back like OpenAI does, so clients must keep it out of their errors.
            message = f"Incorrect API key provided: {given}." if given else "No API key given."
            return _error(401, message, "invalid_api_key")
        if number <= self.fail_first:
            return _error(500, "Injected failure (fail_first).", "server_error")
        if self.rate_limit_every and number % self.rate_limit_every == 0:
            headers = {"Retry-After": "0"}
            return _error(429, "Rate limit reached (rate_limit_every).", "rate_limit", headers)
        if body.model != self.model_name:
            message = f"The model `{body.model}` does not exist; this server has {self.model_name}."
            return _error(404, message, "model_not_found")
        try:
            prompt = self._prompt_ids(body)
        except ValueError as err:
            return _error(400, str(err), "invalid_request")
        seed = body.seed if body.seed is not None else number
        sample = await asyncio.to_thread(self._generate_locked, prompt, body, seed)
        return JSONResponse(self._completion(number, body, prompt, sample))

    def _completion(
        self, number: int, body: ChatRequest, prompt: list[int], sample: _Sample
    ) -> dict[str, Any]:
        logprobs = None
        if body.logprobs:
            content = [
                {"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
                for t, lp in zip(sample.tokens, sample.logprobs, strict=True)
            ]
            logprobs = {"content": content}
        message = {"role": "assistant", "content": sample.text}
        choice = {
            "index": 0,
            "message": message,
            "finish_reason": sample.finish_reason,
            "logprobs": logprobs,
        }
        usage = {
            "prompt_tokens": len(prompt),
            "completion_tokens": len(sample.tokens),
            "total_tokens": len(prompt) + len(sample.tokens),
        }
        return {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [choice],
            "usage": usage,
        }

    # --- Generation -----------------------------------------------------------------------
    def _prompt_ids(self, body: ChatRequest) -> list[int]:
        messages = [message.model_dump() for message in body.messages]
        roles = {m["role"] for m in messages} - {"system", "user", "assistant"}
        if roles or not messages:
            raise ValueError(f"messages must be a non-empty list of system/user/assistant; {roles}")
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        budget = body.max_tokens or 16
        if len(ids) + budget > self.max_positions:
            raise ValueError(
                f"This model's maximum context length is {self.max_positions} tokens; the "
                f"prompt has {len(ids)} and max_tokens is {budget}."
            )
        return list(ids)

    def _generate_locked(self, prompt: list[int], body: ChatRequest, seed: int) -> _Sample:
        with self._generate_lock:
            return self._generate(prompt, body, seed)

    @torch.inference_mode()
    def _generate(self, prompt: list[int], body: ChatRequest, seed: int) -> _Sample:
        generator = torch.Generator().manual_seed(seed)
        stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        eos = self.tokenizer.eos_token_id
        # Our own cache object, passed under the name the installed transformers expects.
        cache = {cache_argument(self.model): DynamicCache(config=self.model.config)}
        out = self.model(input_ids=torch.tensor([prompt]), use_cache=True, **cache)
        sample = _Sample(text="", finish_reason="length")
        ids: list[int] = []
        for step in range(body.max_tokens or 16):
            logits = out.logits[0, -1].float()
            logits[self._banned] = float("-inf")
            if step == 0:
                logits[eos] = float("-inf")  # never an empty reply (vLLM's min_tokens=1)
            token, logprob = _pick(logits, body.temperature, body.top_p, generator)
            if token == eos:
                sample.finish_reason = "stop"
                break
            ids.append(token)
            sample.tokens.append(self.tokenizer.convert_ids_to_tokens(token).replace(_SPACE, " "))
            sample.logprobs.append(logprob)
            sample.text = self.tokenizer.decode(ids, skip_special_tokens=True)
            cuts = [sample.text.find(s) for s in stops if s and s in sample.text]
            if cuts:
                sample.text, sample.finish_reason = sample.text[: min(cuts)], "stop"
                break
            out = self.model(input_ids=torch.tensor([[token]]), use_cache=True, **cache)
        return sample


def _pick(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator
) -> tuple[int, float]:
    """Sample one token (greedy at temperature 0); return it with its tempered logprob."""
    if temperature <= 0:
        logprobs = torch.log_softmax(logits, dim=-1)
        token = int(logprobs.argmax())
        return token, float(logprobs[token])
    logprobs = torch.log_softmax(logits / temperature, dim=-1)
    probs = logprobs.exp()
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # Keep a token while the mass strictly before it is below top_p (the top one always).
        keep = (sorted_probs.cumsum(-1) - sorted_probs) < top_p
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs * keep)
    token = int(torch.multinomial(probs, 1, generator=generator))
    return token, float(logprobs[token])


@contextlib.contextmanager
def serve_openai(
    env_id: str = "turngym/FrozenLake-v0", *, seed: int = 0, model_name: str = "tiny", **faults: Any
) -> Iterator[LoopbackOpenAI]:
    """Serve a :class:`LoopbackOpenAI` with uvicorn on a free loopback port.

    Args:
        env_id: Env whose vocabulary the tiny model has.
        seed: The tiny model's seed.
        model_name: The only model name the server accepts (404 for others).
        **faults: ``fail_first``, ``rate_limit_every``, ``delay_s``, ``require_key``.

    Yields:
        The server, with :attr:`LoopbackOpenAI.base_url` set (``str(server)`` is the URL).
    """
    server = LoopbackOpenAI(env_id, seed=seed, model_name=model_name, **faults)
    # Binding here (port 0) and handing the socket to uvicorn avoids a find-then-bind race.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        server.app, log_config=None, log_level="warning", access_log=False, lifespan="off",
        timeout_graceful_shutdown=2,
    )  # fmt: skip
    uv = uvicorn.Server(config)
    thread = threading.Thread(
        target=uv.run, kwargs={"sockets": [sock]}, name="openai-loopback", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30.0
        while not uv.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the loopback OpenAI server did not start (see log above)")
            time.sleep(0.01)
        server.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        yield server
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        sock.close()
