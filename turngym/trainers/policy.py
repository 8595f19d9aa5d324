"""Policy-side tensor code: token log-probabilities, the belief probe and shared-prefix forward.

* :func:`token_logprobs` scores every token of a padded batch under a causal LM.
* :class:`BeliefProbe` is the ``probe`` of the credit context
  (docs/design.md#credit-assignment-and-training): the policy's log-probability of a text
  (e.g. a gold answer) as the next assistant message after a conversation prefix.
* :func:`shared_prefix_token_logprobs` encodes a prompt shared by G sequences once and runs the
  G continuations on top of its key/value cache, as in Prefix Grouper (arXiv 2506.05433). The
  autograd graph runs through the cached prefix, so losses and gradients equal those of G
  separate full forwards while the prefix is computed once.
* :func:`group_by_prefix` and :func:`sequence_token_logprobs` connect this to the
  :class:`~turngym.trainers.tokens.TrainingSequence` batches a trainer builds.

Restricted decoding (an agent's ``allowed_actions``): every scoring function takes
``allowed_ids``, the token ids the sampler could draw; a token that is one of them is scored
under the softmax over those ids alone (the distribution it was sampled from), any other
token under the full softmax. Action tokens are therefore scored as sampled, and prompt and
observation tokens, which no loss reads, keep ordinary scores.

All log-softmax work is done in float32, one slice of the sequence at a time, so a bf16 model
never materialises a float32 copy of the whole ``(batch, length, vocab)`` logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import DynamicCache

from turngym.agents.hf import cache_argument
from turngym.trainers.tokens import TrainingSequence, collate
from turngym.types import Conversation

__all__ = [
    "BeliefProbe",
    "group_by_prefix",
    "plain_render",
    "sequence_token_logprobs",
    "shared_prefix_token_logprobs",
    "token_logprobs",
]

# Upper bound on float32 logits elements handled at once (256 MiB); bounds peak memory of the
# log-softmax for long sequences and large vocabularies.
_CHUNK_ELEMENTS = 1 << 26


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _id_tensor(ids: Sequence[int] | None) -> torch.Tensor | None:
    return None if ids is None else torch.as_tensor(list(ids), dtype=torch.long)


def _logprobs_from_logits(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    with_entropy: bool,
    allowed_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probability of ``targets`` (and entropy) under ``logits``, position by position.

    Args:
        logits: ``(B, T, V)`` logits; row ``j`` predicts ``targets[:, j]``.
        targets: ``(B, T)`` token ids.
        with_entropy: Also return the entropy of each predictive distribution.
        allowed_ids: Token ids of a restricted decoding (module docstring): positions whose
            target is one of them are scored (and their entropy taken) over these ids only.

    Returns:
        ``(logprobs, entropy)``, both ``(B, T)`` float32 (entropy None unless asked).
    """
    batch, length, vocab = logits.shape
    step = max(1, _CHUNK_ELEMENTS // max(1, batch * vocab))
    logprobs, entropies = [], []
    allowed = None
    if allowed_ids is not None:
        allowed = torch.zeros(vocab, dtype=torch.bool, device=logits.device)
        allowed[allowed_ids.to(logits.device)] = True
    for start in range(0, length, step):
        # Upcast one slice at a time: log-softmax in bf16 loses ~2 digits on large vocabularies.
        chunk = logits[:, start : start + step].float()
        chunk_targets = targets[:, start : start + step]
        if allowed is not None:
            # Restricted positions see -inf outside the allowed ids: the softmax they were
            # sampled from. Other positions keep the full distribution.
            restricted = allowed[chunk_targets]
            chunk = chunk.masked_fill(restricted[..., None] & ~allowed, float("-inf"))
        lse = torch.logsumexp(chunk, dim=-1)
        picked = chunk.gather(-1, chunk_targets[..., None]).squeeze(-1)
        logprobs.append(picked - lse)
        if with_entropy:
            probs = torch.exp(chunk - lse[..., None])
            # Masked entries have probability 0; zeroing their -inf logits (not 0 * -inf = NaN)
            # keeps the value and its gradient finite.
            finite = chunk.masked_fill(torch.isinf(chunk), 0.0)
            entropies.append(lse - (probs * finite).sum(-1))
    if length == 0:
        empty = logits.new_zeros((batch, 0), dtype=torch.float32)
        return empty, (empty if with_entropy else None)
    return torch.cat(logprobs, 1), (torch.cat(entropies, 1) if with_entropy else None)


def token_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    with_entropy: bool = False,
    allowed_ids: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probability of every token given the tokens before it.

    Position ids are derived from ``attention_mask`` so left- and right-padded batches give the
    same numbers as unpadded sequences.

    Args:
        model: A Hugging Face causal LM (``model(input_ids=..., ...).logits``).
        input_ids: ``(B, T)`` token ids, padded on either side.
        attention_mask: ``(B, T)``, 1 on real tokens, 0 on padding.
        with_entropy: Also return the entropy of the predictive distribution at each position.
        allowed_ids: Token ids of a restricted decoding (module docstring), or ``None``.

    Returns:
        ``(logprobs, entropy)``: float32 ``(B, T)``; position ``j`` holds
        ``log p(input_ids[j] | input_ids[<j])`` and the entropy of that distribution. Position 0,
        the first real token of a row and padding hold 0. ``entropy`` is None unless asked.
        Gradients flow unless called under ``torch.no_grad``.
    """
    mask = attention_mask.to(torch.long)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(
        input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False
    ).logits
    logprobs, entropy = _logprobs_from_logits(
        logits[:, :-1], input_ids[:, 1:], with_entropy=with_entropy,
        allowed_ids=_id_tensor(allowed_ids),
    )  # fmt: skip
    # A token is scored only if it and its predecessor are real (the first real token of a
    # left-padded row has no context inside the row).
    valid = (mask[:, 1:] * mask[:, :-1]).bool()
    zero = logprobs.new_zeros((logprobs.shape[0], 1))
    logprobs = torch.cat([zero, logprobs.masked_fill(~valid, 0.0)], 1)
    if entropy is not None:
        entropy = torch.cat([zero, entropy.masked_fill(~valid, 0.0)], 1)
    return logprobs, entropy


def shared_prefix_token_logprobs(
    model: torch.nn.Module,
    prefix_ids: Sequence[int],
    continuations: Sequence[Sequence[int]],
    *,
    with_entropy: bool = False,
    allowed_ids: Sequence[int] | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Score G continuations of one prefix, encoding the prefix once.

    The prefix runs once with a :class:`~transformers.DynamicCache`; its key/value tensors are
    repeated G times along the batch and the right-padded continuations run as one batch on top,
    with position ids continuing after the prefix. The cache keeps the prefix's autograd graph,
    so a loss on the result back-propagates into the prefix computation and gradients match G
    separate forwards of ``prefix + continuation``.

    Args:
        model: A Hugging Face causal LM that takes a key/value cache (``cache`` or
            ``past_key_values``), ``position_ids`` and ``logits_to_keep`` (transformers >= 4.50).
        prefix_ids: The shared prompt (at least one token).
        continuations: G token-id sequences (may be ragged or empty).
        with_entropy: Also return the entropy of each predictive distribution.
        allowed_ids: Token ids of a restricted decoding (module docstring), or ``None``.

    Returns:
        One ``(logprobs, entropy)`` per continuation, float32 of shape ``(len(continuation),)``;
        element ``k`` is ``log p(cont[k] | prefix, cont[<k])`` (element 0 is conditioned on the
        prefix alone). ``entropy`` is None unless asked.

    Raises:
        ValueError: ``prefix_ids`` is empty.
        RuntimeError: The model does not fill the cache (gradient checkpointing in train mode).
    """
    if len(prefix_ids) == 0:
        raise ValueError(
            "shared_prefix_token_logprobs needs a non-empty prefix; use token_logprobs"
        )
    if not continuations:
        return []
    device = _device(model)
    group, n_prefix = len(continuations), len(prefix_ids)
    lengths = [len(c) for c in continuations]
    width = max(lengths)
    prefix = torch.tensor([list(prefix_ids)], dtype=torch.long, device=device)
    # Our own cache object, filled in place (never read back from the output, whose name for
    # it differs between transformers releases).
    cache = DynamicCache(config=model.config)
    cache_kwarg = {cache_argument(model): cache}
    # Only the last prefix position predicts a continuation token: skip the other LM-head rows.
    out = model(input_ids=prefix, use_cache=True, logits_to_keep=1, **cache_kwarg)
    if cache.get_seq_length() != n_prefix:
        # transformers silently drops the cache under gradient checkpointing in train mode; the
        # continuations would then run without their prompt.
        raise RuntimeError(
            "The model did not fill the key/value cache (activation/gradient checkpointing in "
            "train mode disables caching); disable checkpointing or use token_logprobs."
        )
    first_logits = out.logits[:, -1:].expand(group, 1, -1)
    ids = torch.zeros((group, width), dtype=torch.long)  # filled on the CPU, then moved
    for row, cont in enumerate(continuations):
        ids[row, : len(cont)] = torch.as_tensor(list(cont), dtype=torch.long)
    ids = ids.to(device)
    logits = first_logits
    if width > 1:
        # The last token of a continuation conditions nothing, so only width - 1 tokens run.
        body = width - 1
        cache.batch_repeat_interleave(group)
        attention = torch.zeros((group, n_prefix + body), dtype=torch.long)
        attention[:, :n_prefix] = 1
        for row, length in enumerate(lengths):
            attention[row, n_prefix : n_prefix + length] = 1
        attention = attention.to(device)
        positions = torch.arange(n_prefix, n_prefix + body, device=device).expand(group, body)
        body_logits = model(
            input_ids=ids[:, :body],
            attention_mask=attention,
            position_ids=positions,
            use_cache=True,
            **cache_kwarg,
        ).logits
        logits = torch.cat([first_logits, body_logits], 1)
    logprobs, entropy = _logprobs_from_logits(
        logits, ids, with_entropy=with_entropy, allowed_ids=_id_tensor(allowed_ids)
    )
    return [
        (logprobs[row, :length], None if entropy is None else entropy[row, :length])
        for row, length in enumerate(lengths)
    ]


def group_by_prefix(sequences: Sequence[TrainingSequence]) -> list[tuple[int, list[int]]]:
    """Group sequences whose prompts (``input_ids[:prompt_length]``) are identical.

    Args:
        sequences: Training sequences, e.g. from :func:`~turngym.trainers.tokens.build_sequences`.

    Returns:
        ``(prefix_len, indices)`` per distinct prompt, in order of first appearance; singletons
        included, so every sequence index appears exactly once.
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, seq in enumerate(sequences):
        groups.setdefault(seq.input_ids[: seq.prompt_length], []).append(index)
    return [(len(prefix), indices) for prefix, indices in groups.items()]


def sequence_token_logprobs(
    model: torch.nn.Module,
    sequences: Sequence[TrainingSequence],
    *,
    with_entropy: bool = False,
    share_prefix: bool = True,
    min_group_size: int = 2,
    min_saved_tokens: int = 512,
    allowed_ids: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Token log-probabilities of training sequences, laid out like :func:`collate`.

    Groups of at least ``min_group_size`` sequences with the same prompt go through
    :func:`shared_prefix_token_logprobs` when sharing saves at least ``min_saved_tokens``
    prompt tokens; the rest run as one padded batch. (Each shared group is a forward call of
    its own: for many short prompts the calls cost more than the tokens they save.)

    Args:
        model: A Hugging Face causal LM.
        sequences: The sequences of one (micro-)batch.
        with_entropy: Also return entropies.
        share_prefix: Use the shared-prefix forward for groups; False runs everything padded.
        min_group_size: Smallest group that uses the shared-prefix forward.
        min_saved_tokens: Smallest ``prefix length x (group size - 1)`` worth its own call.
        allowed_ids: Token ids of a restricted decoding (module docstring), or ``None``.

    Returns:
        ``(logprobs, entropy)`` of shape ``(B, T)`` aligned with
        ``collate(sequences, ...)["input_ids"]``. Positions before ``prompt_length`` and padding
        hold 0 (they are masked in every loss); entropy is None unless asked.
    """
    width = max(len(s) for s in sequences)
    rows: list[tuple[torch.Tensor, torch.Tensor | None] | None] = [None] * len(sequences)
    loose: list[int] = []
    for n_prefix, indices in group_by_prefix(sequences):
        saved = n_prefix * (len(indices) - 1)
        if not share_prefix or len(indices) < min_group_size or saved < max(min_saved_tokens, 1):
            loose += indices
            continue
        prefix = sequences[indices[0]].input_ids[:n_prefix]
        conts = [sequences[i].input_ids[n_prefix:] for i in indices]
        scored = shared_prefix_token_logprobs(
            model, prefix, conts, with_entropy=with_entropy, allowed_ids=allowed_ids
        )
        for i, row in zip(indices, scored, strict=True):
            rows[i] = row
    if loose:
        _score_padded(model, sequences, loose, rows, with_entropy, allowed_ids)
    return _stack_rows(sequences, rows, width, with_entropy)


def _score_padded(
    model: torch.nn.Module,
    sequences: Sequence[TrainingSequence],
    indices: list[int],
    rows: list[Any],
    with_entropy: bool,
    allowed_ids: Sequence[int] | None = None,
) -> None:
    """Fill ``rows[i]`` for ``indices`` with post-prompt scores from one padded forward."""
    batch = collate([sequences[i] for i in indices], pad_id=0, device=_device(model))
    lp, ent = token_logprobs(
        model, batch["input_ids"], batch["attention_mask"], with_entropy=with_entropy,
        allowed_ids=allowed_ids,
    )  # fmt: skip
    for row, i in enumerate(indices):
        span = slice(sequences[i].prompt_length, len(sequences[i]))
        rows[i] = (lp[row, span], None if ent is None else ent[row, span])


def _stack_rows(
    sequences: Sequence[TrainingSequence], rows: list[Any], width: int, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Place each row's post-prompt scores at its prompt offset in a zero ``(B, width)`` tensor."""

    def place(values: torch.Tensor, seq: TrainingSequence) -> torch.Tensor:
        return torch.nn.functional.pad(values, (seq.prompt_length, width - len(seq)))

    logprobs = torch.stack([place(r[0], s) for r, s in zip(rows, sequences, strict=True)])
    if not with_entropy:
        return logprobs, None
    return logprobs, torch.stack([place(r[1], s) for r, s in zip(rows, sequences, strict=True)])


def plain_render(tokenizer: Any, conversation: Conversation) -> list[int]:
    """Render a conversation with a plain ``System:/User:/Assistant:`` template.

    The fallback for tokenizers without a chat template; it writes the same text as
    :class:`turngym.agents.hf.HFAgent`'s plain template (one ``Role: content`` line per message,
    then ``"Assistant: "``), so the probed text follows directly.

    Args:
        tokenizer: A Hugging Face tokenizer (its special tokens, e.g. BOS, are added).
        conversation: The conversation prefix.

    Returns:
        Prompt token ids.
    """
    roles = {"system": "System", "user": "User", "assistant": "Assistant"}
    lines = [f"{roles[m['role']]}: {m['content']}" for m in conversation.messages()]
    text = "\n".join([*lines, "Assistant: "])
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


class BeliefProbe:
    """Log-probability of a text as the next assistant message after a conversation.

    This is the ``probe`` of the credit context (IGPO, A^2TGPO, SIOP, PBSD, ...): teacher-forced
    scoring of, e.g., the gold answer after each turn. Only the text's tokens are scored;
    ``answer_prefix`` tokens (IGPO's "Now there's enough information to answer ...") are
    conditioned on but not scored. The text is tokenized on its own, without special tokens.

    Args:
        model: A Hugging Face causal LM; it is put in eval mode during a call and restored.
        tokenizer: Its tokenizer.
        render: Maps a Conversation to prompt token ids ending where the assistant message
            starts. Default: the tokenizer's chat template with the generation prompt when it
            has one, else :func:`plain_render`. Pass the policy agent's own renderer (e.g.
            ``render=agent.prompt_ids`` of :class:`~turngym.agents.hf.HFAgent`, which applies
            its history window and response prefix) so the probe sees what the policy saw.
        batch_size: Rows per forward.
        answer_prefix: Text placed between the prompt and the scored text.

    Example:
        ``probe.logprob([conv_after_turn_1, conv_after_turn_2], ["Paris"] * 2, reduce="mean")``
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        render: Callable[[Conversation], Sequence[int]] | None = None,
        batch_size: int = 32,
        answer_prefix: str = "",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.render = render if render is not None else self._default_render
        self.batch_size = batch_size
        self.answer_prefix = answer_prefix

    def _default_render(self, conversation: Conversation) -> list[int]:
        if self.tokenizer.chat_template:
            ids = self.tokenizer.apply_chat_template(
                conversation.messages(),
                add_generation_prompt=True,
                tokenize=True,
                return_dict=False,
            )
            return list(ids)
        return plain_render(self.tokenizer, conversation)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def logprob(
        self, prefixes: Sequence[Conversation], texts: Sequence[str], *, reduce: str = "sum"
    ) -> np.ndarray:
        """Score ``texts[i]`` as the next assistant message after ``prefixes[i]``.

        Args:
            prefixes: Conversation prefixes.
            texts: One text per prefix.
            reduce: ``"sum"`` (log-probability of the text) or ``"mean"`` (mean token
                log-probability, IGPO's ``lp_t``).

        Returns:
            float64 array of shape ``(len(texts),)``.

        Raises:
            ValueError: Lengths differ, unknown ``reduce``, or a text with no tokens.
        """
        if len(prefixes) != len(texts):
            raise ValueError(f"{len(prefixes)} prefixes but {len(texts)} texts.")
        if reduce not in ("sum", "mean"):
            raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}.")
        lead = self._encode(self.answer_prefix)
        rows = []
        for conversation, text in zip(prefixes, texts, strict=True):
            scored = self._encode(text)
            if not scored:
                raise ValueError(f"Probe text {text!r} has no tokens; nothing to score.")
            prompt = list(self.render(conversation)) + lead
            if not prompt:
                raise ValueError(
                    "The rendered prompt is empty: the first text token has no context"
                )
            rows.append((prompt, scored))
        result = np.zeros(len(rows), dtype=np.float64)
        # Similar lengths share a batch so little compute goes to padding.
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(order), self.batch_size):
                    chunk = order[start : start + self.batch_size]
                    sums = self._score_batch([rows[i] for i in chunk])
                    for i, total in zip(chunk, sums, strict=True):
                        n = len(rows[i][1])
                        result[i] = total / n if reduce == "mean" else total
        finally:
            self.model.train(was_training)
        return result

    def _score_batch(self, rows: list[tuple[list[int], list[int]]]) -> list[float]:
        """Summed log-probability of each row's scored tokens, padded as the tokenizer pads."""
        device = _device(self.model)
        left = self.tokenizer.padding_side == "left"
        pad = self.tokenizer.pad_token_id
        pad = 0 if pad is None else pad
        width = max(len(p) + len(s) for p, s in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)  # filled on the CPU
        mask = torch.zeros_like(ids)
        spans = []
        for row, (prompt, scored) in enumerate(rows):
            full = prompt + scored
            offset = width - len(full) if left else 0
            ids[row, offset : offset + len(full)] = torch.as_tensor(full)
            mask[row, offset : offset + len(full)] = 1
            spans.append(slice(offset + len(prompt), offset + len(full)))
        logprobs, _ = token_logprobs(self.model, ids.to(device), mask.to(device))
        return [float(logprobs[row, span].double().sum()) for row, span in enumerate(spans)]
