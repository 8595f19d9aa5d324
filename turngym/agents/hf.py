"""A policy agent for any transformers causal language model (docs/design.md#agents).

:class:`HFAgent` answers the whole batch of live conversations with ONE batched generation:
prompts are left-padded, then a manual sampling loop runs the model once over the prompts and
once per new token, reusing the key/value cache. Each action carries a
:class:`~turngym.types.TokenTrace` (prompt ids, generated ids and their logprobs) for trainers.
Generation runs under ``torch.inference_mode`` with the model in eval mode; the model's own
mode is restored afterwards, so a trainer can share the model with the agent.

Logprobs are ``log_softmax(logits / temperature)`` of each sampled token: the tempered
distribution BEFORE nucleus (top-p) truncation, which is what a trainer recomputes from the
model (vLLM's default "raw" logprobs differ from this only by the temperature). At
``temperature=0`` (greedy) they are ``log_softmax(logits)``.

Restricted decoding (``allowed_actions``, opt-in): the completion is exactly one token, drawn
from the tokens of the allowed actions (each must be a single token for the tokenizer, as
FrozenLake's, Sokoban's or Maze's moves are for the tiny tokenizer); logits outside that set
are masked before sampling and the recorded logprobs are those of the restricted
distribution. It is meant for tiny models trained from scratch, whose budget would otherwise
go on learning the action grammar (a trainer then scores tokens under the same restriction,
:func:`turngym.trainers.policy.sequence_token_logprobs`).

A *recipe* is everything besides the weights that decides what the agent does: prompt
(history window, instructions), response prefix and suffix, generation settings and the
decoding restriction. :meth:`HFAgent.save_recipe` writes it next to a checkpoint
(:data:`RECIPE_FILE`) and :meth:`HFAgent.from_pretrained` reads it back, so a checkpoint
evaluated later behaves as it did in the run that wrote it.

Example:
    >>> from turngym.agents.tiny import build_tiny
    >>> from turngym.types import Conversation
    >>> model, tokenizer = build_tiny(["<action>", "down", "</action>"], d_model=16, n_heads=2)
    >>> agent = HFAgent(model, tokenizer, response_prefix="<action>", max_new_tokens=4)
    >>> result = agent.act_batch([Conversation("Walk to the goal.", (), "P_")])[0]
    >>> result.text.startswith("<action>"), len(result.trace.completion_ids) <= 4
    (True, True)
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from turngym.agents.base import ActionResult, BaseAgent, prompt_messages
from turngym.agents.hf_recipe import RECIPE_FILE, RECIPE_KEYS, load_recipe
from turngym.types import Conversation, TokenTrace

__all__ = [
    "HFAgent",
    "RECIPE_FILE",
    "RECIPE_KEYS",
    "action_token_ids",
    "cache_argument",
    "load_recipe",
]

# Below this many shared tokens the extra forward pass of prefix sharing costs more than it saves.
_MIN_SHARED_TOKENS = 16
_PLAIN_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}


@dataclass(slots=True)
class _Row:
    """One completion being generated."""

    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text: str | None = None  # set once the row has stopped on a stop string
    done: bool = False


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """Token ids that end a completion: the tokenizer's eos plus the generation config's."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    config = getattr(model, "generation_config", None)
    configured = getattr(config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, Iterable):
        ids.update(int(i) for i in configured)
    return frozenset(ids)


def _nucleus_probs(logprobs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Probabilities with everything outside the top-p nucleus zeroed (not renormalised).

    A token is kept when the mass of the tokens strictly more likely than it is below
    ``top_p``, so the most likely token is always kept (Holtzman et al. 2020, section 3.1).
    """
    probs = logprobs.exp()
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    keep_sorted = (sorted_probs.cumsum(dim=-1) - sorted_probs) < top_p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return probs * keep


def cache_argument(model: Any) -> str:
    """Name under which ``model.forward`` takes its key/value cache.

    transformers 5 renamed ``past_key_values`` to ``cache`` (the old name still works but warns
    on every call); earlier releases only know ``past_key_values``. Asking the forward's
    signature which one it takes passes the cache the way the installed model expects it.
    """
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def action_token_ids(tokenizer: Any, actions: Iterable[str]) -> list[int]:
    """Sorted token ids of one-token ``actions`` (restricted decoding, module docstring).

    Each action is tokenized on its own without special tokens, as a model would generate it
    right after a response prefix.

    Raises:
        ValueError: No actions, or an action that is not exactly one token.
    """
    ids: set[int] = set()
    for action in actions:
        tokens = list(tokenizer(action, add_special_tokens=False)["input_ids"])
        if len(tokens) != 1:
            raise ValueError(
                f"Restricted decoding needs one-token actions, but {action!r} is {len(tokens)} "
                "tokens for this tokenizer; use free decoding for this env."
            )
        ids.add(int(tokens[0]))
    if not ids:
        raise ValueError("Restricted decoding needs at least one allowed action.")
    return sorted(ids)


class HFAgent(BaseAgent):
    r"""Generates actions with a transformers causal LM, one batched generation per call.

    Args:
        model: A causal LM (``AutoModelForCausalLM``-like: takes ``input_ids``,
            ``attention_mask``, ``position_ids``, ``past_key_values``, ``logits_to_keep``).
        tokenizer: Its tokenizer. The chat template is used when it has one; otherwise
            ``"System: ...\nUser: ...\nAssistant: ..."``.
        temperature: Sampling temperature; 0 is greedy.
        top_p: Nucleus sampling mass in (0, 1]; 1 samples from the whole distribution.
        max_new_tokens: Most tokens generated per action.
        stop: A completion stops as soon as its decoded text contains one of these strings;
            the text is cut right after it (the stop string is kept).
        response_prefix: Text appended to the prompt and put in front of the action, e.g.
            ``"<action>"`` so the model only has to produce the move.
        response_suffix: Text appended to every action (not generated).
        history: Past turns shown in the prompt: ``None`` all, ``k`` the last ``k``.
        include_instructions: Put the env's instructions in as the system message.
        seed: Seeds the agent's sampling generator. Samples depend on the sequence of calls
            and on how the conversations are batched.
        device: Move the model there; default: where the model already is.
        share_prefix: Encode the prompt prefix that every conversation of a batch shares
            (typically the instructions) once, then copy its key/value cache to every row.
            Only for models whose every layer attends to all earlier tokens (Llama, Qwen2
            without sliding window, ...): rows are padded between the shared prefix and their
            own suffix, which sliding-window and recurrent layers would not ignore.
        allowed_actions: Generate exactly one of these action texts, each a single token,
            e.g. ``("up", "down", "left", "right")`` after the response prefix ``<action>``
            (module docstring). ``None``: no restriction.

    Raises:
        ValueError: A sampling parameter is out of range.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 64,
        stop: Sequence[str] = ("</action>",),
        response_prefix: str = "",
        response_suffix: str = "",
        history: int | None = None,
        include_instructions: bool = True,
        seed: int = 0,
        device: str | torch.device | None = None,
        share_prefix: bool = False,
        allowed_actions: Sequence[str] | None = None,
    ) -> None:
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if history is not None and history < 0:
            raise ValueError(f"history must be None (all turns) or >= 0, got {history}")
        if isinstance(stop, str):
            raise ValueError(f"stop must be a sequence of strings, e.g. ({stop!r},)")
        if isinstance(allowed_actions, str):
            raise ValueError(
                f"allowed_actions must be a sequence of strings, e.g. ({allowed_actions!r},)"
            )
        if device is not None:
            model = model.to(device)
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device) if device is not None else model.device
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.max_new_tokens = int(max_new_tokens)
        self.stop = tuple(s for s in stop if s)
        self.response_prefix = response_prefix
        self.response_suffix = response_suffix
        self.history = history
        self.include_instructions = include_instructions
        self.seed = int(seed)
        self.share_prefix = bool(share_prefix)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.eos_ids = _eos_ids(model, tokenizer)
        # Pads are masked out, so any id works; tokenizers without a pad token use eos.
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else min(self.eos_ids, default=0))
        self.allowed_actions = None if allowed_actions is None else tuple(allowed_actions)
        self.allowed_ids: list[int] | None = None
        self._logit_mask: torch.Tensor | None = None
        if self.allowed_actions is not None:
            self.allowed_ids = action_token_ids(tokenizer, self.allowed_actions)
        self._cache_name = cache_argument(model)

    @classmethod
    def from_pretrained(cls, path: str, *, local_files_only: bool = True, **kwargs: Any) -> HFAgent:
        """Load a model, its tokenizer and, when saved with it, its recipe.

        Args:
            path: A local directory (``save_pretrained`` output, e.g. a turngym checkpoint) or
                a hub name.
            local_files_only: Only read local files and the local hub cache (the default: no
                downloads at run time); pass ``False`` to allow them.
            **kwargs: Keyword arguments of :class:`HFAgent` (``temperature``, ``device``...);
                they override the saved recipe.

        Returns:
            The agent.

        Raises:
            FileNotFoundError: ``path`` is neither a directory nor (with ``local_files_only``)
                a model in the local cache.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if local_files_only and not os.path.isdir(path) and not _in_hub_cache(path):
            raise FileNotFoundError(
                f"No model at {path!r}: give the directory of a saved model or checkpoint "
                "(e.g. runs/train/checkpoint)."
            )
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=local_files_only)
        return cls(model, tokenizer, **{**load_recipe(path), **kwargs})

    def recipe(self) -> dict[str, Any]:
        """The settings of :data:`RECIPE_KEYS` as JSON-able values."""
        values = {key: getattr(self, key) for key in RECIPE_KEYS}
        values["stop"] = list(self.stop)
        if self.allowed_actions is not None:
            values["allowed_actions"] = list(self.allowed_actions)
        return values

    def save_recipe(self, directory: str | os.PathLike[str]) -> None:
        """Write :meth:`recipe` to ``directory/`` :data:`RECIPE_FILE`."""
        path = os.path.join(directory, RECIPE_FILE)
        with open(path, "w") as fh:
            json.dump(self.recipe(), fh, indent=2)

    # --- Prompts ---------------------------------------------------------------------------
    def messages(self, conversation: Conversation) -> list[dict[str, str]]:
        """Chat messages of the prompt after the history window and instructions options."""
        return prompt_messages(conversation, self.history, self.include_instructions)

    def reseed(self, seed: int) -> None:
        """Restart the sampling stream from ``seed``.

        Trainers reseed per iteration, so a resumed run samples exactly what an uninterrupted
        one would have.
        """
        self.seed = int(seed)
        self.generator.manual_seed(self.seed)

    def prompt_text(self, conversation: Conversation) -> str:
        """The prompt as text, ending with :attr:`response_prefix`."""
        messages = self.messages(conversation)
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        else:
            lines = [f"{_PLAIN_ROLES[m['role']]}: {m['content']}" for m in messages]
            text = "\n".join([*lines, "Assistant: "])
        return text + self.response_prefix

    def prompt_ids(self, conversation: Conversation) -> list[int]:
        """Token ids of :meth:`prompt_text` (response prefix included).

        A chat template writes its own special tokens (e.g. ``<bos>``); the plain template
        gets the tokenizer's usual ones.
        """
        return self._encode([self.prompt_text(conversation)])[0]

    def _encode(self, texts: list[str]) -> list[list[int]]:
        # One call for the whole batch: the Rust tokenizer encodes the texts in parallel.
        add_special = not self.tokenizer.chat_template
        encoded = self.tokenizer(texts, add_special_tokens=add_special)["input_ids"]
        return [[int(i) for i in ids] for ids in encoded]

    # --- Generation ------------------------------------------------------------------------
    def act_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        """Generate one action per conversation with a single batched generation."""
        if not conversations:
            return []
        prompts = self._encode([self.prompt_text(c) for c in conversations])
        out = []
        for prompt, row in zip(prompts, self._generate(prompts), strict=True):
            text = row.text if row.text is not None else self._decode(row.ids)
            trace = TokenTrace(tuple(prompt), tuple(row.ids), tuple(row.logprobs))
            out.append(ActionResult(self.response_prefix + text + self.response_suffix, trace))
        return out

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(
            ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )

    def _left_pad(
        self, prompts: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Left-padded ids, attention mask and position ids (pads at position 0)."""
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            if prompt:
                ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
                mask[row, width - len(prompt) :] = 1
        # Positions count real tokens only, so a padded prompt sees the positions it would
        # see alone (what model.generate derives from the attention mask too).
        positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
        return ids.to(self.device), mask.to(self.device), positions.to(self.device)

    def _forward(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, past: Any
    ) -> Any:
        return self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,  # only the last position's logits are needed
            **{self._cache_name: past},
        )

    def _shared_length(self, prompts: Sequence[Sequence[int]]) -> int:
        """Tokens of the common prefix worth encoding once (0: encode every row whole)."""
        if not self.share_prefix or len(prompts) < 2:
            return 0
        shared = len(os.path.commonprefix([list(p) for p in prompts]))
        shared = min(shared, min(len(p) for p in prompts) - 1)  # every row keeps a suffix
        return shared if shared >= _MIN_SHARED_TOKENS else 0

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        # Our own cache object, filled in place by the forward: the output's copy of it would
        # have to be read under a name that differs between transformers releases.
        return DynamicCache(config=self.model.config)

    def _prefill(
        self, prompts: Sequence[Sequence[int]]
    ) -> tuple[Any, torch.Tensor, torch.Tensor, Any]:
        """Run the prompts; return the output, attention mask, position ids and the cache."""
        shared = self._shared_length(prompts)
        cache = self._new_cache()
        if not shared:
            ids, mask, positions = self._left_pad(prompts)
            return self._forward(ids, mask, positions, cache), mask, positions, cache
        prefix = torch.tensor([list(prompts[0][:shared])], dtype=torch.long, device=self.device)
        prefix_positions = torch.arange(shared, device=self.device)[None, :]
        self._forward(prefix, torch.ones_like(prefix), prefix_positions, cache)
        cache.batch_repeat_interleave(len(prompts))
        # Rows are [shared prefix | pads | own suffix]; the mask hides the pads and the
        # positions continue from the prefix, so every row computes what it would alone.
        ids, suffix_mask, suffix_positions = self._left_pad([p[shared:] for p in prompts])
        mask = torch.cat([suffix_mask.new_ones((len(prompts), shared)), suffix_mask], dim=1)
        positions = suffix_positions + shared
        return self._forward(ids, mask, positions, cache), mask, positions, cache

    @torch.inference_mode()
    def _generate(self, prompts: Sequence[Sequence[int]]) -> list[_Row]:
        """The sampling loop: one forward over the prompts, then one per generated token."""
        if not all(prompts):
            raise ValueError("every prompt needs at least one token; got an empty prompt")
        # Eval mode for generation only: a trainer that shares the model keeps its own mode.
        was_training = self.model.training
        self.model.eval()
        try:
            return self._sample_loop(prompts)
        finally:
            self.model.train(was_training)

    def _sample_loop(self, prompts: Sequence[Sequence[int]]) -> list[_Row]:
        out, mask, positions, cache = self._prefill(prompts)
        rows = [_Row() for _ in prompts]
        # A restricted completion is one action token (module docstring).
        budget = 1 if self.allowed_ids is not None else self.max_new_tokens
        for step in range(1, budget + 1):
            tokens, logprobs = self._sample(out.logits[:, -1, :])
            live = self._record(rows, tokens.tolist(), logprobs.tolist())
            if not live or step == budget:
                break
            # Finished rows keep being fed (their tokens are ignored) so the cache stays
            # rectangular; the loop ends as soon as every row is done.
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            positions = positions[:, -1:] + 1
            out = self._forward(tokens[:, None], mask, positions, cache)
        return rows

    def _restrict(self, logits: torch.Tensor) -> torch.Tensor:
        """Mask logits outside the allowed tokens (``allowed_actions``) with -inf."""
        if self.allowed_ids is None:
            return logits
        if self._logit_mask is None or self._logit_mask.shape[-1] != logits.shape[-1]:
            mask = torch.ones(logits.shape[-1], dtype=torch.bool, device=logits.device)
            mask[torch.tensor(self.allowed_ids, device=logits.device)] = False
            self._logit_mask = mask
        return logits.masked_fill(self._logit_mask, float("-inf"))

    def _sample(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pick the next token of every row; return it with its logprob (module docstring)."""
        logits = self._restrict(logits.float())
        if self.temperature == 0.0:
            logprobs = torch.log_softmax(logits, dim=-1)
            tokens = logits.argmax(dim=-1)
        else:
            logprobs = torch.log_softmax(logits / self.temperature, dim=-1)
            probs = _nucleus_probs(logprobs, self.top_p) if self.top_p < 1.0 else logprobs.exp()
            tokens = torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)
        return tokens, logprobs.gather(-1, tokens[:, None]).squeeze(-1)

    def _record(self, rows: list[_Row], tokens: list[int], logprobs: list[float]) -> bool:
        """Append each live row's token, mark rows that stop; return whether any is live."""
        live = False
        for row, token, logprob in zip(rows, tokens, logprobs, strict=True):
            if row.done:
                continue
            row.ids.append(int(token))
            row.logprobs.append(float(logprob))
            if token in self.eos_ids:
                row.done = True
            elif self.stop:
                text = self._decode(row.ids)
                cut = min((text.find(s) + len(s) for s in self.stop if s in text), default=None)
                if cut is not None:
                    row.text, row.done = text[:cut], True
            live = live or not row.done
        return live


def _in_hub_cache(name: str) -> bool:
    """Whether a hub model name is already in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return False
    try:
        found = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid hub name (e.g. a filesystem path): not in the cache
        return False
    return isinstance(found, str)
