"""An epoch's windows read straight from the index, block by block: the first batch without reading the index.

Why: a shuffled epoch used to need every matching document (its whole
reference table) before its first window, so the first batch of a
million-sample warehouse waited seconds for one index pass (~7 µs a
document) and a 20k one ~150 ms.  Under the block order
(:func:`tensordb_core.stream.order.block_order`) a window is a few blocks,
and a block is a ``_seq`` range the index answers from its primary order
(SQLite's rowid, MongoDB's ``_seq`` index) without reading the rest.  So a
fresh epoch streams window by window from here: the first batch waits for
one window's documents, and the index is read once, overlapped with
decoding.  When a later epoch (or an index memo) will use it, the whole
table is made after the epoch's last window from the windows' own rows
(:meth:`BlockReader.whole_table`), not read again: the table is what later
and resumed epochs order (the same order, computed at once).  A shard (a
loader worker, a DDP rank) first counts each block's samples, which place
its piece of the global order, and reads only the windows the piece covers
(:meth:`BlockReader.shard_windows`); rank 0, whose piece starts the epoch,
streams its first window before that count (:meth:`BlockReader.leading_piece`).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from tensordb_core.errors import BackendError
from tensordb_core.store.kit.cursors import closing_cursor
from tensordb_core.store.scope import StudyScope
from tensordb_core.stream.memo import KeptRows, KeptSeqs
from tensordb_core.stream.order import (
    LAYOUT_SAMPLES,
    BlockLayout,
    WindowCutter,
    block_layout,
    block_sequence,
    piece_bounds,
    window_blocks,
    window_permutation,
)
from tensordb_core.stream.refs import REF_PATHS, FrozenRefs, RefTable

#: The most blocks one ``$or`` query reads (``IndexCapabilities.seq_ranges``): a window of tiny samples spans
#: hundreds of blocks, and a server plans each branch of an ``$or``.
SEQ_RANGES_PER_QUERY = 64


class _Piece:
    """One read's matches, as columns (:data:`~tensordb_core.stream.refs.REF_PATHS`), as documents, or as rows
    ``offset ..`` of a table kept on disk (``rows``)."""

    def __init__(self, cols: dict[str, list[Any]] | None = None, docs: list[Mapping[str, Any]] | None = None,
                 rows: RefTable | None = None, offset: int = 0, seqs: np.ndarray | None = None) -> None:
        self.cols, self.docs, self.rows, self.offset = cols, docs, rows, offset
        self.seqs = seqs if seqs is not None else np.asarray(
            cols["_seq"] if cols is not None else [int(d["_seq"]) for d in docs or ()], dtype=np.int64)


class BlockReader:
    """Reads an epoch's population (``query`` and ``_seq <= bound``) by ``_seq`` range.

    As columns where the index offers them (``IndexCapabilities.columns``)
    and the table takes them; as documents otherwise, and for any rows
    :meth:`~tensordb_core.stream.refs.RefTable.extend_columns` refuses.
    """

    def __init__(self, scope: StudyScope, query: Mapping[str, Any], make_table: Callable[[], RefTable],
                 stop: threading.Event, stats: Any, earlier: Callable[[], KeptRows | None] | None = None,
                 kept_seqs: Callable[[], KeptSeqs | None] | None = None) -> None:
        self.scope, self.query = scope, query
        #: The table an earlier process kept for this query, once loaded (IndexMemo.load_later): blocks up to its
        #: bound are taken from it rather than read from the index.
        self.earlier = earlier
        #: That table's ``_seq`` column alone, read before its rows (IndexMemo.kept_seqs): what counts blocks.
        self.kept_seqs = kept_seqs
        self.make_table, self.stop, self.stats = make_table, stop, stats  # stats.add(index_s=...)
        self.columnar = takes_columns(scope, make_table())
        self.seq_ranges = bool(scope.index.capabilities.seq_ranges)
        #: With ``keep``: each block's window table and its rows there, for :meth:`whole_table`.
        self.kept: dict[int, tuple[RefTable, int, int]] | None = None
        self.finished = False  # every window of the layout was made (not stopped part way)
        #: A shard's windows outside its piece (:meth:`shard_windows` with ``keep``), read by :meth:`whole_table`.
        self.unread: list[tuple[BlockLayout, list[int]]] = []
        self.counted: int | None = None  # the population :meth:`leading_piece` counted (None: not yet)

    def read(self, low: int, high: int, limit: int = 0) -> list[Mapping[str, Any]]:
        """Matching documents with ``low <= _seq <= high``, in ``_seq`` order (at most ``limit``; 0: all).

        Through ``tail`` (``_seq > low - 1``, the stores' range scan) with the
        upper bound in the query: without it, a block past the query's last
        match scanned the rest of the collection for a ``limit`` it never
        found (a tag filter over 2,000 of 202,000 documents: 168 ms a block
        against 0.5 ms).
        """
        began = time.perf_counter()
        most = high - low + 1 if not limit else min(limit, high - low + 1)
        bounded = {"$and": [dict(self.query), {"_seq": {"$lte": high}}]}
        with closing_cursor(self.scope.index.tail(self.scope.data_collection, bounded, after=low - 1,
                                                  limit=most)) as cursor:  # closed at once: its statement too
            docs = list(cursor)
        self.stats.add(index_s=time.perf_counter() - began)
        return docs

    def _piece(self, low: int, high: int) -> _Piece:
        """Every match with ``low <= _seq <= high``: rows of an earlier process's table that holds them, else as
        columns where the index answers so, else documents."""
        kept = self._earlier_rows([(low, high)])
        if kept is not None:
            return kept
        if self.columnar:
            began = time.perf_counter()
            cols = self.scope.index.read_columns(self.scope.data_collection, self.query, REF_PATHS,
                                                 after=low - 1, until=high)
            self.stats.add(index_s=time.perf_counter() - began)
            if cols is not None:
                return _Piece(cols=cols)
            self.columnar = False  # outside the index's exact language: it will stay so for this query
        return _Piece(docs=self.read(low, high))

    def _ranges_piece(self, layout: BlockLayout, blocks: list[int]) -> _Piece:
        """Every match in ``blocks`` (any blocks of the layout) by one query: an ``$or`` of their ``_seq`` ranges,
        consecutive blocks merged (``IndexCapabilities.seq_ranges``)."""
        ranges: list[list[int]] = []
        for block in sorted(blocks):
            low, high = layout.seq_range(block)
            if ranges and ranges[-1][1] + 1 == low:
                ranges[-1][1] = high
            else:
                ranges.append([low, high])
        if len(ranges) == 1:
            return self._piece(*ranges[0])
        kept = self._earlier_rows(ranges)
        if kept is not None:
            return kept
        began = time.perf_counter()
        scattered = {"$or": [{"_seq": {"$gte": low, "$lte": high}} for low, high in ranges]}
        with closing_cursor(self.scope.index.find(self.scope.data_collection,
                                                  {"$and": [dict(self.query), scattered]})) as cursor:
            docs = sorted(cursor, key=lambda d: int(d["_seq"]))  # _seq order is the protocol's; cheap to be sure
        self.stats.add(index_s=time.perf_counter() - began)
        return _Piece(docs=docs)

    def _earlier_rows(self, ranges: list[list[int]] | list[tuple[int, int]]) -> _Piece | None:
        """The matches in ``ranges`` (ascending ``_seq`` ranges) from the earlier process's table, once it is
        loaded and holds them (its bound at or past their end); None otherwise."""
        kept = self.earlier() if self.earlier is not None else None
        if kept is None or kept.bound < ranges[-1][1]:
            return None
        spans = [np.searchsorted(kept.seq, [low, high + 1]).tolist() for low, high in ranges]
        if len(spans) == 1:  # one _seq range: rows of the kept table itself, no copy
            start, end = spans[0]
            return _Piece(rows=kept.table, offset=start, seqs=kept.seq[start:end])
        table = self.make_table()
        table.extend_rows(kept.table, spans)
        return _Piece(rows=table, seqs=np.array(table.seq, dtype=np.int64))

    def layout(self, bound: int, window_bytes: int, head: list[Mapping[str, Any]] | None = None
               ) -> BlockLayout | None:
        """The epoch's layout from its first samples (None: the population is empty).

        ``head``: the population's first documents read already (:func:`head_documents`, unbounded); those
        at or below ``bound`` are exactly what this read would return, so it is not repeated.
        """
        head = self.read(1, bound, limit=LAYOUT_SAMPLES) if head is None else [
            d for d in head if int(d["_seq"]) <= bound]
        if not head:
            return None
        refs = self.table([(_Piece(docs=head), 0, len(head))])
        return head_layout(refs, refs.n, bound, window_bytes)

    def table(self, parts: list[tuple[_Piece, int, int]]) -> FrozenRefs:
        """References of rows ``[start, end)`` of each piece (ascending ``_seq`` across them) as a frozen table."""
        return self._table(parts).freeze()

    def _table(self, parts: list[tuple[_Piece, int, int]]) -> RefTable:
        began = time.perf_counter()
        table = self.make_table()
        for lender, run in itertools.groupby(parts, key=lambda part: part[0].rows):
            if lender is not None:  # rows of one table (an earlier process's, a window's): copied at once
                table.extend_rows(lender, [(piece.offset + start, piece.offset + end) for piece, start, end in run])
            else:
                self._extend_read(table, run)
        table.freeze()
        self.stats.add(index_s=time.perf_counter() - began)
        return table

    def _extend_read(self, table: RefTable, parts: Iterable[tuple[_Piece, int, int]]) -> None:
        """Append to ``table`` the rows of ``parts`` read from the index (as columns, else documents)."""
        for piece, start, end in parts:
            if piece.cols is not None:
                cols = {name: column[start:end] for name, column in piece.cols.items()}
                if table.extend_columns(cols):
                    continue
                # rows columns cannot hold (a _y label, a record, a malformed reference): read as documents, and
                # so are the next blocks, as the table load does; such rows rarely come alone (every sample of a
                # _y dataset has one), and reading each block twice cost more than documents once
                self.columnar = False
                docs = self.read(int(piece.seqs[start]), int(piece.seqs[end - 1]))
            else:
                docs = piece.docs[start:end]
            table.extend(docs)

    def windows(self, layout: BlockLayout, *, seed: int, epoch: int, shuffle: bool, keep: bool = False
                ) -> Iterator[FrozenRefs]:
        """Each window's references in ``_seq`` order (the caller permutes them), in the epoch's window order.

        Blocks that follow each other in the reading order and in ``_seq``
        (every block in order; now and then when shuffled) are read by one
        query, as many as the window being filled can take: a query costs
        more than its documents where blocks are small (large samples).  An
        index that answers an ``$or`` of ``_seq`` ranges well (MongoDB)
        reads as many blocks by one query wherever they lie: a remote
        index's round trip is the cost (400 large samples on MongoDB: 24
        queries, most of the first epoch).  Which query reads a block never
        changes the window it joins.

        ``keep``: also keep each window's table, so :meth:`whole_table` can
        give the epoch's whole table once every window was made.
        """
        self.kept, self.finished = ({} if keep else None), False
        cutter = WindowCutter(layout)
        pending: list[tuple[int, _Piece, int, int]] = []
        order = block_sequence(layout, seed=seed, epoch=epoch, shuffle=shuffle).tolist()
        at = 0
        while at < len(order):
            if self.stop.is_set():
                return
            run = 1 + min(cutter.room() // layout.span, len(order) - at - 1)
            if self.seq_ranges and not self.columnar:  # the window's blocks, wherever they lie: one round trip
                run = min(run, SEQ_RANGES_PER_QUERY)
                piece = self._ranges_piece(layout, order[at:at + run])
            else:
                run = next((k for k in range(1, run) if order[at + k] != order[at] + k), run)  # consecutive blocks
                piece = self._piece(layout.seq_range(order[at])[0], layout.seq_range(order[at + run - 1])[1])
            for part in self._block_parts(layout, piece, order[at:at + run]):
                pending.append(part)
                if cutter.add(part[3] - part[2]):
                    yield self._window(layout, pending)
                    pending = []
            at += run
        if pending:
            yield self._window(layout, pending)
        self.finished = not self.stop.is_set()

    def block_counts(self, layout: BlockLayout) -> np.ndarray:
        """How many samples of the population each block of ``layout`` holds.

        Why: a shard's piece of the epoch's global order starts where the
        windows before it end, and those are cut by count (:func:`window_blocks`).
        Counted by the index where it offers columns (``count_blocks``: SQLite
        from a tag index where one answers the query, 1M samples in ~0.13 s),
        else from documents projected to their ``_seq``.
        """
        began, index, coll = time.perf_counter(), self.scope.index, self.scope.data_collection
        kept = self.earlier() if self.earlier is not None else None
        if kept is None and self.kept_seqs is not None:  # its rows not loaded (yet): the column alone, ~3 ms at 1M
            kept = self.kept_seqs()  # rows, where the index counted in ~60 ms of SQLite beside the other shards
        if kept is not None and kept.bound >= layout.bound:  # an earlier process's table holds them all
            # each block's first and last row by binary search (kept.seq ascends): ~1 ms at 1M rows, where a
            # bincount of every row's block took 7-27 ms before a shard's first batch
            edges = layout.origin + layout.span * np.arange(layout.blocks + 1, dtype=np.int64)
            rows = np.searchsorted(kept.seq, np.minimum(edges, layout.bound + 1))
            return np.diff(rows).astype(np.int64)
        counts = index.count_blocks(coll, self.query, origin=layout.origin, span=layout.span, until=layout.bound) if (
            index.capabilities.columns) else None
        if counts is None:
            bounded = {"$and": [dict(self.query), {"_seq": {"$lte": layout.bound}}]}
            with closing_cursor(index.find(coll, bounded, projection={"_seq": 1}, batch_size=COLUMN_PAGE_SEQS)) as cur:
                seq = np.fromiter((int(d["_seq"]) for d in cur), dtype=np.int64)
            counts = np.bincount((seq - layout.origin) // layout.span, minlength=layout.blocks)
        self.stats.add(index_s=time.perf_counter() - began)
        return np.asarray(counts, dtype=np.int64)

    def permuted_windows(self, layout: BlockLayout, *, seed: int, epoch: int, shuffle: bool, keep: bool = False
                         ) -> Iterator[tuple[FrozenRefs, np.ndarray]]:
        """:meth:`windows`, each with its rows in the epoch's order: a whole (unsharded) epoch."""
        for w, refs in enumerate(self.windows(layout, seed=seed, epoch=epoch, shuffle=shuffle, keep=keep)):
            yield refs, window_permutation(refs.n, seed=seed, epoch=epoch, window=w, shuffle=shuffle)

    def shard_windows(self, layout: BlockLayout, counts: np.ndarray, start: int, end: int, *, seed: int, epoch: int,
                      shuffle: bool, keep: bool = False, first_rows: int = 0) -> Iterator[tuple[FrozenRefs, np.ndarray]]:
        """The windows that hold positions ``[start, end)`` of the epoch's global order (a shard's piece), each
        with the rows of its table at those positions, in order; the blocks of other windows are not read.

        Why: every loader worker and DDP rank read the whole index before its
        first batch, which a million-sample warehouse made a wait of ~20 s
        with two workers on two cores.  ``counts`` (:meth:`block_counts`)
        place the piece.  ``keep``: :meth:`whole_table` reads the other
        windows (once the piece's are queued, so the epoch's end does not wait
        for them) and gives the table a later epoch orders.  A window whose
        population changed since the count yields what it holds now, as a
        fresh unsharded epoch does.

        ``first_rows`` (a batch): the piece's first window, which is a
        full-size one unless the piece starts the epoch, yields its first
        ``first_rows`` positions from the blocks they lie in before it reads
        the rest (:meth:`_window_head`).
        """
        self.kept, self.finished = ({} if keep else None), False
        yield from self._placed_windows(layout, counts, start, end, seed=seed, epoch=epoch, shuffle=shuffle, keep=keep,
                                        first_rows=first_rows)

    def _placed_windows(self, layout: BlockLayout, counts: np.ndarray, start: int, end: int, *, seed: int,
                        epoch: int, shuffle: bool, keep: bool, skip: int = 0, first_rows: int = 0
                        ) -> Iterator[tuple[FrozenRefs, np.ndarray]]:
        """:meth:`shard_windows`' reads, the first ``skip`` windows read already (and kept, with ``keep``)."""
        groups = window_blocks(layout, counts, seed=seed, epoch=epoch, shuffle=shuffle)
        bounds = np.concatenate([[0], np.cumsum([int(counts[g].sum()) for g in groups], dtype=np.int64)]).tolist()
        mine = [w for w in range(skip, len(groups)) if bounds[w] < end and bounds[w + 1] > start]
        for w in mine:
            if self.stop.is_set():
                return
            lo, hi = max(start - bounds[w], 0), max(min(end, bounds[w + 1]) - bounds[w], 0)
            head: list[tuple[int, _Piece, int, int]] = []
            rows = window_permutation(bounds[w + 1] - bounds[w], seed=seed, epoch=epoch, window=w, shuffle=shuffle)
            if first_rows and w == mine[0]:
                for refs, at in self._window_head(layout, sorted(groups[w]), counts, rows[lo:min(hi, lo + first_rows)],
                                                  head):
                    yield refs, at
                    lo += len(at)
            refs = self._read_window(layout, groups[w], head)
            if refs.n != len(rows):  # the population changed since the count: the order of what it holds now
                rows = window_permutation(refs.n, seed=seed, epoch=epoch, window=w, shuffle=shuffle)
            yield refs, rows[lo:hi]
        outside = set(range(skip, len(groups))) - set(mine)
        self.unread = [(layout, groups[w]) for w in sorted(outside)] if keep else []
        self.finished = not self.stop.is_set()

    def leading_piece(self, layout: BlockLayout, world: int, *, seed: int, epoch: int, shuffle: bool,
                      keep: bool = False) -> Iterator[tuple[FrozenRefs, np.ndarray]]:
        """:meth:`shard_windows` for rank 0 of ``world``, whose piece starts the epoch: its first window is read
        as a whole epoch reads it, before any count; :attr:`counted` holds the population once counted.

        Why: a shard waited for every block's count before its first batch
        (a torch loader's first batch comes from worker 0: 1M samples, two
        workers counting on two cores, ~0.2 s of its ~0.3 s).  The count only
        says where this piece ends, and the piece holds at least its share
        of the rows read so far (:func:`piece_bounds` of that many), so those
        go first; the count follows, then the rest of the first window and
        the windows after it, as :meth:`shard_windows` places them.
        """
        self.counted = None
        head = self.windows(layout, seed=seed, epoch=epoch, shuffle=shuffle, keep=keep)
        first = next(head, None)
        head.close()
        if first is None:
            return
        rows = window_permutation(first.n, seed=seed, epoch=epoch, window=0, shuffle=shuffle)
        surely = piece_bounds(first.n, world, 0)[1]
        yield first, rows[:surely]
        counts = self.block_counts(layout)
        self.counted = int(counts.sum())
        end = piece_bounds(self.counted, world, 0)[1]
        if end > surely:
            yield first, rows[surely:end]
        yield from self._placed_windows(layout, counts, 0, end, seed=seed, epoch=epoch, shuffle=shuffle, keep=keep,
                                        skip=1)

    def _window_head(self, layout: BlockLayout, blocks: list[int], counts: np.ndarray, rows: np.ndarray,
                     parts: list[tuple[int, _Piece, int, int]]) -> Iterator[tuple[FrozenRefs, np.ndarray]]:
        """Yield ``(refs, rows of refs)`` for a window's ``rows`` (rows of its whole table, from the count) read from
        only the ``blocks`` (the window's, ascending) that hold them, when those are at most half of them;
        ``parts`` gets the blocks read, for the rest of the window.

        Why: a loader worker's or rank's piece starts inside a full-size
        window, and its first batch waited for the whole of it (1M tiny
        samples: 65,536 rows of 512 blocks, ~0.4 s of a ~0.5 s start)
        although a batch's rows lie in ~60 of them.  The window's order is
        cut from its count, so the head is placed before the rest is read;
        nothing is yielded when the blocks read do not hold what was counted
        (the population changed): the whole window is then read as usual.
        """
        sizes = counts[blocks]
        starts = np.concatenate([[0], np.cumsum(sizes)])  # each block's first row in the whole table
        where = np.searchsorted(starts[1:], rows, side="right")  # each row's block, as an index into blocks
        needed = np.unique(where)
        if not len(rows) or 2 * len(needed) > len(blocks):
            return
        parts += self._window_parts(layout, [blocks[i] for i in needed.tolist()])
        held = np.zeros(len(blocks), np.int64)
        at = {block: i for i, block in enumerate(blocks)}
        for block, _, begin, end in parts:
            held[at[block]] += end - begin
        if not np.array_equal(held[needed], sizes[needed]):
            return
        first = starts[where]  # each row's block's first row in the whole table
        head_first = np.concatenate([[0], np.cumsum(sizes[needed])])[np.searchsorted(needed, where)]
        yield self._window(layout, list(parts)), rows - first + head_first

    def _read_window(self, layout: BlockLayout, blocks: list[int],
                     read: list[tuple[int, _Piece, int, int]] | None = None) -> FrozenRefs:
        """The table of a window of known ``blocks``, the parts of those ``read`` already (by :meth:`_window_head`)
        not read again."""
        done = {block for block, *_ in read or ()}
        return self._window(layout, list(read or ()) + self._window_parts(layout, [b for b in blocks if b not in done]))

    def _window_parts(self, layout: BlockLayout, blocks: list[int]) -> list[tuple[int, _Piece, int, int]]:
        """``(block, piece, start, end)`` of each of ``blocks`` that holds rows: consecutive blocks read by one query
        (an index answering ``$or`` of ``_seq`` ranges well: up to :data:`SEQ_RANGES_PER_QUERY` blocks wherever
        they lie)."""
        parts: list[tuple[int, _Piece, int, int]] = []
        ordered = sorted(blocks)
        if not ordered:
            return parts
        if self.seq_ranges and not self.columnar:
            runs = [ordered[i:i + SEQ_RANGES_PER_QUERY] for i in range(0, len(ordered), SEQ_RANGES_PER_QUERY)]
        else:
            cuts = np.flatnonzero(np.diff(ordered) != 1) + 1
            runs = [run.tolist() for run in np.split(np.asarray(ordered), cuts) if len(run)]
        for run in runs:
            parts += self._block_parts(layout, self._ranges_piece(layout, run), run)
        return parts

    @staticmethod
    def _block_parts(layout: BlockLayout, piece: _Piece, blocks: list[int]) -> list[tuple[int, _Piece, int, int]]:
        """``(block, piece, start, end)`` of each of ``blocks`` holding rows of ``piece`` (its rows by ``_seq``)."""
        parts = []
        for block in blocks:
            low, high = layout.seq_range(block)
            start, end = np.searchsorted(piece.seqs, [low, high + 1]).tolist()
            if end > start:
                parts.append((block, piece, start, end))
        return parts

    def _window(self, layout: BlockLayout, blocks: list[tuple[int, _Piece, int, int]]) -> FrozenRefs:
        blocks.sort(key=lambda item: item[0])  # block number order is _seq order
        table = self._table([(piece, start, end) for _, piece, start, end in blocks])
        refs = table.freeze()
        if self.kept is not None:  # each block's rows, found by _seq (a block read as documents may differ)
            for block, *_ in blocks:
                low, high = layout.seq_range(block)
                start, end = np.searchsorted(refs.seq, [low, high + 1]).tolist()
                self.kept[block] = (table, start, end)
        return refs

    def whole_table(self, table: RefTable) -> bool:
        """Fill the empty ``table`` with every row the windows of a kept epoch read, in ``_seq`` order; False
        (``table`` untouched) when they cannot give it: not kept, stopped part way, or rows only documents
        describe (records, ``_y`` labels, malformed references), which the caller reads from the index."""
        unread, self.unread = self.unread, []
        lent = self.kept is not None and all(part.lends_rows for part, _, _ in self.kept.values())
        for layout, blocks in unread if lent else ():  # a shard's other windows (shard_windows)
            if self.stop.is_set():
                break
            self._read_window(layout, blocks)
        kept, self.kept = self.kept, None
        if kept is None or not self.finished or self.stop.is_set() or len(table) or not table.reads_columns or not all(
                part.lends_rows for part, _, _ in kept.values()):
            return False
        began = time.perf_counter()
        ordered = [kept[block] for block in sorted(kept)]  # block number order is _seq order
        for part, run in itertools.groupby(ordered, key=lambda item: item[0]):  # a window's blocks at once
            table.extend_rows(part, [(start, end) for _, start, end in run])
        self.stats.add(index_s=time.perf_counter() - began)
        return True


def takes_columns(scope: StudyScope, table: RefTable) -> bool:
    """Whether references for ``table`` may be read as columns: the index offers them and the table takes them."""
    return bool(scope.index.capabilities.columns) and table.reads_columns


#: A table load reads columns this many ``_seq`` at a time (a bounded amount of JSON text per read).
COLUMN_PAGE_SEQS = 1 << 16


def extend_by_columns(scope: StudyScope, query: Mapping[str, Any], table: RefTable, after: int, until: int,
                      stop: threading.Event) -> int:
    """Append the matches with ``after < _seq <= until`` to ``table`` as columns, page by page, where the
    index and the table take columns; return the ``_seq`` read up to (``until`` once done, ``after`` if the
    index cannot answer so).  The caller reads the rest as documents: rows a page's columns cannot hold, or all.
    """
    if not takes_columns(scope, table):
        return after
    while after < until and not stop.is_set():
        high = min(until, after + COLUMN_PAGE_SEQS)
        cols = scope.index.read_columns(scope.data_collection, query, REF_PATHS, after=after, until=high)
        if cols is None or not table.extend_columns(cols):
            return after
        after = high
    return after


def head_documents(scope: StudyScope, query: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The first :data:`~tensordb_core.stream.order.LAYOUT_SAMPLES` matches of ``query`` (unscoped) in ``_seq``
    order: what a stream asks first (is it a record stream?) and its first epoch's layout reads.

    Why one read for both: unless the query's tags are indexed, reaching the
    first match reads every document before it, and a dataset imported after
    20,000 others paid that twice before its first batch (~50 ms each on the
    embedded store).
    """
    with closing_cursor(scope.index.tail(scope.data_collection, scope.query(query), after=0,
                                         limit=LAYOUT_SAMPLES)) as cursor:
        return list(cursor)


def population(scope: StudyScope, query: Mapping[str, Any], bound: int) -> int:
    """How many samples match ``query`` up to ``_seq`` ``bound`` (a snapshot asked while an epoch streams)."""
    bounded = {"$and": [dict(scope.query(query)), {"_seq": {"$lte": bound}}]}
    return scope.index.count(scope.data_collection, bounded)


def head_layout(refs: FrozenRefs, n: int, bound: int, window_bytes: int) -> BlockLayout:
    """:func:`~tensordb_core.stream.order.block_layout` of a table's first rows (of its epoch's ``n``)."""
    head = np.arange(min(n, LAYOUT_SAMPLES), dtype=np.int64)
    chunk = refs.chunk[head]
    chunk_bytes = np.where(chunk >= 0, refs.chunk_sizes[np.maximum(chunk, 0)], -1) if len(refs.chunk_sizes) else (
        np.full(len(head), -1, dtype=np.int64))
    return block_layout(refs.seq[head], refs.span_bytes(head), chunk_bytes, bound=bound, window_bytes=window_bytes)


def verified_seqs(refs: FrozenRefs) -> np.ndarray:
    """The ``_seq`` of the rows whose crc32 passed (records check their fields as they decode: none)."""
    return np.empty(0, np.int64) if refs.records else refs.seq[refs.verified]


def carry_verified(table: FrozenRefs, checked: list[np.ndarray]) -> None:
    """Mark ``table`` rows whose crc32 a streamed window already checked (``checked``: their ``_seq`` s), so a
    sample is checked once per process (docs/FORMAT.md), whichever path read it first."""
    if table.records:
        return
    for seqs in checked:
        rows = np.searchsorted(table.seq, seqs)
        inside = rows < table.n
        rows, seqs = rows[inside], seqs[inside]
        rows = rows[table.seq[rows] == seqs]
        table.verified[rows] = True


def extend_in_order(table: RefTable, docs: Any, max_seq: int | None,
                    weigh: Callable[[list[Mapping[str, Any]]], None] | None = None,
                    stop: threading.Event | None = None) -> None:
    """Append documents that must arrive in increasing ``_seq`` (the protocol's default order).

    With ``stop``: give up (the table partly read) once it is set, so a closed stream's load ends within a page.
    """
    last = table.last_seq
    page: list[Mapping[str, Any]] = []
    for doc in docs:
        seq = int(doc["_seq"])
        if max_seq is not None and seq > max_seq:
            break  # in _seq order: nothing further belongs to this snapshot
        if seq <= last:
            raise BackendError(f"the index returned _seq {seq} after {last}: results must be in _seq order")
        last = seq
        page.append(doc)
        if len(page) >= 8192:
            if stop is not None and stop.is_set():
                return
            table.extend(page)
            if weigh is not None:
                weigh(page)
            page = []
    table.extend(page)
    if weigh is not None:
        weigh(page)


__all__ = ["SEQ_RANGES_PER_QUERY", "BlockReader", "carry_verified", "extend_by_columns", "extend_in_order",
           "head_documents", "head_layout", "population", "takes_columns", "verified_seqs"]
