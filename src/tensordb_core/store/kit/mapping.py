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

#: Read-only, prefaulted where the OS can (Linux): the pages are in the page cache after a first read, and
#: populating them in one call is cheaper than a page fault per 4 KiB as a decoder walks them.
MAP_ARGS: dict[str, int] = (
    {"flags": mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0), "prot": mmap.PROT_READ}
    if hasattr(mmap, "PROT_READ") else {"access": mmap.ACCESS_READ})

#: Bytes of chunk files a stream keeps mapped whole (address space and page tables; the pages are the page
#: cache's): a local store's (``stream/mapped.py``) or a disk cache's (``stream/disk_cache.py``).
MAPPED_BYTES = 1 << 30


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


__all__ = ["MAPPED_BYTES", "MAP_ARGS", "map_range", "pread_exact"]
