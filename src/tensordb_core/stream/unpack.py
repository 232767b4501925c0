"""Decode a batch's small lz4 samples in one C call, straight into the batch's rows.

Why: per sample, lz4 is a few microseconds of C between a few of Python,
and each call releases the GIL and takes it back: for small samples the
decode thread spent about half its time in Python and GIL hand-offs around
lz4 (profiled on 2 cores with 12 KiB images).  Consecutive lz4 frames are a
valid lz4 stream, so the stored segments of a batch's samples, joined in
batch order (or sliced, where they lie back to back as in an in-order read),
decode in one call that holds no GIL, straight into the batch array
(:func:`tensordb_core.format.codec.frames_into`: cramjam's
``lz4.decompress_into``).  A stored segment is about a third of its sample
(the benchmark's images), so the join copies little.

Why a batch, not a window (the stream before decompressed each window whole
on its reading thread into a window-sized buffer, and batches gathered their
rows from it): that buffer was fresh memory in every first epoch (the kernel
zeroing it: 18% of a cold first epoch's CPU in ``perf``), the gather copied
every sample a second time, and the last window's lz4 ran on one thread
while the other core waited.  Alternated processes, the benchmark's 12 KiB
images on 2 cores, medians: first epochs 80.9k -> 103.6k samples/s
shuffled, 91.7k -> 110.1k in order; later epochs 114.0k -> 220.1k shuffled,
195.5k -> 249.8k in order.

Safety is unchanged: when the stream verifies, only windows whose every row
passed its crc32 on this process (:func:`tensordb_core.stream.fetch._precheck`)
are decoded this way; every frame must declare exactly the size its dtype and
shape say (checked on the part's bytes by :func:`decode_frames` before lz4
runs; liblz4 then refuses a frame whose blocks decode to another size);
the batch's rows bound what lz4 may write; and any surprise (a frame that
fails, a total that is off) leaves the part to the per-sample decoder, which
names the sample.  A window that is not uniform (records, array labels,
several formats or codecs, unread chunks) is left to it too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tensordb_core.format.codec import CODEC_IDS, frames_declare, frames_into

if TYPE_CHECKING:
    from tensordb_core.stream.fetch import Window

_LZ4 = CODEC_IDS["lz4"]
#: Samples of fewer decoded bytes are decoded a batch at a time; larger ones one by one, each straight into its
#: row (``format.codec.segment_into``).  Why: the gain is the per-call overhead, large for small samples and
#: small for large ones, where the frame decoder's internal copy (``decompress_into`` decodes through a buffer of
#: its own; ``decompress_block_into`` does not) outweighs it: 147 KiB images one call each, one block straight
#: into the row, 44 against 53 µs.
MAX_SAMPLE_BYTES = 64 << 10


def check_frames(window: Window, verify: bool) -> int:
    """The bytes each row of ``window`` decodes to where its parts may be decoded a batch at a time
    (:func:`decode_frames`), else 0: the per-sample decoder's.

    Run on the window-reading thread, once per window: a few numpy passes over
    its rows.  The frames' headers are read per part, where
    :func:`decode_frames` has their bytes in hand.  Why not here: a window of
    tiny samples holds up to 65,536 rows, and reading every header (and
    sorting the rows by chunk to do it) took ~45 ms before a first batch.
    """
    refs, rows = window.refs, window.rows
    if not len(rows) or refs.records or refs.any_y or not window.clean:
        return 0
    if verify and (window.checked is None or not window.checked.all()):
        return 0  # an unchecked or failing row: the careful path checks it and names it
    fmt = _one_format(refs, rows)
    if fmt is None or not 0 < fmt.nbytes < MAX_SAMPLE_BYTES or not (refs.x_codec[rows] == _LZ4).all():
        return 0
    return int(fmt.nbytes)


def decode_frames(window: Window, lo: int, hi: int, out: memoryview) -> bool:
    """Decode rows ``[lo, hi)`` of a window :func:`check_frames` passed into ``out`` (exactly their bytes), in one
    lz4 call, once every frame's header declares its row's bytes; False if anything is off (``out`` then holds
    nothing of use)."""
    refs, rows = window.refs, window.rows[lo:hi]
    req = window.req_of[lo:hi]
    start = refs.x_off[rows] - window.base_of[lo:hi]
    length = refs.x_len[rows]
    end = start + length
    views = window.views
    if (req == req[0]).all() and (start[1:] == end[:-1]).all():  # back to back in one chunk: an in-order read
        data = views[int(req[0])][int(start[0]) : int(end[-1])]
    else:
        data = b"".join([views[r][a:b] for r, a, b in zip(req.tolist(), start.tolist(), end.tolist())])
    at = np.cumsum(length) - length  # where each frame starts in ``data``
    if not frames_declare(np.frombuffer(data, dtype=np.uint8), at, length, len(out) // (hi - lo)):
        return False
    return frames_into(data, out)


def may_unpack(refs: Any) -> bool:
    """Whether windows of ``refs`` may be decoded a batch at a time: not where every sample is one format of
    :data:`MAX_SAMPLE_BYTES` or more.  The window reader crc32-checks only such windows as it reads them
    (:func:`~tensordb_core.stream.fetch.fetch_window`'s pre-check, which :func:`check_frames` needs).

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
    return fmt is None or fmt.nbytes < MAX_SAMPLE_BYTES


def _one_format(refs: Any, rows: np.ndarray) -> Any:
    if refs.x_format is not None:
        return refs.x_format
    fmts = np.unique(refs.x_fmt[rows])
    return refs.formats[int(fmts[0])] if len(fmts) == 1 and fmts[0] >= 0 else None
