"""Encode a chunk's arrays on a few threads: lz4 compresses with the GIL released.

Why: samples are stored as LZ4 HC frames (:data:`tensordb_core.format.codec.LZ4_LEVEL`),
which decode faster and store smaller than fast lz4 but compress ~4x slower
(~110 MB/s a core on the benchmark's 12 KiB images), and an import compressed
a chunk's samples one after another on one core.  python-lz4 releases the
GIL while it compresses (2,000 samples of 12 KiB: 51 ms on one thread, 34 on
two, on two cores), so a chunk's arrays are cut into contiguous shares, one
per thread, the calling thread taking the first; the results keep the
arrays' order, so the chunk's bytes are the same whatever the thread count.

Fork safety: a pool made before ``os.fork`` has no threads in the child (a
torch loader worker, a multiprocessing writer); the child makes its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from itertools import pairwise
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Arrays whose raw bytes add up to less than this are encoded on the calling thread (a share costs a hand-off).
SHARED_FROM_BYTES = 1 << 20
#: At most this many threads encode one chunk (the calling one included).
MAX_THREADS = 8

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def encode_threads() -> int:
    """Threads a chunk is encoded on: the cores this process may run on, at most :data:`MAX_THREADS`."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_THREADS, cores))


def map_in_shares(fn: Callable[[T], R], items: Sequence[T], nbytes: int) -> list[R]:
    """``[fn(x) for x in items]``, computed in contiguous shares on the encode threads when ``nbytes`` (the
    items' raw size) is worth it; an exception from any share is raised here, after every share ended."""
    threads = min(encode_threads(), len(items))
    if threads < 2 or nbytes < SHARED_FROM_BYTES:
        return [fn(x) for x in items]
    bounds = [len(items) * i // threads for i in range(threads + 1)]
    pool = _shared_pool()
    shares = [pool.submit(_share, fn, items, a, b) for a, b in pairwise(bounds[1:])]
    try:
        results = _share(fn, items, 0, bounds[1])
    finally:
        wait(shares)  # no share still reads ``items`` once this returns or raises
    for share in shares:
        results += share.result()  # raises the first failing share's exception
    return results


def _share(fn: Callable[[T], R], items: Sequence[T], start: int, end: int) -> list[R]:
    return [fn(items[i]) for i in range(start, end)]


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=MAX_THREADS - 1, thread_name_prefix="tensordb-encode")
        return _pool


def _forget_pool() -> None:
    """In a forked child: the parent's pool has no threads here."""
    global _pool, _lock
    _pool, _lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)

__all__ = ["MAX_THREADS", "SHARED_FROM_BYTES", "encode_threads", "map_in_shares"]
