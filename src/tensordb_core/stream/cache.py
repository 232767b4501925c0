"""A byte-bounded LRU cache of raw chunk bytes, shared by a stream's fetch threads.

Why: a training run reads the same chunks every epoch.  When the selected data
fits in memory, keeping the *stored* (compressed) chunk bytes saves every
request after the first epoch, while decoding stays per read so the cache
holds the compact form.  It is off by default (``cache_bytes=0``) because on
huge data an LRU over a permuted epoch order only costs memory.

Guarantee: the bytes held never exceed ``capacity`` (a value larger than the
capacity is simply not stored).  Entries are immutable ``bytes``, so a reader
holding one while it is evicted keeps a valid object.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class CacheStats:
    """A consistent snapshot of the cache counters."""

    capacity: int
    bytes: int
    entries: int
    hits: int
    misses: int
    evictions: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class ChunkCache:
    """Thread-safe LRU of ``key -> bytes`` bounded by the total length of the values."""

    def __init__(self, capacity: int) -> None:
        if not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"cache capacity must be a non-negative number of bytes, not {capacity!r}")
        self.capacity = capacity
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._hits = self._misses = self._evictions = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        """The cached value (now most recently used), or ``None``; counts a hit or a miss."""
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self._misses += 1
                return None
            self._items.move_to_end(key)
            self._hits += 1
            return value

    def put(self, key: Hashable, value: bytes) -> bool:
        """Store ``value`` unless it alone exceeds the capacity; evict least recently used entries to fit.

        Returns whether the value is now cached.
        """
        size = len(value)
        if size > self.capacity:
            return False
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            while self._items and self._bytes + size > self.capacity:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted)
                self._evictions += 1
            self._items[key] = value
            self._bytes += size
            return True

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes currently held (always ``<= capacity``)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self.capacity, self._bytes, len(self._items), self._hits, self._misses, self._evictions)

    def __repr__(self) -> str:
        s = self.stats()
        return f"ChunkCache({s.bytes}/{s.capacity} bytes, {s.entries} entries, {s.hits} hits, {s.misses} misses)"
