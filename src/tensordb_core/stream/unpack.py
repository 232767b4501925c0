"""Decompress a whole window's lz4 samples in a few C calls, on the window-reading threads.

Why: the decode stage called lz4 once per sample.  Each call releases the
GIL for a few microseconds and takes it back, so for small samples the
decode thread spent about half its time in Python and GIL hand-offs around
lz4 (profiled on 2 cores with 12 KiB images: lz4 52% of the decode thread,
the rest copies, the interpreter and futex wake-ups), and a second decode
thread only added hand-offs.  Samples written by one import lie back to back
in their chunk, and consecutive lz4 frames are a valid lz4 stream, so a run
of adjacent samples decodes in one call that holds no GIL: cramjam's
``lz4.decompress_into`` decodes concatenated frames straight into one
buffer.  Two window threads then decompress two windows on two cores, and a
batch becomes a gather (``np.take``) from the unpacked window.

Safety is unchanged: only rows whose stored bytes passed their crc32 on this
process (:func:`tensordb_core.stream.fetch._precheck`) are unpacked when the
stream verifies; every frame must declare exactly the size its dtype and shape
say (checked on the bytes, before lz4 runs); the output buffer bounds what lz4
may write; and any surprise (a frame that fails, a total that is off) leaves
the window to the per-sample decoder, which names the sample.  A window that
is not uniform (records, array labels, several formats or codecs, unread
chunks) is left to it too.
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING, Any

import cramjam
import numpy as np

from tensordb_core.format.codec import CODEC_IDS
from tensordb_core.stream.plan import run_bounds

if TYPE_CHECKING:
    from tensordb_core.stream.fetch import BufferPool, Window

_LZ4 = CODEC_IDS["lz4"]
#: An lz4 frame's first bytes: magic (4), FLG, BD, then the 8-byte content size when FLG bit 3 is set.
_MAGIC = np.frombuffer(b"\x04\x22\x4d\x18", dtype=np.uint8)
_HEADER = 14
_CONTENT_SIZE = 0x08
_DecompressionError = cramjam.DecompressionError
#: Only samples up to this many decoded bytes are unpacked.  Why: the gain is the per-call overhead, large
#: for small samples and small for large ones, while unpacking adds a pass over memory (the window's
#: decoded buffer outgrows the CPU cache before the batch gathers from it).  Measured on 2 cores, later
#: epochs of 12 KiB images: 75k -> 118k samples/s; of 147 KiB images: 11.9k -> 10.2k, so they are not.
MAX_SAMPLE_BYTES = 64 << 10


def unpack_window(window: Window, pool: BufferPool | None, verify: bool) -> bool:
    """Decompress every row of ``window`` into ``window.unpacked`` (one row per sample); True when done.

    False leaves the window as it was, for the per-sample decoder.  A window
    is unpacked only while its decoded bytes fit the pool's byte bound (the
    stream's budget for window buffers, ``(WINDOWS_AHEAD + 2) * window_bytes``).
    Why: windows are cut by stored bytes, and samples lz4 shrinks many times
    over (masks: 12 KiB stored in 100 bytes) made windows of up to 65,536 rows
    whose unpacked buffers, a few live and a few pooled, held gigabytes (40k
    such masks, 491 MB raw: a stream's peak RSS 1 GB); the per-sample decoder
    holds one batch.
    """
    refs, rows = window.refs, window.rows
    n = len(rows)
    if not n or refs.records or refs.any_y or not window.clean:
        return False
    if verify and (window.checked is None or not window.checked.all()):
        return False  # an unchecked or failing row: the careful path checks it and names it
    fmt = _one_format(refs, rows)
    if fmt is None or not 0 < fmt.nbytes <= MAX_SAMPLE_BYTES or not (refs.x_codec[rows] == _LZ4).all():
        return False
    slot = fmt.nbytes
    if pool is not None and n * slot > pool.max_bytes:
        return False  # samples lz4 shrinks many times over: their window's decoded bytes would outgrow the budget
    req = window.req_of
    start = refs.x_off[rows] - window.base_of
    length = refs.x_len[rows]
    order = np.lexsort((start, req))
    req, start, length = req[order], start[order], length[order]
    if (length < _HEADER).any() or not _sizes_declared(window.bufs, req, start, slot):
        return False
    follows = (req[1:] == req[:-1]) & (start[:-1] + length[:-1] == start[1:])
    cuts = [0, *(np.flatnonzero(~follows) + 1).tolist(), n]
    buf = pool.acquire(n * slot) if pool is not None else np.empty(n * slot, dtype=np.uint8)
    out = memoryview(buf)
    views = window.views
    begin, end, which = start.tolist(), (start + length).tolist(), req.tolist()
    try:
        for a, b in pairwise(cuts):  # one call per run of adjacent segments
            wrote = cramjam.lz4.decompress_into(views[which[a]][begin[a] : end[b - 1]], out[a * slot : b * slot])
            if wrote != (b - a) * slot:
                raise _DecompressionError(f"{wrote} bytes for {b - a} samples")
    except _DecompressionError:
        if pool is not None:
            pool.release([buf])
        return False
    at = np.empty(n, dtype=np.int64)
    at[order] = np.arange(n, dtype=np.int64)
    window.unpacked = buf[: n * slot].reshape(n, slot)
    window.unpacked_at = at
    if pool is not None:
        window.unpacked_from = (pool, buf)
    return True


def may_unpack(refs: Any) -> bool:
    """Whether windows of ``refs`` may be unpacked whole here: not where every sample is one format past
    :data:`MAX_SAMPLE_BYTES`.  The window reader crc32-checks only such windows as it reads them
    (:func:`~tensordb_core.stream.fetch.fetch_window`'s pre-check, which unpacking needs).

    Why not the others: a window's bytes are far larger than the CPU's
    caches, and a mapped window is not even read until checked, so that pass
    read large samples from memory and the decoder read them again; the
    decoder checks each as it decodes it, from cache (decode._fast_part,
    which marks ``refs.verified`` too).  Alternated processes, the
    benchmark's 147 KiB images, first epochs: stored raw 16.6k -> 18.5k
    samples/s in order, 10.4k -> 11.2k shuffled; as lz4 14.8k -> 15.9k and
    13.3k -> 13.9k.
    """
    fmt = None if refs.records else refs.x_format  # records check their fields as they decode
    return fmt is None or fmt.nbytes <= MAX_SAMPLE_BYTES


def _one_format(refs: Any, rows: np.ndarray) -> Any:
    if refs.x_format is not None:
        return refs.x_format
    fmts = np.unique(refs.x_fmt[rows])
    return refs.formats[int(fmts[0])] if len(fmts) == 1 and fmts[0] >= 0 else None


def _sizes_declared(bufs: list[Any], req: np.ndarray, start: np.ndarray, slot: int) -> bool:
    """True when every segment starts an lz4 frame declaring ``slot`` bytes (rows sorted by request)."""
    offsets = np.arange(_HEADER)
    for a, b in pairwise(run_bounds(req)):
        data = np.frombuffer(bufs[int(req[a])], dtype=np.uint8)
        at = start[a:b, None] + offsets
        if at[-1, -1] >= len(data) or at[0, 0] < 0:
            return False
        head = data[at]
        if not (head[:, :4] == _MAGIC).all() or not (head[:, 4] & _CONTENT_SIZE).all():
            return False
        if not (np.ascontiguousarray(head[:, 6:14]).view("<u8").ravel() == slot).all():
            return False
    return True
