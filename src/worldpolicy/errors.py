"""How an API error names what to fix: every error about an argument starts with the parameter's name (`steps=0 must
be >= 1`, `control_hz: ...`). The command line renames it to its flag (`cli.flag_named`), the agents' tools to their
argument (`agents.toolbox`); both read it here, so the convention is read one way."""

from __future__ import annotations

import re

__all__ = ["error_parameter"]

_LEADING_PARAMETER = re.compile(r"(\w+)(?==|: )")


def error_parameter(exc: BaseException) -> tuple[str | None, str]:
    """The parameter `exc` names first (None where it names none) and its text (a KeyError's message, not its
    repr)."""
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    match = _LEADING_PARAMETER.match(text)
    return (None if match is None else match[1]), text
