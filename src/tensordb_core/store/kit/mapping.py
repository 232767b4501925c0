"""Read-only views of files that are never changed in place: the embedded file store's and the disk cache's chunks.

Why one module: both keep content-addressed chunk files that are only ever
written under a temporary name and renamed into place, or unlinked, so a
mapping keeps the bytes it was made over, whole, until its last view is gone.
What makes that safe is the same in both: map read-only, never past the
file's size measured now (a short file gives a short view, never SIGBUS), and
read instead where the file system cannot map.
"""

from __future__ import annotations

import mmap
import os
import threading
from collections import OrderedDict

#: Read-only, prefaulted where the OS can (Linux): the pages are in the page cache after a first read, and
#: populating them in one call is cheaper than a page fault per 4 KiB as a decoder walks them.
MAP_ARGS: dict[str, int] = (
    {"flags": mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0), "prot": mmap.PROT_READ}
    if hasattr(mmap, "PROT_READ") else {"access": mmap.ACCESS_READ})

#: Bytes of chunk files a stream keeps mapped whole (address space and page tables; the pages are the page
#: cache's): a local store's (``stream/mapped.py``) or a disk cache's (``stream/disk_cache.py``).
MAPPED_BYTES = 1 << 30


class KeptViews:
    """Whole chunk files' views by key, the least recently used dropped past ``max_bytes`` (thread-safe).

    Why: a stream reads the same chunks every epoch, and mapping a file again
    fills its page-table entries again (``MAP_POPULATE``); a kept whole-file
    view is sliced instead.  A view larger than the bound is not kept.
    """

    def __init__(self, max_bytes: int = MAPPED_BYTES) -> None:
        self.max_bytes = max_bytes
        self._views: OrderedDict[str, memoryview] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> memoryview | None:
        """The kept view of ``key`` (now the most recently used), or None."""
        with self._lock:
            view = self._views.get(key)
            if view is not None:
                self._views.move_to_end(key)
            return view

    def keep(self, key: str, view: memoryview) -> None:
        with self._lock:
            if key in self._views or view.nbytes > self.max_bytes:
                return
            self._views[key] = view
            self._held += view.nbytes
            while self._held > self.max_bytes:
                self._held -= self._views.popitem(last=False)[1].nbytes

    @property
    def held(self) -> int:
        """Bytes of the views kept now."""
        return self._held

    def clear(self) -> None:
        """Let go of every kept view (a closed stream: a deleted file's space is freed once no view holds it)."""
        with self._lock:
            self._views.clear()
            self._held = 0


def map_range(fd: int, start: int, stop: int) -> memoryview:
    """A read-only view of bytes ``[start, stop)`` of the open file ``fd`` (``stop`` at most its size now)."""
    if start >= stop:
        return memoryview(b"")
    aligned = start - start % mmap.ALLOCATIONGRANULARITY
    try:
        mapped = mmap.mmap(fd, stop - aligned, offset=aligned, **MAP_ARGS)
    except (OSError, ValueError):  # a file system without mmap (some FUSE mounts): read it instead
        return memoryview(pread_exact(fd, stop - start, start))
    return memoryview(mapped)[start - aligned:]


def pread_exact(fd: int, n: int, offset: int) -> bytes:
    """Read exactly ``n`` bytes at ``offset`` (fewer only at end of file); loops over short reads."""
    if not hasattr(os, "pread"):  # pragma: no cover - Windows
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, n)
    first = os.pread(fd, n, offset)
    if len(first) == n or not first:
        return first
    parts = [first]
    got = len(first)
    while got < n:
        more = os.pread(fd, n - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


__all__ = ["MAPPED_BYTES", "MAP_ARGS", "KeptViews", "map_range", "pread_exact"]
