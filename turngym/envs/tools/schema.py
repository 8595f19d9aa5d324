"""Tool specs in JSON-schema form, and a small validator for the subset the apps use.

A tool is described the way BFCL and the OpenAI function format describe one (Patil et al.,
2024, "The Berkeley Function Calling Leaderboard"): a name, a
description and ``parameters`` = ``{"type": "object", "properties": {...}, "required": [...]}``.
Every call is validated against that schema before it runs; a violation becomes a tool error
observation naming the argument and the rule (never an exception).

The validator covers the keywords the apps use: ``type`` (``string``, ``integer``,
``number``, ``boolean``, ``object``), ``enum``, ``minimum``/``maximum``, ``minLength``/
``maxLength``, ``pattern``, ``required`` and unknown arguments (the schemas are closed, as
``additionalProperties: false``). We write it ourselves rather than depend on ``jsonschema``:
the subset is tiny and the messages are part of the env's observation text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ToolSpec", "validate_arguments", "describe_value"]

_JSON_TYPES: Mapping[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
}
_DEFAULT_MAX_LENGTH = 200


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool: its JSON schema and the function that runs it.

    Attributes:
        name: The tool name the agent calls.
        description: One sentence shown in the instructions.
        properties: ``argument -> JSON schema`` of each parameter.
        required: Arguments that must be present.
        run: ``run(conn, arguments) -> JSON-serialisable result``; raises
            :class:`~turngym.envs.tools.apps.ToolError` for failures the agent should see.
        app: The app the tool belongs to (``"bank"``, ...; ``"core"`` for ``finish``).
        writes: Whether the tool can change the database.
    """

    name: str
    description: str
    properties: Mapping[str, Mapping[str, Any]]
    required: tuple[str, ...]
    run: Callable[..., Any]
    app: str
    writes: bool = False

    def schema(self) -> dict[str, Any]:
        """The OpenAI/BFCL-style function description (what the instructions show)."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": {
                "type": "object",
                "properties": {k: dict(v) for k, v in self.properties.items()},
                "required": list(self.required),
            },
        }


def describe_value(value: Any) -> str:
    """A short, safe rendering of a value for error messages (type and truncated repr)."""
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object",
            list: "array", type(None): "null"}.get(type(value), type(value).__name__)  # fmt: skip
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{kind} {shown}"


def _check_string(name: str, value: str, schema: Mapping[str, Any]) -> str | None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"argument {name!r} is not valid UTF-8 text"
    if len(value) < int(schema.get("minLength", 0)):
        return f"argument {name!r} must not be empty"
    limit = int(schema.get("maxLength", _DEFAULT_MAX_LENGTH))
    if len(value) > limit:
        return f"argument {name!r} is longer than {limit} characters"
    pattern = schema.get("pattern")
    if pattern is not None and re.fullmatch(pattern, value) is None:
        example = schema.get("format_hint", pattern)
        return f"argument {name!r} must look like {example}, got {describe_value(value)}"
    return None


def _check_number(name: str, value: float, schema: Mapping[str, Any]) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"argument {name!r} must be a finite number"
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and value < low:
        return f"argument {name!r} must be at least {low}, got {value}"
    if high is not None and value > high:
        return f"argument {name!r} must be at most {high}, got {value}"
    return None


def check_value(name: str, value: Any, schema: Mapping[str, Any]) -> str | None:
    """Return why ``value`` violates ``schema`` (one argument's schema), or ``None``."""
    kind = schema.get("type")
    if kind is not None and not _JSON_TYPES[kind](value):
        return f"argument {name!r} must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}, " \
               f"got {describe_value(value)}"  # fmt: skip
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        return f"argument {name!r} must be one of {list(enum)}, got {describe_value(value)}"
    if isinstance(value, str):
        return _check_string(name, value, schema)
    if kind in ("integer", "number"):
        return _check_number(name, value, schema)
    return None


def validate_arguments(spec: ToolSpec, arguments: Any) -> str | None:
    """Return the first problem with ``arguments`` for ``spec``, or ``None`` if they are valid.

    Checks, in order: the arguments are an object, no unknown argument, every required
    argument present, then each value against its schema (type, enum, range, length, pattern).

    Example:
        >>> spec = ToolSpec("f", "demo", {"n": {"type": "integer", "minimum": 1}}, ("n",),
        ...                 run=lambda conn, args: None, app="demo")
        >>> validate_arguments(spec, {"n": "3"})
        "argument 'n' must be an integer, got string '3'"
        >>> validate_arguments(spec, {})
        "missing required argument 'n' for tool 'f'"
        >>> validate_arguments(spec, {"n": 2}) is None
        True
    """
    if not isinstance(arguments, dict):
        return f"'arguments' must be a JSON object, got {describe_value(arguments)}"
    unknown = sorted(str(k) for k in arguments if k not in spec.properties)
    if unknown:
        known = ", ".join(sorted(spec.properties)) or "none"
        return f"unknown argument {unknown[0]!r} for tool {spec.name!r} (known: {known})"
    for name in spec.required:
        if name not in arguments:
            return f"missing required argument {name!r} for tool {spec.name!r}"
    for name in sorted(arguments):
        problem = check_value(name, arguments[name], spec.properties[name])
        if problem is not None:
            return problem
    return None
