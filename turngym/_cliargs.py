"""Shared pieces of the command line: plain-text ``--help`` and mapping-valued options.

``--help`` as plain text: the reST of docstrings is rendered where help is formatted.

Config fields and modules document themselves in reST (``:data:`AGGREGATIONS```, double
backquotes), and that text is also the CLI's help (one source of truth). A terminal should
show ``AGGREGATIONS``, not the markup, so :class:`ArgumentParser` formats every description,
epilog and argument help through :func:`plain_text`; subcommand parsers inherit it (argparse
builds them with the parent's class).

Mapping-valued options (``--difficulty``, ``--env-options``, ``--recipe``...) take JSON, and
also the YAML flow style people type in shells (``{size: 5}``); :func:`mapping_arg` parses
both and says what to write when neither fits.
"""

from __future__ import annotations

import argparse
import json
import re
import typing
from typing import Any

__all__ = ["ArgumentParser", "PlainHelpFormatter", "plain_text", "mapping_arg"]

# :role:`target`, :role:`~pkg.mod.Name`, :role:`text <target>` (Sphinx cross-references).
_ROLE = re.compile(r":(?:[a-z]+:)?[a-z]+:`(~?)([^`<]*?)\s*(?:<[^`>]*>)?`")
_LITERAL = re.compile(r"``(.+?)``")


def plain_text(text: str) -> str:
    """Render inline reST as plain text: roles become their (short) target, literals lose quotes.

    Example:
        >>> plain_text("one of :data:`AGGREGATIONS` (``token-mean``), see :func:`~a.b.run`")
        'one of AGGREGATIONS (token-mean), see run'
    """

    def role(match: re.Match[str]) -> str:
        short, target = match.groups()
        return target.rsplit(".", 1)[-1] if short else target

    return _LITERAL.sub(r"\1", _ROLE.sub(role, text))


class PlainHelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, with reST markup removed from every piece of help text."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain_text(text))

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        return None if text is None else plain_text(text)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with plain-text help and one-line errors (subcommands too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Create the parser; ``formatter_class`` defaults to :class:`PlainHelpFormatter`."""
        kwargs.setdefault("formatter_class", PlainHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        """Exit 2 with one line: what was wrong, and where the usage is (not the whole usage).

        The full usage of a command with many options (``turngym train``) buries the one line
        that matters under forty others.
        """
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def mapping_arg(text: str) -> dict[str, Any]:
    """Parse an option value that must be a mapping: JSON, or YAML flow style.

    Raises:
        argparse.ArgumentTypeError: Neither parses to a mapping (argparse prints the message
            after the option's name and exits with code 2).

    Example:
        >>> mapping_arg('{"size": 5}'), mapping_arg("{size: 5, fog: true}")
        ({'size': 5}, {'size': 5, 'fog': True})
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = _yaml_flow(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a mapping such as '{{\"size\": 5}}' (JSON) or '{{size: 5}}', got {text!r}"
        )
    return value


def _yaml_flow(text: str) -> Any:
    try:
        import yaml
    except ImportError:  # PyYAML is optional: then only JSON is understood
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None
