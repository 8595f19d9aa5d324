"""ToolUse: stateful tool use over SQLite-backed apps (τ-bench, BFCL, MatchTIR style).

Modules: :mod:`~turngym.envs.tools.schema` (tool specs and the JSON-schema validator),
:mod:`~turngym.envs.tools.apps` (the bank, calendar and inventory apps on SQLite),
:mod:`~turngym.envs.tools.calls` (parsing, running and MatchTIR-style matching of calls),
:mod:`~turngym.envs.tools.generate` (tasks built backwards from gold traces) and
:mod:`~turngym.envs.tools.env` (the :class:`ToolUse` env).
"""

from __future__ import annotations

from turngym.envs.tools.env import ToolUse

__all__ = ["ToolUse"]
