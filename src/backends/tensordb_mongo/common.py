"""What the sync and asyncio Mongo index stores share: argument checks, the ``_seq`` rules and ``insert_many``.

Kept free of I/O so both :mod:`.index` and :mod:`.aio` build exactly the same
filters, sorts and documents; only the awaiting differs.  The one multi-step
write, ``insert_many`` (allocate ``_seq`` ranges, refuse known duplicates,
roll back a lost race), is written once as a *plan*: a generator that yields
each driver call it needs as a :class:`Call` and receives its result (or its
exception, thrown in).  :func:`run` drives a plan with blocking calls,
:func:`run_async` awaits them.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tensordb_core.errors import IntegrityError, InvalidDocument, InvalidQuery
from tensordb_core.query.filters import (
    check_document,
    check_window,
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


def open_cursor(
    coll: Any,
    query: Query | None,
    *,
    sort: SortSpec | None,
    limit: int,
    skip: int,
    projection: Mapping[str, int] | None,
    batch_size: int | None,
) -> Any:
    """``coll.find(...)`` for a checked query, sort and window (no I/O yet on either API: cursors are lazy)."""
    check_window(limit, skip)
    cursor = coll.find(mongo_query(query), mongo_projection(projection), sort=mongo_sort(sort), limit=limit, skip=skip)
    return cursor.batch_size(batch_size) if batch_size else cursor


def tail_cursor(coll: Any, query: Query | None, after: int, limit: int) -> Any:
    """Matches with ``_seq > after`` in ``_seq`` order (an index range scan on ``_seq``), lazily."""
    check_window(limit, 0)
    return coll.find(after_filter(query, after), sort=[(SEQ, 1)], limit=limit)


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


# -- insert_many, written once --------------------------------------------------------------------------------------

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One driver call a plan needs: ``fn(*args, **kwargs)``, a PyMongo method (awaitable on the async API)."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


#: A plan: yields the calls it needs, is sent their results, returns its answer.
Plan = Generator[Call, Any, T]


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Call:
    return Call(fn, args, kwargs)


def allocate_plan(counters: Any, collection: str, count: int) -> Plan[int]:
    """Reserve ``count`` consecutive ``_seq`` values with one atomic ``$inc``; return the first."""
    from pymongo import ReturnDocument
    from pymongo.errors import DuplicateKeyError

    for attempt in range(3):
        try:
            doc = yield _call(counters.find_one_and_update, {"_id": collection}, {"$inc": {"seq": count}},
                              upsert=True, return_document=ReturnDocument.AFTER)
            return int(doc["seq"]) - count + 1
        except DuplicateKeyError:  # two first-ever upserts raced; the loser retries as an update
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def insert_plan(
    coll: Any, counters: Any, collection: str, docs: Sequence[Mapping[str, Any]], *, batch_size: int,
    seq_indexed: set[str],
) -> Plan[list[str]]:
    """Insert ``docs`` in ``batch_size`` batches (unordered ``insert_many``) and return their ``_id`` s.

    Duplicate ``_id`` s are refused before writing (one indexed ``distinct``
    per :data:`ID_CHECK_BATCH` caller-chosen ids).  If a concurrent writer wins
    a race for an ``_id`` mid-call, the documents this call inserted are
    deleted again before :class:`IntegrityError` is raised.  MongoDB without
    transactions cannot make a call that dies mid-way (lost connection)
    all-or-nothing.  ``seq_indexed``: the collections known to have their
    ``_seq`` index (the store's memo, updated here).
    """
    from pymongo.errors import BulkWriteError

    prepared, given = prepare_docs(docs)
    if not prepared:
        return []
    if collection not in seq_indexed:
        yield _call(coll.create_index, SEQ_INDEX, unique=True)
        seq_indexed.add(collection)
    for i in range(0, len(given), ID_CHECK_BATCH):
        clash = yield _call(coll.distinct, "_id", {"_id": {"$in": given[i : i + ID_CHECK_BATCH]}})
        if clash:
            raise IntegrityError(duplicate_message(collection, clash))
    inserted: list[str] = []
    for i in range(0, len(prepared), batch_size):
        batch = prepared[i : i + batch_size]
        first = yield from allocate_plan(counters, collection, len(batch))
        for offset, doc in enumerate(batch):
            doc[SEQ] = first + offset
        try:
            yield _call(coll.insert_many, batch, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            failed = {e.get("index") for e in errors}
            inserted.extend(d["_id"] for n, d in enumerate(batch) if n not in failed)
            dup = [batch[e["index"]]["_id"] for e in errors if e.get("code") == 11000]
            if dup and inserted:
                yield _call(coll.delete_many, {"_id": {"$in": inserted}})
            if dup:
                raise IntegrityError(duplicate_message(collection, dup)) from exc
            raise
        inserted.extend(d["_id"] for d in batch)
    return [d["_id"] for d in prepared]


class _Stepper:
    """Advances a plan by one call: sends a result or throws an exception in; keeps the plan's answer."""

    def __init__(self, plan: Plan[Any]) -> None:
        self._plan = plan
        self.answer: Any = None

    def next(self, result: Any = None, error: BaseException | None = None) -> Call | None:
        try:
            return self._plan.throw(error) if error is not None else self._plan.send(result)
        except StopIteration as done:
            self.answer = done.value
            return None


def run(plan: Plan[T]) -> T:
    """Carry out ``plan`` with blocking driver calls (the sync store)."""
    stepper = _Stepper(plan)
    call = stepper.next()
    while call is not None:
        try:
            result, error = call.fn(*call.args, **call.kwargs), None
        except Exception as exc:  # noqa: BLE001 - thrown into the plan, which decides
            result, error = None, exc
        call = stepper.next(result, error)
    answer: T = stepper.answer
    return answer


async def run_async(plan: Plan[T]) -> T:
    """Carry out ``plan`` awaiting each driver call (the asyncio store)."""
    stepper = _Stepper(plan)
    call = stepper.next()
    while call is not None:
        try:
            result, error = await call.fn(*call.args, **call.kwargs), None
        except Exception as exc:  # noqa: BLE001 - thrown into the plan, which decides
            result, error = None, exc
        call = stepper.next(result, error)
    answer: T = stepper.answer
    return answer
