"""Atomic, idempotent imports: an ``import_data`` / ``import_records`` call becomes visible whole or not at all.

Why: a killed import used to leave the chunks it had indexed so far (5 of 35
SIGKILL trials did), and retrying it duplicated them.  Now an import writes
all its chunks first (each under a write intent, held until the end, so gc
keeps them) and only then makes its documents visible in one step:

* stores whose ``insert_many`` is all or nothing (``atomic_insert_many``:
  SQLite, memory) insert every document in one call; ``_seq`` is assigned in
  that commit, so followers see the import whole, in order;
* other stores (MongoDB, which writes in batches a killed client can cut)
  insert the documents under a *pending study* (``~pending:<import id>``,
  never a valid study id, so no study's query can see them), then move them
  to the study with one server-side ``update_many``, which completes even if
  the client dies after sending it.  The ``_seq`` of those documents is
  allocated just before they become visible; the gap is the time of that
  insert, which must stay within the store's tail grace (``tail_grace_s``)
  for a follower to see every sample: split imports of millions of samples.

A crashed attempt leaves a pending record in :data:`IMPORTS` (and its hidden
documents): the next attempt with the same key removes them, and gc removes
those of attempts older than its grace.

Idempotency: every document carries ``_import``, the call's import id; with
``key="batch-17"`` that id is derived from the study and the key, so a retry
finds the committed documents and returns their ids (in input order) instead
of importing again.  Samples deleted since are not re-imported.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

from tensordb_core.errors import InvalidArgument
from tensordb_core.store.protocols import new_id
from tensordb_core.store.scope import DATA, StudyScope

#: Pending attempts on stores without atomic ``insert_many``: ``{_id: import id, study, at}``.
IMPORTS = "import_attempts"
#: The ``_study`` of documents not yet committed (``~`` cannot start a study id).
PENDING_PREFIX = "~pending:"


def import_id(scope: StudyScope, key: str | None) -> str:
    """The id an import's documents carry: derived from study and ``key`` (retries find it), else fresh."""
    if key is None:
        return new_id()
    if not isinstance(key, str) or not key or len(key) > 256:
        raise InvalidArgument(f"key must be a non-empty string of at most 256 characters, not {key!r}")
    return "k" + hashlib.sha256(f"{scope.require_writable()}\x00{key}".encode()).hexdigest()[:31]


def committed(scope: StudyScope, iid: str) -> list[str] | None:
    """The ids of the committed import ``iid`` in input order, or None when it never committed."""
    ids = [d["_id"] for d in scope.index.find(DATA, scope.query({"_import": iid}), projection={"_id": 1})]
    return ids or None


def resume(scope: StudyScope, iid: str, key: str | None) -> list[str] | None:
    """Where an import call starts: the ids its first attempt committed (a keyed retry imports nothing, None
    otherwise), after clearing what a crashed attempt of ``iid`` left."""
    if key is not None and (done := committed(scope, iid)) is not None:
        return done
    begin(scope, iid)
    return None


def begin(scope: StudyScope, iid: str) -> None:
    """Clear what a crashed attempt of ``iid`` left (hidden documents, its record) before a new attempt."""
    scope.index.delete_many(DATA, {"_study": PENDING_PREFIX + iid})
    scope.index.delete_many(IMPORTS, {"_id": iid})


def commit(scope: StudyScope, iid: str, docs: Sequence[dict[str, Any]]) -> list[str]:
    """Make ``docs`` visible at once, each stamped with ``_import`` = ``iid``; returns their ids in order."""
    if not docs:
        return []
    for doc in docs:
        doc["_import"] = iid
    study = scope.require_writable()
    if scope.index.capabilities.atomic_insert_many:
        return scope.index.insert_many(DATA, docs)
    scope.index.insert_many(IMPORTS, [{"_id": iid, "study": study, "state": "pending", "at": time.time()}])
    hidden = PENDING_PREFIX + iid
    ids = scope.index.insert_many(DATA, [{**doc, "_study": hidden} for doc in docs])
    scope.index.update_many(DATA, {"_study": hidden}, {"$set": {"_study": study}})  # the commit: one server-side write
    scope.index.delete_many(IMPORTS, {"_id": iid})
    return ids


def collect_crashed(scope_index: Any, grace_s: float) -> int:
    """Remove the hidden documents and records of attempts that began more than ``grace_s`` ago (gc calls it)."""
    removed = 0
    for attempt in scope_index.find(IMPORTS, {"at": {"$lt": time.time() - grace_s}}):
        removed += scope_index.delete_many(DATA, {"_study": PENDING_PREFIX + attempt["_id"]})
        scope_index.delete_many(IMPORTS, {"_id": attempt["_id"]})
    return removed


__all__ = ["IMPORTS", "PENDING_PREFIX", "begin", "collect_crashed", "commit", "committed", "import_id", "resume"]
