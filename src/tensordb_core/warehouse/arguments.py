"""Typed checks for the plain values a caller hands the warehouse: names, labels, free text, sort specs.

Why here, at the boundary: a value a store cannot hold (a NUL, a 5,000-character
alias, a number where a name goes) used to travel to the store and fail there
untyped, or be stored as something else (``5`` became ``"5"``), or — in a
buffered log — fail later at flush.  Every check raises a
:class:`~tensordb_core.errors.TensorDBError` subclass before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tensordb_core.errors import InvalidArgument, InvalidQuery

#: The longest name (alias, model, metric, dataset, worker, run id): names are keys people type.
MAX_NAME = 256
_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}


def check_name(value: Any, what: str) -> str:
    """A non-empty ``str`` of at most :data:`MAX_NAME` characters without control characters."""
    if not isinstance(value, str) or not value or len(value) > MAX_NAME or not _CONTROL.isdisjoint(value):
        shown = f"{value[:40]!r}... ({len(value)} characters)" if isinstance(value, str) and len(value) > 60 \
            else repr(value)
        raise InvalidArgument(f"{what} must be a non-empty string of at most {MAX_NAME} characters without "
                              f"control characters, not {shown}")
    return value


def check_optional_name(value: Any, what: str) -> str | None:
    """``None``, or a name as :func:`check_name` wants it."""
    return None if value is None else check_name(value, what)


def check_text(value: Any, what: str, *, optional: bool = True) -> str | None:
    """Free text (a description, code): any length, but a ``str`` without NUL (``None`` if ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise InvalidArgument(f"{what} must be a string without NUL characters, not {type(value).__name__}")
    return value


def query_dict(query: Any) -> dict[str, Any]:
    """``query`` as a dict to combine with other conditions (``None``: ``{}``); the store validates its contents
    (after the scope encodes datetimes), but a string or a list must not reach ``dict()`` and fail untyped."""
    if query is None:
        return {}
    if not isinstance(query, Mapping):
        raise InvalidQuery(f"a query is a dict, got {type(query).__name__}")
    return dict(query)
