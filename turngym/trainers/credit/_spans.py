r"""Text units inside one action, and the tokens that carry them.

Some methods credit parts of an action rather than the whole turn: Rank-GRPO the items of a
ranked list, SCRL the answers to sub-problems, F-GRPO the candidate and ranking phases. The
env says how many units a turn has and what each earned (``info["rank_hits"]``, ...); this
module finds which completion tokens belong to which unit, by decoding the turn's
:class:`~turngym.types.TokenTrace` with the tokenizer the trainer puts in
:attr:`CreditContext.tokenizer <turngym.trainers.credit.types.CreditContext>`.

Character offsets come from decoding growing prefixes of the completion (exact for any
tokenizer whose ``decode`` is prefix-stable, which BPE, SentencePiece and the tiny word-level
tokenizer are), so a token that straddles a separator is given to the unit the separator
closes, as Rank-GRPO's ``_segment_items_from_tokens`` does with newline tokens.

Example:
    >>> class Chars:  # a toy tokenizer: one token per character
    ...     def decode(self, ids, **_):
    ...         return "".join(map(chr, ids))
    >>> ids = [ord(c) for c in "1. Ann;\n2. Bo\n"]
    >>> item_of_tokens(Chars(), ids).tolist()
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    >>> phase_of_tokens(Chars(), [ord(c) for c in "a b|r: c"], "r:").tolist()
    [0, 0, 0, 0, 1, 1, 1, 1]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["SEPARATOR", "decode_offsets", "item_of_tokens", "phase_of_tokens"]

SEPARATOR = re.compile(r"[;\n]")
"""What separates the units of a list answer (SeqRec's grammar: ``;`` or a new line)."""
_TAG = re.compile(r"<[^>]*>")
_ENUMERATION = re.compile(r"^\s*(?:\d+\s*[.):]|[-*•])\s*")
_WORD = re.compile(r"[^\W_]", re.UNICODE)


def decode_offsets(tokenizer: Any, ids: Sequence[int]) -> tuple[str, np.ndarray]:
    """The decoded text of ``ids`` and the end offset (in characters) of every token.

    Args:
        tokenizer: Anything with ``decode(ids, **kwargs) -> str``.
        ids: Completion token ids.

    Returns:
        ``(text, ends)``: ``ends[j]`` is ``len(decode(ids[: j + 1]))``, never decreasing.
    """
    ends = np.zeros(len(ids), np.int64)
    text = ""
    for j in range(len(ids)):
        text = tokenizer.decode(
            list(ids[: j + 1]), skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        ends[j] = len(text)
    np.maximum.accumulate(ends, out=ends)
    return text, ends


def _is_unit(piece: str) -> bool:
    """Whether a separated piece is a unit: some letter or digit beyond tags and numbering."""
    return bool(_WORD.search(_ENUMERATION.sub("", _TAG.sub("", piece), count=1)))


def item_of_tokens(tokenizer: Any, ids: Sequence[int]) -> np.ndarray:
    """Index of the list unit each completion token belongs to (0-based).

    Units are the pieces between separators (:data:`SEPARATOR`) that hold a letter or digit
    once tags and an enumeration (``1.``, ``2)``, ``-``) are removed; a separator belongs to
    the unit it closes; an empty piece is folded into the unit before it.

    Args:
        tokenizer: Decodes ids (see :func:`decode_offsets`).
        ids: Completion token ids.

    Returns:
        One unit index per token (``int64``).
    """
    text, ends = decode_offsets(tokenizer, ids)
    starts = np.concatenate(([0], ends[:-1])) if len(ids) else ends
    cuts = [m.start() for m in SEPARATOR.finditer(text)]
    bounds = [0, *[c + 1 for c in cuts], len(text) + 1]
    unit_of_piece, count = [], 0
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        real = _is_unit(text[lo:hi])
        unit_of_piece.append(count if real else max(count - 1, 0))
        count += real
    # A token starting at or before a separator belongs to the piece that separator closes.
    piece = np.searchsorted(np.asarray(cuts, np.int64), starts, side="left")
    return np.asarray(unit_of_piece, np.int64)[np.minimum(piece, len(unit_of_piece) - 1)]


def phase_of_tokens(tokenizer: Any, ids: Sequence[int], marker: str) -> np.ndarray:
    """0 for tokens before the first ``marker`` in the decoded text, 1 from it on.

    The token in which the marker starts is the first of phase 1; without the marker every
    token is phase 0.

    Args:
        tokenizer: Decodes ids (see :func:`decode_offsets`).
        ids: Completion token ids.
        marker: The text that opens the second phase (matched case-insensitively).

    Returns:
        One phase (0 or 1) per token (``int64``).
    """
    text, ends = decode_offsets(tokenizer, ids)
    at = text.lower().find(marker.lower())
    if at < 0:
        return np.zeros(len(ids), np.int64)
    return (ends > at).astype(np.int64)
