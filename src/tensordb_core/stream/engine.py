"""The stream's background stages: plan + fetch, batch assembly, decode, joined by bounded queues.

::

    fetch thread        index pages -> epoch order -> this rank's windows -> cache / get_many -> crc32
                        (refs.RefTable, order.block_order/shard_positions, plan.plan_fetch, fetch.fetch_window;
                        a fresh epoch's windows come from blocks.BlockReader; reader.WindowReader reads two at once
                        and checks there which may be decoded a batch at a time: unpack.check_frames; on an object
                        store, a chunk windows share is read once: carry.ChunkCarry)
        | windows queue (2)
    assembly thread     slices windows into batches, submits each to the decode pool
        | out queue (``prefetch``): batch futures, in order, plus phase markers
    decode pool         lz4 into the batch array, a batch's small samples in one call (decode.Decoder,
                        unpack.decode_frames; threads: the C calls release the GIL)
        |
    consumer            ``next(stream)`` (batches.Stream, in the training loop's thread)

Why threads and bounded queues: I/O (network or page cache), decompression and the training step overlap,
while each queue's bound stops a stage from running ahead of the consumer (back-pressure) and bounds memory to a
few windows and ``prefetch`` batches.  The queues are hand-offs that :meth:`Engine.shutdown` wakes
(stream/handoff.py), so ``close()`` (or garbage-collecting the stream) ends every thread at once, with no
polling.  Threads reference this engine, never the user's stream object, so an abandoned stream can be collected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import islice, pairwise, takewhile
from typing import Any

import numpy as np

from tensordb_core.errors import TensorDBError
from tensordb_core.store.generations import data_generation
from tensordb_core.store.kit.cursors import closing_cursor
from tensordb_core.store.scope import StudyScope
from tensordb_core.stream.blocks import (
    BlockReader,
    carry_verified,
    extend_by_columns,
    extend_in_order,
    head_layout,
    verified_seqs,
)
from tensordb_core.stream.cache import ChunkCache
from tensordb_core.stream.carry import carry_for
from tensordb_core.stream.config import StreamConfig
from tensordb_core.stream.counters import Counters
from tensordb_core.stream.decode import Decoder, auto_decode_workers
from tensordb_core.stream.disk_cache import DiskCachedBlobs, DiskChunkCache
from tensordb_core.stream.fetch import BufferPool, Window, fetch_window
from tensordb_core.stream.follow import StoreWatch, Watermark
from tensordb_core.stream.groups import EpochBounds
from tensordb_core.stream.handoff import Handoff, StopSignal, done_or_stop, result_or_stop
from tensordb_core.stream.mapped import MappedChunks
from tensordb_core.stream.memo import LOAD_AT_ONCE_SEQS, IndexMemo, KeptRows, memo_key
from tensordb_core.stream.order import (
    EpochOrder,
    Ranges,
    StreamState,
    block_order,
    epoch_order,
    normalize,
    piece_bounds,
    read_units,
    shard_positions,
    weighted_order,
)
from tensordb_core.stream.plan import run_bounds
from tensordb_core.stream.reader import WindowReader
from tensordb_core.stream.records import RecordDecoder, RecordTable, record_projection
from tensordb_core.stream.refs import PROJECTION, FrozenRefs, RefTable
from tensordb_core.stream.snapshots import index_identity

#: Windows the fetch thread may hold ready ahead of batch assembly.
WINDOWS_AHEAD = 2
#: Documents read per page when following new inserts.
TAIL_PAGE = 4096
#: How often an idle follow stream checks that the data it read still exists (see follow.StoreWatch).
WATCH_S = 2.0
#: Documents per index page when loading an epoch (large pages: the embedded index is ~2x faster than at 256).
INDEX_PAGE = 4096


@dataclass(frozen=True)
class Phase:
    """An epoch (``epoch`` set) or the follow tail (``epoch`` None), as this rank streams it.

    ``ranges``/``count``: the epoch's remaining positions at the start and its population; ``size``: how many
    positions this rank reads.  ``count`` and ``size`` are None while an epoch streams from the index before its
    count is known (stream/blocks.py; ``ranges`` is then empty); the ``end`` marker brings them.  In the tail,
    ``seq`` is ``tail_after`` and ``tail_base`` the global tail position it started at.
    """

    epoch: int | None
    seq: int
    ranges: Ranges
    count: int | None
    size: int | None
    tail_base: int = 0


class _Marker:
    def __init__(self, kind: str, payload: Any = None) -> None:
        self.kind, self.payload = kind, payload


class Engine:
    """Owns the stream's threads and queues; the user-facing stream reads :attr:`out`."""

    def __init__(self, scope: StudyScope, cfg: StreamConfig, state: StreamState, cache: ChunkCache | None,
                 memo: IndexMemo | None = None, disk: DiskChunkCache | None = None,
                 head: list[Mapping[str, Any]] | None = None) -> None:
        self.scope, self.cfg, self.state, self.cache = scope, cfg, state, cache
        self.head = head  # the population's first documents, read at creation (blocks.head_documents)
        local = bool(scope.blobs.capabilities.map)  # chunk files on this machine: a disk cache copies none
        self.blobs: Any = scope.blobs if disk is None or local else DiskCachedBlobs(scope.blobs, disk)  # windows read
        if cache is None and local:
            self.blobs = MappedChunks(scope.blobs)  # dense chunks mapped once per stream (stream/mapped.py)
        self.memo = memo if cfg.weights is None and not cfg.follow else None  # see _borrow_table
        self.generation, self.memo_key = 0, None  # the borrowed table's data generation (store/generations.py), key
        self.index: str | None = None  # the index's identity, where the memo keeps tables on disk (snapshots.py)
        self.earlier: Callable[..., KeptRows | None] | None = None  # a table on disk loading (IndexMemo.load_later)
        #: The kept table to load once two windows are on their way (``_load_kept``): ``load_later``'s arguments.
        self.kept_later: tuple[Hashable, int, str] | None = None
        self.counters = Counters()
        self.stop = StopSignal()  # set by shutdown (or a stage giving up): wakes the hand-offs below at once
        self.bounds = EpochBounds(scope, cfg.group, stop=self.stop)
        self.windows: Handoff[Any] = Handoff(WINDOWS_AHEAD)
        self.out: Handoff[tuple[str, Any, int]] = Handoff(cfg.prefetch)
        self.stop.wake(self.windows.stop)
        self.stop.wake(self.out.stop)
        self.pool: ThreadPoolExecutor | None = None  # made on the first batch, when sample sizes are known
        self._pool_lock = threading.Lock()
        self.buffers = BufferPool(max_bytes=(WINDOWS_AHEAD + 2) * cfg.window_bytes)
        threads = cfg.read_threads or (1 if cfg.cpus == 1 else WINDOWS_AHEAD)
        self.reader = WindowReader(self.blobs, cache, self.counters, self.buffers, cfg.verify, threads)
        self.counters.add(read_threads=threads)
        self.stop.wake(self.reader.stop)  # cancels the reads not started, wakes wait_idle
        rec = cfg.records
        self.projection = PROJECTION if rec is None else record_projection(rec.fields)
        if callable(cfg.weights):
            self.projection = None  # the callable sees whole documents
        elif cfg.weights is not None and self.projection is not None:
            self.projection = {**self.projection, cfg.weights: 1}
        self.weights: list[float] = []  # per row of the epoch table, when drawing by weights
        self.newest: tuple[int, str, str] | None = None  # (_seq, id, chunk key) of the newest readable row read
        self._first_read = True  # the fetch thread has submitted no read yet (see _hand_on)
        self.first_decoded: Future[None] = Future()  # done once the stream's first batch is (see _hand_on)
        common = {"transform": cfg.transform, "on_error": cfg.on_error, "verify": cfg.verify, "stats": self.counters}
        self.decoder: Decoder | RecordDecoder = Decoder(**common, memory=cfg.batch_memory) if rec is None else (
            RecordDecoder(**common, decode=rec.decode, pad=rec.pad))
        self.threads = [
            threading.Thread(target=self._run_fetch, name="tensordb-stream-fetch", daemon=True),
            threading.Thread(target=self._run_assembly, name="tensordb-stream-batch", daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    # -- lifecycle -------------------------------------------------------------------------------------

    def shutdown(self, wait: bool = True, timeout: float = 10.0) -> None:
        """Stop every stage; with ``wait``, join the threads (a blocked stage wakes at once: stream/handoff.py)."""
        self.stop.set()
        if isinstance(self.blobs, (MappedChunks, DiskCachedBlobs)):
            self.blobs.clear()  # windows still in flight hold their own views
        with self._pool_lock:
            pool = self.pool
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if wait:
            deadline = time.monotonic() + timeout
            for thread in self.threads:
                if thread is not threading.current_thread():
                    thread.join(max(0.0, deadline - time.monotonic()))
            if pool is not None:
                pool.shutdown(wait=True)

    def _decode_pool(self, window: Window) -> ThreadPoolExecutor | None:
        """The decode pool, sized on first use from the first window's samples (None once stopping)."""
        with self._pool_lock:
            if self.pool is None and not self.stop.is_set():
                refs = window.refs
                media = refs.records and self.cfg.records is not None and self.cfg.records.decode and refs.media
                workers = self.cfg.decode_workers or auto_decode_workers(
                    refs.span_bytes(window.rows), media, bool(window.frame_bytes), self.cfg.cpus)
                self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tensordb-decode")
                self.counters.add(decode_workers=workers)
            return None if self.stop.is_set() else self.pool

    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    # -- fetch thread ----------------------------------------------------------------------------------

    def _run_fetch(self) -> None:
        try:
            self._produce()
            self.windows.put(_Marker("done"))
        except BaseException as exc:  # noqa: BLE001 - delivered to the consumer, who re-raises it
            self.windows.put(_Marker("error", exc))

    def _produce(self) -> None:
        cfg = self.cfg
        q = self.scope.query(cfg.query)
        key, (table, scanned) = self._borrow_table(q)
        try:
            self._produce_from(q, table, scanned)
        finally:
            if key is not None and self.memo is not None and table.last_seq <= self.scanned:
                # not a table a failed load left half-extended; kept under the generation read before it was built
                self.memo.give(key, table, self.scanned, self.generation, self.index)

    def _borrow_table(self, q: Mapping[str, Any]) -> tuple[Any, tuple[RefTable, int]]:
        """The table a memo kept for this query (read up to its bound), else an empty one.

        Only plain epochs borrow: follow mode and weighted draws keep per-row
        state beside the table (tail positions, weights) that a memo does not.
        """
        self.scanned = 0
        if self.memo is None:
            return None, (self._table(), 0)
        rec = self.cfg.records
        key = self.memo_key = memo_key(self.scope.data_collection, q, self.projection,
                                       None if rec is None else rec.fields)
        self.generation = data_generation(self.scope.index)  # before any read: a change during it shows later
        self.index = index_identity(self.scope.index) if self.memo.snapshots is not None else None
        st = self.state  # a fresh epoch in block order streams while a large table on disk loads (load_later)
        fresh = st.order == "blocks" and st.remaining is None and st.tail_after is None
        kept = self.memo.take(key, self.generation, self.index, LOAD_AT_ONCE_SEQS if fresh else None)
        if kept is not None:
            self.scanned = kept[1]
        elif fresh and self.index is not None:
            self.kept_later = (key, self.generation, self.index)
        return key, kept if kept is not None else (self._table(), 0)

    def _produce_from(self, q: Mapping[str, Any], table: RefTable, scanned: int) -> None:
        cfg, st = self.cfg, self.state
        seq = st.epoch_seq
        resume_ranges = st.remaining
        epoch = st.epoch
        first = True
        if st.tail_after is None:
            while (cfg.epochs is None or epoch < cfg.epochs) and not self.stop.is_set():
                if seq is None or (cfg.follow and not first):
                    seq = self.bounds.bound(epoch)  # the epoch's population: _seq <= seq
                first = False
                if self._streams_from_blocks(resume_ranges, table):
                    streamed = self._stream_blocks(epoch, seq, q, table)
                    scanned = self.scanned
                    if streamed is False:
                        return
                    if streamed:
                        epoch += 1
                        continue
                    # None: an empty population; the table path below waits or ends as before
                scanned = self.scanned = self._load(table, q, scanned, seq)
                refs = table.freeze()
                n = int(np.searchsorted(refs.seq, seq, side="right"))
                if n == 0 and cfg.follow and cfg.epochs is None:
                    self.stop.wait(cfg.poll_s)  # nothing yet: an empty epoch would spin
                    continue
                if n == 0 and not cfg.follow:
                    return
                ranges = normalize(resume_ranges, n) if resume_ranges is not None else [(0, n)]
                resume_ranges = None
                if not self._stream_epoch(epoch, seq, refs, n, ranges):
                    return
                epoch += 1
            if not cfg.follow or self.stop.is_set():
                return
            tail_after = seq if seq is not None else self.scope.index.last_seq(self.scope.data_collection)
            position = 0
        else:
            tail_after, position = st.tail_after, st.tail_position
        self._stream_tail(q, tail_after, position)

    def _streams_from_blocks(self, resume_ranges: Any, table: RefTable) -> bool:
        """Whether this epoch starts from the index block by block (stream/blocks.py) rather than a loaded table:
        a fresh, whole, unweighted epoch in block order without a table yet (a resumed epoch needs its count
        before its first position, weighted draws every weight; a kept table is faster)."""
        return self.state.order == "blocks" and self.cfg.weights is None and resume_ranges is None and not table

    def _stream_blocks(self, epoch: int, seq: int, q: Mapping[str, Any], table: RefTable) -> bool | None:
        """Stream the epoch (a shard: its piece) window by window from index blocks; then fill ``table`` if a
        later epoch needs it, from the windows' own rows (``BlockReader.whole_table``: a second read of the
        index held the GIL against the next epoch's first windows, 41k against 96k small samples/s).  Rows no
        window lends (records, ``_y`` labels, malformed references) are read again; a one-epoch stream (no
        memo) keeps nothing.  False when stopping, None for an empty population (nothing streamed), True
        once streamed."""
        cfg = self.cfg
        seqs = partial(self.memo.kept_seqs, *self.kept_later) if self.kept_later and self.memo is not None else None
        reader = BlockReader(self.scope, q, self._table, self.stop, self.counters, self._kept_rows, seqs)
        layout = reader.layout(seq, cfg.window_bytes, self.head)
        self.head = None  # read before the first epoch's bound: a later epoch reads its own
        self.reader.carry = carry_for(self.blobs, self.cache, layout, cfg, epoch)
        if layout is None:
            return None
        keep = self.memo is not None or cfg.epochs is None or epoch + 1 < cfg.epochs  # a later epoch needs the table
        order = {"seed": cfg.seed, "epoch": epoch, "shuffle": cfg.shuffle, "keep": keep}
        if cfg.world == 1:  # the count comes with the end marker
            phase, windows = Phase(epoch, seq, [], None, None), reader.permuted_windows(layout, **order)
        elif cfg.rank == 0:  # its piece starts the epoch: the first window comes before the count (with the end)
            phase, windows = Phase(epoch, seq, [], None, None), reader.leading_piece(layout, cfg.world, **order)
        else:  # a shard's piece starts where the windows before it end: their counts first, no reference
            if (loading := self._load_kept()) is not None:  # a kept table loading holds the interpreter lock
                loading(wait=True)  # against the index's reads: the count comes from it
            count = int((counts := reader.block_counts(layout)).sum())
            lo, hi = piece_bounds(count, cfg.world, cfg.rank)
            phase, windows = Phase(epoch, seq, [(0, count)], count, hi - lo), reader.shard_windows(
                layout, counts, lo, hi, first_rows=cfg.batch_size, **order)
        if not self.windows.put(_Marker("start", phase)):
            return False
        done, checked = 0, []

        def note_checked(read: FrozenRefs) -> None:  # a read window, carried into a kept table (none: held by none)
            checked.append(read)

        for put, (refs, rows) in enumerate(windows):
            self._note_newest(refs, refs.n)  # what a follow tail watches
            if len(rows) and not self._hand_on(refs, rows, note_checked if keep else None):
                return False
            done += len(rows)
            if put and self._load_kept() is not None and (earlier := self._kept_rows()) is not None:
                windows.close()
                return self._rest_from_earlier(earlier, epoch, seq, q, table, done, checked)
        n = reader.counted if reader.counted is not None else done
        if not self.windows.put(_Marker("end", phase if phase.count is not None else Phase(epoch, seq, [(0, n)], n, done))):
            return False
        if keep:
            self.scanned = seq if reader.whole_table(table) else self._load(table, q, 0, seq)
            if not self.reader.wait_idle(self.stop):  # every window checked: their crc32 results are in
                return False
            carry_verified(table.freeze(), [verified_seqs(read) for read in checked])
            if self.memo is not None:  # for the next process too (a cache_dir's snapshots), now, not at the end
                self.memo.save(self.memo_key, table, self.scanned, self.generation, self.index)
        return True

    def _load_kept(self) -> Callable[..., KeptRows | None] | None:
        """Start loading the table an earlier process kept, if one waits (:attr:`kept_later`); its getter (None: none).
        Called once two windows are on their way: the load (~14 ms at 1M rows) holds the interpreter lock against the
        first batch (started with a shard's stream, a loader's first batch from 1M kept rows went 51-54 -> 75-77 ms)."""
        if self.kept_later is not None and self.memo is not None:
            self.earlier, self.kept_later = self.memo.load_later(*self.kept_later), None
        return self.earlier

    def _kept_rows(self) -> KeptRows | None:
        """The table an earlier process kept, once loaded (None: none, or not yet)."""
        return self.earlier() if self.earlier is not None else None

    def _rest_from_earlier(self, earlier: KeptRows, epoch: int, seq: int, q: Mapping[str, Any], table: RefTable,
                           done: int, checked: list[FrozenRefs]) -> bool:
        """Stream the rest of the epoch (a shard: of its piece) from the table an earlier process kept, now loaded
        (IndexMemo.load_later), as a loaded table does: the positions past the ``done`` ones read from the index
        (both paths give one order), its rows past its bound read from the index first.  ``table`` becomes it."""
        cfg, self.earlier = self.cfg, None
        table.become(earlier.table)
        self.scanned = self._load(table, q, earlier.bound, seq)
        refs = table.freeze()
        n = int(np.searchsorted(refs.seq, seq, side="right"))
        lo, hi = piece_bounds(n, cfg.world, cfg.rank)
        order = block_order(refs.seq[:n], head_layout(refs, n, seq, cfg.window_bytes), seed=cfg.seed, epoch=epoch,
                            shuffle=cfg.shuffle)
        if not (self._fetch_windows(refs, order, np.arange(lo + done, hi, dtype=np.int64)) and self.windows.put(
                _Marker("end", Phase(epoch, seq, [(0, n)], n, hi - lo))) and self.reader.wait_idle(self.stop)):
            return False
        carry_verified(refs, [verified_seqs(read) for read in checked])  # the windows read from the index too
        if self.memo is not None:  # kept again only where it grew (imports past its bound)
            self.memo.save(self.memo_key, table, self.scanned, self.generation, self.index)
        return True

    def _load(self, table: RefTable, q: Mapping[str, Any], scanned: int, seq: int) -> int:
        """Add the matching documents with ``scanned < _seq <= seq`` to ``table``; return how far it now holds
        them: ``seq``, or less when the stream stopped part way (an index memo keeps the table with this bound,
        and a bound past what a closed stream's load read left the next epoch short of samples)."""
        if seq <= scanned:
            return scanned
        began = time.perf_counter()
        try:
            if self.cfg.weights is None:  # columns where the index offers them; weights are read from documents
                scanned = extend_by_columns(self.scope, q, table, scanned, seq, self.stop)
                if scanned >= seq or self.stop.is_set():
                    return scanned
            if scanned == 0:  # _seq order: stop at the first document past ``seq`` (a bound in the query is slower)
                docs = self.scope.index.find(self.scope.data_collection, q, projection=self.projection,
                                             batch_size=INDEX_PAGE)
            else:
                docs = self.scope.index.tail(self.scope.data_collection, q, after=scanned)
            with closing_cursor(docs) as cursor:  # closed even when the load stops part way
                extend_in_order(table, cursor, seq, self._weigh if self.cfg.weights is not None else None, self.stop)
            return max(scanned, table.last_seq) if self.stop.is_set() else seq  # whole pages, in _seq order
        finally:
            self.counters.add(index_s=time.perf_counter() - began)

    def _weigh(self, docs: list[Mapping[str, Any]]) -> None:
        """Append the sampling weight of each document (a field's value, or the user's callable's)."""
        rule = self.cfg.weights
        for doc in docs:
            w = rule(doc) if callable(rule) else doc.get(rule)  # type: ignore[union-attr]
            if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) or not w >= 0:
                what = f"its field {rule!r} is {w!r}" if isinstance(rule, str) else f"the weights callable gave {w!r}"
                raise TensorDBError(f"sample {doc.get('_id')}: {what}; a sampling weight is a number >= 0")
            self.weights.append(float(w))

    def _table(self) -> RefTable:
        rec = self.cfg.records
        return RefTable() if rec is None else RecordTable(rec.fields)

    def _stream_epoch(self, epoch: int, seq: int, refs: FrozenRefs, n: int, ranges: Ranges) -> bool:
        cfg, layout = self.cfg, None
        rows_all = np.arange(n, dtype=np.int64)
        if cfg.weights is not None:
            order = weighted_order(refs.chunk[:n], refs.span_bytes(rows_all), np.asarray(self.weights[:n]),
                                   seed=cfg.seed, epoch=epoch, window_bytes=cfg.window_bytes)
        elif self.state.order == "chunks":  # a version-1 state keeps the order it was saved with
            order = epoch_order(refs.chunk[:n], refs.span_bytes(rows_all), seed=cfg.seed, epoch=epoch,
                                shuffle=cfg.shuffle, window_bytes=cfg.window_bytes)
        else:
            layout = head_layout(refs, n, seq, cfg.window_bytes)
            order = block_order(refs.seq[:n], layout, seed=cfg.seed, epoch=epoch, shuffle=cfg.shuffle)
        self.reader.carry = carry_for(self.blobs, self.cache, layout, cfg, epoch)  # None: not the block order
        self._note_newest(refs, n)
        positions = shard_positions(ranges, cfg.world, cfg.rank)
        phase = Phase(epoch, seq, ranges, n, len(positions))
        return (self.windows.put(_Marker("start", phase)) and self._fetch_windows(refs, order, positions)
                and self.windows.put(_Marker("end", phase)))

    def _fetch_windows(self, refs: FrozenRefs, order: EpochOrder, positions: np.ndarray) -> bool:
        """Read the epoch's ``positions`` window by window into the windows queue (False once stopping).

        Consecutive windows are read as one (:func:`~tensordb_core.stream.order.read_units`): an epoch's
        first windows are small (512, 1024, 2048 rows: a fresh stream's first batch waits for one), and a
        loader worker's shard is mostly those; read one by one they cost it ~15% more CPU a sample.  The order
        is the windows' and batches span windows anyway: only the reads are coarser.
        """
        if len(positions):
            rows = order.order[positions]
            units = read_units(run_bounds(order.window[positions]), refs.span_bytes(rows), self.cfg.window_bytes,
                               first_alone=self._first_read)
            for a, b in pairwise(units):
                if self.stop.is_set():
                    return False
                if not self._hand_on(refs, rows[a:b]):
                    return False
        return True

    def _hand_on(self, refs: FrozenRefs, rows: np.ndarray, done: Callable[[FrozenRefs], None] | None = None) -> bool:
        """Start reading ``rows`` of ``refs`` and queue the read for batch assembly (False once stopping).

        The fetch thread then waits for the first batch (where the first read holds less than a batch: for that
        read) before reading the index on: its Python work (SQLite's answers parsed, columns made) took the
        interpreter lock from both (first batch of 12 KiB samples, medians of 60 starts: 13-18 -> 8.7-9.4 ms; loader,
        every worker's first from 1M kept references, 4 pairs of 10: 141-145 -> 127-147 ms; first epoch unchanged)."""
        first, self._first_read = self._first_read, False
        future = self.reader.submit(refs, rows, done)
        if not self.windows.put(future):
            return False
        if first:
            done_or_stop(self.first_decoded if len(rows) >= self.cfg.batch_size else future, self.stop)
        return True

    def _note_newest(self, refs: FrozenRefs, n: int) -> None:
        """Remember the newest readable row among the first ``n`` (what an idle tail checks still exists)."""
        readable = np.flatnonzero(refs.chunk[:n] >= 0)
        if len(readable):
            row = int(readable[-1])
            if self.newest is None or int(refs.seq[row]) > self.newest[0]:
                self.newest = (int(refs.seq[row]), refs.ids[row], refs.chunk_keys[int(refs.chunk[row])])

    def _stream_tail(self, q: Mapping[str, Any], after: int, position: int) -> None:
        """Follow mode past the last epoch: new samples in insertion order, strided over the ranks.

        While no new sample comes, the store is watched (follow.Watermark, follow.StoreWatch): a
        collection dropped or a warehouse deleted underneath ends the stream with BackendUnavailable
        within about :data:`WATCH_S` instead of polling forever in silence.
        """
        cfg = self.cfg
        phase = Phase(None, after, [], 0, 0, position)
        if not self.windows.put(_Marker("start", phase)):
            return
        scanned, index_of_next = after, 0
        # Only settled _seq ranges are streamed, so every rank (and a resumed stream) sees one order even
        # where a backend commits _seq ranges out of allocation order (MongoDB; see follow.Watermark).
        known = self.newest[0] if self.newest is not None else 0
        watermark = Watermark(self.scope.index, self.scope.data_collection, floor=after, known=known)
        watch = StoreWatch(self.scope.index, self.scope.blobs, self.scope.data_collection,
                           every_s=max(WATCH_S, cfg.poll_s))
        if self.newest is not None:
            watch.remember(*self.newest[1:])
        while not self.stop.is_set():
            began = time.perf_counter()
            settled = watermark.settled()
            docs = [] if settled <= scanned else list(islice(
                self.scope.index.tail(self.scope.data_collection, q, after=scanned, limit=TAIL_PAGE), TAIL_PAGE))
            docs = list(takewhile(lambda d, bound=settled: int(d["_seq"]) <= bound, docs))
            self.counters.add(index_s=time.perf_counter() - began)
            if not docs:
                self.windows.put(_Marker("flush"))
                watch.check()
                self.stop.wait(cfg.poll_s)
                continue
            scanned = int(docs[-1]["_seq"])
            mine = []
            for doc in docs:
                t = index_of_next
                index_of_next += 1
                if t >= position and (t - position) % cfg.world == cfg.rank:
                    mine.append(doc)
            if not mine:
                continue
            table = self._table()
            extend_in_order(table, mine, None)
            refs = table.freeze()
            self._note_newest(refs, refs.n)
            if self.newest is not None:
                watch.remember(*self.newest[1:])
            rows = np.arange(refs.n, dtype=np.int64)
            order = epoch_order(refs.chunk, refs.span_bytes(rows), seed=0, epoch=0, shuffle=False,
                                window_bytes=cfg.window_bytes)
            for a, b in pairwise(run_bounds(order.window)):
                window = fetch_window(self.blobs, refs, rows[a:b], self.cache, self.counters, self.buffers,
                                      cfg.verify)
                if not self.windows.put(window):
                    return

    # -- assembly thread -------------------------------------------------------------------------------

    def _run_assembly(self) -> None:
        try:
            self._assemble()
        except BaseException as exc:  # noqa: BLE001 - delivered to the consumer
            self.out.put(("error", exc, 0))

    def _assemble(self) -> None:
        cfg = self.cfg
        parts: list[tuple[Any, int, int]] = []
        count = consumed = 0
        told = False  # the first batch's decode tells the fetch thread it is done (_hand_on)

        def submit() -> bool:
            nonlocal parts, count, told
            pool = self._decode_pool(parts[0][0])
            try:
                if pool is None:
                    return False
                future: Future[Any] = pool.submit(self.decoder.decode, parts)
            except RuntimeError:  # the pool was shut down: we are stopping
                return False
            if not told:
                told = True
                future.add_done_callback(lambda _: self.first_decoded.set_result(None))
            parts, count = [], 0
            return self.out.put(("batch", future, consumed))

        while True:
            began = time.perf_counter()
            item = self.windows.get()
            self.counters.add(assembly_wait_s=time.perf_counter() - began)
            if isinstance(item, Future):  # a window being read (reader.WindowReader)
                item = result_or_stop(item, self.stop)
            if item is None:
                return
            if isinstance(item, _Marker):
                if item.kind in ("end", "flush") and count:
                    if item.kind == "end" and cfg.drop_last:
                        self.counters.add(dropped=count)
                        for window, _, _ in parts:
                            window.drop()
                        parts, count = [], 0
                    elif not submit():
                        return
                if item.kind == "start":
                    consumed = 0
                if item.kind in ("start", "end"):
                    ok = self.out.put((item.kind, item.payload, consumed))
                elif item.kind in ("done", "error"):
                    self.out.put((item.kind, item.payload, consumed))
                    return
                else:
                    ok = True
                if not ok:
                    return
                continue
            n = len(item.rows)
            lo = 0
            while lo < n:
                take = min(cfg.batch_size - count, n - lo)
                item.hold()  # released by the decode task (or the drop) of this part
                parts.append((item, lo, lo + take))
                count += take
                consumed += take
                lo += take
                if count == cfg.batch_size and not submit():
                    return
            item.drop()  # the hold fetch_window gave us
