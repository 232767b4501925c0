"""Chunk bytes read once for the windows of an epoch that share a chunk, where a request is a round trip.

Why: an epoch's blocks (``_seq`` spans, :mod:`tensordb_core.stream.order`)
are not cut at chunk boundaries, so a chunk's samples often fall in two
windows, and each window read its part with a request of its own: 400 large
samples in 15 chunks took 27 ranged GETs.  On an object store a request
costs more than its bytes (those 27 GETs, one after another on the
benchmark's servers: 24 / 117 / 87 ms on GCS / Azure / S3, where the 15
whole chunks took 14 / 53 / 53 ms).  Where the rest of a chunk belongs to a
block the epoch reads soon (at most a full window of blocks later, by the
epoch's block sequence), the window that reads the chunk first reads on
as far as that block's samples reach and leaves the bytes here; the later
window takes them instead of asking again (17 requests for those 400).
A chunk whose other blocks come later than that is read in ranges as
before, so a large warehouse, whose neighbouring blocks lie far apart in a
shuffled epoch, reads as it did; a chunk is read on only toward a block
still to come.  Bounded in bytes (a window's), each part let go once the
last window due to take it has claimed it; one carry per epoch of one
unsharded stream (a shard's neighbouring block may be another shard's), on
stores that are neither mapped nor read into buffers (those are local
files: a request costs a system call, not a round trip).

Why a claim per window, made on the fetch thread: windows are read two at
a time (:class:`~tensordb_core.stream.reader.WindowReader`), so the window
taking a chunk's part may start before the one reading it has finished;
claims made in window order say which window reads and which waits for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tensordb_core.store.protocols import BlobStore
from tensordb_core.stream.cache import ChunkCache
from tensordb_core.stream.disk_cache import DiskCachedBlobs
from tensordb_core.stream.order import BlockLayout, block_sequence
from tensordb_core.stream.plan import FetchPlan
from tensordb_core.stream.refs import FrozenRefs


class EpochSettings(Protocol):
    """What a carry needs of a stream's settings (:class:`~tensordb_core.stream.config.StreamConfig` has them;
    not imported: the config imports the decoder, which imports fetch, which imports this module)."""

    @property
    def seed(self) -> int: ...

    @property
    def shuffle(self) -> bool: ...

    @property
    def world(self) -> int: ...

    @property
    def window_bytes(self) -> int: ...


@dataclass
class _Carried:
    """Bytes ``[start, end)`` of one chunk, once the window reading them has them (None: that read failed, or
    never ran; the window taking them reads its own)."""

    key: str
    start: int
    end: int
    size: int  # the whole chunk's: a request of all of it asks for the object, not a range
    until: int  # the last block position due to take it
    ready: threading.Event = field(default_factory=threading.Event)
    data: Any = None

    @property
    def request(self) -> tuple[str, int, int | None]:
        """The request reading it (end None: the whole chunk, asked for as the object)."""
        return (self.key, self.start, None if self.start == 0 and self.end == self.size else self.end)

    def settle(self, data: Any) -> None:
        if not self.ready.is_set():
            self.data = data
            self.ready.set()


@dataclass(frozen=True)
class Claim:
    """What one window does with its epoch's carry: what it takes of chunks an earlier window read further than
    its own rows (by the chunk's index in the window's table), and what it reads further for a later window."""

    take: dict[int, _Carried]
    leave: list[_Carried]

    def plan(self, refs: FrozenRefs, rows: np.ndarray, plan_rows: Callable[[np.ndarray], FetchPlan]) -> FetchPlan:
        """The window's requests: ``plan_rows`` (:func:`~tensordb_core.stream.plan.plan_fetch`) for the rows it
        reads itself, each chunk it leaves read as one request that far, the rest from what it takes.  A row
        taken lies wholly inside what was read; one that does not is read by this window."""
        chunk = refs.chunk[rows]
        taken = np.full(len(rows), -1, dtype=np.int64)
        held = []
        for cid, carried in self.take.items():
            inside = (chunk == cid) & (refs.span_start[rows] >= carried.start) & (refs.span_end[rows] <= carried.end)
            if inside.any():
                taken[inside] = len(held)
                held.append(carried.request)
        own = taken < 0
        plan = plan_rows(rows[own]).spanning({c.key: c.request[1:] for c in self.leave})
        return plan.with_requests(own, held, taken)

    def _taking(self, request: tuple[str, int, int | None]) -> _Carried | None:
        return next((c for c in self.take.values() if c.request == request), None)

    def takes(self, request: tuple[str, int, int | None]) -> bool:
        """Whether an earlier window reads ``request`` for this one."""
        return self._taking(request) is not None

    def taken(self, request: tuple[str, int, int | None]) -> Any:
        """The bytes of ``request`` if an earlier window reads them (waiting for its read); None: ask the store."""
        carried = self._taking(request)
        if carried is None:
            return None
        carried.ready.wait()
        return carried.data

    def left(self, request: tuple[str, int, int | None], data: Any) -> None:
        """Hand what this window read for a later one to it (an exception: that window asks itself)."""
        for carried in self.leave:
            if carried.request == request:
                carried.settle(None if isinstance(data, BaseException) else data)

    def settle(self) -> None:
        """Wake every window waiting on this one's reads, read or not (a failed or stopped read: they ask again)."""
        for carried in self.leave:
            carried.settle(None)


class ChunkCarry:
    """The chunk bytes one epoch's windows read for later ones; :meth:`claim` is called in window order."""

    def __init__(self, layout: BlockLayout, sequence: np.ndarray, max_bytes: int) -> None:
        self.origin, self.span, self.blocks = layout.origin, layout.span, layout.blocks
        self.position = np.empty(layout.blocks, dtype=np.int64)  # each block's place in the epoch's reading order
        self.position[np.asarray(sequence, dtype=np.int64)] = np.arange(len(sequence), dtype=np.int64)
        self.ahead = max(1, layout.window_rows // layout.span)  # "soon": within a full window's blocks
        self.max_bytes = max_bytes
        self.held: dict[str, _Carried] = {}
        self.bytes = 0
        self._lock = threading.Lock()  # claims come from the fetch thread; close from whoever stops the stream

    def claim(self, refs: FrozenRefs, rows: np.ndarray) -> Claim | None:
        """What the window of ``rows`` takes and leaves (None: nothing; it reads in ranges as before).

        A chunk whose rows here start past its first byte continues in the
        block before their lowest; one whose rows end before its last byte,
        in the block after their highest.  Where such a block is read after
        this window and within :attr:`ahead` blocks of it, this window reads
        the chunk on as far as that block's samples reach (estimated from
        its own rows' bytes per ``_seq``: a chunk's samples were written in
        ``_seq`` order) and leaves it; a part already read stays unread.
        """
        chunk = refs.chunk[rows]
        rows = rows[(chunk >= 0) & (refs.seq[rows] >= self.origin)]
        block = (refs.seq[rows] - self.origin) // self.span
        rows, block = rows[block < self.blocks], block[block < self.blocks]  # the epoch's rows (a tail's are past it)
        if not len(rows):
            return None
        chunk = refs.chunk[rows]
        by_chunk = np.argsort(chunk, kind="stable")
        chunk, rows, block = chunk[by_chunk], rows[by_chunk], block[by_chunk]
        heads = np.flatnonzero(np.r_[True, chunk[1:] != chunk[:-1]])
        ids, seq = chunk[heads], refs.seq[rows]
        sizes = refs.chunk_sizes[ids]
        low, high = np.minimum.reduceat(refs.span_start[rows], heads), np.maximum.reduceat(refs.span_end[rows], heads)
        first_block, last_block = np.minimum.reduceat(block, heads), np.maximum.reduceat(block, heads)
        seq_lo, seq_hi = np.minimum.reduceat(seq, heads), np.maximum.reduceat(seq, heads)
        last = int(self.position[block].max())  # the window's last block in the reading order

        def due(neighbour: np.ndarray, missing: np.ndarray) -> np.ndarray:
            """The neighbouring block's position where it holds the chunk's rest and comes soon after this window."""
            where = self.position[np.clip(neighbour, 0, self.blocks - 1)]
            soon = missing & (neighbour >= 0) & (neighbour < self.blocks) & (where > last) & (where <= last + self.ahead)
            return np.where(soon, where, -1)

        before, after = due(first_block - 1, low > 0), due(last_block + 1, (sizes >= 0) & (high < sizes))
        per_seq = (high - low) / (seq_hi - seq_lo + 1)
        reach_lo = np.maximum(0, low - per_seq * (seq_lo - (self.origin + (first_block - 1) * self.span)))
        reach_hi = np.minimum(sizes, high + per_seq * (self.origin + (last_block + 2) * self.span - 1 - seq_hi))
        take: dict[int, _Carried] = {}
        leave: list[_Carried] = []
        with self._lock:
            for cid, size, lo, hi, head_due, tail_due, reach_start, reach_end in zip(
                    ids.tolist(), sizes.tolist(), low.tolist(), high.tolist(), before.tolist(), after.tolist(),
                    reach_lo.astype(np.int64).tolist(), np.ceil(reach_hi).astype(np.int64).tolist()):
                key = refs.chunk_keys[cid]
                if (held := self.held.get(key)) is not None:
                    if held.start < hi and lo < held.end:
                        take[cid] = held
                    continue
                if max(head_due, tail_due) < 0:
                    continue
                start, end = (reach_start if head_due >= 0 else lo), (reach_end if tail_due >= 0 else hi)
                if self.bytes + end - start <= self.max_bytes:
                    self.held[key] = _Carried(key, start, end, size, max(head_due, tail_due))
                    leave.append(self.held[key])
                    self.bytes += end - start
            for key in [k for k, held in self.held.items() if held.until <= last]:
                held = self.held.pop(key)  # taken by its last window here, or its block passed
                self.bytes -= held.end - held.start
        return Claim(take, leave) if take or leave else None

    def close(self) -> None:
        """Let go of everything held and wake any window waiting for it (the stream is stopping)."""
        with self._lock:
            for held in self.held.values():
                held.settle(None)
            self.held.clear()
            self.bytes = 0


def carry_for(blobs: BlobStore, cache: ChunkCache | None, layout: BlockLayout | None, cfg: EpochSettings,
              epoch: int) -> ChunkCarry | None:
    """A carry for an epoch of ``layout`` where one pays, else None: an unsharded stream on a store where a request
    is a round trip, whose windows do not read whole chunks already (for a chunk cache, on disk or in memory)."""
    caps = blobs.capabilities
    if layout is None or cfg.world != 1 or cache is not None or isinstance(blobs, DiskCachedBlobs) or (
            caps.map or caps.read_into):
        return None
    sequence = block_sequence(layout, seed=cfg.seed, epoch=epoch, shuffle=cfg.shuffle)
    return ChunkCarry(layout, sequence, cfg.window_bytes)


__all__ = ["ChunkCarry", "Claim", "carry_for"]
