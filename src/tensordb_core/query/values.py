"""JSON-like values: what documents and queries may hold, and MongoDB's order over them.

Why a module of its own: the query evaluator, projections, updates and every
index store must agree on three things, and they must agree with MongoDB:

* **What a value may be** — ``None``, ``bool``, ``int`` (64-bit), finite
  ``float``, ``str`` (valid Unicode), lists and ``str``-keyed dicts.  NaN and
  infinities are refused: JSON cannot hold them, SQLite's JSON1 and other
  tools reading the public format would each treat them differently.  Integers
  outside int64 are refused because MongoDB cannot store them.  Tuples are
  accepted and become lists; numpy scalars become ``int``/``float``/``bool``.
* **What a stored field name may be** — non-empty, no leading ``$``, no
  ``.`` (the path separator), no NUL: names MongoDB and the query language can
  address.
* **How values compare** — MongoDB's type brackets
  ``missing/null < numbers < strings < objects < arrays < bools``; numbers
  compare by value across ``int``/``float`` (``1 == 1.0``), a bool is never a
  number (``True != 1``), strings compare by code point (MongoDB's binary UTF-8
  order), objects compare field by field (type, then name, then value) so
  ``{"a": 1, "b": 2} != {"b": 2, "a": 1}`` exactly as in MongoDB, and arrays
  compare element by element.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, Self

from tensordb_core.errors import InvalidDocument, InvalidQuery, TensorDBError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: Deepest nesting of lists/dicts a stored document may have (MongoDB allows 100).
MAX_DOCUMENT_DEPTH = 64

# Type brackets, in MongoDB's sort order.
NULL, NUMBER, STRING, OBJECT, ARRAY, BOOL = 0, 1, 2, 3, 4, 5


class _Missing:
    """The value of a path that leads nowhere (distinct from an explicit ``None``)."""

    _instance: Any = None

    def __new__(cls) -> Self:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()


def bracket(value: Any) -> int:
    """MongoDB's canonical type bracket of a JSON-like value (``MISSING`` counts as null)."""
    if value is None or value is MISSING:
        return NULL
    kind = type(value)
    if kind is bool:
        return BOOL
    if kind is int or kind is float:
        return NUMBER
    if kind is str:
        return STRING
    if kind is dict:
        return OBJECT
    if kind is list:
        return ARRAY
    # Not normalized by check_value (a caller's own dict): classify by ABC.
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, numbers.Real):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, Mapping):
        return OBJECT
    if isinstance(value, (list, tuple)):
        return ARRAY
    raise TypeError(f"not a JSON-like value: {kind.__name__}")


def values_equal(a: Any, b: Any) -> bool:
    """MongoDB equality: same bracket and equal value; objects are order-sensitive."""
    ba, bb = bracket(a), bracket(b)
    if ba != bb:
        return False
    if ba == OBJECT:
        if len(a) != len(b):
            return False
        return all(ka == kb and values_equal(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items()))
    if ba == ARRAY:
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if ba == NULL:
        return True
    return a == b


def value_key(value: Any) -> tuple:
    """A sort key giving MongoDB's total order over JSON-like values (BSON ``woCompare``)."""
    b = bracket(value)
    if b == NULL:
        return (NULL,)
    if b == OBJECT:
        return (OBJECT, tuple((bracket(v), k, value_key(v)) for k, v in value.items()))
    if b == ARRAY:
        return (ARRAY, tuple(value_key(v) for v in value))
    if b == BOOL:
        return (BOOL, int(value))
    return (b, value)


def compare(a: Any, b: Any) -> int:
    """-1, 0 or 1 by MongoDB's order (brackets first, then values)."""
    ka, kb = value_key(a), value_key(b)
    return (ka > kb) - (ka < kb)


def _error(error: type[TensorDBError], where: str, message: str) -> TensorDBError:
    return error(f"{where}: {message}")


def check_field_name(name: Any, where: str, error: type[TensorDBError] = InvalidDocument) -> str:
    """A stored field name: a non-empty ``str`` without a leading ``$``, a ``.`` or NUL."""
    if not isinstance(name, str):
        raise _error(error, where, f"field name {name!r} is not a string")
    if not name:
        raise _error(error, where, "empty field name")
    if name.startswith("$"):
        raise _error(error, where, f"field name {name!r} starts with '$' (reserved for operators)")
    if "." in name:
        raise _error(error, where, f"field name {name!r} contains '.' (the path separator); nest a dict instead")
    if "\0" in name:
        raise _error(error, where, f"field name {name!r} contains NUL")
    return name


def check_value(
    value: Any,
    where: str,
    error: type[TensorDBError] = InvalidDocument,
    depth: int = 0,
    max_depth: int = MAX_DOCUMENT_DEPTH,
) -> Any:
    """Return a normalized deep copy of ``value`` or raise ``error`` naming ``where``.

    Normalizes tuples to lists and numpy/numbers scalars to ``bool``/``int``/``float``.
    """
    if depth > max_depth:
        raise _error(error, where, f"nested deeper than {max_depth} levels")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        if kind is str:
            _check_text(value, where, error)
        return value
    if kind is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise _error(error, where, f"integer {value} does not fit in 64 bits")
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _error(error, where, f"{value!r} is not a JSON number (NaN and infinities are refused)")
        return value
    if kind is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            check_field_name(k, where, error)
            _check_text(k, where, error)
            out[k] = check_value(v, f"{where}.{k}", error, depth + 1, max_depth)
        return out
    if kind is list or kind is tuple:
        return [check_value(v, f"{where}[{i}]", error, depth + 1, max_depth) for i, v in enumerate(value)]
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(dtype, "kind", "") == "b" and getattr(value, "shape", None) == ():
        return bool(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return check_value(int(value), where, error, depth, max_depth)
    if isinstance(value, numbers.Real):
        return check_value(float(value), where, error, depth, max_depth)
    raise _error(
        error, where, f"{kind.__name__} is not JSON-like (use None, bool, int, float, str, list or dict with str keys)"
    )


def _check_text(text: str, where: str, error: type[TensorDBError]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _error(error, where, f"string {text[:20]!r} is not valid Unicode (lone surrogate)") from exc


def check_document(doc: Any, where: str = "document") -> dict[str, Any]:
    """Validate a document an index store is asked to keep; return a normalized copy.

    ``_id`` (when given) must be a non-empty ``str``; ``_seq`` is dropped, since
    the store assigns it.  Raises :class:`~tensordb_core.errors.InvalidDocument`.
    """
    if not isinstance(doc, Mapping):
        raise InvalidDocument(f"{where}: expected a dict, got {type(doc).__name__}")
    out = check_value(doc, where, InvalidDocument)
    out.pop("_seq", None)
    if "_id" in out and (not isinstance(out["_id"], str) or not out["_id"]):
        raise InvalidDocument(f"{where}: _id must be a non-empty str, got {out['_id']!r}")
    return out


def copy_value(value: Any) -> Any:
    """A deep copy of an already-checked JSON-like value (much faster than ``copy.deepcopy``)."""
    kind = type(value)
    if kind is dict:
        return {k: copy_value(v) for k, v in value.items()}
    if kind is list:
        return [copy_value(v) for v in value]
    return value


def split_path(path: Any, where: str, error: type[TensorDBError] = InvalidQuery) -> list[str]:
    """Split a dotted field path, refusing empty parts, ``$`` parts and NUL."""
    if not isinstance(path, str):
        raise _error(error, where, f"field path {path!r} is not a string")
    parts = path.split(".")
    for part in parts:
        if not part:
            raise _error(error, where, f"field path {path!r} has an empty part")
        if part.startswith("$"):
            raise _error(error, where, f"unknown operator {part!r} in field path {path!r}")
        if "\0" in part:
            raise _error(error, where, f"field path {path!r} contains NUL")
    _check_text(path, where, error)
    return parts


def array_index(part: str) -> int | None:
    """The array position a path part names (``"0"``, ``"12"``; not ``"01"``), else None."""
    if part.isascii() and part.isdigit() and (part == "0" or part[0] != "0"):
        return int(part)
    return None
