"""Documents to the embedded index's stored JSON text and back, on the fast path where it is safe.

Why a module: the SQLite index spends most of an import checking and
serialising documents, and most of a stream's index read parsing and
projecting them.  Each helper here is the plain path's twin for the common
case (plain JSON types, top-level projections), and hands anything else to
the plain path, which decides and names the error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from tensordb_core.query.filters import compile_projection
from tensordb_core.query.values import INT64_MAX, INT64_MIN, MAX_DOCUMENT_DEPTH, check_document

try:
    import orjson
except ImportError:  # pragma: no cover - depends on the extras installed (tensordb[fast])
    orjson = None

Document = dict[str, Any]


def _plain(value: Any, depth: int) -> bool:
    """Whether ``value`` is already what ``check_value`` would return unchanged (no copy, no message built).

    Strings are not checked for lone surrogates here: the serialiser refuses those (see :func:`stored_json`).
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return INT64_MIN <= value <= INT64_MAX
    if kind is float:
        return value - value == 0.0  # finite
    if depth >= MAX_DOCUMENT_DEPTH:
        return False
    if kind is dict:
        for k, v in value.items():
            if type(k) is not str or not k or k[0] == "$" or "." in k or "\0" in k or not _plain(v, depth + 1):
                return False
        return True
    if kind is list:
        return all(_plain(v, depth + 1) for v in value)
    return False  # tuples, numpy scalars, mappings: check_document normalises them


def _dumps_plain(body: Mapping[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def stored_json(doc: Any, where: str) -> tuple[Any, str]:
    """``(the document's _id or None, its stored JSON body)`` for ``insert_many``; raises ``InvalidDocument``.

    Why: ``check_document`` builds a deep copy and a location string per field
    (64% of an import's time, profiled); a document already made of plain
    JSON values is checked by one walk without copies and serialised by
    orjson.  Any other document, or one orjson refuses (a lone surrogate),
    takes the plain path, so what is stored and which errors are raised do
    not change.
    """
    if type(doc) is dict and _plain(doc, 0) and orjson is not None:
        doc_id = doc.get("_id")
        if doc_id is None or (type(doc_id) is str and doc_id):
            body = {k: v for k, v in doc.items() if k != "_id" and k != "_seq"}
            try:
                return doc_id, orjson.dumps(body).decode()
            except (TypeError, orjson.JSONEncodeError):
                pass
    checked = check_document(doc, where)
    return checked.get("_id"), _dumps_plain({k: v for k, v in checked.items() if k not in ("_id", "_seq")})


def fresh_projection(projection: Any) -> Callable[[Document], Document]:
    """Project documents the store has just parsed from JSON, without copying them.

    Why: ``compile_projection`` deep-copies what it keeps (callers may hand it
    shared documents), but every document here is a new object no one else
    holds, so the copy only costs: it was ~40% of the stream's per-document
    index cost.  Top-level inclusions (the stream's projection) become one dict
    comprehension in the document's own order, as ``_include`` orders them;
    anything else goes through ``compile_projection`` (which also validates).
    """
    project = compile_projection(projection)
    if projection is None or not projection:
        return lambda doc: doc
    flags = dict(projection)
    included = [p for p, f in flags.items() if p != "_id"]
    if not included or any("." in path for path in flags) or any(flags[p] != 1 for p in included):
        return project
    keep = frozenset(p for p, f in flags.items() if f == 1) | ({"_id"} if flags.get("_id", 1) == 1 else set())
    return lambda doc: {k: v for k, v in doc.items() if k in keep}


__all__ = ["fresh_projection", "stored_json"]
