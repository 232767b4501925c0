"""Follow a collection in insertion order: every new document once, none skipped, no rescans.

Why not just ``tail(after=max seen)``: on a server with concurrent writers
(MongoDB), ``_seq`` is *allocated* before the documents are *committed*.
Writer A may take ``_seq`` 1–100, writer B 101–200, and B commit first; a
follower that saw 101–200 and moved its position to 200 would never see A's
documents.  The :class:`Follower` therefore advances its durable position
only to a *watermark*: the store's ``last_seq`` as observed ``grace_s``
seconds ago — every range allocated before then has had ``grace_s`` to
commit.  Documents above the watermark are re-read on each poll (a short
window) and de-duplicated by ``_seq``.

Each store declares its grace in its capabilities
(:class:`~tensordb_core.store.protocols.IndexCapabilities`): stores whose
commit order equals allocation order (SQLite, memory) declare 0 and pay
nothing; MongoDB declares its ``tail_grace_s`` setting.  A writer stalled longer than the grace between
allocating and committing can still be missed — set the grace above your
worst write latency.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from tensordb_core.errors import BackendUnavailable
from tensordb_core.store.kit.cursors import closing_cursor
from tensordb_core.store.protocols import BlobStore, Document, IndexStore


def tail_grace(index: IndexStore) -> float:
    """How long this store may take between allocating a ``_seq`` and committing it (its declared capability)."""
    return float(index.capabilities.tail_grace_s)


class Watermark:
    """The highest ``_seq`` known to be settled: every range at or below it was committed (or abandoned).

    It is the store's ``last_seq`` as observed ``grace_s`` ago (``last_seq`` now
    when the store's grace is 0).  Readers that must agree on an order — stream
    ranks tailing the same collection — read only up to it.
    """

    def __init__(self, index: IndexStore, collection: str, *, floor: int = 0, grace_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic, known: int = 0) -> None:
        self.index, self.collection = index, collection
        self.value = int(floor)
        self.grace_s = tail_grace(index) if grace_s is None else float(grace_s)
        self._clock = clock
        self._observed: deque[tuple[float, int]] = deque()  # (when, last_seq then)
        self._known = int(known)  # the highest _seq known to exist: the store's last_seq can never fall below it

    def settled(self) -> int:
        """Observe the store and return the current watermark (never decreasing).

        ``last_seq`` only grows while a collection exists; one below a ``_seq``
        already seen (``known``, or an earlier observation) means the
        collection was dropped or the store replaced underneath the reader,
        which would otherwise wait in silence for documents that cannot come:
        :class:`~tensordb_core.errors.BackendUnavailable`.
        """
        latest = self.index.last_seq(self.collection)
        if latest < self._known:
            raise BackendUnavailable(
                f"the {self.collection!r} collection's last _seq is {latest}, below the {self._known} already read: "
                "it was dropped or its store deleted or replaced underneath this reader; reconnect and start again")
        self._known = latest
        if self.grace_s <= 0:
            self.value = max(self.value, latest)
            return self.value
        now = self._clock()
        self._observed.append((now, latest))
        while self._observed and now - self._observed[0][0] >= self.grace_s:
            self.value = max(self.value, self._observed.popleft()[1])
        return self.value


class StoreWatch:
    """While a reader waits for new documents, checks now and then that the data it already read still exists.

    Why: a store deleted underneath a follower often keeps answering — an
    unlinked SQLite file stays readable through its open connection, a
    vanished directory of blobs just holds no new chunks — so an idle
    follower would poll forever in silence.  :meth:`check` (at most every
    ``every_s`` seconds) looks for the chunk of the newest sample read
    (:meth:`remember`); when it is gone while the index still lists the
    sample, the warehouse is damaged or gone and the reader gets
    :class:`~tensordb_core.errors.BackendUnavailable` instead of waiting.  A
    sample that was deleted (document and chunk) is forgotten, not an error.
    Store failures during the check come through the retrying wrapper, so
    they too end in a typed error within its budget.
    """

    def __init__(self, index: IndexStore, blobs: BlobStore, collection: str, *, every_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.index, self.blobs, self.collection = index, blobs, collection
        self.every_s = float(every_s)
        self._clock = clock
        self._last_check = clock()
        self._probe: tuple[str, str] | None = None  # (document id, chunk key)

    def remember(self, doc_id: str, chunk_key: str) -> None:
        """The newest sample read and the blob that holds it (what :meth:`check` looks for)."""
        self._probe = (doc_id, chunk_key)

    def check(self) -> None:
        """Raise ``BackendUnavailable`` if the remembered sample's chunk vanished while its document remains."""
        now = self._clock()
        if self._probe is None or now - self._last_check < self.every_s:
            return
        self._last_check = now
        doc_id, key = self._probe
        if self.blobs.exists(key):
            return
        with closing_cursor(self.index.find(self.collection, {"_id": doc_id}, projection={"_id": 1}, limit=1)) as cursor:
            listed = any(True for _ in cursor)
        if not listed:
            self._probe = None  # deleted with its chunk: an ordinary deletion
            return
        raise BackendUnavailable(
            f"chunk {key} of sample {doc_id} is gone from the blob store while the index still lists the sample: "
            "the warehouse was deleted or emptied underneath this follow stream; reconnect to a live warehouse")


class Follower:
    """Yields each document matching ``query`` inserted after ``after``, in ``_seq`` order, exactly once.

    ``position`` is the safe resume point (everything at or below it was
    delivered); ``pending_seqs`` are the deliveries above it — together they
    are the whole resumable state.
    """

    def __init__(self, index: IndexStore, collection: str, query: Mapping[str, Any] | None = None, *,
                 after: int = 0, delivered: set[int] | None = None, grace_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.index, self.collection, self.query = index, collection, dict(query or {})
        self.position = int(after)
        self.pending_seqs: set[int] = set(delivered or ())
        self.watermark = Watermark(index, collection, floor=self.position, grace_s=grace_s, clock=clock)
        self.grace_s = self.watermark.grace_s

    def _advance_watermark(self) -> None:
        safe = self.watermark.settled()
        if safe > self.position:
            self.position = safe
            self.pending_seqs = {s for s in self.pending_seqs if s > safe}

    def poll(self, limit: int = 0) -> list[Document]:
        """New matching documents since the last poll (possibly none)."""
        if self.grace_s <= 0:
            docs = list(self.index.tail(self.collection, self.query, after=self.position, limit=limit))
            if docs:
                self.position = docs[-1]["_seq"]
            return docs
        self._advance_watermark()
        fresh = [d for d in self.index.tail(self.collection, self.query, after=self.position)
                 if d["_seq"] not in self.pending_seqs]
        if limit:
            fresh = fresh[:limit]
        self.pending_seqs.update(d["_seq"] for d in fresh)
        return fresh

    def state(self) -> dict[str, Any]:
        return {"after": self.position, "delivered": sorted(self.pending_seqs)}
