"""Settings of :class:`~turngym.agents.openai.OpenAIAgent`: spec strings and their checks.

:func:`parse_spec` splits the argument of an ``openai:`` agent spec (``make_agent("openai:...")``),
``<model>@<base url>?<options>``, into the agent's keyword arguments: the model name, the base
URL (:data:`DEFAULT_BASE_URL` when the spec names none) and the query-string options, each
converted by its entry in the option table. ``_validate`` is the range check the agent's
constructor runs on its settings. :mod:`turngym.agents.openai` re-exports :func:`parse_spec` and
:data:`DEFAULT_BASE_URL`.

Besides the standard library it imports only turngym itself (no ``httpx``): it needs no extra.
"""

from __future__ import annotations

import difflib
from typing import Any
from urllib.parse import parse_qsl

from turngym.evals.results import redact

__all__ = ["DEFAULT_BASE_URL", "parse_spec", "query_options", "bool_option", "optional_int"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""Base URL of a spec string without ``@<base url>``."""


def bool_option(value: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``on/off`` (spec query values)."""
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def optional_int(value: str) -> int | None:
    """An int, or ``none``/``null`` for ``None`` (spec query values)."""
    return None if value.lower() in {"none", "null"} else int(value)


_SPEC_OPTIONS: dict[str, Any] = {
    "temperature": float,
    "top_p": float,
    "max_tokens": optional_int,
    "seed": optional_int,
    "history": optional_int,
    "include_instructions": bool_option,
    "max_concurrency": int,
    "max_retries": int,
    "backoff": float,
    "timeout": float,
    "logprobs": bool_option,
    "api_key_env": str,
    "stop": str,  # may repeat: ?stop=a&stop=b
}


def parse_spec(arg: str) -> dict[str, Any]:
    """Split the argument of ``openai:<arg>`` into :class:`OpenAIAgent` keyword arguments.

    The rule: the base URL starts at the FIRST ``@`` directly followed by ``http://`` or
    ``https://``; everything before it is the model name, which may therefore contain ``/``,
    ``:`` and even ``@``. Without such an ``@`` the whole argument is the model and the base
    URL is :data:`DEFAULT_BASE_URL`. A query string after the URL sets agent options
    (``temperature``, ``top_p``, ``max_tokens``, ``seed``, ``history``,
    ``include_instructions``, ``max_concurrency``, ``max_retries``, ``backoff``, ``timeout``,
    ``logprobs``, ``api_key_env`` and ``stop``, which may repeat); ``none`` unsets
    ``max_tokens``, ``seed`` or ``history``. The query is never sent to the server.

    Args:
        arg: E.g. ``"Qwen/Qwen2.5-7B-Instruct@http://127.0.0.1:8000/v1?temperature=0"``.

    Returns:
        ``model``, ``base_url`` and any options from the query.

    Raises:
        ValueError: No model, an unknown option (with suggestions), a bad value, or an API
            key in the query (keys belong in an environment variable, not in spec strings,
            which are written to results files).

    Example:
        >>> spec = parse_spec("org/m:v2@http://127.0.0.1:8001/v1?temperature=0&stop=</action>")
        >>> spec["model"], spec["base_url"], spec["temperature"], spec["stop"]
        ('org/m:v2', 'http://127.0.0.1:8001/v1', 0.0, ['</action>'])
        >>> parse_spec("gpt-4o-mini")["base_url"]
        'https://api.openai.com/v1'
    """
    cuts = [i for i in (arg.find("@http://"), arg.find("@https://")) if i >= 0]
    model, url = (arg[: min(cuts)], arg[min(cuts) + 1 :]) if cuts else (arg, DEFAULT_BASE_URL)
    if not model:
        raise ValueError(f"openai spec {redact(arg)!r} names no model; use 'openai:<model>@<url>'.")
    url, _, query = url.partition("?")
    for key, _ in parse_qsl(query, keep_blank_values=True):
        if key in {"api_key", "key", "token"}:
            raise ValueError(
                "Do not put API keys in agent specs (they are written to results files); "
                "set OPENAI_API_KEY, or name another variable with '?api_key_env=NAME'."
            )
    return {"model": model, "base_url": url, **query_options("openai", query, _SPEC_OPTIONS)}


def query_options(kind: str, query: str, table: dict[str, Any]) -> dict[str, Any]:
    """Parse the query string of an agent spec (``?temperature=0&stop=a&stop=b``).

    Args:
        kind: The agent kind, for messages (``"openai"``, ``"hf"``).
        query: The text after ``?``.
        table: Option name -> converter from text; ``stop`` may repeat and becomes a list.

    Raises:
        ValueError: An unknown option (with a suggestion) or a value its converter refuses.

    Example:
        >>> query_options("hf", "temperature=0&stop=a&stop=b", {"temperature": float, "stop": str})
        {'temperature': 0.0, 'stop': ['a', 'b']}
    """
    out: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in table:
            close = difflib.get_close_matches(key, list(table), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"Unknown {kind} spec option {key!r}.{hint} Options: {', '.join(table)}."
            )
        try:
            parsed = table[key](value)
        except ValueError as err:
            raise ValueError(f"{kind} spec option {key}={value!r}: {err}") from None
        if key == "stop":
            out.setdefault("stop", []).append(parsed)
        else:
            out[key] = parsed
    return out


def _validate(
    model: str,
    base_url: str,
    temperature: float,
    top_p: float,
    max_tokens: int | None,
    history: int | None,
    max_concurrency: int,
) -> None:
    if not model:
        raise ValueError("model must be a non-empty model name, e.g. 'gpt-4o-mini'")
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(
            f"base_url must start with http:// or https://, got {redact(base_url)!r} "
            "(e.g. 'http://127.0.0.1:8000/v1')"
        )
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be None or >= 1, got {max_tokens}")
    if history is not None and history < 0:
        raise ValueError(f"history must be None (all turns) or >= 0, got {history}")
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
