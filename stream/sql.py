"""SQL text made from values: the one place a string becomes an SQL literal or identifier."""
from __future__ import annotations


def literal(value: str | None) -> str:
    """A string as an SQL string literal (quotes doubled), None as NULL."""
    if value is None:
        return "NULL"
    return "'" + value.replace("'", "''") + "'"


def identifier(name: str) -> str:
    """A name as a quoted SQL identifier (double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'
