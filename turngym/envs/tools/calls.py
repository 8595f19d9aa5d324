"""Parsing, running and scoring tool calls.

* :func:`parse_call` reads the JSON inside ``<tool_call>...</tool_call>`` (the Hermes/Qwen
  format MatchTIR trains with) and :func:`run_call` validates it against the tool's schema and
  runs it; neither raises on any input.
* :func:`call_similarity` is MatchTIR's per-call score (Qu et al., 2025, "MatchTIR",
  ``reward_score/tool.py``): ``[1{name} + Jaccard(keys) + #equal values] / (2 + |gold
  params|)``, 0 when the names differ; :func:`match_calls` is its "KM" variant (a greedy,
  highest-score-first one-to-one assignment of predicted to gold calls).
* :func:`answer_matches` is τ-bench's output check (Yao et al., 2024): every gold output must
  appear in the answer, case-insensitive with commas removed; we match whole tokens so
  ``"12"`` does not match inside ``"2012"``.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from turngym.envs.tools.apps import TOOLS, ToolError
from turngym.envs.tools.schema import describe_value, validate_arguments

__all__ = [
    "CallResult",
    "parse_call",
    "run_call",
    "call_similarity",
    "match_calls",
    "answer_matches",
    "answer_tokens",
]

_TOKEN = re.compile(r"[a-z0-9]+(?:[.:][a-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class CallResult:
    """What one ``<tool_call>`` did.

    Attributes:
        name: The tool name, or ``None`` if it could not be read.
        arguments: The arguments, or ``None`` if they could not be read.
        output: The JSON-serialisable tool output (``{"error": ...}`` on failure).
        valid: The call parsed, named a listed tool and passed schema validation.
        error: The error message, if the call failed (invalid or a tool failure).
    """

    name: str | None
    arguments: dict[str, Any] | None
    output: Any = field(default=None)
    valid: bool = True
    error: str | None = None


def parse_call(content: str) -> tuple[str, dict[str, Any]] | str:
    """Parse ``{"name": ..., "arguments": {...}}``; return ``(name, arguments)`` or an error.

    ``"parameters"`` is accepted for ``"arguments"`` (MatchTIR's ground-truth spelling), and
    arguments given as a JSON string (the OpenAI wire format) are decoded.

    Example:
        >>> parse_call('{"name": "finish", "arguments": {}}')
        ('finish', {})
        >>> parse_call('{"name": 3}')
        "'name' must be a string, got integer 3"
    """
    try:
        call = json.loads(content)
    except (ValueError, RecursionError) as err:
        reason = err.msg if isinstance(err, json.JSONDecodeError) else "too deeply nested"
        return f"the tool call is not valid JSON ({reason})"
    if not isinstance(call, dict):
        return f'the tool call must be a JSON object {{"name": ..., "arguments": {{...}}}}, ' \
               f"got {describe_value(call)}"  # fmt: skip
    if "name" not in call:
        return "the tool call has no 'name'"
    name = call["name"]
    if not isinstance(name, str):
        return f"'name' must be a string, got {describe_value(name)}"
    arguments = call.get("arguments", call.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            return "'arguments' is a string that is not valid JSON"
    if not isinstance(arguments, dict):
        return f"'arguments' must be a JSON object, got {describe_value(arguments)}"
    extra = sorted(str(k) for k in call if k not in ("name", "arguments", "parameters"))
    if extra:
        return f"unexpected key {extra[0]!r} in the tool call (use 'name' and 'arguments')"
    return name, arguments


def run_call(conn: sqlite3.Connection, content: str, allowed: Collection[str]) -> CallResult:
    """Parse, validate and run one tool call on ``conn``; never raises on any ``content``.

    Invalid calls (bad JSON, an unknown or unlisted tool, arguments that violate the schema)
    change nothing and have ``valid=False``. A valid call that fails in the app (no such
    account, insufficient funds) has ``valid=True`` and an ``{"error": ...}`` output, and
    its writes are rolled back.
    """
    parsed = parse_call(content)
    if isinstance(parsed, str):
        return CallResult(None, None, {"error": parsed}, valid=False, error=parsed)
    name, arguments = parsed
    if name not in allowed:
        shown = name if len(name) <= 40 else name[:37] + "..."
        error = f"unknown tool {shown!r}; available tools: {', '.join(sorted(allowed))}"
        return CallResult(name, arguments, {"error": error}, valid=False, error=error)
    spec = TOOLS[name]
    problem = validate_arguments(spec, arguments)
    if problem is not None:
        return CallResult(name, arguments, {"error": problem}, valid=False, error=problem)
    try:
        output = spec.run(conn, arguments)
    except ToolError as err:
        conn.rollback()
        return CallResult(name, arguments, {"error": str(err)}, error=str(err))
    conn.commit()
    return CallResult(name, arguments, output)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def call_similarity(
    name: str | None, arguments: Mapping[str, Any] | None, gold: Mapping[str, Any]
) -> dict[str, Any]:
    """MatchTIR's similarity of one predicted call to one gold call, with its parts.

    Returns:
        ``{"name_match", "key_jaccard", "arg_match" (fraction of gold arguments with equal
        values), "score"}``.

    Example:
        >>> gold = {"name": "bank_deposit", "arguments": {"account_id": "A", "amount": 5}}
        >>> call_similarity("bank_deposit", {"account_id": "a", "amount": 6}, gold)["score"]
        0.75
    """
    gold_args = gold["arguments"]
    if name != gold["name"] or arguments is None:
        return {"name_match": False, "key_jaccard": 0.0, "arg_match": 0.0, "score": 0.0}
    gold_keys, keys = set(gold_args), set(arguments)
    union = len(gold_keys | keys)
    jaccard = len(gold_keys & keys) / union if union else 1.0
    equal = sum(1 for k in gold_keys if k in arguments and _same(arguments[k], gold_args[k]))
    return {
        "name_match": True,
        "key_jaccard": jaccard,
        "arg_match": equal / len(gold_keys) if gold_keys else 1.0,
        "score": (1.0 + jaccard + equal) / (2.0 + len(gold_keys)),
    }


def match_calls(
    calls: Sequence[tuple[str | None, Mapping[str, Any] | None]],
    gold: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """MatchTIR's KM-style assignment: greedy one-to-one by descending similarity.

    Returns:
        ``{"assignment": [gold index or None per call], "scores": [score per call],
        "mean": sum of scores / max(#calls, #gold)}`` (unmatched calls score 0).
    """
    pairs = sorted(
        ((call_similarity(n, a, g)["score"], -i, -j, i, j)
         for i, (n, a) in enumerate(calls) for j, g in enumerate(gold)),
        reverse=True,
    )  # fmt: skip
    assignment: list[int | None] = [None] * len(calls)
    scores = [0.0] * len(calls)
    used: set[int] = set()
    for score, _, _, i, j in pairs:
        if score <= 0.0 or assignment[i] is not None or j in used:
            continue
        assignment[i], scores[i] = j, score
        used.add(j)
    denominator = max(len(calls), len(gold))
    return {"assignment": assignment, "scores": scores,
            "mean": sum(scores) / denominator if denominator else 1.0}  # fmt: skip


def answer_tokens(text: str) -> list[str]:
    """Lowercase tokens with commas and ``$`` removed (``"$1,250"`` -> ``["1250"]``)."""
    return _TOKEN.findall(text.lower().replace(",", "").replace("$", ""))


def answer_matches(answer: str, gold: str) -> bool:
    """Whether the gold answer's tokens appear contiguously in ``answer``.

    Example:
        >>> answer_matches("The balance is $1,250.", "1250"), answer_matches("2012", "12")
        (True, False)
    """
    want, have = answer_tokens(gold), answer_tokens(answer)
    if not want:
        return True
    return any(have[i : i + len(want)] == want for i in range(len(have) - len(want) + 1))
