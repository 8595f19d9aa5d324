"""A transformers model behind verl's LLM-client interface: verl's rollout without vLLM/SGLang.

verl's agent loops generate through an ``LLMServerClient`` (``await client.generate(request_id,
prompt_ids=..., sampling_params=...) -> TokenOutput``), normally backed by vLLM or SGLang
servers on GPUs. :class:`TransformersLLMClient` answers the same call with a local
``transformers`` causal LM (on CPU, or any device the model is on), so the turngym agent loop
-- and verl's ``AgentLoopWorker`` around it -- runs on a laptop, in CI, or for debugging a
rollout before it goes to a cluster. It is not a serving engine: one request at a time,
no batching across requests.

Sampling follows verl's parameters: ``temperature`` (0 = greedy), ``top_p``, ``top_k``
(-1 or 0 = off), ``logprobs`` (return the sampled tokens' log-probabilities), ``max_tokens``
(default: the client's ``max_new_tokens``) and ``stop_token_ids`` (plus the tokenizer's
EOS). Draws come from the client's own ``torch.Generator``, so a seeded client is
deterministic.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import torch
from verl.workers.rollout.replica import TokenOutput

from turngym.agents.hf import cache_argument

__all__ = ["TransformersLLMClient"]


class TransformersLLMClient:
    """Generate with a transformers causal LM for verl's agent loops.

    Args:
        model: A causal LM (e.g. ``turngym.agents.tiny.build_tiny(...)[0]``).
        eos_token_id: Token that ends a generation (besides ``stop_token_ids``).
        max_new_tokens: Generation length when ``sampling_params`` gives no ``max_tokens``.
        seed: Seed of the sampling generator.
    """

    def __init__(self, model: Any, eos_token_id: int | None, *, max_new_tokens: int = 32,
                 seed: int = 0) -> None:  # fmt: skip
        self.model = model.eval()
        self.eos_token_id = eos_token_id
        self.max_new_tokens = int(max_new_tokens)
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self._lock = threading.Lock()  # one generation at a time on the shared model
        self._cache_name = cache_argument(model)

    async def generate(self, request_id: str, *, prompt_ids: list[int],
                       sampling_params: dict[str, Any], **_: Any) -> TokenOutput:  # fmt: skip
        """Verl's ``LLMServerClient.generate``: sample a continuation of ``prompt_ids``."""
        return await asyncio.to_thread(self._generate, list(prompt_ids), dict(sampling_params))

    @torch.no_grad()
    def _generate(self, prompt_ids: list[int], params: dict[str, Any]) -> TokenOutput:
        stops = set(params.get("stop_token_ids") or ())
        if self.eos_token_id is not None:
            stops.add(int(self.eos_token_id))
        limit = int(params.get("max_tokens") or self.max_new_tokens)
        temperature = float(params.get("temperature", 1.0))
        tokens: list[int] = []
        logprobs: list[float] = []
        with self._lock:
            ids = torch.tensor([prompt_ids], device=self.device)
            past = None
            for _ in range(limit):
                out = self.model(input_ids=ids, use_cache=True, **{self._cache_name: past})
                past = out.past_key_values
                logits = out.logits[0, -1].float()
                token = self._choose(logits, temperature, params)
                logprobs.append(float(torch.log_softmax(logits, -1)[token]))
                tokens.append(token)
                if token in stops:
                    break
                ids = torch.tensor([[token]], device=self.device)
        stop = "completed" if tokens and tokens[-1] in stops else None
        return TokenOutput(token_ids=tokens, log_probs=logprobs if params.get("logprobs") else None,
                           stop_reason=stop)  # fmt: skip

    def _choose(self, logits: torch.Tensor, temperature: float, params: dict[str, Any]) -> int:
        if temperature <= 0:
            return int(torch.argmax(logits))
        logits = logits / temperature
        top_k = int(params.get("top_k") or -1)
        if 0 < top_k < logits.numel():
            cutoff = torch.topk(logits, top_k).values[-1]
            logits = logits.masked_fill(logits < cutoff, float("-inf"))
        probs = torch.softmax(logits, -1)
        top_p = float(params.get("top_p", 1.0))
        if top_p < 1.0:  # nucleus: the smallest set of tokens whose mass reaches top_p
            sorted_probs, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_probs, 0) - sorted_probs < top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
        return int(torch.multinomial(probs / probs.sum(), 1, generator=self.generator))
