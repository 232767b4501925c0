"""Read what a window of rows needs: the stream's I/O stage (cache, pooled ``read_into`` or ``get_many``).

Why a stage of its own: reads are the one part of the pipeline that waits,
so they run on their own thread and hand whole *windows* (rows plus the bytes
that hold them) to the decoder.  A window's requests come from
:func:`tensordb_core.stream.plan.plan_fetch`; where the store declares
``read_into`` (:class:`~tensordb_core.store.protocols.BlobCapabilities`) and no
cache needs immutable bytes, chunks are read into reused buffers
(:class:`BufferPool`); where it declares ``map`` (a local file store), they
are not read at all: the window holds read-only mapped views of the chunk
files (one per chunk where its rows fill a quarter of their span:
:meth:`~tensordb_core.stream.plan.FetchPlan.joined`), and the decoder copies
each sample once, from the page cache into its batch.  The fetch thread
also crc32s each segment of small samples right after its read (it would
otherwise wait on I/O, and a window decoded a batch at a time must be
checked first), so the decode threads skip that pass; large samples are
checked by the decoder (``unpack.may_unpack`` says why).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from typing import Any, cast

import numpy as np

from tensordb_core.errors import BlobNotFound
from tensordb_core.format.checksums import crc32
from tensordb_core.store.protocols import BlobStore, MapsBlobs
from tensordb_core.stream.cache import ChunkCache
from tensordb_core.stream.carry import Claim
from tensordb_core.stream.disk_cache import DiskCachedBlobs
from tensordb_core.stream.plan import FetchPlan, plan_fetch, run_bounds
from tensordb_core.stream.refs import FrozenRefs

#: A mapped chunk's ranges are mapped as one where they fill at least this much of it (FetchPlan.joined).
MAP_FILL = 0.25


class BufferPool:
    """Reusable byte buffers for chunk reads, bounded by the bytes it keeps.

    Why: a fresh multi-MiB buffer page-faults on first touch (~1.2 GB/s here),
    slower than reading the chunk from the page cache; a warm buffer does not.
    Used with stores that offer ``read_into`` when no cache needs immutable bytes.

    Why numpy buffers, not ``bytearray``: a stream's first epoch has no warm
    buffer yet (a window of 32 MiB each, up to four in flight), and
    ``bytearray(n)`` zero-fills every page before the read overwrites it,
    4 KiB page fault by page fault: 62-121 ms of a 0.35-0.7 s first epoch on
    the benchmark's datasets.  ``np.empty`` skips the zero-fill and asks the
    kernel for transparent huge pages on large allocations (numpy's
    ``madvise(MADV_HUGEPAGE)``), so the read itself faults a 32 MiB window in
    about 2 MiB at a time: 40 MB read into a fresh buffer took 27 ms with
    ``bytearray`` and 6.5 ms with ``np.empty`` (a warm buffer: 5 ms).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def acquire(self, n: int) -> np.ndarray:
        """A 1-D ``uint8`` buffer of at least ``n`` bytes (its contents undefined: the caller reads into it)."""
        with self._lock:
            fits = [i for i, b in enumerate(self._free) if n <= len(b) <= 2 * n + 4096]
            if fits:  # by position: list.remove would compare arrays element-wise
                return self._free.pop(min(fits, key=lambda i: len(self._free[i])))
        return np.empty(n, dtype=np.uint8)

    def release(self, buffers: Sequence[np.ndarray]) -> None:
        """Keep ``buffers`` for reuse while the pool holds at most ``max_bytes``; over it, the smallest go
        first (a stream's first windows grow, and their buffers serve no later window)."""
        with self._lock:
            self._free.extend(buffers)
            self._free.sort(key=len)
            held = sum(len(b) for b in self._free)
            while self._free and held > self.max_bytes:
                held -= len(self._free.pop(0))


@dataclass
class Window:
    """Rows of one shuffle window (in this rank's order) with the bytes that hold them.

    Pooled buffers go back to the pool once the batch assembly and every
    decode task using the window have let go of it (:meth:`hold` / :meth:`drop`).
    """

    refs: FrozenRefs
    rows: np.ndarray
    bufs: list[Any]  # per request: bytes / memoryview, or the exception that fetching it raised
    req_of: np.ndarray
    base_of: np.ndarray
    pooled: list[np.ndarray] = field(default_factory=list)
    pool: BufferPool | None = None
    users: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)
    checked: np.ndarray | None = None  # per row: its input segment passed crc32 (None: not checked yet)
    #: The bytes each row decodes to where every row is a checked lz4 frame declaring them, so the decoder decodes
    #: a batch's rows in one call (stream/unpack.py); 0: sample by sample.
    frame_bytes: int = 0

    @property
    def clean(self) -> bool:
        """Every row has a readable reference and every request was read (cached: windows do not change)."""
        known = self.__dict__.get("_clean")
        if known is None:
            known = self.__dict__["_clean"] = bool((self.req_of >= 0).all()) and not any(
                isinstance(b, BaseException) for b in self.bufs)
        return known

    @property
    def views(self) -> list[Any]:
        """A memoryview per request (its exception where it failed), made once per window.

        Why cached: each batch's decode took views of every request of its
        window; a loader worker's window holds hundreds of scattered ranges, and
        remaking them for each batch held the GIL ~7% of a worker's time.
        """
        known = self.__dict__.get("_views")
        if known is None:
            known = self.__dict__["_views"] = [b if isinstance(b, BaseException) else memoryview(b) for b in self.bufs]
        return known

    def hold(self) -> None:
        with self.lock:
            self.users += 1

    def drop(self) -> None:
        with self.lock:
            self.users -= 1
            done = self.users == 0
        if not done:
            return
        if self.pool is not None and self.pooled:
            self.__dict__.pop("_views", None)  # no view may outlive the buffers' return to the pool
            buffers, self.pooled, self.bufs = self.pooled, [], []
            self.pool.release(buffers)


def fetch_window(blobs: BlobStore, refs: FrozenRefs, rows: np.ndarray, cache: ChunkCache | None,
                 stats: Any, pool: BufferPool | None = None, verify: bool = False, claim: Claim | None = None
                 ) -> Window:
    """Read what ``rows`` need: cached requests from ``cache``, the rest in bulk.

    In bulk means ``get_many``, ``map`` views where the store offers it (and no
    cache is on), else ``read_into`` pooled buffers where it offers that.  A missing chunk does not fail the window:
    its exception is kept in place of its bytes and raised (or skipped) when a
    sample of it is decoded, so the error names the document and arrives in
    stream order.  With ``verify``, the crc32 of every input segment is
    checked here (see :func:`_precheck`).  ``claim``: what this window takes
    of chunk parts an earlier one read for it, and reads further for a
    later one (:mod:`tensordb_core.stream.carry`); settled however the read
    ends, so no later window waits for a read that failed.
    """
    try:
        window = _fetch(blobs, refs, rows, cache, stats, pool, claim)
    finally:
        if claim is not None:
            claim.settle()
    if verify:
        began = time.perf_counter()
        _precheck(window)
        stats.add(verify_s=time.perf_counter() - began)
    return window


def _precheck(window: Window) -> None:
    """crc32 each input segment on the fetch thread, in storage order, right after the read, once per process.

    Why here: the decode threads are the bottleneck for small samples, and
    this thread mostly waits on I/O; the bytes were just read, so the pass is
    cache-friendly.  The result is a per-row flag; a row that fails goes to
    the careful decode path, which checks it again and names the document.

    Why once: chunks are content-addressed and never change, and the crc32
    pass was 18% of the stream's CPU every epoch.  A row that passed is
    remembered on its reference snapshot (``refs.verified``), so later epochs
    of the same stream (and of streams reusing the snapshot through an index
    memo) trust it; docs/FORMAT.md says so.  The stream's window reader asks
    it only of windows that may be decoded a batch at a time
    (``unpack.may_unpack`` says why not of the others).
    """
    if not window.clean or window.refs.records or window.refs.any_y or not len(window.rows):
        return
    refs, rows = window.refs, window.rows
    checked = refs.verified[rows].copy()
    todo = np.flatnonzero(~checked)
    if len(todo):
        sub = rows[todo]
        starts = refs.x_off[sub] - window.base_of[todo]
        req = window.req_of[todo]
        order = np.lexsort((starts, req))
        req, starts, sub = req[order], starts[order], sub[order]
        begin, end, crcs = starts.tolist(), (starts + refs.x_len[sub]).tolist(), refs.x_crc[sub].tolist()
        ok: list[bool] = []
        for lo, hi in pairwise(run_bounds(req)):  # one request at a time: the loop body is one slice and one crc32
            view = memoryview(window.bufs[int(req[lo])])
            ok += [crc32(view[a:b]) == c for a, b, c in zip(begin[lo:hi], end[lo:hi], crcs[lo:hi])]
        checked[todo[order]] = ok
        refs.verified[rows[checked]] = True
    window.checked = checked


def _fetch(blobs: BlobStore, refs: FrozenRefs, rows: np.ndarray, cache: ChunkCache | None,
           stats: Any, pool: BufferPool | None, claim: Claim | None) -> Window:
    # Whole chunks where a cache keeps what it was asked for: the request cache, the disk cache's chunks.
    whole = cache is not None or isinstance(blobs, DiskCachedBlobs)
    mapped = cache is None and bool(blobs.capabilities.map)  # views of the files: a request costs a mapping
    plan_rows = partial(plan_fetch, refs, local=bool(blobs.capabilities.read_into), exact=not whole,
                        whole_chunks=whole)
    plan = plan_rows(rows) if claim is None else claim.plan(refs, rows, plan_rows)
    if mapped:
        plan = plan.joined(MAP_FILL)
    bufs: list[Any] = [None] * len(plan.requests)
    todo: list[int] = []
    taken: list[int] = []  # read by an earlier window: waited for once this window's own requests are made
    for i, request in enumerate(plan.requests):
        hit = cache.get(request) if cache is not None else None
        if hit is not None:
            bufs[i] = hit
        else:
            (taken if claim is not None and claim.takes(request) else todo).append(i)
    window = Window(refs, rows, bufs, plan.req_of, plan.base_of)
    _read(blobs, plan, todo, window, cache, pool, mapped, stats, claim)
    if claim is not None and taken:
        for i in taken:
            bufs[i] = claim.taken(plan.requests[i])
        _read(blobs, plan, [i for i in taken if bufs[i] is None], window, cache, pool, mapped, stats, claim)
    return window


def _read(blobs: BlobStore, plan: FetchPlan, todo: list[int], window: Window, cache: ChunkCache | None,
          pool: BufferPool | None, mapped: bool, stats: Any, claim: Claim | None) -> None:
    """Read the requests ``todo`` of ``plan`` into ``window.bufs`` (each failed one: its exception), in bulk."""
    if not todo:
        return
    bufs = window.bufs
    began = time.perf_counter()
    if mapped:
        got = _mapped(cast(MapsBlobs, blobs), [plan.requests[i] for i in todo])
    elif cache is None and pool is not None and blobs.capabilities.read_into and all(plan.lengths[i] >= 0 for i in todo):
        window.pool = pool
        got = _read_pooled(blobs.read_into, [plan.requests[i] for i in todo], [plan.lengths[i] for i in todo], pool,
                           window.pooled)
    else:
        got = _get_many(blobs, [_request(plan.requests[i]) for i in todo])
    nbytes = 0
    for i, data in zip(todo, got):
        bufs[i] = data
        if not isinstance(data, BaseException):
            nbytes += len(data)
            if cache is not None:
                cache.put(plan.requests[i], data)
        if claim is not None:
            claim.left(plan.requests[i], data)
    stats.add(io_s=time.perf_counter() - began, bytes_read=nbytes, requests=len(todo))


def _read_pooled(read_into: Callable[..., int], requests: list[tuple[str, int, int | None]], lengths: list[int],
                 pool: BufferPool, pooled: list[np.ndarray]) -> list[Any]:
    """Fill one pooled buffer, a slice per request, with ``read_into`` (a short read leaves a short view).

    Why one buffer per window: a filtered read makes thousands of small range
    requests, and a pooled buffer each made the pool's free list (and its
    best-fit search) thousands long: 1.2 s of 2.2 s for 2,000 ranges.
    """
    buf = pool.acquire(sum(lengths))
    pooled.append(buf)
    whole = memoryview(buf)
    out: list[Any] = []
    at = 0
    for (key, start, _end), length in zip(requests, lengths):
        view = whole[at:at + length]
        at += length
        try:
            n = read_into(key, start, view)
        except BlobNotFound as exc:
            out.append(exc)
            continue
        out.append(view[:n])
    return out


def _mapped(blobs: MapsBlobs, requests: list[tuple[str, int, int | None]]) -> list[Any]:
    """A read-only mapped view per request (a short file gives a short view); a missing chunk becomes its exception.

    Why: a raw-stored sample read through ``read_into`` was copied twice, file
    to pooled buffer and buffer to batch; mapped, the decoder's copy into the
    batch is the only one.  The views keep their mappings alive, so a window
    needs no pool and nothing to release; mappings outlive a concurrent
    ``delete`` (see :class:`~tensordb_core.store.protocols.MapsBlobs`).
    """
    out: list[Any] = []
    view_of = blobs.map  # looked up once: through the retrying wrapper, each lookup is a __getattr__ call
    for key, start, end in requests:
        try:
            out.append(view_of(key, start, end))
        except BlobNotFound as exc:
            out.append(exc)
    return out


def _request(req: tuple[str, int, int | None]) -> Any:
    key, start, end = req
    return key if end is None else (key, start, end)


def _get_many(blobs: BlobStore, requests: list[Any]) -> list[Any]:
    """``get_many`` in order; a missing blob becomes its exception and the rest are fetched after it."""
    out: list[Any] = []
    while len(out) < len(requests):
        it = blobs.get_many(requests[len(out):])
        try:
            out.extend(it)
        except BlobNotFound as exc:  # the generator is finished: record it and continue after it
            out.append(exc)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
    return out
