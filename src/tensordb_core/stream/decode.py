"""Fetch a window's chunks and decode batches out of them: the stream's per-byte work.

Why separate: this is the hot path, and it is written so the per-sample Python
work is a handful of calls.  The fetch thread reads a window and crc32s each
segment right away (the bytes are cache-hot, and it would otherwise wait on
I/O); a decode thread then slices each segment, lz4-decompresses it and copies
it once into its slot of a preallocated batch array.  The CRC-32
(:mod:`tensordb_core.format.checksums`), ``lz4.frame.decompress`` and the reads
release the GIL, so these overlap with each other and with the training step.  Anything unusual (a missing chunk, a
failed check, mixed shapes, a transform) takes the careful path, which names
the document in its error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import lz4.frame
import numpy as np

from tensordb_core.errors import BlobNotFound, IntegrityError, TensorDBError
from tensordb_core.format.checksums import crc32
from tensordb_core.store.protocols import BlobStore
from tensordb_core.stream.cache import ChunkCache
from tensordb_core.stream.plan import FrozenRefs, plan_fetch
from tensordb_core.stream.samples import SampleError

_LZ4_MAGIC = b"\x04\x22\x4d\x18"


class BufferPool:
    """Reusable ``bytearray`` s for chunk reads, bounded by the bytes it keeps.

    Why: a fresh multi-MiB buffer page-faults on first touch (~1.2 GB/s here),
    slower than reading the chunk from the page cache; a warm buffer does not.
    Used with stores that offer ``read_into`` when no cache needs immutable bytes.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    def acquire(self, n: int) -> bytearray:
        with self._lock:
            fits = [b for b in self._free if n <= len(b) <= 2 * n + 4096]
            if fits:
                best = min(fits, key=len)
                self._free.remove(best)
                return best
        return bytearray(n)

    def release(self, buffers: Sequence[bytearray]) -> None:
        with self._lock:
            held = sum(len(b) for b in self._free)
            for buf in buffers:
                if held + len(buf) <= self.max_bytes:
                    self._free.append(buf)
                    held += len(buf)


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
    pooled: list[bytearray] = field(default_factory=list)
    pool: BufferPool | None = None
    users: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)
    checked: np.ndarray | None = None  # per row: its input segment passed crc32 (None: not checked yet)

    @property
    def clean(self) -> bool:
        """Every row has a readable reference and every request was read (cached: windows do not change)."""
        known = self.__dict__.get("_clean")
        if known is None:
            known = self.__dict__["_clean"] = bool((self.req_of >= 0).all()) and not any(
                isinstance(b, BaseException) for b in self.bufs)
        return known

    def hold(self) -> None:
        with self.lock:
            self.users += 1

    def drop(self) -> None:
        with self.lock:
            self.users -= 1
            done = self.users == 0
        if done and self.pool is not None and self.pooled:
            buffers, self.pooled, self.bufs = self.pooled, [], []
            self.pool.release(buffers)


def fetch_window(blobs: BlobStore, refs: FrozenRefs, rows: np.ndarray, cache: ChunkCache | None,
                 stats: Any, pool: BufferPool | None = None, verify: bool = False) -> Window:
    """Read what ``rows`` need: cached requests from ``cache``, the rest in bulk.

    In bulk means ``get_many``, or ``read_into`` pooled buffers where the store
    offers it (and no cache is on).  A missing chunk does not fail the window:
    its exception is kept in place of its bytes and raised (or skipped) when a
    sample of it is decoded, so the error names the document and arrives in
    stream order.  With ``verify``, the crc32 of every input segment is
    checked here (see :func:`_precheck`).
    """
    window = _fetch(blobs, refs, rows, cache, stats, pool)
    if verify:
        began = time.perf_counter()
        _precheck(window)
        stats.add(verify_s=time.perf_counter() - began)
    return window


def _precheck(window: Window) -> None:
    """crc32 each input segment on the fetch thread, in storage order, right after the read.

    Why here: the decode threads are the bottleneck for small samples, and
    this thread mostly waits on I/O; the bytes were just read, so the pass is
    cache-friendly.  The result is a per-row flag; a row that fails goes to
    the careful decode path, which checks it again and names the document.
    """
    if not window.clean or window.refs.any_y or not len(window.rows):
        return
    refs, rows = window.refs, window.rows
    starts = refs.x_off[rows] - window.base_of
    order = np.lexsort((starts, window.req_of))
    ends = starts + refs.x_len[rows]
    checked = np.ones(len(rows), dtype=bool)
    views = [memoryview(b) for b in window.bufs]
    for j, r, a, b, c in zip(order.tolist(), window.req_of[order].tolist(), starts[order].tolist(),
                             ends[order].tolist(), refs.x_crc[rows[order]].tolist()):
        if crc32(views[r][a:b]) != c:
            checked[j] = False
    window.checked = checked


def _fetch(blobs: BlobStore, refs: FrozenRefs, rows: np.ndarray, cache: ChunkCache | None,
           stats: Any, pool: BufferPool | None) -> Window:
    plan = plan_fetch(refs, rows)
    bufs: list[Any] = [None] * len(plan.requests)
    todo: list[int] = []
    for i, (key, start, end) in enumerate(plan.requests):
        hit = cache.get((key, start, end)) if cache is not None else None
        if hit is not None:
            bufs[i] = hit
        else:
            todo.append(i)
    window = Window(refs, rows, bufs, plan.req_of, plan.base_of)
    if not todo:
        return window
    began = time.perf_counter()
    if cache is None and pool is not None and blobs.capabilities.read_into and all(plan.lengths[i] >= 0 for i in todo):
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
    stats.add(io_s=time.perf_counter() - began, bytes_read=nbytes, requests=len(todo))
    return window


def _read_pooled(read_into: Callable[..., int], requests: list[tuple[str, int, int | None]], lengths: list[int],
                 pool: BufferPool, pooled: list[bytearray]) -> list[Any]:
    """Fill pooled buffers with ``read_into`` (a short read leaves a short view: decoding reports it)."""
    out: list[Any] = []
    for (key, start, _end), length in zip(requests, lengths):
        buf = pool.acquire(length)
        view = memoryview(buf)[:length]
        try:
            n = read_into(key, start, view)
        except BlobNotFound as exc:
            pool.release([buf])
            out.append(exc)
            continue
        pooled.append(buf)
        out.append(view[:n])
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


@dataclass
class Batch:
    """Decoded arrays of one batch (``X`` may be shorter than planned when samples were skipped)."""

    X: np.ndarray
    Y: np.ndarray | None
    skipped: int
    errors: list[SampleError]


class Decoder:
    """Turns parts of windows into one batch; shared by the decode threads (it holds no mutable state)."""

    def __init__(self, *, transform: Callable[[np.ndarray], Any] | None, on_error: str, verify: bool,
                 stats: Any) -> None:
        self.transform = transform
        self.skip = on_error == "skip"
        self.verify = verify
        self.stats = stats

    def decode(self, parts: Sequence[tuple[Window, int, int]]) -> Batch:
        """Decode the rows ``parts`` name (each part holds its window: released here, whatever happens)."""
        try:
            return self._decode(parts)
        finally:
            for window, _, _ in parts:
                window.drop()

    def _decode(self, parts: Sequence[tuple[Window, int, int]]) -> Batch:
        began = time.perf_counter()
        n = sum(hi - lo for _, lo, hi in parts)
        fmt = self._uniform_format(parts) if self.transform is None else None
        if fmt is not None:
            X = np.empty((n, *fmt.shape), dtype=fmt.dtype)
            out = memoryview(X.reshape(-1).view(np.uint8)) if X.size else None
            slot = fmt.nbytes
        xs: list[Any] = []
        ys: list[Any] = []
        label_parts: list[tuple[np.ndarray | None, int]] = []
        errors: list[SampleError] = []
        kept = decoded = 0
        for window, lo, hi in parts:
            refs = window.refs
            rows = window.rows[lo:hi]
            if fmt is not None and not refs.any_y and out is not None:
                done = _fast_part(window, lo, hi, out, kept * slot, slot, self.verify)
                if done:  # every sample of the part decoded cleanly
                    kept += hi - lo
                    decoded += (hi - lo) * slot
                    label_parts.append((None if refs.labels is None else refs.labels[rows], hi - lo))
                    continue
            req, base = window.req_of[lo:hi].tolist(), window.base_of[lo:hi].tolist()
            off, length = refs.x_off[rows].tolist(), refs.x_len[rows].tolist()
            crc, codec, fmt_of = refs.x_crc[rows].tolist(), refs.x_codec[rows].tolist(), refs.x_fmt[rows].tolist()
            views = [b if isinstance(b, BaseException) else memoryview(b) for b in window.bufs]
            kept_rows: list[int] = []
            for j, row in enumerate(rows.tolist()):
                try:
                    r = req[j]
                    if r < 0:
                        raise _Unreadable(refs.bad.get(row, "unreadable sample reference"))
                    view = views[r]
                    if isinstance(view, BaseException):
                        raise _Unreadable(f"chunk {refs.chunk_keys[refs.chunk[row]]} could not be read: {view}", view)
                    f = refs.formats[fmt_of[j]]
                    raw = _segment(view, off[j] - base[j], length[j], crc[j], codec[j], f.nbytes, self.verify)
                    if refs.any_y:
                        ys.append(self._label(refs, row, view, base[j]))
                except (_Unreadable, TensorDBError) as exc:
                    cause = exc.cause if isinstance(exc, _Unreadable) else exc
                    err = SampleError(refs.ids[row], str(exc), cause)
                    if not self.skip:
                        raise err from cause
                    errors.append(err)
                    continue
                decoded += f.nbytes
                if fmt is not None:
                    if out is not None:
                        out[kept * slot : (kept + 1) * slot] = raw
                else:
                    if window.pool is not None and not isinstance(raw, bytes):
                        raw = bytes(raw)  # a pooled buffer is reused: the transform may keep what it gets
                    x = np.frombuffer(raw, dtype=f.dtype).reshape(f.shape)
                    xs.append(self.transform(x) if self.transform is not None else x)
                kept_rows.append(row)
                kept += 1
            if not refs.any_y:
                label_parts.append((None if refs.labels is None else refs.labels[kept_rows], len(kept_rows)))
        if fmt is not None:
            X = X[:kept] if kept < n else X
        else:
            X = _stack(xs)
        Y = _stack(ys) if ys else _concat_labels(label_parts)
        self.stats.add(decode_s=time.perf_counter() - began, bytes_decoded=decoded, skipped=len(errors))
        return Batch(X, Y, len(errors), errors)

    @staticmethod
    def _uniform_format(parts: Sequence[tuple[Window, int, int]]) -> Any:
        """The one format every sample of the batch has (to decode straight into the batch), else None."""
        refs = parts[0][0].refs
        if any(w.refs is not refs for w, _, _ in parts):
            return None
        if refs.x_format is not None:
            return refs.x_format
        fmts = np.unique(np.concatenate([refs.x_fmt[w.rows[lo:hi]] for w, lo, hi in parts]))
        fmts = fmts[fmts >= 0]
        return refs.formats[int(fmts[0])] if len(fmts) == 1 else None

    def _label(self, refs: FrozenRefs, row: int, view: memoryview, base: int) -> Any:
        if refs.has_y[row]:
            f = refs.formats[int(refs.y_fmt[row])]
            raw = _segment(view, int(refs.y_off[row]) - base, int(refs.y_len[row]), int(refs.y_crc[row]),
                           int(refs.y_codec[row]), f.nbytes, self.verify)
            return np.frombuffer(raw, dtype=f.dtype).reshape(f.shape)
        return refs.labels[row] if refs.labels is not None else None


class _Unreadable(Exception):
    def __init__(self, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(reason)
        self.cause = cause


def _fast_part(window: Window, lo: int, hi: int, out: memoryview, at: int, slot: int, verify: bool) -> bool:
    """Decode rows ``[lo, hi)`` of ``window`` into ``out[at:]`` with the least Python per sample.

    The common case: every chunk was read, every segment passes its checks,
    every lz4 frame records its size.  Returns False at the first anything
    else, and the caller redoes the part on the careful path (which names the
    document, skips or raises).
    """
    if not window.clean:
        return False
    checked = verify
    if window.checked is not None:  # the fetch thread did the crc32 pass
        if not window.checked[lo:hi].all():
            return False
        verify, checked = False, True
    refs, rows = window.refs, window.rows[lo:hi]
    req = window.req_of[lo:hi]
    starts = refs.x_off[rows] - window.base_of[lo:hi]
    ends = (starts + refs.x_len[rows]).tolist()
    views = [memoryview(b) for b in window.bufs]
    size = slot.to_bytes(8, "little")
    decompress = lz4.frame.decompress
    for view, start, end, crc, lz4ed in zip([views[r] for r in req.tolist()], starts.tolist(), ends,
                                            refs.x_crc[rows].tolist(), refs.x_codec[rows].tolist()):
        seg = view[start:end]
        if verify and crc32(seg) != crc:
            return False
        if lz4ed:
            # With the crc verified, the frame is the one its document describes; unverified, make sure
            # it records the size the document says before lz4 allocates what the frame declares.
            if not checked and (len(seg) < 14 or not seg[4] & 0x08 or seg[6:14] != size):
                return False  # the careful path decides
            try:
                raw = decompress(seg)
            except RuntimeError:
                return False
        else:
            raw = seg
        if len(raw) != slot:
            return False
        out[at : at + slot] = raw
        at += slot
    return True


def _segment(view: memoryview, start: int, length: int, crc: int, codec: int, nbytes: int, verify: bool) -> Any:
    """The decoded bytes of one stored segment, after the integrity checks."""
    seg = view[start : start + length]
    if len(seg) != length:
        raise IntegrityError(f"segment truncated: expected {length} bytes, the chunk holds {len(seg)}")
    if verify and crc32(seg) != crc:
        raise IntegrityError("segment checksum mismatch (the stored bytes were altered)")
    if codec:
        if length < 7 or seg[:4] != _LZ4_MAGIC:
            raise IntegrityError("segment is not an lz4 frame")
        if seg[4] & 0x08 and length >= 14 and int.from_bytes(seg[6:14], "little") != nbytes:
            raise IntegrityError(f"lz4 frame declares {int.from_bytes(seg[6:14], 'little')} bytes, "
                                 f"the document says {nbytes}")
        try:
            raw = lz4.frame.decompress(seg)
        except RuntimeError as exc:
            raise IntegrityError(f"lz4 frame failed to decode: {exc}") from exc
    else:
        raw = seg
    if len(raw) != nbytes:
        raise IntegrityError(f"decoded {len(raw)} bytes, the document says {nbytes}")
    return raw


def _stack(xs: list[Any]) -> np.ndarray:
    if not xs:
        return np.empty((0,))
    try:
        return np.stack(xs)
    except ValueError as exc:
        shapes = sorted({tuple(np.shape(x)) for x in xs})[:4]
        raise TensorDBError(f"samples in one batch have different shapes {shapes}: pass a transform that "
                            "makes them equal (e.g. a crop or resize), or batch_size=1") from exc


def _concat_labels(parts: list[tuple[np.ndarray | None, int]]) -> np.ndarray | None:
    """Scalar labels of the kept samples, part by part (None when no sample has one)."""
    if all(labels is None for labels, _ in parts):
        return None
    if len(parts) == 1:
        return parts[0][0]
    return np.concatenate([labels if labels is not None else np.full(count, None, dtype=object)
                           for labels, count in parts])
