"""Read samples out of chunk blobs: group by chunk, fetch in bulk, verify, decode.

Why chunks: one object per sample costs a request (~1 ms of client CPU on
an object store) per sample; a chunk of a few MiB costs one.  The reader
decides per chunk whether to fetch the whole chunk (dense selection) or only
the byte ranges of the selected samples (sparse selection), then decodes the
segments.  Both the find cursor's ``.arrays()`` and the stream use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tensordb_core.errors import BlobNotFound, CodecError, IntegrityError
from tensordb_core.format.codec import Segment, unpack_segment
from tensordb_core.store.protocols import BlobStore

#: Fetch the whole chunk when the selected bytes cover at least this fraction of it.
DENSE_FRACTION = 0.25
#: Ranged reads closer than this many bytes are merged into one request.
COALESCE_GAP = 64 * 1024


class SampleError(IntegrityError):
    """A sample could not be read; names the document (missing chunk or failed checksum)."""

    def __init__(self, doc_id: str, reason: str, cause: Exception | None = None) -> None:
        super().__init__(f"sample {doc_id}: {reason}")
        self.doc_id = doc_id
        self.cause = cause


@dataclass(frozen=True)
class SampleRef:
    """Where a sample's input (and optional array label) is stored."""

    doc_id: str
    chunk: str
    x: Segment
    y: Segment | None
    label: Any
    chunk_size: int | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> SampleRef:
        try:
            blob = doc["_x"]
            y = doc.get("_y")
            return cls(str(doc["_id"]), str(blob["key"]), Segment.from_doc(blob),
                       Segment.from_doc(y) if y else None, doc.get("label"), blob.get("chunk_size"))
        except (KeyError, TypeError) as exc:
            raise CodecError(f"document {doc.get('_id')!r} is not a data sample (no _x blob reference)") from exc

    def span(self) -> tuple[int, int]:
        """The byte range ``[start, end)`` holding this sample's x (and y) in its chunk."""
        start, end = self.x.offset, self.x.offset + self.x.length
        if self.y is not None:
            start, end = min(start, self.y.offset), max(end, self.y.offset + self.y.length)
        return start, end


def _plan(refs: Sequence[SampleRef]) -> list[tuple[str, int, int | None, list[int]]]:
    """Group refs into requests ``(chunk, start, end, ref_indexes)``, coalescing nearby ranges."""
    by_chunk: dict[str, list[int]] = {}
    for i, ref in enumerate(refs):
        by_chunk.setdefault(ref.chunk, []).append(i)
    plan = []
    for chunk, idxs in by_chunk.items():
        idxs.sort(key=lambda i: refs[i].span()[0])
        selected = sum(refs[i].span()[1] - refs[i].span()[0] for i in idxs)
        total = refs[idxs[0]].chunk_size
        if total is not None and selected >= DENSE_FRACTION * total:
            plan.append((chunk, 0, None, idxs))
            continue
        group: list[int] = []
        g_start = g_end = 0
        for i in idxs:
            s, e = refs[i].span()
            if group and s - g_end <= COALESCE_GAP:
                group.append(i)
                g_end = max(g_end, e)
            else:
                if group:
                    plan.append((chunk, g_start, g_end, group))
                group, g_start, g_end = [i], s, e
        if group:
            plan.append((chunk, g_start, g_end, group))
    return plan


def read_samples(
    blobs: BlobStore,
    refs: Sequence[SampleRef],
    *,
    on_error: str = "raise",
    errors: list[SampleError] | None = None,
) -> Iterator[tuple[int, np.ndarray, Any]]:
    """Yield ``(ref_index, x, y)`` for every readable ref (chunk order, not ref order).

    ``y`` is the array label when stored, else the scalar ``label`` tag.
    With ``on_error="skip"`` unreadable samples are left out and appended to
    ``errors``; otherwise the first one raises :class:`SampleError`.
    """
    plan = _plan(refs)
    requests = [(chunk, start, end) if end is not None else chunk for chunk, start, end, _ in plan]
    fetched = blobs.get_many(requests)
    for chunk, start, _end, idxs in plan:
        try:
            data = next(fetched)
        except BlobNotFound as exc:
            data, failure = None, exc
        for i in idxs:
            ref = refs[i]
            try:
                if data is None:
                    raise SampleError(ref.doc_id, f"chunk {chunk} is missing from the blob store", failure)
                x = _decode(data, ref.x, start)
                y = _decode(data, ref.y, start) if ref.y is not None else ref.label
            except (IntegrityError, CodecError) as exc:
                err = exc if isinstance(exc, SampleError) else SampleError(ref.doc_id, str(exc), exc)
                if on_error != "skip":
                    raise err from exc
                if errors is not None:
                    errors.append(err)
                continue
            yield i, x, y


def _decode(data: bytes, seg: Segment, base: int) -> np.ndarray:
    shifted = Segment(seg.offset - base, seg.length, seg.codec, seg.dtype, seg.shape, seg.crc32)
    return unpack_segment(data, shifted)


def read_in_order(blobs: BlobStore, refs: Sequence[SampleRef], **kwargs: Any) -> list[tuple[np.ndarray, Any] | None]:
    """Like :func:`read_samples` but returns a list aligned with ``refs`` (None where skipped)."""
    out: list[tuple[np.ndarray, Any] | None] = [None] * len(refs)
    for i, x, y in read_samples(blobs, refs, **kwargs):
        out[i] = (x, y)
    return out


def stack(items: Iterable[tuple[np.ndarray, Any]]) -> tuple[np.ndarray, np.ndarray | None]:
    """Collate ``(x, y)`` pairs into batch arrays (``y`` None when every label is None)."""
    xs, ys = [], []
    for x, y in items:
        xs.append(x)
        ys.append(y)
    if not xs:
        return np.empty((0,)), None
    X = np.stack(xs)
    Y = None if all(y is None for y in ys) else np.asarray(ys) if not isinstance(ys[0], np.ndarray) else np.stack(ys)
    return X, Y
