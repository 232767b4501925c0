"""What the sync and asyncio Mongo index stores share: argument checks and the ``_seq`` rules.

Kept free of I/O so both :mod:`.index` and :mod:`.aio` build exactly the same
filters, sorts and documents; only the awaiting differs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tensordb_core.errors import IntegrityError, InvalidDocument, InvalidQuery
from tensordb_core.query.filters import (
    check_document,
    validate_projection,
    validate_query,
    validate_sort,
    validate_update,
)
from tensordb_core.store.protocols import Document, Query, SortSpec, new_id

#: The collection holding one ``{_id: <collection>, seq: <last allocated>}`` counter per collection.
COUNTERS = "tensordb.counters"
SEQ = "_seq"
#: The index every collection gets on first write: tailing and the default order read it.
SEQ_INDEX: list[tuple[str, int]] = [(SEQ, 1)]
#: How many caller-chosen ``_id`` s one pre-insert duplicate check asks about (one indexed ``$in`` query).
ID_CHECK_BATCH = 10_000


def codec_options() -> Any:
    """How index documents are decoded: plain ``dict`` s, and BSON int64 as ``int``.

    PyMongo decodes int64 values as ``bson.Int64`` (an ``int`` subclass); the
    protocol promises JSON-like values, so they come back as plain ``int``.
    """
    from bson.codec_options import CodecOptions, TypeDecoder, TypeRegistry
    from bson.int64 import Int64

    class _Int64AsInt(TypeDecoder):
        bson_type = Int64

        def transform_bson(self, value: Any) -> int:
            return int(value)

    return CodecOptions(document_class=dict, tz_aware=False, type_registry=TypeRegistry([_Int64AsInt()]))


def check_collection(name: str) -> str:
    """``name`` if MongoDB can hold it and it is not one of TensorDB's or MongoDB's own collections."""
    if (
        not isinstance(name, str)
        or not name
        or "$" in name
        or "\x00" in name
        or name.startswith(("system.", "tensordb."))
        or len(name.encode()) > 200
    ):
        raise InvalidQuery(f"invalid collection name {name!r}: use letters, digits, '_' and '-'")
    return name


def mongo_query(query: Query | None) -> dict[str, Any]:
    """The portable query, checked (server-side code and unknown operators are refused) and passed through."""
    return dict(validate_query(query) or {})


def mongo_sort(sort: SortSpec | None) -> list[tuple[str, int]]:
    """The caller's sort with ``_seq`` ascending appended as the tie-breaker (alone by default)."""
    keys = validate_sort(sort)
    if all(field != SEQ for field, _ in keys):
        keys.append((SEQ, 1))
    return keys


def index_keys(keys: SortSpec) -> list[tuple[str, int]]:
    """An index specification: a non-empty list of ``(field, 1 | -1)``."""
    spec = validate_sort(keys)
    if not spec or any(field.startswith("$") for field, _ in spec):
        raise InvalidQuery(f"index keys must be a non-empty list of (field, 1 or -1), not {keys!r}")
    return spec


def mongo_projection(projection: Mapping[str, int] | None) -> dict[str, int] | None:
    return validate_projection(projection)


def mongo_update(update: Mapping[str, Any]) -> dict[str, Any]:
    return dict(validate_update(update))


def after_filter(query: Query | None, after: int) -> dict[str, Any]:
    """``query`` restricted to ``_seq > after`` (the tail's resume point)."""
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise InvalidQuery(f"tail(after=...) takes the last _seq seen (an int >= 0), not {after!r}")
    base = mongo_query(query)
    seq = {SEQ: {"$gt": after}}
    return {"$and": [base, seq]} if base else seq


def prepare_docs(docs: Sequence[Mapping[str, Any]]) -> tuple[list[Document], list[str]]:
    """Copies of ``docs`` with ``_id`` assigned where missing and any caller ``_seq`` dropped.

    Returns the documents and the ``_id`` s the caller chose (to check against
    the collection before writing).  Duplicate ``_id`` s inside one call are an
    :class:`IntegrityError` before anything is written.
    """
    if isinstance(docs, (Mapping, str | bytes)):
        raise InvalidDocument("insert_many takes a sequence of documents, not a single document")
    out: list[Document] = []
    given: list[str] = []
    seen: set[str] = set()
    for n, doc in enumerate(docs):
        body = check_document(doc, f"document {n}")  # JSON-like, str keys, _id a non-empty str, _seq dropped
        if "_id" in body:
            _id = body.pop("_id")
            given.append(_id)
        else:
            _id = new_id()
        if _id in seen:
            raise IntegrityError(f"duplicate _id {_id!r} within one insert_many call; nothing was inserted")
        seen.add(_id)
        out.append({"_id": _id, SEQ: 0, **body})
    return out, given


def duplicate_message(collection: str, ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:5])
    return f"duplicate _id in {collection}: {shown} already exist(s); nothing was inserted"
