"""Text actions: the action space of a text env and the action-tag grammar.

An action is any string (:class:`TextSpace`); the command inside it is the content of its last
well-formed ``<action>...</action>`` tag (:func:`parse_action`), after ``<think>`` blocks are
dropped, so an agent may reason in free text around its answer. :mod:`turngym.core` re-exports
both; envs that parse in their hot path use :func:`parse_fields`, the same parse without the
:class:`ParsedAction` record.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium

__all__ = ["TextSpace", "ParsedAction", "parse_action", "parse_fields"]


class TextSpace(gymnasium.spaces.Space[str]):
    """Any string of at most ``max_chars`` characters.

    ``sample()`` draws one of ``examples`` (valid-looking actions), so random agents and
    Gymnasium's checker exercise real moves rather than noise.

    Example:
        >>> space = TextSpace(max_chars=10, examples=("<action>up</action>",))
        >>> space.contains("hello"), space.contains("x" * 11)
        (True, False)
    """

    def __init__(
        self, max_chars: int = 32_768, examples: Sequence[str] = (), seed: int | None = None
    ) -> None:
        """Create the space.

        Args:
            max_chars: Longest accepted string.
            examples: Strings that ``sample()`` chooses from (``""`` if empty).
            seed: Seed for ``sample()``.
        """
        super().__init__(shape=None, dtype=None, seed=seed)
        self.max_chars = int(max_chars)
        self.examples = tuple(examples)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """Return one of the examples, uniformly at random."""
        if not self.examples:
            return ""
        return self.examples[int(self.np_random.integers(len(self.examples)))]

    def contains(self, x: Any) -> bool:
        """Whether ``x`` is a string of at most ``max_chars`` characters."""
        return isinstance(x, str) and len(x) <= self.max_chars

    @property
    def is_np_flattenable(self) -> bool:
        """Text cannot be flattened into a fixed-size array."""
        return False

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TextSpace)
            and other.max_chars == self.max_chars
            and other.examples == self.examples
        )

    def __hash__(self) -> int:
        return hash((self.max_chars, self.examples))

    def __repr__(self) -> str:
        return f"TextSpace(max_chars={self.max_chars}, examples={len(self.examples)})"


# --- Action tags ------------------------------------------------------------------------------
_THINK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class ParsedAction:
    """Result of :func:`parse_action`: the tag content, or why there is none."""

    content: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether a well-formed tag was found."""
        return self.content is not None


@functools.lru_cache(maxsize=64)
def _tag_pattern(tag: str) -> re.Pattern[str]:
    # The content may not contain another opening tag, so for nested or repeated tags the
    # innermost well-formed pair wins; we then keep the LAST such pair.
    t = re.escape(tag)
    return re.compile(rf"<{t}>((?:(?!<{t}>).)*?)</{t}>", re.IGNORECASE | re.DOTALL)


def parse_action(text: str, tag: str = "action", *, max_chars: int = 32_768) -> ParsedAction:
    """Extract the content of the last well-formed ``<tag>...</tag>`` in ``text``.

    ``<think>...</think>`` blocks are removed first, so reasoning may mention tags freely.
    Never raises on any string.

    Example:
        >>> parse_action("<think>left? <action>no</action></think><action> up </action>").content
        'up'
        >>> parse_action("up").error
        'no <action>...</action> tag found'
    """
    return ParsedAction(*parse_fields(text, tag, max_chars))


def parse_fields(text: str, tag: str, max_chars: int) -> tuple[str | None, str | None]:
    """:func:`parse_action` as a plain ``(content, error)`` pair (the env step's hot path)."""
    if not isinstance(text, str):
        return None, f"action must be a string, got {type(text).__name__}"
    if len(text) > max_chars:
        return None, f"action is {len(text)} characters long (limit {max_chars})"
    open_tag, close_tag = _tags(tag)
    if text.startswith(open_tag) and text.endswith(close_tag) and text.count("<") == 2:
        content = text[len(open_tag) : -len(close_tag)].strip()  # the common case, no regex
        return (content, None) if content else (None, f"the <{tag}> tag is empty")
    stripped = _THINK.sub(" ", text) if "think>" in text.lower() else text
    matches = _tag_pattern(tag).findall(stripped)
    if not matches:
        return None, f"no <{tag}>...</{tag}> tag found"
    content = matches[-1].strip()
    if not content:
        return None, f"the <{tag}> tag is empty"
    return content, None


@functools.lru_cache(maxsize=64)
def _tags(tag: str) -> tuple[str, str]:
    return f"<{tag}>", f"</{tag}>"
