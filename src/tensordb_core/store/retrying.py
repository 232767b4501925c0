"""Bounded retries with backoff around any index or blob store.

Why a wrapper: every backend translates its driver's failures into
:class:`~tensordb_core.errors.TransientError` (throttling, a dropped
connection) or :class:`~tensordb_core.errors.BackendUnavailable` (unreachable),
but what to do about them — wait and try again, and for how long — is the same
for all of them.  :func:`tensordb_core.warehouse.handle.connect` wraps both stores in
:class:`RetryingIndexStore` / :class:`RetryingBlobStore`, so a server restart
during an import or a stream costs a pause instead of a crash, and an outage
that lasts ends in one :class:`BackendUnavailable` naming the store (redacted).

Only operations that are safe to repeat are retried:

* reads (``find``, ``count``, ``tail``, ``last_seq``, ``get``, ``get_many``,
  ``exists``, ``size``, ``list``) — a cursor that fails part-way resumes after
  the last document it yielded when its order is ``_seq`` order (no ``sort``);
  a sorted cursor that fails part-way re-raises, since resuming it could skip
  or repeat documents;
* ``put`` of a content address (a key whose last segment is 64 hex digits:
  the same key always holds the same bytes), ``delete``, ``delete_many``
  (deleting twice deletes the same), ``create_index``;
* ``insert_many`` when *every* document carries an ``_id`` chosen by the
  caller.  An attempt that failed ambiguously (a lost connection) may have
  written some or all of the documents, so a retry that meets
  :class:`~tensordb_core.errors.IntegrityError` (duplicate ``_id``) looks the
  ids up: documents already there *with the same content* are this call's own
  earlier writes and count as done, the missing ones are inserted, and a
  duplicate with different content is a real conflict and is raised.

``update_many`` and ``find_one_and_update`` are never retried (``$inc`` /
``$push`` would apply twice, and a claim that succeeded but whose answer was
lost would be retried as "nothing to claim"); neither is ``insert_many``
without caller ids nor ``put`` of a generic key.  Their transient errors reach
the caller unchanged.

Timing: attempt ``n`` (from 1) that fails sleeps a random time in
``[(1 - jitter) * d, d]`` with ``d = min(max_delay_s, initial_delay_s * multiplier**(n-1))``
("full jitter" at ``jitter=1``, so many clients do not retry in lockstep),
and the operation gives up after ``attempts`` tries or when the next sleep
would end more than ``total_s`` after the first try.  A single try can last
as long as the backend's own timeout (e.g. MongoDB's ``serverSelectionTimeoutMS``).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Self, TypeVar

from tensordb_core.errors import BackendUnavailable, IntegrityError, InvalidURI, TransientError
from tensordb_core.query.filters import validate_sort
from tensordb_core.store.blobkit import is_content_address
from tensordb_core.store.protocols import (
    BlobCapabilities,
    BlobRequest,
    BlobStore,
    Cursor,
    Document,
    IndexCapabilities,
    IndexStore,
    Query,
    SortSpec,
)
from tensordb_core.store.uri import REDACTED, StoreURI, is_secret_option

log = logging.getLogger(__name__)

T = TypeVar("T")
#: The failures worth another try.
RETRYABLE: tuple[type[BaseException], ...] = (TransientError, BackendUnavailable)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one operation (see the module docs for the schedule)."""

    #: Tries in all, the first included (1: never retry).
    attempts: int = 5
    #: The first sleep's ceiling; each later one grows by ``multiplier`` up to ``max_delay_s``.
    initial_delay_s: float = 0.05
    max_delay_s: float = 2.0
    multiplier: float = 2.0
    #: The share of each sleep drawn at random (1: "full jitter", so clients do not retry in lockstep).
    jitter: float = 1.0
    #: Give up when the next sleep would end more than this long after the first try.
    total_s: float = 30.0

    def __post_init__(self) -> None:
        checks = {
            "attempts": isinstance(self.attempts, int) and not isinstance(self.attempts, bool) and self.attempts >= 1,
            "initial_delay_s": _number(self.initial_delay_s) and self.initial_delay_s >= 0,
            "max_delay_s": _number(self.max_delay_s) and self.max_delay_s >= 0,
            "multiplier": _number(self.multiplier) and self.multiplier >= 1,
            "jitter": _number(self.jitter) and 0 <= self.jitter <= 1,
            "total_s": _number(self.total_s) and self.total_s >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise InvalidURI(f"invalid retry settings {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}: "
                             "attempts is a whole number >= 1, delays and total_s >= 0, multiplier >= 1, "
                             "jitter between 0 and 1")

    @classmethod
    def from_option(cls, value: RetryPolicy | Mapping[str, Any] | bool | None) -> RetryPolicy | None:
        """``connect(retry=...)``: None/True → defaults, False → no retries, a dict → these settings."""
        if value is None or value is True:
            return cls()
        if value is False:
            return None
        if isinstance(value, RetryPolicy):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise InvalidURI(f"unknown retry setting(s) {unknown}: known are {sorted(known)}")
            return replace(cls(), **dict(value))
        raise InvalidURI(f"retry must be None, a bool, a dict or a RetryPolicy, not {type(value).__name__}")

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to sleep after the ``failures``-th consecutive failure."""
        cap = min(self.max_delay_s, self.initial_delay_s * self.multiplier ** (failures - 1))
        low = (1.0 - self.jitter) * cap
        return (rng or random).uniform(low, cap)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def scrub(text: str, uri: StoreURI) -> str:
    """``text`` with the URI's password and secret option values replaced (defence in depth)."""
    secrets = [uri.password] if uri.password else []
    secrets += [v for k, v in uri.options if is_secret_option(k) and v]
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 3:
            text = text.replace(secret, REDACTED)
    return text


class Retrier:
    """Runs operations under a :class:`RetryPolicy` for one store; ``sleep``/``clock`` are injectable for tests."""

    def __init__(self, policy: RetryPolicy, what: str, uri: StoreURI, *,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.policy, self.what, self.uri = policy, what, uri
        self.sleep, self.clock = sleep, clock
        self.rng = rng or random.Random()

    def backoff(self, action: str) -> Backoff:
        return Backoff(self, action)

    def call(self, action: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried on transient failures; :class:`BackendUnavailable` once the budget is spent."""
        backoff = self.backoff(action)
        while True:
            try:
                return fn()
            except RETRYABLE as exc:
                backoff.failed(exc)


class Backoff:
    """The retry budget of one operation: :meth:`failed` sleeps, or raises when the budget is spent."""

    def __init__(self, retrier: Retrier, action: str) -> None:
        self.retrier, self.action = retrier, action
        self.started = retrier.clock()
        self.failures = 0

    def failed(self, exc: BaseException) -> None:
        r, policy = self.retrier, self.retrier.policy
        self.failures += 1
        elapsed = r.clock() - self.started
        delay = policy.delay(self.failures, r.rng)
        if self.failures >= policy.attempts or elapsed + delay > policy.total_s:
            where = r.uri.redacted()
            detail = scrub(f"{type(exc).__name__}: {exc}", r.uri)
            raise BackendUnavailable(
                f"{self.action} on {r.what} at {where} failed {self.failures} time(s) in {elapsed:.1f}s "
                f"(retry limit: {policy.attempts} attempts / {policy.total_s:g}s); last error: {detail[:800]}"
            ) from exc
        log.debug("%s on %s at %s failed (%s), attempt %d of %d; retrying in %.3fs", self.action, r.what,
                  r.uri.redacted(), type(exc).__name__, self.failures, policy.attempts, delay)
        r.sleep(delay)

    def succeeded(self) -> None:
        """Progress was made (a cursor yielded a document): the next failure starts a fresh budget."""
        self.failures = 0
        self.started = self.retrier.clock()


class _Forwarding:
    """Reads any attribute the wrapper does not define from the wrapped store (backend-only settings and methods)."""

    inner: Any

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (during unpickling or a failed __init__)
            raise AttributeError(name)
        return getattr(self.inner, name)


def unwrap(store: Any) -> Any:
    """The backend store under any retrying wrappers (to check its type or reach backend-only methods)."""
    while isinstance(store, (RetryingIndexStore, RetryingBlobStore)):
        store = store.inner
    return store


# -- index stores ---------------------------------------------------------------------------------


class ResumingCursor:
    """A cursor that reopens its query after a transient failure, resuming after the last ``_seq`` it yielded.

    Before the first document it simply reopens the query.  After that it
    resumes only when ``resumable`` (results in ``_seq`` order, ``_seq`` visible):
    ``reopen(after, yielded)`` must return the remaining results with ``_seq > after``.
    """

    def __init__(self, retrier: Retrier, action: str, first: Cursor | Iterator[Document],
                 reopen: Callable[[int | None, int], Cursor | Iterator[Document]], *,
                 resumable: bool, strip_seq: bool = False) -> None:
        self._retrier, self._action = retrier, action
        self._it: Any = first
        self._reopen = reopen
        self._resumable = resumable
        self._strip_seq = strip_seq
        self._last: int | None = None
        self._yielded = 0
        self._backoff: Backoff | None = None

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Document:
        while True:
            try:
                doc = next(self._it)
            except StopIteration:
                raise
            except RETRYABLE as exc:
                if self._yielded and not (self._resumable and self._last is not None):
                    raise  # resuming could skip or repeat documents
                if self._backoff is None:
                    self._backoff = self._retrier.backoff(self._action)
                self._backoff.failed(exc)
                self._close_inner()
                try:
                    self._it = iter(self._reopen(self._last, self._yielded))
                except RETRYABLE as again:  # count it and go round: next() on the dead cursor fails again
                    self._it = _failing(again)
                continue
            if self._backoff is not None:
                self._backoff.succeeded()
            self._yielded += 1
            seq = doc.get("_seq")
            self._last = seq if isinstance(seq, int) else None
            if self._strip_seq:
                doc.pop("_seq", None)
            return doc

    def _close_inner(self) -> None:
        close = getattr(self._it, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # the cursor is already broken; closing it is best effort
                log.debug("closing a failed cursor raised", exc_info=True)

    def close(self) -> None:
        self._close_inner()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _failing(exc: BaseException) -> Iterator[Document]:
    raise exc
    yield  # pragma: no cover - makes this a generator


def _after(query: Query | None, after: int | None) -> dict[str, Any]:
    q = dict(query or {})
    if after is None:
        return q
    cond = {"_seq": {"$gt": after}}
    return {"$and": [q, cond]} if q else cond


def _with_seq(projection: Mapping[str, int] | None) -> tuple[Mapping[str, int] | None, bool, bool]:
    """``(projection to send, strip _seq from results, results keep _seq)`` for a resumable find."""
    if not projection:
        return projection, False, True
    values = [bool(v) for k, v in projection.items() if k != "_id"]
    if values and all(values) and "_seq" not in projection:  # inclusion: ask for _seq too, hide it again
        return {**projection, "_seq": 1}, True, True
    return projection, False, bool(projection.get("_seq", 1))


def _canonical(doc: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in doc.items() if k != "_seq"}, sort_keys=True, default=str)


class RetryingIndexStore(_Forwarding):
    """An :class:`~tensordb_core.store.protocols.IndexStore` that retries the safe operations of ``inner``."""

    def __init__(self, inner: IndexStore, policy: RetryPolicy | None = None, *, retrier: Retrier | None = None) -> None:
        self.inner = inner
        self.capabilities: IndexCapabilities = inner.capabilities
        self.uri: StoreURI = inner.uri
        self.retrier = retrier or Retrier(policy or RetryPolicy(), f"index store {type(inner).__name__}", inner.uri)

    def __repr__(self) -> str:
        return f"RetryingIndexStore({self.inner!r})"

    def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> list[str]:
        """Retried only when every document has a caller-chosen ``_id`` (see the module docs)."""
        docs = list(docs)
        if not docs or not all(isinstance(d, Mapping) and isinstance(d.get("_id"), str) for d in docs):
            return self.inner.insert_many(collection, docs)
        backoff = self.retrier.backoff(f"insert into {collection}")
        pending = docs
        while True:
            try:
                self.inner.insert_many(collection, pending)
                return [d["_id"] for d in docs]
            except RETRYABLE as exc:
                backoff.failed(exc)
            except IntegrityError:
                if backoff.failures == 0:
                    raise  # a duplicate on the first try is the caller's, not ours
                still = self._not_yet_written(collection, pending)
                if len(still) == len(pending):
                    raise  # none of our ids is there: the conflict is elsewhere (a unique index)
                pending = still
                if not pending:
                    return [d["_id"] for d in docs]

    def _not_yet_written(self, collection: str, docs: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """After an ambiguous failure: the docs still to insert; raise if an ``_id`` holds someone else's doc."""
        ids = [d["_id"] for d in docs]
        found = {d["_id"]: d for d in self.retrier.call(
            f"look up ids in {collection}", lambda: list(self.inner.find(collection, {"_id": {"$in": ids}})))}
        clash = [i for i, d in zip(ids, docs) if i in found and _canonical(found[i]) != _canonical(d)]
        if clash:
            raise IntegrityError(f"insert into {collection}: _id(s) {clash[:5]} already hold other documents")
        return [d for d in docs if d["_id"] not in found]

    def find(self, collection: str, query: Query | None = None, *, sort: SortSpec | None = None, limit: int = 0,
             skip: int = 0, projection: Mapping[str, int] | None = None, batch_size: int | None = None) -> Cursor:
        action = f"find in {collection}"
        resumable = sort is None or validate_sort(sort) == [("_seq", 1)]  # typed InvalidQuery for a bad sort
        sent, strip, keeps_seq = _with_seq(projection) if resumable else (projection, False, False)

        def open_(after: int | None, yielded: int) -> Cursor:
            if not yielded:  # the caller's arguments untouched (the store validates them)
                return self.inner.find(collection, query, sort=sort, limit=limit, skip=skip, projection=sent,
                                       batch_size=batch_size)
            if limit and limit <= yielded:
                return iter(())  # type: ignore[return-value]
            return self.inner.find(collection, _after(query, after), sort=sort, limit=limit - yielded if limit else 0,
                                   projection=sent, batch_size=batch_size)

        first = self.retrier.call(action, lambda: open_(None, 0))
        return ResumingCursor(self.retrier, action, iter(first), open_, resumable=resumable and keeps_seq,
                              strip_seq=strip)

    def tail(self, collection: str, query: Query | None = None, *, after: int = 0, limit: int = 0) -> Iterator[Document]:
        action = f"tail {collection}"

        def open_(last: int | None, yielded: int) -> Iterator[Document]:
            if not yielded:
                return iter(self.inner.tail(collection, query, after=after, limit=limit))
            if limit and limit <= yielded:
                return iter(())
            return iter(self.inner.tail(collection, query, after=last, limit=limit - yielded if limit else 0))

        return ResumingCursor(self.retrier, action, self.retrier.call(action, lambda: open_(None, 0)), open_,
                              resumable=True)

    def count(self, collection: str, query: Query | None = None) -> int:
        return self.retrier.call(f"count in {collection}", lambda: self.inner.count(collection, query))

    def read_columns(self, collection: str, query: Query, paths: Sequence[str], *, after: int,
                     until: int) -> dict[str, list[Any]] | None:
        """Retry the inner store's ``read_columns`` (one read); only for stores whose capabilities declare it."""
        return self.retrier.call(f"read columns of {collection}", lambda: self.inner.read_columns(
            collection, query, paths, after=after, until=until))

    def count_blocks(self, collection: str, query: Query, *, origin: int, span: int,
                     until: int) -> list[int] | None:
        """Retry the inner store's ``count_blocks`` (one read); only for stores declaring columns."""
        return self.retrier.call(f"count blocks of {collection}", lambda: self.inner.count_blocks(
            collection, query, origin=origin, span=span, until=until))

    def last_seq(self, collection: str) -> int:
        return self.retrier.call(f"last_seq of {collection}", lambda: self.inner.last_seq(collection))

    def delete_many(self, collection: str, query: Query) -> int:
        """Retried (deleting twice deletes the same); after a retry the count covers the last attempt only."""
        return self.retrier.call(f"delete from {collection}", lambda: self.inner.delete_many(collection, query))

    def create_index(self, collection: str, keys: SortSpec, *, unique: bool = False) -> None:
        self.retrier.call(f"create_index on {collection}",
                          lambda: self.inner.create_index(collection, keys, unique=unique))

    def update_many(self, collection: str, query: Query, update: Mapping[str, Any]) -> int:
        """Not retried: ``$inc``/``$push`` are not idempotent."""
        return self.inner.update_many(collection, query, update)

    def find_one_and_update(self, collection: str, query: Query, update: Mapping[str, Any], *,
                            sort: SortSpec | None = None) -> Document | None:
        """Not retried: a claim whose answer was lost must not be repeated."""
        return self.inner.find_one_and_update(collection, query, update, sort=sort)

    def close(self) -> None:
        self.inner.close()


# -- blob stores ----------------------------------------------------------------------------------


class RetryingBlobStore(_Forwarding):
    """A :class:`~tensordb_core.store.protocols.BlobStore` that retries the safe operations of ``inner``."""

    def __init__(self, inner: BlobStore, policy: RetryPolicy | None = None, *, retrier: Retrier | None = None) -> None:
        self.inner = inner
        self.uri: StoreURI = inner.uri
        self.retrier = retrier or Retrier(policy or RetryPolicy(), f"blob store {type(inner).__name__}", inner.uri)
        self.capabilities: BlobCapabilities = inner.capabilities

    def __repr__(self) -> str:
        return f"RetryingBlobStore({self.inner!r})"

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Retried for content addresses only (a generic key may have been rewritten meanwhile)."""
        if not is_content_address(key):
            return self.inner.put(key, data)
        return self.retrier.call(f"put {key}", lambda: self.inner.put(key, data))

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        return self.retrier.call(f"get {key}", lambda: self.inner.get(key, start, end))

    def read_into(self, key: str, start: int, buffer: bytearray | memoryview) -> int:
        """Retry the inner store's ``read_into``; only for stores whose capabilities declare it."""
        return self.retrier.call(f"read {key}", lambda: self.inner.read_into(key, start, buffer))

    def get_many(self, requests: Iterable[BlobRequest]) -> Iterator[bytes]:
        """Yields in request order; after a transient failure the remaining requests are asked again."""
        todo = list(requests)
        done = 0

        def rest() -> Iterator[bytes]:
            nonlocal done
            for data in self.inner.get_many(todo[done:]) if done < len(todo) else ():
                done += 1
                yield data

        return self._resumed(f"get_many ({len(todo)} requests)", rest)

    def exists(self, key: str) -> bool:
        return self.retrier.call(f"exists {key}", lambda: self.inner.exists(key))

    def size(self, key: str) -> int:
        return self.retrier.call(f"size {key}", lambda: self.inner.size(key))

    def delete(self, key: str) -> None:
        self.retrier.call(f"delete {key}", lambda: self.inner.delete(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key once; a listing that fails part-way starts again and skips keys already yielded."""
        seen: set[str] = set()

        def rest() -> Iterator[str]:
            for key in self.inner.list(prefix):
                if key not in seen:
                    seen.add(key)
                    yield key

        return self._resumed(f"list {prefix!r}", rest)

    def _resumed(self, action: str, rest: Callable[[], Iterator[T]]) -> Iterator[T]:
        """Iterate ``rest()``, calling it again after each transient failure until it ends.

        ``rest`` decides where a retry resumes (``get_many`` by offset, ``list``
        by the keys already yielded); each item yielded restores the retry
        budget, and the inner iterator is closed whenever this one stops.
        """
        backoff: Backoff | None = None
        while True:
            it = rest()
            try:
                for item in it:
                    if backoff is not None:
                        backoff.succeeded()
                    yield item
                return
            except RETRYABLE as exc:
                if backoff is None:
                    backoff = self.retrier.backoff(action)
                backoff.failed(exc)
            finally:
                it.close()

    def close(self) -> None:
        self.inner.close()


def wrap(index: IndexStore, blobs: BlobStore, policy: RetryPolicy | None) -> tuple[IndexStore, BlobStore]:
    """Both stores wrapped under ``policy`` (unchanged when ``policy`` is None or they are wrapped already)."""
    if policy is None:
        return index, blobs
    if not isinstance(index, RetryingIndexStore):
        index = RetryingIndexStore(index, policy)
    if not isinstance(blobs, RetryingBlobStore):
        blobs = RetryingBlobStore(blobs, policy)
    return index, blobs
