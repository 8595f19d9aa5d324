"""Run-time type checks of config dataclass fields against their annotations.

Configs arrive from YAML, JSON and the command line, where ``iterations: two`` or
``learning_rate: 1e-3`` (which YAML 1.1 reads as the *string* ``"1e-3"``) are easy to write.
:func:`check_field_types` compares every field with its annotation before any other
validation, so such a value fails at once with one line naming the field, the expected type
and what was given, instead of a ``TypeError`` from deep inside the run.

Supported annotations: ``int``, ``float`` (ints accepted), ``str``, ``bool``, ``None``,
unions (``X | None``), ``Literal[...]``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``,
``dict[K, V]``, ``Mapping[K, V]``, ``Sequence[X]`` and ``Any``. Anything else is not checked.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import re
import types
import typing
from typing import Any, Literal, Union

__all__ = ["ConfigTypeError", "check_field_types", "describe_type"]


class ConfigTypeError(TypeError, ValueError):
    """A config field holds a value of the wrong type (a usage error: exit code 2 in the CLI)."""


def check_field_types(config: Any) -> None:
    """Check every field of a dataclass instance against its annotation.

    Raises:
        ConfigTypeError: The first field whose value does not match, in one line.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Job:
        ...     iterations: int = 1
        >>> check_field_types(Job(iterations="two"))
        Traceback (most recent call last):
        ...
        turngym._fieldtypes.ConfigTypeError: iterations must be an integer, got 'two' (str)
    """
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        hint = hints.get(field.name, Any)
        if not _matches(value, hint):
            raise ConfigTypeError(
                f"{field.name} must be {describe_type(hint)}, got {_shown(value)}{_hint(value)}"
            )


def _matches(value: Any, hint: Any) -> bool:
    if hint is Any or hint is object:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union or origin is types.UnionType:
        return any(_matches(value, arg) for arg in args)
    if origin is Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is None:
        return isinstance(value, hint) if isinstance(hint, type) else True
    return _matches_generic(value, origin, args)


def _matches_generic(value: Any, origin: Any, args: tuple[Any, ...]) -> bool:
    if origin is tuple:  # JSON and YAML have no tuples: their lists stand for them
        if not isinstance(value, tuple | list):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(map(_matches, value, args))
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, collections.abc.Mapping):
            return False
        key, item = args or (Any, Any)
        return all(_matches(k, key) and _matches(v, item) for k, v in value.items())
    if origin in (list, collections.abc.Sequence):
        if not isinstance(value, list | tuple if origin is collections.abc.Sequence else list):
            return False
        return all(_matches(v, args[0]) for v in value) if args else True
    return isinstance(value, origin) if isinstance(origin, type) else True


_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
          type(None): "null"}  # fmt: skip


def describe_type(hint: Any) -> str:
    """A reader's name for an annotation: ``an integer or null``, ``a list of strings``.

    Example:
        >>> describe_type(int | None), describe_type(tuple[str, ...])
        ('an integer or null', 'a list of strings')
    """
    if hint is None:
        return "null"
    if hint in _NAMES:
        return _NAMES[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union or origin is types.UnionType:
        return " or ".join(describe_type(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (tuple, list, collections.abc.Sequence) and args:
        item = describe_type(args[0])
        plural = {"an integer": "integers", "a number": "numbers", "a string": "strings"}
        return f"a list of {plural.get(item, item)}"
    if origin in (dict, collections.abc.Mapping):
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{text[:60]}... ({type(value).__name__})" if len(text) > 60 else \
        f"{text} ({type(value).__name__})"  # fmt: skip


_EXPONENT = re.compile(r"[+-]?\d+[eE][+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _hint(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    if _EXPONENT.fullmatch(value):  # YAML 1.1 needs a dot in a float: 1e-3 is a string
        return f"; YAML reads {value} as text, write {value.replace('e', '.0e', 1)}"
    if _NUMBER.fullmatch(value):
        return "; write the number without quotes"
    return ""
