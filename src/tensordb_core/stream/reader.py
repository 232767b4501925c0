"""The threads that read a stream's windows, ``ahead`` at a time: fetch, then check.

Why a module of its own: it joins two stages that know nothing of threads,
:func:`tensordb_core.stream.fetch.fetch_window` (the reads and the crc32
check) and :func:`tensordb_core.stream.unpack.check_frames` (whether small
samples' lz4 frames may be decoded a batch at a time), and runs them off the
engine's fetch thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from tensordb_core.store.protocols import BlobStore
from tensordb_core.stream.cache import ChunkCache
from tensordb_core.stream.carry import ChunkCarry
from tensordb_core.stream.fetch import BufferPool, Window, fetch_window
from tensordb_core.stream.refs import FrozenRefs
from tensordb_core.stream.unpack import check_frames, may_unpack


class WindowReader:
    """Reads windows on threads of its own, ``ahead`` at a time: the next window's requests go out while the
    one before is still in flight.

    Why: the stream's fetch thread read one window, then the next.  Against an
    object store a window is a round of requests as long as its slowest, and
    a 400-sample remote epoch was three rounds end to end (S3 later epochs
    5-6k samples/s; the old two-window order 10k).  Futures are handed on in
    window order, so batches keep theirs.
    """

    def __init__(self, blobs: BlobStore, cache: ChunkCache | None, stats: Any, pool: BufferPool | None,
                 verify: bool, threads: int) -> None:
        self.args = (blobs, cache, stats, pool, verify)
        self.threads = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="tensordb-window")
        #: The epoch's chunks read once for several windows (stream/carry.py), set by the engine per epoch.
        self.carry: ChunkCarry | None = None
        self._idle = threading.Condition()
        self._pending = 0

    def submit(self, refs: FrozenRefs, rows: np.ndarray, done: Callable[[FrozenRefs], None] | None = None
               ) -> Future[Window]:
        """Start reading ``rows`` of ``refs``; ``done(refs)`` runs once read (and checked)."""
        blobs, cache, stats, pool, verify = self.args
        claim = self.carry.claim(refs, rows) if self.carry is not None else None  # here: in window order
        with self._idle:
            self._pending += 1

        def read() -> Window:
            try:
                window = fetch_window(blobs, refs, rows, cache, stats, pool, verify and may_unpack(refs), claim)
                window.frame_bytes = check_frames(window, verify)
                if window.frame_bytes:
                    stats.add(unpacked_windows=1)
                if done is not None:
                    done(refs)
                return window
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

        return self.threads.submit(read)

    def wait_idle(self, stop: threading.Event) -> bool:
        """Wait until every submitted window is read; False when ``stop`` is set first."""
        with self._idle:
            while self._pending and not stop.is_set():
                self._idle.wait()
        return not stop.is_set()

    def stop(self) -> None:
        """Cancel the reads not started and wake :meth:`wait_idle` (whose caller's ``stop`` is set by now)."""
        self.threads.shutdown(wait=False, cancel_futures=True)
        if self.carry is not None:
            self.carry.close()  # a read waiting for a chunk a cancelled read would have read
        with self._idle:
            self._idle.notify_all()


__all__ = ["WindowReader"]
