"""Chunk files mapped whole, once per stream: later epochs slice the mappings instead of mapping again.

Why: on a store that maps files (``BlobCapabilities.map``), each window's
requests were fresh mappings, and ``MAP_POPULATE`` fills a page-table entry
for every 4 KiB mapped, every epoch: 60-80 ms an epoch of 20k small
samples (3-4 µs a sample, on the window threads beside lz4) and ~35 µs a
147 KiB sample, measured on the benchmark's host.  A chunk never changes
(content-addressed), so a stream keeps the whole file's view once a request
covers a quarter of it or more, and answers every later range of that chunk
by slicing it.  Sparse requests (a filtered read's few rows of a chunk) are
mapped as asked, as before: mapping the whole file would read pages nobody
asked for from a cold disk (the quarter bounds that, as it bounds
``FetchPlan.joined``).

Bounded: at most ``max_bytes`` of files stay mapped (least recently used
dropped; a view still held by a window keeps its mapping alive until the
window is done).  A mapping keeps a deleted chunk's pages until it is
dropped, as any view does (``MapsBlobs``), so a stream's bound is also the
most garbage collection can wait on.
"""

from __future__ import annotations

from typing import Any

from tensordb_core.store.kit.mapping import MAPPED_BYTES, KeptViews
from tensordb_core.store.protocols import MapsBlobs
from tensordb_core.stream.fetch import MAP_FILL

#: A request covering at least this fraction of its chunk file maps (and keeps) the whole file: the bound on
#: pages mapped but not asked for that ``FetchPlan.joined`` already accepts (``fetch.MAP_FILL``).
WHOLE_FILL = MAP_FILL


class MappedChunks:
    """A blob store whose ``map`` keeps dense chunks' whole-file views (see the module docs); the rest delegates."""

    def __init__(self, blobs: MapsBlobs, max_bytes: int = MAPPED_BYTES) -> None:
        self._blobs = blobs
        self.max_bytes = max_bytes
        self._views = KeptViews(max_bytes)
        self._sizes: dict[str, int] = {}  # chunk files never change size: asked once each

    def __getattr__(self, name: str) -> Any:
        return getattr(self._blobs, name)

    def map(self, key: str, start: int = 0, end: int | None = None) -> memoryview:
        """Bytes ``[start, end)`` of ``key`` (slice semantics), from its kept whole-file view where there is one."""
        whole = self._views.get(key)
        if whole is None and self._dense(key, start, end):
            whole = self._blobs.map(key)
            self._views.keep(key, whole)
        if whole is not None:
            return whole[start:end]
        return self._blobs.map(key, start, end)

    def clear(self) -> None:
        """Let go of every kept view (a closed stream: its files may be deleted and their space freed)."""
        self._views.clear()

    def _dense(self, key: str, start: int, end: int | None) -> bool:
        if end is None:
            return start == 0
        size = self._sizes.get(key)
        if size is None:
            size = self._sizes[key] = self._blobs.size(key)
        return end - start >= WHOLE_FILL * size and size <= self.max_bytes


__all__ = ["WHOLE_FILL", "MappedChunks"]
