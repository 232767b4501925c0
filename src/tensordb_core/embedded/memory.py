"""An in-process index store for tests and throwaway work, answering queries with the reference evaluator.

Why it exists: unit tests of the layers above (collections, stream, jobs)
need an index store that costs nothing to build and behaves exactly like the
portable contract; this one *is* the reference (:func:`tensordb_core.query.filters.matches`),
so it is also the baseline the conformance suite is read against.

Sharing: ``MemoryIndexStore.named("lab")`` (``memory://lab``) returns the same
store every time within a process, so two ``connect("memory://lab")`` calls see
each other's documents.  ``memory://`` (an empty name) returns a *fresh*,
unshared store each time: tests that ask for no name get isolation.

Thread-safe: one lock guards every read and write, so ``find_one_and_update``
is atomic across threads.  A cursor is a snapshot taken at ``find`` time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tensordb_core.errors import IntegrityError, InvalidQuery
from tensordb_core.query.filters import (
    check_collection,
    check_window,
    compile_projection,
    compile_query,
    compile_update,
    resolve,
    sort_key,
    validate_sort,
)
from tensordb_core.query.values import MISSING, check_document, copy_value, value_key
from tensordb_core.store.kit.cursors import IteratorCursor
from tensordb_core.store.protocols import Document, IndexCapabilities, new_id
from tensordb_core.store.uri import StoreURI


@dataclass
class _Collection:
    docs: dict[str, Document] = field(default_factory=dict)  # by _id, in _seq order
    last_seq: int = 0
    unique: list[list[str]] = field(default_factory=list)  # unique index key paths


class MemoryIndexStore:
    """The IndexStore protocol over dicts in this process, evaluated by the reference evaluator."""

    #: _seq is assigned under the same lock that commits: followers need no grace.
    capabilities = IndexCapabilities(tail_grace_s=0.0)
    _named: ClassVar[dict[str, MemoryIndexStore]] = {}
    _named_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, uri: StoreURI | None = None) -> None:
        self.uri = uri or StoreURI("memory")
        self._lock = threading.RLock()
        self._collections: dict[str, _Collection] = {}

    @classmethod
    def named(cls, name: str, uri: StoreURI | None = None) -> MemoryIndexStore:
        """The process-wide store called ``name``; an empty name gives a fresh, private store."""
        if not name:
            return cls(uri)
        with cls._named_lock:
            store = cls._named.get(name)
            if store is None:
                store = cls._named[name] = cls(uri or StoreURI("memory", path=name))
            return store

    def _coll(self, collection: str) -> _Collection:
        check_collection(collection)
        coll = self._collections.get(collection)
        if coll is None:
            coll = self._collections[collection] = _Collection()
        return coll

    # writes ---------------------------------------------------------------------------------
    def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> list[str]:
        """Insert all or nothing: a duplicate ``_id`` (in the store or the batch) inserts none."""
        checked = [check_document(d, f"document {i}") for i, d in enumerate(docs)]
        with self._lock:
            coll = self._coll(collection)
            ids: list[str] = []
            seen: set[str] = set()
            for doc in checked:
                doc_id = doc.get("_id") or new_id()
                if doc_id in coll.docs or doc_id in seen:
                    raise IntegrityError(f"duplicate _id {doc_id!r} in collection {collection!r}")
                seen.add(doc_id)
                ids.append(doc_id)
            staged = []
            for offset, (doc_id, doc) in enumerate(zip(ids, checked), start=1):
                rest = {k: v for k, v in doc.items() if k != "_id"}
                staged.append({"_id": doc_id, "_seq": coll.last_seq + offset, **rest})
            self._check_unique(collection, coll, staged, replacing=set())
            for doc in staged:
                coll.docs[doc["_id"]] = doc
            coll.last_seq += len(staged)
            return ids

    def update_many(self, collection: str, query: Mapping[str, Any], update: Mapping[str, Any]) -> int:
        pred, apply = compile_query(query), compile_update(update)
        with self._lock:
            coll = self._coll(collection)
            changed = {d["_id"]: apply(d) for d in coll.docs.values() if pred(d)}
            self._check_unique(collection, coll, list(changed.values()), replacing=set(changed))
            coll.docs.update(changed)
            return len(changed)

    def find_one_and_update(
        self,
        collection: str,
        query: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        sort: Any = None,
    ) -> Document | None:
        pred, apply, spec = compile_query(query), compile_update(update), validate_sort(sort)
        with self._lock:
            coll = self._coll(collection)
            candidates = [d for d in coll.docs.values() if pred(d)]
            if not candidates:
                return None
            target = min(candidates, key=lambda d: sort_key(d, spec)) if spec else candidates[0]
            new = apply(target)
            self._check_unique(collection, coll, [new], replacing={new["_id"]})
            coll.docs[new["_id"]] = new
            return copy_value(new)

    def delete_many(self, collection: str, query: Mapping[str, Any]) -> int:
        pred = compile_query(query)
        with self._lock:
            coll = self._coll(collection)
            doomed = [k for k, d in coll.docs.items() if pred(d)]
            for k in doomed:
                del coll.docs[k]
            return len(doomed)

    def create_index(self, collection: str, keys: Sequence[tuple[str, int]], *, unique: bool = False) -> None:
        """Only unique indexes change anything here (they are enforced); the rest are hints."""
        spec = validate_sort(keys)
        if not spec:
            raise InvalidQuery("create_index: give at least one (field, 1 | -1) key")
        with self._lock:
            coll = self._coll(collection)
            if unique:
                paths = [f for f, _ in spec]
                if paths not in coll.unique:
                    self._check_unique(collection, _Collection(unique=[paths]), list(coll.docs.values()), set())
                    coll.unique.append(paths)

    def _check_unique(self, collection: str, coll: _Collection, docs: list[Document], replacing: set[str]) -> None:
        """Refuse documents whose unique-index key equals another document's (missing counts as null)."""
        for paths in coll.unique:
            taken = {_unique_key(d, paths) for k, d in coll.docs.items() if k not in replacing}
            for doc in docs:
                key = _unique_key(doc, paths)
                if key in taken:
                    raise IntegrityError(f"unique index on {paths} in collection {collection!r}: duplicate key")
                taken.add(key)

    # reads ----------------------------------------------------------------------------------
    def find(
        self,
        collection: str,
        query: Mapping[str, Any] | None = None,
        *,
        sort: Any = None,
        limit: int = 0,
        skip: int = 0,
        projection: Mapping[str, int] | None = None,
        batch_size: int | None = None,
    ) -> IteratorCursor:
        pred, spec, project = compile_query(query), validate_sort(sort), compile_projection(projection)
        check_window(limit, skip, batch_size)
        with self._lock:
            hits = [d for d in self._coll(collection).docs.values() if pred(d)]
        if spec:
            hits.sort(key=lambda d: sort_key(d, spec))
        hits = hits[skip:]
        if limit:
            hits = hits[:limit]
        return IteratorCursor([project(d) for d in hits])

    def count(self, collection: str, query: Mapping[str, Any] | None = None) -> int:
        pred = compile_query(query)
        with self._lock:
            return sum(1 for d in self._coll(collection).docs.values() if pred(d))

    def tail(
        self, collection: str, query: Mapping[str, Any] | None = None, *, after: int = 0, limit: int = 0
    ) -> Iterator[Document]:
        pred = compile_query(query)
        check_window(limit, 0, None)
        if type(after) is not int or after < 0:
            raise InvalidQuery(f"tail(after=...) takes the last _seq seen (an int >= 0), got {after!r}")
        with self._lock:
            hits = [copy_value(d) for d in self._coll(collection).docs.values() if d["_seq"] > after and pred(d)]
        return iter(hits[:limit] if limit else hits)

    def last_seq(self, collection: str) -> int:
        with self._lock:
            return self._coll(collection).last_seq

    def close(self) -> None:
        """Nothing to release: a named store lives as long as the process."""

    def __repr__(self) -> str:
        return f"MemoryIndexStore({self.uri.redacted()!r})"


def _unique_key(doc: Document, paths: list[str]) -> tuple:
    return tuple(tuple(value_key(None if v is MISSING else v) for v in resolve(doc, p.split("."))) for p in paths)


