"""Decode batches out of fetched windows: the stream's per-sample CPU work, and its typed error.

Why a stage of its own: this is the hot path, written so the per-sample
Python work is a handful of calls.  A decode thread takes parts of windows
(:mod:`tensordb_core.stream.fetch`), decodes each segment with the one segment
decoder, :func:`tensordb_core.format.codec.segment_bytes`, and copies it once
into its slot of a preallocated batch array.  The CRC-32, ``lz4`` and the
reads release the GIL, so decode threads overlap with the fetch thread and
the training step.  Anything unusual (a missing chunk, a failed check, mixed
shapes, a transform) takes the careful path, which names the document in its
:class:`SampleError`.  ``find_data(...).arrays()`` decodes through the same
:class:`Decoder` (:func:`tensordb_core.stream.batches.read_batch`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tensordb_core.errors import IntegrityError, TensorDBError
from tensordb_core.format.codec import segment_bytes
from tensordb_core.stream.fetch import Window
from tensordb_core.stream.plan import FrozenRefs


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
            raw = segment_bytes(view, int(refs.y_off[row]) - base, int(refs.y_len[row]), int(refs.y_codec[row]),
                                f.nbytes, int(refs.y_crc[row]) if self.verify else None)
            return np.frombuffer(raw, dtype=f.dtype).reshape(f.shape)
        return refs.labels[row] if refs.labels is not None else None


class _Unreadable(Exception):
    def __init__(self, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(reason)
        self.cause = cause


def _fast_part(window: Window, lo: int, hi: int, out: memoryview, at: int, slot: int, verify: bool) -> bool:
    """Decode rows ``[lo, hi)`` of ``window`` into ``out[at:]`` with the least Python per sample.

    The common case: every chunk was read, every segment passes its checks.
    Returns False at the first anything else, and the caller redoes the part
    on the careful path (which names the document, skips or raises).
    """
    if not window.clean:
        return False
    if window.checked is not None:  # the fetch thread did the crc32 pass
        if not window.checked[lo:hi].all():
            return False
        verify = False
    refs, rows = window.refs, window.rows[lo:hi]
    starts = refs.x_off[rows] - window.base_of[lo:hi]
    views = [memoryview(b) for b in window.bufs]
    crcs = refs.x_crc[rows].tolist() if verify else [None] * len(rows)
    try:
        for view, start, length, codec, crc in zip([views[r] for r in window.req_of[lo:hi].tolist()],
                                                   starts.tolist(), refs.x_len[rows].tolist(),
                                                   refs.x_codec[rows].tolist(), crcs):
            out[at : at + slot] = segment_bytes(view, start, length, codec, slot, crc)
            at += slot
    except IntegrityError:
        return False
    return True


def _stack(xs: list[Any]) -> np.ndarray:
    if not xs:
        return np.empty((0,))
    try:
        return np.stack(xs)
    except ValueError as exc:
        shapes = sorted({tuple(np.shape(x)) for x in xs})[:4]
        raise TensorDBError(f"samples in one batch have different shapes {shapes}: stream them with "
                            "batch_size=1, or pass a transform that makes them equal (e.g. a crop or resize)") from exc


def _concat_labels(parts: list[tuple[np.ndarray | None, int]]) -> np.ndarray | None:
    """Scalar labels of the kept samples, part by part (None when no sample has one)."""
    if all(labels is None for labels, _ in parts):
        return None
    if len(parts) == 1:
        return parts[0][0]
    return np.concatenate([labels if labels is not None else np.full(count, None, dtype=object)
                           for labels, count in parts])
