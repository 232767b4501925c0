"""The two storage protocols every backend implements, declared once.

* :class:`IndexStore` keeps small JSON-like documents in named collections
  (``data``, ``models``, ``params``, ``jobs``, ``logs``...) and answers the
  portable query language (:mod:`tensordb_core.query.filters`).
* :class:`BlobStore` keeps bytes by key.

A backend needn't inherit anything: it is done when it passes the
conformance suites in :mod:`tensordb_core.testing`.

Document conventions every index store honours
----------------------------------------------
* ``_id`` (str): given by the caller or assigned by the store on insert
  (:func:`new_id`); unique per collection.
* ``_seq`` (int): assigned by the store on insert, strictly increasing per
  collection in insertion order.  ``tail`` and the default result order use it;
  any sort is tie-broken by ``_seq`` ascending so results are identical on every
  backend.
* Values are JSON-like: ``None``, ``bool``, ``int``, ``float``, ``str``, lists
  and dicts with ``str`` keys.

Optional abilities
------------------
What differs between backends beyond the protocols is declared, not probed:
every store carries ``capabilities`` (:class:`IndexCapabilities` or
:class:`BlobCapabilities`), core code reads only those flags, and the
conformance suites test each flag a store sets.  A wrapper (the retrying
stores) passes its inner store's capabilities on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from tensordb_core.store.uri import StoreURI

Document = dict[str, Any]
Query = Mapping[str, Any]
SortSpec = Sequence[tuple[str, int]]
#: A blob read request: a key (whole blob) or ``(key, start, end)`` for bytes ``[start, end)``.
BlobRequest = str | tuple[str, int, int]


def new_id() -> str:
    """A 24-hex-digit id, ordered by creation time (like a Mongo ObjectId), unique without coordination."""
    return f"{time.time_ns() // 1000:014x}{os.urandom(5).hex()}"


#: Grace assumed for a store that allocates ``_seq`` before it commits (MongoDB's default setting).
DEFAULT_TAIL_GRACE_S = 30.0


@dataclass(frozen=True)
class IndexCapabilities:
    """What an index store offers beyond :class:`IndexStore`.

    ``tail_grace_s``: the longest a ``_seq`` may stay allocated but not yet
    visible.  0 means ``_seq`` is assigned inside the committing write, so a
    reader that has seen ``_seq = n`` will never later see a smaller one
    (SQLite, memory).  Stores that allocate first and commit later (MongoDB)
    declare how long readers must wait before ``_seq`` order is settled;
    followers, ``data_snapshot`` and stream groups wait that long.
    """

    tail_grace_s: float = DEFAULT_TAIL_GRACE_S
    #: ``insert_many`` is all or nothing: a refused batch (duplicate ``_id``, bad document) leaves
    #: none of its documents behind.
    atomic_insert_many: bool = True
    #: ``create_index(..., unique=True)`` is enforced (False: indexes are hints this store ignores).
    unique_indexes: bool = True
    #: The store implements :class:`ReadsColumns`: a few values of each match, without its document.
    #: The stream then reads its sample references so (the embedded index: SQLite extracts them while
    #: the GIL is free, where building a dict per document held it ~7 µs a sample against decoding).
    columns: bool = False
    #: A query whose ``$or`` lists ``_seq`` ranges costs about what those ranges hold (MongoDB: one index
    #: scan per range, one round trip).  A fresh shuffled epoch then reads a window's scattered blocks in
    #: one query rather than one each (SQLite plans such an ``$or`` worse than the ranges one by one).
    seq_ranges: bool = False


@dataclass(frozen=True)
class BlobCapabilities:
    """What a blob store offers beyond :class:`BlobStore`.

    ``read_into``: the store implements :class:`ReadsInto`, filling a caller's
    buffer without an intermediate ``bytes`` (the embedded file store, with
    ``preadv``).  The stream then decodes out of pooled buffers.
    """

    read_into: bool = False
    #: ``a/b`` and ``a/b/c`` can both be keys (object stores).  False on a real filesystem, where
    #: a path cannot be both file and directory: the second key raises ``InvalidBlobKey``.
    key_as_prefix: bool = True
    #: ``put`` of *different* bytes under an existing key replaces them (last writer wins).  A store
    #: that only ever holds content addresses may declare False; it keeps one whole blob.
    overwrite_replaces: bool = True
    #: The store implements :class:`MapsBlobs`: a read-only view of a blob's bytes without copying
    #: them (the embedded file store, with ``mmap``).  The stream then decodes straight out of the
    #: page cache: a raw-stored 147 KiB sample is copied once (into its batch), not twice.
    map: bool = False


@runtime_checkable
class ReadsInto(Protocol):
    """The optional ability behind ``BlobCapabilities.read_into``."""

    def read_into(self, key: str, start: int, buffer: bytearray | memoryview) -> int:
        """Read bytes of ``key`` from ``start`` into ``buffer``; return how many were read.

        Fewer than ``len(buffer)`` only at the blob's end; ``BlobNotFound`` if absent.
        """
        ...


@runtime_checkable
class MapsBlobs(Protocol):
    """The optional ability behind ``BlobCapabilities.map``.

    A store may declare it only if a view it returned stays valid and unchanged for as long as
    the caller holds it, whatever happens to the key afterwards: a content-addressed blob is
    never rewritten in place, and ``delete`` (garbage collection) only unlinks it.
    """

    def map(self, key: str, start: int = 0, end: int | None = None) -> memoryview:
        """A read-only view of bytes ``[start, end)`` of ``key``, clamped to its size (slice semantics, as ``get``).

        ``BlobNotFound`` if absent.  Fewer bytes than asked only at the blob's end.
        """
        ...


@runtime_checkable
class ReadsColumns(Protocol):
    """The optional ability behind ``IndexCapabilities.columns``."""

    def read_columns(self, collection: str, query: Query, paths: Sequence[str], *, after: int,
                     until: int) -> dict[str, list[Any]] | None:
        """The matches of ``query`` with ``after < _seq <= until``, in ``_seq`` order, as columns.

        Returns ``{"_seq": [...], "_id": [...], path: [...] for each of paths}``: one list per name,
        one item per match, the value at that dotted path (a path through a non-object, or to a
        missing field, gives None, as does JSON null; arrays are not traversed).  Or None: the
        store cannot answer this query exactly this way, and the caller reads documents instead.
        """
        ...

    def count_blocks(self, collection: str, query: Query, *, origin: int, span: int,
                     until: int) -> list[int] | None:
        """How many matches of ``query`` each block of ``span`` consecutive ``_seq`` values holds, the
        blocks cut from ``origin`` to ``until`` (inclusive): ``(until - origin) // span + 1`` counts.
        None, as :meth:`read_columns` says it.  Why: a shard places its piece of an epoch by these
        counts before reading a reference (stream/blocks.py); one call per epoch.
        """
        ...


@runtime_checkable
class Cursor(Protocol):
    """A lazy, single-pass iterator over query results, fetched in pages."""

    def __iter__(self) -> Iterator[Document]: ...

    def close(self) -> None:
        """Release server-side resources early (idempotent)."""


@runtime_checkable
class IndexStore(Protocol):
    """Documents with tags, queried by the portable query language."""

    uri: StoreURI
    capabilities: IndexCapabilities

    def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> list[str]:
        """Insert documents (all or nothing where the backend allows) and return their ``_id`` s.

        Assigns ``_id`` where missing and ``_seq`` always (a caller's ``_seq`` is ignored).
        A duplicate ``_id`` raises :class:`~tensordb_core.errors.IntegrityError`.
        """
        ...

    def find(
        self,
        collection: str,
        query: Query | None = None,
        *,
        sort: SortSpec | None = None,
        limit: int = 0,
        skip: int = 0,
        projection: Mapping[str, int] | None = None,
        batch_size: int | None = None,
    ) -> Cursor:
        """A lazy cursor over matching documents; ``_seq`` order unless ``sort`` is given.

        ``limit=0`` means no limit.  ``projection`` is Mongo-style inclusion
        (``{"a": 1}``) or exclusion (``{"a": 0}``); ``_id`` is kept unless excluded.
        """
        ...

    def count(self, collection: str, query: Query | None = None) -> int:
        """How many documents match."""
        ...

    def update_many(self, collection: str, query: Query, update: Mapping[str, Any]) -> int:
        """Apply ``$set/$unset/$inc/$push/$max/$min`` to every match; return how many matched."""
        ...

    def find_one_and_update(
        self,
        collection: str,
        query: Query,
        update: Mapping[str, Any],
        *,
        sort: SortSpec | None = None,
    ) -> Document | None:
        """Atomically update the first match (by ``sort``, then ``_seq``) and return it *after* the update.

        Atomic across threads and processes: two concurrent calls never both
        update the same document out of a state the query matched.
        """
        ...

    def delete_many(self, collection: str, query: Query) -> int:
        """Delete every match; return how many were deleted."""
        ...

    def create_index(self, collection: str, keys: SortSpec, *, unique: bool = False) -> None:
        """Ensure an index exists (idempotent).  A hint: stores may ignore it."""
        ...

    def tail(self, collection: str, query: Query | None = None, *, after: int = 0, limit: int = 0) -> Iterator[Document]:
        """Matching documents with ``_seq > after`` in ``_seq`` order, for follow mode (no rescans)."""
        ...

    def last_seq(self, collection: str) -> int:
        """The largest ``_seq`` ever assigned in ``collection`` (0 when empty)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class BlobStore(Protocol):
    """Bytes by key.  Keys are ``[A-Za-z0-9._/-]+`` without ``..`` or a leading ``/``."""

    uri: StoreURI
    capabilities: BlobCapabilities

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` under ``key``.  Writing an existing key with the same bytes is a no-op
        (keys are content addresses), and a reader never sees a partial blob."""
        ...

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of the blob (``end=None``: to the end); ``BlobNotFound`` if absent."""
        ...

    def get_many(self, requests: Iterable[BlobRequest]) -> Iterator[bytes]:
        """Fetch many blobs or ranges concurrently (bounded in-flight), yielding in request order.

        A missing key raises ``BlobNotFound`` when its turn comes.
        """
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove a blob; deleting a missing key is not an error."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix``, in any order, paging as needed."""
        ...

    def size(self, key: str) -> int:
        """Length in bytes; ``BlobNotFound`` if absent."""
        ...

    def close(self) -> None: ...
