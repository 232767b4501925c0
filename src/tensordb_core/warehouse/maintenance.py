"""``tensordb check`` and ``tensordb gc``: find dangling references, orphan and corrupted blobs.

Blobs are shared by every study of a warehouse (content addresses dedupe
them), so both commands look at the whole warehouse.

Why gc is safe while writers run: a writer records a write intent, then
stores the blob, then inserts the documents, then removes the intent
(:meth:`StudyScope.writing_blobs`).  gc lists blobs first, reads intents
second and documents last; any blob it listed was either referenced by a
document it reads or announced by an intent it reads.  Intents older than
the grace period belong to crashed writers and are ignored (and cleared).

One more race: blobs are content addresses, so a writer storing bytes that
an orphan already holds writes nothing — its blob can be the very orphan gc
decided to delete a moment before the writer's intent appeared.  So gc
deletes in batches of *mark, look again, delete, unmark*: it records a
deletion marker for each key, re-reads intents and references for those keys,
deletes the ones still unclaimed and removes the markers; a writer waits
until no marker for its key is left, then stores the bytes again if they are
gone (:meth:`StudyScope._settle`).

gc can only prove a blob unreferenced by the index it reads.  Two warehouses
may share one blob store (``blobs=file:///blobs`` for two SQLite indexes): each
then sees the other's chunks as orphans.  So every index that writes into a
blob store registers there (:func:`register_index`: a marker blob
``_tensordb/indexes/<index id>``, before its first blob), and gc refuses
(:class:`SharedBlobStore`) while another index is registered, unless forced.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tensordb_core.errors import BlobNotFound, IntegrityError, InvalidArgument, UnsafeOperation
from tensordb_core.store.blobkit import verify_content
from tensordb_core.store.owners import IDENTITY, OWNERS_PREFIX, index_id, register_index, registered_indexes  # noqa: F401 - re-exported
from tensordb_core.store.protocols import BlobStore, IndexStore
from tensordb_core.store.scope import DELETION_STALE_S, DELETIONS, INTENTS, MEMBERS
from tensordb_core.warehouse.commits import PENDING_PREFIX, collect_crashed
from tensordb_core.warehouse.compaction import COMPACT_BELOW, compact
from tensordb_core.warehouse.datasets import collect_orphan_members

#: Where each collection keeps blob keys (a path through an array, like ``parts.key``, names every element's).
BLOB_FIELDS: dict[str, tuple[str, ...]] = {
    "data": ("_x.key", "_y.key", "_chunk.key"),  # _chunk: the chunk of a record's binary fields
    MEMBERS: ("_x.key", "_y.key", "_chunk.key"),  # dataset versions' pinned copies: their chunks stay live
    "params": ("_blob.key",),
    "models": ("_code_blob",),
    "artifacts": ("parts.key",),
}
DEFAULT_GRACE_S = 3600.0
#: Keys gc marks, re-checks and deletes at a time.
DELETE_BATCH = 500


def _get(doc: Mapping[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def keys_at(doc: Mapping[str, Any], path: str) -> list[str]:
    """The blob keys at ``path`` in ``doc``, looking into every element of an array on the way."""
    values: list[Any] = [doc]
    for part in path.split("."):
        values = [v.get(part) for v in values if isinstance(v, Mapping)]
        values = [e for v in values for e in (v if isinstance(v, list) else [v])]
    return [v for v in values if isinstance(v, str)]


def referenced_keys(index: IndexStore) -> Iterator[tuple[str, str, str]]:
    """Every ``(collection, doc_id, blob_key)`` a document references.

    The hidden documents of an uncommitted import (warehouse/commits.py) do not
    count: while the import runs its chunks are held by its write intents,
    and once it crashed they are garbage.
    """
    for collection, paths in BLOB_FIELDS.items():
        projection = {p.split(".")[0]: 1 for p in paths} | {"_study": 1}
        for doc in index.find(collection, {}, projection=projection, batch_size=5000):
            if str(doc.get("_study", "")).startswith(PENDING_PREFIX):
                continue
            for path in paths:
                for key in keys_at(doc, path):
                    yield collection, doc["_id"], key


@dataclass
class CheckReport:
    """What ``tensordb check`` found."""

    documents: int = 0
    blobs: int = 0
    dangling: list[tuple[str, str, str]] = field(default_factory=list)  # (collection, doc id, missing key)
    orphans: list[str] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.dangling or self.corrupted)


def check(index: IndexStore, blobs: BlobStore, *, verify: bool = True, grace_s: float = DEFAULT_GRACE_S,
          progress: Callable[[int], None] | None = None) -> CheckReport:
    """Cross-check documents and blobs; with ``verify`` re-hash every referenced blob (``progress(1)`` after each)."""
    grace_s = check_grace(grace_s)
    report = CheckReport()
    stored = _stored_blobs(blobs)
    report.blobs = len(stored)
    recent = _live_intents(index, grace_s)
    refs: dict[str, list[tuple[str, str]]] = {}
    for collection, doc_id, key in referenced_keys(index):
        refs.setdefault(key, []).append((collection, doc_id))
    report.documents = sum(len(v) for v in refs.values())
    for key, owners in refs.items():
        if key not in stored:
            report.dangling += [(c, d, key) for c, d in owners]
        elif verify:
            try:
                verify_content(key, blobs.get(key))
            except IntegrityError:
                report.corrupted.append(key)
            except BlobNotFound:
                report.dangling += [(c, d, key) for c, d in owners]
        if progress is not None:
            progress(1)
    report.pending = sorted(stored & recent - refs.keys())
    report.orphans = sorted(stored - refs.keys() - recent)
    return report


def _live_intents(index: IndexStore, grace_s: float, keys: list[str] | None = None) -> set[str]:
    query: dict[str, Any] = {"at": {"$gte": time.time() - grace_s}}
    if keys is not None:
        query["key"] = {"$in": keys}
    return {d["key"] for d in index.find(INTENTS, query)}


def _referenced_among(index: IndexStore, keys: list[str]) -> set[str]:
    """Which of ``keys`` some document references (one query per blob field)."""
    wanted, found = set(keys), set()
    for collection, paths in BLOB_FIELDS.items():
        for path in paths:
            for doc in index.find(collection, {path: {"$in": keys}}, projection={path.split(".")[0]: 1}):
                found.update(key for key in keys_at(doc, path) if key in wanted)
    return found


class SharedBlobStore(UnsafeOperation):
    """gc refused: other indexes registered with the blob store keep blobs this index cannot see."""


def _stored_blobs(blobs: BlobStore) -> set[str]:
    """Every blob key but the owners' markers (never orphans: gc and check leave them alone)."""
    return {key for key in blobs.list("") if not key.startswith(OWNERS_PREFIX)}


def _delete_batch(index: IndexStore, blobs: BlobStore, keys: list[str], grace_s: float) -> list[str]:
    """Mark, look again, delete what is still unclaimed, unmark (see the module docs)."""
    now = time.time()
    markers = index.insert_many(DELETIONS, [{"key": key, "at": now} for key in keys])
    try:
        keep = _live_intents(index, grace_s, keys) | _referenced_among(index, keys)
        gone = [key for key in keys if key not in keep]
        for key in gone:
            blobs.delete(key)
    finally:
        index.delete_many(DELETIONS, {"_id": {"$in": markers}})
    return gone


def check_grace(grace_s: Any) -> float:
    """``grace_s`` as seconds, or :class:`InvalidArgument` for a negative or non-numeric value."""
    if isinstance(grace_s, bool) or not isinstance(grace_s, (int, float)) or not grace_s >= 0 \
            or grace_s == float("inf"):
        raise InvalidArgument(f"grace must be a finite number of seconds >= 0, not {grace_s!r}")
    return float(grace_s)


def gc(index: IndexStore, blobs: BlobStore, *, grace_s: float = DEFAULT_GRACE_S, dry_run: bool = False,
       force: bool = False, compact_below: float = COMPACT_BELOW,
       progress: Callable[[int], None] | None = None) -> list[str]:
    """Delete blobs no document references and no live writer announced; returns the deleted keys.

    First it clears the hidden documents of imports that died more than
    ``grace_s`` ago (warehouse/commits.py) and compacts chunks whose live
    bytes are under ``compact_below`` of their size (warehouse/compaction.py;
    0 turns it off; the old chunks then wait out ``grace_s`` for readers).
    ``progress(n)`` is told of every ``n`` chunks compacted or blobs deleted.

    Refuses with :class:`SharedBlobStore` (before listing anything) when
    another index is registered with ``blobs``: its blobs are unreferenced
    here but not unreferenced.  ``force=True`` (``tensordb gc --force``) is for
    a store whose other indexes are gone; it deletes their blobs too.
    """
    grace_s = check_grace(grace_s)
    if isinstance(compact_below, bool) or not isinstance(compact_below, (int, float)) or not 0 <= compact_below <= 1:
        raise InvalidArgument(f"compact_below must be a fraction between 0 and 1, not {compact_below!r}")
    me = register_index(index, blobs)
    others = registered_indexes(blobs) - {me}
    if others and not force:
        shown = ", ".join(sorted(others)[:3]) + (", ..." if len(others) > 3 else "")
        raise SharedBlobStore(
            f"gc refused: this blob store is shared with {len(others)} other index(es) ({shown}), whose blobs this "
            "index cannot see and would delete as orphans. Run gc from a warehouse that owns its blob store alone; "
            "if those indexes are gone, run `tensordb gc --force` (force=True) or delete their marker blobs "
            f"{OWNERS_PREFIX}<id> first.")
    if not dry_run:
        collect_crashed(index, grace_s)  # the hidden documents of imports that died more than grace_s ago
        collect_orphan_members(index)  # members of versions whose drop died half-way
        if compact_below > 0:
            compact(index, blobs, below=compact_below, progress=progress)
    stored = _stored_blobs(blobs)          # 1. blobs
    announced = _live_intents(index, grace_s)  # 2. intents
    referenced = {key for _, _, key in referenced_keys(index)}  # 3. documents
    doomed = sorted(stored - announced - referenced)
    if dry_run:
        return doomed
    deleted: list[str] = []
    for start in range(0, len(doomed), DELETE_BATCH):
        batch = _delete_batch(index, blobs, doomed[start : start + DELETE_BATCH], grace_s)
        deleted += batch
        if progress is not None:
            progress(len(batch))
    index.delete_many(INTENTS, {"at": {"$lt": time.time() - grace_s}})
    index.delete_many(DELETIONS, {"at": {"$lt": time.time() - DELETION_STALE_S}})  # a crashed gc's markers
    return deleted
