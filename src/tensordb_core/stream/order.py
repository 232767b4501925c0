"""The stream's order, shards and resumable position: pure functions over small integers.

Why this shape: a training run must be able to stop anywhere and continue on a
different number of GPUs or loader workers.  So nothing here depends on a
worker: each epoch has one *global order* (a permutation of the epoch's
samples, defined by ``_seq`` order, the seed and the epoch), the position is
the set of global positions not yet consumed (``remaining``: a few sorted
``[start, end)`` ranges), and a shard is a contiguous slice of what remains.

Global order (state version 2, *blocks*): the epoch's ``_seq`` range, from its
first sample to the bound, is cut into *blocks* of ``span`` consecutive
``_seq`` values (about :data:`BLOCK_BYTES` of stored samples, so a block is
about a chunk).  Shuffling permutes the blocks; blocks are grouped in that
order into *windows* of about ``window_bytes`` (the shuffle buffer: every
batch mixes samples of a window's blocks, and reading a window reads each of
its chunks' bytes once), and the samples of a window are permuted.  Without
shuffling, blocks and samples stay in ``_seq`` order.  Why blocks and not the
chunks themselves: a block is found in the index by a ``_seq`` range, so the
first window is read without reading the rest of the index, and a stream
starts in the time of one window however large the warehouse
(:mod:`tensordb_core.stream.blocks`).  The layout (block span, window sizes)
depends only on the epoch's first samples, so the order still depends only
on the data, the seed and the epoch: the same on every backend, every rank
and a resumed stream.  Version-1 states (saved before blocks) keep their
chunk order (:func:`epoch_order`) until their run ends.

Shards: ``remaining`` concatenated is split into ``world`` contiguous pieces
(sizes differing by at most one); rank ``r`` reads piece ``r``.  Contiguous
pieces keep each rank on its own chunks (no rank reads another's bytes).
When rank ``r`` has consumed ``k`` samples of its piece, the saved position
assumes every rank consumed ``min(k, len(piece))`` of its own (ranks advance in
lockstep under DDP), which is exact for equal steps and at epoch boundaries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tensordb_core.errors import TensorDBError

STATE_VERSION = 2
#: Orders a state may name: ``blocks`` (version 2) and ``chunks`` (what version-1 states were saved with).
ORDERS = ("blocks", "chunks")
Ranges = list[tuple[int, int]]


class StreamStateError(TensorDBError, ValueError):
    """A saved stream state is malformed or was saved for another query, seed or ordering."""


@dataclass(frozen=True)
class EpochOrder:
    """One epoch's global order: ``order[p]`` is the table row at position ``p``; ``window[p]`` its window."""

    order: np.ndarray
    window: np.ndarray


def epoch_order(chunk: np.ndarray, span: np.ndarray, *, seed: int, epoch: int, shuffle: bool,
                window_bytes: int) -> EpochOrder:
    """The global order of an epoch whose population is the first ``len(chunk)`` rows.

    ``chunk`` is each row's chunk index (-1 for an unreadable row, which is
    ordered like a chunk of its own), ``span`` its stored bytes.  Depends only
    on these arrays, ``seed``, ``epoch``, ``shuffle`` and ``window_bytes``.
    """
    n = len(chunk)
    if n == 0:
        return EpochOrder(np.empty(0, np.int64), np.empty(0, np.int64))
    # Group id per row: its chunk; unreadable rows become singleton groups placed after the chunks.
    group = chunk.copy()
    bad = np.flatnonzero(group < 0)
    if len(bad):
        group[bad] = group.max(initial=-1) + 1 + np.arange(len(bad))
    if not shuffle:
        order = np.arange(n, dtype=np.int64)
        run_start = np.r_[True, group[1:] != group[:-1]]
        run_id = np.cumsum(run_start) - 1
        run_bytes = np.bincount(run_id, weights=span)
        run_window = _windows(run_bytes, window_bytes)
        return EpochOrder(order, run_window[run_id])
    rng = np.random.default_rng([seed, epoch])
    groups, inverse = np.unique(group, return_inverse=True)
    perm = rng.permutation(len(groups))
    rank_of_group = np.empty(len(groups), dtype=np.int64)
    rank_of_group[perm] = np.arange(len(groups))
    group_bytes = np.bincount(inverse, weights=span, minlength=len(groups))
    window_of_rank = _windows(group_bytes[perm], window_bytes)
    row_window = window_of_rank[rank_of_group[inverse]]
    order = np.lexsort((rng.random(n), row_window)).astype(np.int64)
    return EpochOrder(order, row_window[order])


def weighted_order(chunk: np.ndarray, span: np.ndarray, weights: np.ndarray, *, seed: int, epoch: int,
                   window_bytes: int) -> EpochOrder:
    """An epoch of ``len(chunk)`` draws *with replacement*, row ``i`` drawn with probability ``weights[i] / sum``.

    Why keep windows: the draws are a multiset of rows, and ordering them by
    the shuffled epoch's window of each row (random within a window) reads
    each chunk once per window, as a plain shuffle does, without changing
    which rows are drawn.  Depends only on the arrays, ``seed`` and ``epoch``
    (so a resumed or sharded stream sees the same draws), like :func:`epoch_order`.
    """
    n = len(chunk)
    if n == 0:
        return EpochOrder(np.empty(0, np.int64), np.empty(0, np.int64))
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
        raise TensorDBError("sampling weights must be finite numbers >= 0, one per sample, not all 0")
    base = epoch_order(chunk, span, seed=seed, epoch=epoch, shuffle=True, window_bytes=window_bytes)
    window_of_row = np.empty(n, dtype=np.int64)
    window_of_row[base.order] = base.window
    rng = np.random.default_rng([seed, epoch, 1])
    draws = rng.choice(n, size=n, replace=True, p=w / w.sum()).astype(np.int64)
    order = draws[np.lexsort((rng.random(n), window_of_row[draws]))]
    return EpochOrder(order, window_of_row[order])


#: The first window of an epoch holds this fraction of ``window_bytes``.
FIRST_WINDOW_FRACTION = 8


def _windows(sizes: np.ndarray, window_bytes: int) -> np.ndarray:
    """Window index of each item of ``sizes`` (in order): a new window once ``window_bytes`` are filled.

    The first window is an eighth of the others (:data:`FIRST_WINDOW_FRACTION`):
    the first batch waits for its whole window (read, checked, and for a
    shuffle every chunk of it), so a small one starts the epoch sooner, and
    the pipeline is running before the large windows come.
    """
    before = np.cumsum(sizes) - sizes
    size = max(1, window_bytes)
    first = max(1, size // FIRST_WINDOW_FRACTION)
    return np.where(before < first, 0, 1 + (before - first) // size).astype(np.int64)


# -- blocks (state version 2) ------------------------------------------------------------------------

#: A block holds at most about a chunk of stored bytes (the epoch's first chunks' size; this when none is recorded).
BLOCK_BYTES = 4 << 20
#: A block spans at least this many ``_seq`` values (huge samples) and at most this many (tiny ones).
MIN_BLOCK_SPAN, MAX_BLOCK_SPAN = 1, 1024
#: The first window holds at least this many blocks, so even the first batches mix samples from as many places
#: of the warehouse (an import per class or per source makes a block one class or one source).
BLOCKS_PER_FIRST_WINDOW = 4
#: A window holds at most this many samples: by bytes alone, a window of tiny samples would be most of a warehouse.
MAX_WINDOW_ROWS = 65536
#: The first window holds at most this many samples (an eighth of a window at most): the first batch waits for it.
FIRST_WINDOW_ROWS = 512
#: The layout is read from the stored sizes of the epoch's first this-many samples.
LAYOUT_SAMPLES = 64


@dataclass(frozen=True)
class BlockLayout:
    """An epoch's blocks: ``_seq`` values ``origin .. bound`` cut every ``span``; windows of ``window_rows``
    samples (the first ``first_rows``, doubling up to it), each closed by the block that fills it."""

    origin: int
    span: int
    bound: int
    window_rows: int
    first_rows: int

    @property
    def blocks(self) -> int:
        return (self.bound - self.origin) // self.span + 1

    def window_size(self, window: int) -> int:
        """The samples window ``window`` holds before it closes: ``first_rows * 2**window``, up to ``window_rows``."""
        return min(self.window_rows, self.first_rows << min(window, 32))

    def seq_range(self, block: int) -> tuple[int, int]:
        """The ``_seq`` values ``[low, high]`` (inclusive) of ``block``."""
        low = self.origin + block * self.span
        return low, min(self.bound, low + self.span - 1)


def block_layout(head_seq: np.ndarray, head_bytes: np.ndarray, head_chunk_bytes: np.ndarray, *, bound: int,
                 window_bytes: int) -> BlockLayout:
    """The layout of an epoch from its first samples (at most :data:`LAYOUT_SAMPLES`): ``_seq``, stored bytes,
    and the size of the chunk holding each (-1: not recorded).

    Medians size the blocks and windows (a few odd samples do not move
    them): a block spans at most a chunk's worth of samples (a window reads
    whole chunks or parts of them) and at most a quarter of the first
    window (:data:`BLOCKS_PER_FIRST_WINDOW`).  Why the second bound: with
    chunk-sized blocks a small warehouse's first windows were one block each,
    one import each, and a continuous trainer fed its new digits for half an
    epoch, then its old ones, forgot the first half (tests/test_loop_e2e.py).
    Both paths that order an epoch (streamed from the index, or from a
    loaded table) call this with the same samples, so they agree.
    """
    if not len(head_seq):
        raise ValueError("an epoch without samples has no block layout")
    size = max(1, int(np.median(head_bytes[:LAYOUT_SAMPLES])))
    chunks = head_chunk_bytes[:LAYOUT_SAMPLES]
    chunk = int(np.median(chunks[chunks > 0])) if (chunks > 0).any() else BLOCK_BYTES
    window_rows = int(np.clip(max(1, window_bytes) // size, 1, MAX_WINDOW_ROWS))
    first_rows = max(1, min(window_rows // FIRST_WINDOW_FRACTION, FIRST_WINDOW_ROWS))
    span = int(np.clip(min(chunk // size, first_rows // BLOCKS_PER_FIRST_WINDOW), MIN_BLOCK_SPAN, MAX_BLOCK_SPAN))
    return BlockLayout(int(head_seq[0]), span, int(bound), window_rows, first_rows)


def block_sequence(layout: BlockLayout, *, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The epoch's blocks in reading order."""
    if not shuffle:
        return np.arange(layout.blocks, dtype=np.int64)
    return np.random.default_rng([seed, epoch]).permutation(layout.blocks).astype(np.int64)


def read_units(cuts: list[int], stored_bytes: np.ndarray, limit: int, *, first_alone: bool) -> list[int]:
    """Window boundaries ``cuts`` (positions, from 0 to the end) merged into reads of consecutive windows of at
    most ``limit`` stored bytes together (a window larger than that is one read); ``first_alone``: the first
    window is a read of its own (a fresh stream's first batch waits for it)."""
    total = np.concatenate([[0], np.cumsum(stored_bytes, dtype=np.int64)])
    out = [cuts[0]]
    for i in range(1, len(cuts) - 1):
        if (first_alone and len(out) == 1) or total[cuts[i + 1]] - total[out[-1]] > limit:
            out.append(cuts[i])
    out.append(cuts[-1])
    return out


class WindowCutter:
    """Closes windows as blocks arrive in reading order: a window closes with the block that fills its rows.

    Window ``w`` holds ``first_rows * 2**w`` samples, up to ``window_rows``:
    the stages overlap from the first window on (a window is read while the
    one before is decoded), instead of one small window and then a large one
    the decoders wait for (a 400-sample remote epoch was two windows, read
    and decoded one after the other).
    """

    def __init__(self, layout: BlockLayout) -> None:
        self.layout = layout
        self.window = 0  # the window the next non-empty block joins
        self.rows = 0

    def room(self) -> int:
        """Samples the current window still takes before it closes."""
        return self.layout.window_size(self.window) - self.rows

    def add(self, rows: int) -> bool:
        """Count a block of ``rows`` samples into :attr:`window`; True when that closes it."""
        if rows <= 0:
            return False
        self.rows += rows
        if self.room() <= 0:
            self.window, self.rows = self.window + 1, 0
            return True
        return False


def window_permutation(k: int, *, seed: int, epoch: int, window: int, shuffle: bool) -> np.ndarray:
    """The order of a window's ``k`` samples (given in ``_seq`` order)."""
    if not shuffle:
        return np.arange(k, dtype=np.int64)
    return np.random.default_rng([seed, epoch, window]).permutation(k).astype(np.int64)


def window_blocks(layout: BlockLayout, counts: np.ndarray, *, seed: int, epoch: int, shuffle: bool) -> list[list[int]]:
    """The blocks of each window of an epoch (in reading order) whose blocks hold ``counts`` samples each.

    The one cut of an epoch into windows: :func:`block_order` (a loaded
    table), and a sharded stream that reads only the windows its piece of the
    global order covers (stream/blocks.py), both take it from here, and a
    fresh stream's :class:`WindowCutter` closes the same windows as blocks
    arrive.  Empty blocks join no window.  Each window ends at the first
    block its rows fill, found by a binary search of the running count (a
    :class:`WindowCutter` step per block was ~4 ms for a million samples'
    7,813 blocks, before a shard's first batch).
    """
    sequence = block_sequence(layout, seed=seed, epoch=epoch, shuffle=shuffle)
    blocks = sequence[counts[sequence] > 0]
    filled = np.cumsum(counts[blocks])
    windows, start = [], 0
    while start < len(blocks):
        room = layout.window_size(len(windows))
        before = int(filled[start - 1]) if start else 0
        end = min(int(np.searchsorted(filled, before + room)) + 1, len(blocks))  # the block that fills it, included
        windows.append(blocks[start:end].tolist())
        start = end
    return windows


def block_order(seq: np.ndarray, layout: BlockLayout, *, seed: int, epoch: int, shuffle: bool) -> EpochOrder:
    """The block order of an epoch whose population's ``_seq`` s (ascending, within the layout) are ``seq``.

    The same order :mod:`tensordb_core.stream.blocks` streams window by window
    from the index; this one is computed from a loaded table (resumed
    streams, later epochs, a stream whose memo kept its table).
    """
    n = len(seq)
    if n == 0:
        return EpochOrder(np.empty(0, np.int64), np.empty(0, np.int64))
    block_of_row = (np.asarray(seq, dtype=np.int64) - layout.origin) // layout.span
    counts = np.bincount(block_of_row, minlength=layout.blocks)
    window_of_block = np.full(len(counts), -1, dtype=np.int64)
    for w, blocks in enumerate(window_blocks(layout, counts, seed=seed, epoch=epoch, shuffle=shuffle)):
        window_of_block[blocks] = w
    row_window = window_of_block[block_of_row]
    by_window = np.argsort(row_window, kind="stable")  # each window's rows in _seq order
    sizes = np.bincount(row_window)
    order = np.empty(n, dtype=np.int64)
    start = 0
    for w, k in enumerate(sizes.tolist()):
        rows = by_window[start:start + k]
        order[start:start + k] = rows[window_permutation(k, seed=seed, epoch=epoch, window=w, shuffle=shuffle)]
        start += k
    return EpochOrder(order, np.repeat(np.arange(len(sizes), dtype=np.int64), sizes))


# -- ranges and shards ------------------------------------------------------------------------------


def normalize(ranges: Sequence[Sequence[int | None]], n: int) -> Ranges:
    """Sorted, merged, non-empty ranges within ``[0, n)`` (an end of None: ``n``); raises on overlap or bad bounds."""
    out: Ranges = []
    for item in ranges:
        if len(item) != 2:
            raise StreamStateError(f"a remaining range is [start, end], got {item!r}")
        a, b = int(item[0]), n if item[1] is None else int(item[1])  # None: to the epoch's end
        if a < 0 or b < a:
            raise StreamStateError(f"invalid remaining range [{a}, {b})")
        if b > n:
            raise StreamStateError(f"remaining range [{a}, {b}) is beyond the epoch's {n} samples "
                                   "(were matching documents deleted since the state was saved?)")
        if a == b:
            continue
        if out and a < out[-1][1]:
            raise StreamStateError("remaining ranges must be sorted and disjoint")
        if out and a == out[-1][1]:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def total(ranges: Ranges) -> int:
    return sum(b - a for a, b in ranges)


def piece_bounds(count: int, world: int, rank: int) -> tuple[int, int]:
    """``[start, end)`` of rank's contiguous piece of ``count`` items split ``world`` ways (sizes differ by <= 1)."""
    base, extra = divmod(count, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def slice_ranges(ranges: Ranges, start: int, end: int) -> Ranges:
    """Items ``[start, end)`` of the concatenation of ``ranges``, as position ranges."""
    out: Ranges = []
    offset = 0
    for a, b in ranges:
        length = b - a
        lo, hi = max(start - offset, 0), min(end - offset, length)
        if lo < hi:
            out.append((a + lo, a + hi))
        offset += length
        if offset >= end:
            break
    return out


def shard_positions(ranges: Ranges, world: int, rank: int) -> np.ndarray:
    """The global positions rank ``rank`` reads, in order."""
    lo, hi = piece_bounds(total(ranges), world, rank)
    parts = [np.arange(a, b, dtype=np.int64) for a, b in slice_ranges(ranges, lo, hi)]
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


def advance(ranges: Ranges, world: int, consumed: int) -> Ranges:
    """What remains after every rank consumed ``min(consumed, len(its piece))`` of its piece."""
    count = total(ranges)
    out: Ranges = []
    for r in range(world):
        lo, hi = piece_bounds(count, world, r)
        for a, b in slice_ranges(ranges, min(lo + consumed, hi), hi):
            if out and out[-1][1] == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
    return out


# -- the saved state -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamState:
    """Where a stream is: small, JSON-serializable, independent of the number of ranks or workers.

    * ``epoch`` / ``epoch_seq``: the epoch in progress and the largest ``_seq``
      its population includes (``None``: not started yet; taken when it starts).
    * ``remaining``: global positions of that epoch not yet consumed (``None``: all).
    * ``tail_after`` / ``tail_position``: in follow mode after the last epoch,
      samples with ``_seq > tail_after`` are streamed in insertion order and
      ``tail_position`` of them are consumed (``tail_after`` None: not tailing).
    * ``query``, ``seed``, ``shuffle``, ``window_bytes`` define the order; a
      resumed stream must use the same ones.  ``order``: ``blocks``, or
      ``chunks`` for a state saved by version 1 (before blocks), which keeps
      the order it started with.

    A stream saved while its first window streamed from the index, before the
    epoch's count was known, says ``remaining=[[k, None]]``: from position
    ``k`` to the end.
    """

    query: dict[str, Any]
    seed: int
    shuffle: bool
    window_bytes: int
    epoch: int = 0
    epoch_seq: int | None = None
    remaining: tuple[tuple[int, int | None], ...] | None = None
    tail_after: int | None = None
    tail_position: int = 0
    order: str = "blocks"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "query": self.query,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "window_bytes": self.window_bytes,
            "epoch": self.epoch,
            "epoch_seq": self.epoch_seq,
            "remaining": None if self.remaining is None else [list(r) for r in self.remaining],
            "tail_after": self.tail_after,
            "tail_position": self.tail_position,
            "order": self.order,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamState:
        if not isinstance(data, Mapping) or data.get("version") not in (1, STATE_VERSION):
            raise StreamStateError(f"not a version-1 or -{STATE_VERSION} stream state: {data!r:.200}")
        order = "chunks" if data.get("version") == 1 else data.get("order", "blocks")
        if order not in ORDERS:
            raise StreamStateError(f"unknown stream order {order!r}: one of {', '.join(ORDERS)}")
        try:
            remaining = data.get("remaining")
            state = cls(
                query=dict(data["query"] or {}),
                seed=int(data["seed"]),
                shuffle=bool(data["shuffle"]),
                window_bytes=int(data["window_bytes"]),
                epoch=int(data.get("epoch", 0)),
                epoch_seq=None if data.get("epoch_seq") is None else int(data["epoch_seq"]),
                remaining=None if remaining is None else tuple(
                    (int(a), None if b is None else int(b)) for a, b in remaining),
                tail_after=None if data.get("tail_after") is None else int(data["tail_after"]),
                tail_position=int(data.get("tail_position", 0)),
                order=order,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StreamStateError(f"malformed stream state: {exc}") from exc
        if state.epoch < 0 or state.tail_position < 0 or state.window_bytes < 1:
            raise StreamStateError("malformed stream state: negative epoch/position or window_bytes < 1")
        return state

    def check_matches(self, query: Mapping[str, Any], seed: int, shuffle: bool, window_bytes: int) -> None:
        """Refuse to resume with a different order definition (it would silently repeat or skip samples)."""
        mine = (self.query, self.seed, self.shuffle, self.window_bytes)
        theirs = (dict(query), seed, shuffle, window_bytes)
        names = ("query", "seed", "shuffle", "window_bytes")
        for name, a, b in zip(names, mine, theirs):
            if a != b:
                raise StreamStateError(f"the state was saved with {name}={a!r} but this stream uses {name}={b!r}: "
                                       "resume with the same settings")

    def with_position(self, **changes: Any) -> StreamState:
        return replace(self, **changes)
