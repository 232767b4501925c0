"""Decode batches out of fetched windows: the stream's per-sample CPU work, and its typed error.

Why a stage of its own: this is the hot path, written so the per-sample
Python work is a handful of calls.  A decode thread takes parts of windows
(:mod:`tensordb_core.stream.fetch`), decodes each segment with the one segment
decoder, :func:`tensordb_core.format.codec.segment_bytes`, and copies it once
into its slot of the batch array (a fresh one, or one the caller lends:
:data:`BatchMemory`); a large sample is decoded straight into its slot
(:func:`~tensordb_core.format.codec.segment_into`), and small lz4 samples a
batch at a time, in one call (:func:`tensordb_core.stream.unpack.decode_frames`).
``lz4``, numpy's copies, the reads and crc32 past 5 KiB release the GIL, so
decode threads overlap with the fetch thread and the training step (a large
sample is checked right after its decode, from cache).  Anything unusual (a
missing chunk, a failed check, mixed shapes, a transform) takes the careful
path, which names the document in its
:class:`SampleError`.  ``find_data(...).arrays()`` decodes through the same
:class:`Decoder` (:func:`tensordb_core.stream.batches.read_batch`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tensordb_core.errors import IntegrityError, TensorDBError
from tensordb_core.format.codec import segment_bytes, segment_into
from tensordb_core.stream.fetch import Window
from tensordb_core.stream.refs import FrozenRefs, label_array
from tensordb_core.stream.unpack import MAX_SAMPLE_BYTES, decode_frames

#: Where an ``(X, y)`` batch's ``X`` is decoded: ``memory(shape, dtype)`` gives a writable C-contiguous array of
#: exactly that shape and dtype, or None for a fresh one (``data_stream(batch_memory=...)``).
BatchMemory = Callable[[tuple[int, ...], np.dtype], "np.ndarray | None"]


class SampleError(IntegrityError):
    """A sample could not be read; names the document (missing chunk, malformed reference or failed check).

    Raised (or, with ``on_error="skip"``, collected) by the stream and by
    ``find_data(...).arrays()`` alike, in the order the samples are read.
    ``cause`` is the underlying error, when there is one.
    """

    def __init__(self, doc_id: str, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(f"sample {doc_id}: {reason}")
        self.doc_id = doc_id
        self.cause = cause


@dataclass
class Batch:
    """Decoded arrays of one batch (``X`` may be shorter than planned when samples were skipped)."""

    X: np.ndarray
    Y: np.ndarray | None
    skipped: int
    errors: list[SampleError]

    def __len__(self) -> int:
        return len(self.X)

    def value(self) -> tuple[np.ndarray, np.ndarray | None]:
        """What the stream yields: ``(X, y)``."""
        return self.X, self.Y


#: Below this many stored bytes per sample, one decode thread beats several (see auto_decode_workers).
SMALL_SAMPLE_BYTES = 32 << 10


def auto_decode_workers(stored_bytes: np.ndarray, media: bool = False, framed: bool = False,
                        cpus: int | None = None) -> int:
    """Decode threads for samples of these stored sizes (``media``: JPEG/PNG fields to decode; ``framed``: small
    lz4 samples the decoder decodes a batch at a time, stream/unpack.py) on ``cpus`` CPUs (None: the machine's).

    Decoded one by one, each sample costs a few microseconds of Python
    (holding the GIL) around its crc32 and lz4 calls (which release it).  For
    small samples that GIL-held part dominates, and a second decode thread
    mostly adds GIL hand-offs: measured on 2 cores with 12 KiB images, one
    thread streamed ~15% faster at 40% less CPU than two; with 150 KiB images
    two threads were ~10-50% faster.  A batch decoded in one lz4 call holds
    the GIL for a few calls a batch, and two threads are faster, even on one
    CPU (a loader worker's: 2 workers on 2 cores, 12 KiB images, medians of
    6 alternated runs 183k -> 194k samples/s), where one overlaps a batch's
    Python with the other's lz4.  Image decoding costs ~1-2 ms a JPEG with
    the GIL released, far more than the Python around it, so media gets a
    thread per CPU whatever its size.
    """
    mean = float(stored_bytes.mean()) if len(stored_bytes) else 0.0
    per_cpu = max(1, min(4, cpus or os.cpu_count() or 1))
    if framed:
        return max(2, per_cpu)
    return 1 if mean < SMALL_SAMPLE_BYTES and not media else per_cpu


class Decoder:
    """Turns parts of windows into one batch; shared by the decode threads (it holds no mutable state)."""

    def __init__(self, *, transform: Callable[[np.ndarray], Any] | None, on_error: str, verify: bool,
                 stats: Any, memory: BatchMemory | None = None) -> None:
        self.transform = transform
        self.skip = on_error == "skip"
        self.verify = verify
        self.stats = stats
        self.memory = memory

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
            X = self._batch_array((n, *fmt.shape), fmt.dtype)
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
            if (fmt is not None and not refs.any_y and out is not None
                    and _fast_part(window, lo, hi, out, kept * slot, slot, self.verify)):  # every sample decoded
                kept += hi - lo
                decoded += (hi - lo) * slot
                label_parts.append((None if refs.labels is None else refs.labels[rows], hi - lo))
                continue
            req, base = window.req_of[lo:hi].tolist(), window.base_of[lo:hi].tolist()
            off, length = refs.x_off[rows].tolist(), refs.x_len[rows].tolist()
            crc, codec, fmt_of = refs.x_crc[rows].tolist(), refs.x_codec[rows].tolist(), refs.x_fmt[rows].tolist()
            views = window.views
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
                    raw = segment_bytes(view, off[j] - base[j], length[j], codec[j], f.nbytes,
                                        crc[j] if self.verify else None)
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

    def _batch_array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The array a batch decodes into: from ``memory`` where it gives one (a loader worker's shared ring:
        the batch then crosses to the main process without a copy), else a fresh one."""
        given = self.memory(shape, dtype) if self.memory is not None else None
        if given is None:
            return np.empty(shape, dtype=dtype)
        if given.shape != shape or given.dtype != dtype or not given.flags.c_contiguous or not given.flags.writeable:
            raise TensorDBError(f"batch_memory gave a {given.dtype} array of shape {given.shape} for {dtype} {shape}: "
                                "it must give a writable C-contiguous array of exactly that shape and dtype, or None")
        return given

    @staticmethod
    def _uniform_format(parts: Sequence[tuple[Window, int, int]]) -> Any:
        """The one format every sample of the batch has (to decode straight into the batch), else None.

        Compared by value across windows: a fresh epoch streamed from index
        blocks gives each window its own table, and a batch spanning two of
        them was decoded sample by sample and stacked.
        """
        found = set()
        for window, lo, hi in parts:
            refs = window.refs
            if refs.x_format is not None:
                found.add(refs.x_format)
                continue
            fmts = np.unique(refs.x_fmt[window.rows[lo:hi]])
            found.update(refs.formats[int(f)] for f in fmts[fmts >= 0])
        return found.pop() if len(found) == 1 else None

    def _label(self, refs: FrozenRefs, row: int, view: memoryview, base: int) -> Any:
        if refs.has_y[row]:
            f = refs.formats[int(refs.y_fmt[row])]
            raw = segment_bytes(view, int(refs.y_off[row]) - base, int(refs.y_len[row]), int(refs.y_codec[row]),
                                f.nbytes, int(refs.y_crc[row]) if self.verify else None)
            return np.frombuffer(raw, dtype=f.dtype).reshape(f.shape)
        return refs.labels[row] if refs.labels is not None else None


class _Unreadable(Exception):
    def __init__(self, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(reason)
        self.cause = cause


#: Samples at least this large are decoded straight into their batch (``segment_into``), the GIL released;
#: smaller lz4 samples a batch at a time where their window allows (stream/unpack.py).
#: Why: a memoryview copy holds the GIL; measured on 2 cores with 147 KiB images, the decode threads spent
#: most of their time waiting for it (the copy was the main holder) and two threads decoded 1.75x one; with
#: numpy's copy 1.88x.  With no copy at all (lz4 writes the row), the benchmark's 147 KiB images, one process
#: alternating both 3 x 4 times: first epochs in order 12.9k -> 14.6k samples/s (CPU 121 -> 113 µs a sample),
#: shuffled 11.5k -> 13.1k, later epochs 20.1k -> 22.2k in order, 20.3k -> 22.0k shuffled; a GCS emulator's
#: 400-sample first epoch 78 -> 72 ms.  Below this size a call's fixed cost outweighs the overlap (12 KiB
#: samples decoded straight into the batch ran no faster: each call's fixed cost holds the GIL).
INTO_BATCH_BYTES = MAX_SAMPLE_BYTES


def _fast_part(window: Window, lo: int, hi: int, out: memoryview, at: int, slot: int, verify: bool) -> bool:
    """Decode rows ``[lo, hi)`` of ``window`` into ``out[at:]`` with the least Python per sample.

    The common case: every chunk was read, every segment passes its checks.
    Returns False at the first anything else, and the caller redoes the part
    on the careful path (which names the document, skips or raises).
    """
    if not window.clean:
        return False
    if window.frame_bytes == slot:  # small lz4 frames of this size, checked (unpack.check_frames): one lz4 call
        return decode_frames(window, lo, hi, out[at : at + (hi - lo) * slot])
    if window.checked is not None:  # the fetch thread did the crc32 pass
        if not window.checked[lo:hi].all():
            return False
        verify = False
    refs, rows = window.refs, window.rows[lo:hi]
    starts = refs.x_off[rows] - window.base_of[lo:hi]
    views = window.views
    seen = refs.verified[rows] if verify else None
    if seen is None or seen.all():
        verify, crcs = False, [None] * len(rows)
    else:  # checked here as each is decoded (a large one right after, from cache), once per process
        crcs = [None if done else crc for done, crc in zip(seen.tolist(), refs.x_crc[rows].tolist())]
    segments = zip([views[r] for r in window.req_of[lo:hi].tolist()], starts.tolist(), refs.x_len[rows].tolist(),
                   refs.x_codec[rows].tolist(), crcs)
    try:
        if slot < INTO_BATCH_BYTES:
            for view, start, length, codec, crc in segments:
                out[at : at + slot] = segment_bytes(view, start, length, codec, slot, crc)
                at += slot
        else:  # decoded straight into the batch, the GIL released: the other decode thread runs meanwhile
            for view, start, length, codec, crc in segments:
                segment_into(view, start, length, codec, out[at : at + slot], crc)
                at += slot
    except IntegrityError:
        return False
    if verify:
        refs.verified[rows] = True
    return True


def _stack(xs: list[Any]) -> np.ndarray:
    if not xs:
        return np.empty((0,))
    try:
        return np.stack(xs)
    except ValueError as exc:
        raise _shapes_error({tuple(np.shape(x)) for x in xs}) from exc


def _shapes_error(shapes: set[tuple[int, ...]]) -> TensorDBError:
    return TensorDBError(f"samples in one batch have different shapes {sorted(shapes)[:4]}: stream them with "
                         "batch_size=1, or pass a transform that makes them equal (e.g. a crop or resize)")


def _concat_labels(parts: list[tuple[np.ndarray | None, int]]) -> np.ndarray | None:
    """Scalar labels of the kept samples, part by part (None when no sample has one)."""
    if all(labels is None for labels, _ in parts):
        return None
    if len(parts) == 1:
        return parts[0][0]
    return np.concatenate([labels if labels is not None else np.full(count, None, dtype=object)
                           for labels, count in parts])


# -- one result from many windows (find_data(...).arrays(), see batches.read_batch) ----------------------

class JoinedRows:
    """Windows' decoded ``X`` gathered into one array, preallocated for ``expected`` rows (grown by half if short).

    Windows of another dtype or sample shape than the first (samples of
    several formats) are kept aside and joined as ``np.stack`` would join
    their samples: an upcast dtype, or the different-shapes error.
    """

    def __init__(self, expected: int) -> None:
        self.expected = max(0, int(expected))
        self.out: np.ndarray | None = None
        self.filled = 0
        self.parts: list[np.ndarray] | None = None  # set once windows disagree on dtype or shape
        self.first_empty: np.ndarray | None = None

    def add(self, X: np.ndarray) -> None:
        if self.parts is not None:
            self.parts.append(X)
            return
        if self.out is None:
            if not len(X) and X.ndim == 1:  # nothing decoded here, format unknown (every sample skipped)
                self.first_empty = X if self.first_empty is None else self.first_empty
                return
            self.out = np.empty((max(self.expected, len(X)), *X.shape[1:]), dtype=X.dtype)
        if X.dtype != self.out.dtype or X.shape[1:] != self.out.shape[1:]:
            if not len(X) and X.ndim == 1:
                return
            self.parts = [self.out[: self.filled], X]
            self.out = None
            return
        end = self.filled + len(X)
        if end > len(self.out):
            grown = np.empty((max(end, len(self.out) + len(self.out) // 2 + 1), *self.out.shape[1:]), self.out.dtype)
            grown[: self.filled] = self.out[: self.filled]
            self.out = grown
        self.out[self.filled : end] = X
        self.filled = end

    def result(self) -> np.ndarray:
        if self.parts is not None:
            try:
                return np.concatenate([p for p in self.parts if len(p) or p.ndim > 1])
            except ValueError as exc:
                raise _shapes_error({tuple(p.shape[1:]) for p in self.parts if len(p)}) from exc
        if self.out is None:
            return self.first_empty if self.first_empty is not None else np.empty((0,))
        return self.out if self.filled == len(self.out) else self.out[: self.filled].copy()


class WindowLabels:
    """What :func:`join_labels` needs of one window: its decoded labels, and its table's labels before skipping."""

    def __init__(self, refs: FrozenRefs, batch: Batch) -> None:
        self.Y = batch.Y
        self.all = refs.labels  # every row's scalar label, as RefTable typed them for this window
        self.n = refs.n
        self.any_y = refs.any_y
        self.kept: np.ndarray | None = None  # rows kept, when some were skipped
        if batch.errors:
            skipped = {e.doc_id for e in batch.errors}
            self.kept = np.array([i for i, doc_id in enumerate(refs.ids) if doc_id not in skipped], dtype=np.int64)


_JOINABLE = ({np.dtype(np.int64), np.dtype(np.float64)}, {np.dtype(bool)})


def join_labels(windows: list[WindowLabels]) -> np.ndarray | None:
    """The labels one table over every window would give (``refs.label_array`` over all, then the kept rows).

    Windows whose labels np.concatenate joins to that same array (all int64/float64,
    all bool, all str) are concatenated; anything else (None beside values,
    mixed kinds, objects) is retyped from every row's value, as one table would.
    """
    if any(w.any_y for w in windows):  # array labels: stacked per sample, as the one-table decoder stacks them
        ys = [w.Y for w in windows if w.Y is not None and len(w.Y)]
        if not ys:
            return None
        if all(w.any_y for w in windows) and len({y.shape[1:] for y in ys}) == 1:
            return np.concatenate(ys)
        return _stack([v for y in ys for v in y])
    if all(w.all is None for w in windows):
        return None
    dtypes = {w.all.dtype for w in windows if w.all is not None}
    if all(w.all is not None for w in windows) and (
            any(dtypes <= group for group in _JOINABLE) or all(d.kind == "U" for d in dtypes)):
        return np.concatenate([w.all if w.kept is None else w.all[w.kept] for w in windows])
    values: list[Any] = []
    kept: list[np.ndarray] = []
    for w in windows:
        kept.append(len(values) + (np.arange(w.n, dtype=np.int64) if w.kept is None else w.kept))
        values.extend(w.all.tolist() if w.all is not None else [None] * w.n)
    joined = label_array(values)
    return None if joined is None else joined[np.concatenate(kept)]
