"""Which indexes write into a blob store: each index's identity and its marker blob there.

gc can only prove a blob unreferenced by the index it reads, so every index
that writes into a blob store registers there first (a marker blob
``_tensordb/indexes/<index id>``, docs/FORMAT.md), and gc refuses while
another index is registered (warehouse/maintenance.py).  It lives in the store
layer because every blob writer registers: :meth:`StudyScope.writing_blobs`
calls :func:`register_index` before a scope's first blob, whatever the
collection (samples, records, parameters, architectures, artifacts).
"""

from __future__ import annotations

import json
import time
import uuid

from tensordb_core.errors import IntegrityError
from tensordb_core.store.protocols import BlobStore, IndexStore

#: Marker blobs of the indexes that write into a blob store: ``_tensordb/indexes/<index id>`` (docs/FORMAT.md).
OWNERS_PREFIX = "_tensordb/indexes/"
#: The index's own identity: one document ``{_id: "index", id: <32 hex>}``, made on first need, never copied.
IDENTITY = "index_identity"


def index_id(index: IndexStore) -> str:
    """This index's identity (32 hex digits), made once and kept in the index itself.

    Why not its URI: one index is reached by several URIs (relative paths,
    host aliases) and a copy of a warehouse is another index; an id stored
    in the index follows the index, and ``tensordb copy`` does not carry it.
    """
    for _ in range(2):
        found = next(iter(index.find(IDENTITY, {"_id": "index"}, limit=1)), None)
        if found is not None:
            return str(found["id"])
        try:
            index.insert_many(IDENTITY, [{"_id": "index", "id": uuid.uuid4().hex, "at": time.time()}])
        except IntegrityError:  # another process made it first: read theirs
            continue
    found = next(iter(index.find(IDENTITY, {"_id": "index"}, limit=1)))
    return str(found["id"])


def register_index(index: IndexStore, blobs: BlobStore) -> str:
    """Leave this index's marker blob in ``blobs`` (once; cheap after) and return the index id.

    Writers call it before storing their first blob, so a gc reading another
    index over the same blob store sees that it is shared before any of this
    index's blobs could look like orphans to it.
    """
    me = index_id(index)
    key = OWNERS_PREFIX + me
    if not blobs.exists(key):
        where = getattr(index, "uri", None)
        shown = where.redacted() if hasattr(where, "redacted") else None
        blobs.put(key, json.dumps({"index": me, "uri": shown, "at": time.time()}).encode())
    return me


def registered_indexes(blobs: BlobStore) -> set[str]:
    """The ids of every index registered with ``blobs``."""
    return {key[len(OWNERS_PREFIX):] for key in blobs.list(OWNERS_PREFIX) if key.startswith(OWNERS_PREFIX)}


__all__ = ["IDENTITY", "OWNERS_PREFIX", "index_id", "register_index", "registered_indexes"]
