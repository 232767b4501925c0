"""An epoch's windows read straight from the index, block by block: the first batch without reading the index.

Why: a shuffled epoch used to need every matching document (its whole
reference table) before its first window, so the first batch of a
million-sample warehouse waited seconds for one index pass (~7 µs a
document) and a 20k one ~150 ms.  Under the block order
(:func:`tensordb_core.stream.order.block_order`) a window is a few blocks,
and a block is a ``_seq`` range the index answers from its primary order
(SQLite's rowid, MongoDB's ``_seq`` index) without reading the rest.  So the
engine streams the first windows from here while :class:`TableLoader` reads
the whole table behind them; once the table is in, the engine continues from
the table at the next window boundary (the same order: the two agree by
construction, and the engine checks the position before it switches).  The
table is what later epochs, resumed or sharded streams and an index memo use.

Cost: the documents of the windows streamed before the switch are parsed
twice (once here, once by the loader); on a 20k-sample warehouse that is one
or two windows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from itertools import takewhile
from typing import Any

import numpy as np

from tensordb_core.errors import BackendError
from tensordb_core.store.scope import StudyScope
from tensordb_core.stream.order import LAYOUT_SAMPLES, BlockLayout, WindowCutter, block_layout, block_sequence
from tensordb_core.stream.plan import FrozenRefs, RefTable


class BlockReader:
    """Reads an epoch's population (``query`` and ``_seq <= bound``) by ``_seq`` range."""

    def __init__(self, scope: StudyScope, query: Mapping[str, Any], projection: Mapping[str, int] | None,
                 make_table: Callable[[], RefTable], stop: threading.Event) -> None:
        self.scope, self.query, self.projection = scope, query, projection
        self.make_table, self.stop = make_table, stop
        self.documents = 0  # read so far (what the stream's index_s was spent on)

    def read(self, low: int, high: int, limit: int = 0) -> list[Mapping[str, Any]]:
        """Matching documents with ``low <= _seq <= high``, in ``_seq`` order (at most ``limit``; 0: all).

        Through ``tail`` (``_seq > low - 1``), not ``find`` with a ``_seq``
        range in the query: the embedded index answers ``tail`` in SQL alone,
        while ``{"$and": [query, {"_seq": ...}]}`` re-checked every document in
        Python (341 documents: 1.3 ms against 3.3 ms).
        """
        most = high - low + 1 if not limit else min(limit, high - low + 1)
        cursor = self.scope.index.tail(self.scope.data_collection, self.query, after=low - 1, limit=most)
        try:
            docs = list(takewhile(lambda doc: int(doc["_seq"]) <= high, cursor))
        finally:
            close = getattr(cursor, "close", None)
            if close is not None:
                close()
        self.documents += len(docs)
        return docs

    def layout(self, bound: int, window_bytes: int) -> BlockLayout | None:
        """The epoch's layout from its first samples (None: the population is empty)."""
        head = self.read(1, bound, limit=LAYOUT_SAMPLES)
        if not head:
            return None
        refs = self.table(head)
        return head_layout(refs, refs.n, bound, window_bytes)

    def table(self, docs: list[Mapping[str, Any]]) -> FrozenRefs:
        """References of ``docs`` (ascending ``_seq``) as a frozen table."""
        table = self.make_table()
        table.extend(docs)
        return table.freeze()

    def windows(self, layout: BlockLayout, *, seed: int, epoch: int, shuffle: bool) -> Iterator[FrozenRefs]:
        """Each window's references in ``_seq`` order (the caller permutes them), in the epoch's window order."""
        cutter = WindowCutter(layout)
        pending: list[tuple[int, list[Mapping[str, Any]]]] = []
        for block in block_sequence(layout, seed=seed, epoch=epoch, shuffle=shuffle).tolist():
            if self.stop.is_set():
                return
            docs = self.read(*layout.seq_range(block))
            if not docs:
                continue
            pending.append((block, docs))
            if cutter.add(len(docs)):
                yield self._window(pending)
                pending = []
        if pending:
            yield self._window(pending)

    def _window(self, blocks: list[tuple[int, list[Mapping[str, Any]]]]) -> FrozenRefs:
        blocks.sort(key=lambda item: item[0])  # block number order is _seq order
        return self.table([doc for _, docs in blocks for doc in docs])


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


def carry_verified(table: FrozenRefs, windows: list[FrozenRefs]) -> None:
    """Mark ``table`` rows whose crc32 a streamed window already checked (checked once per sample per process)."""
    if getattr(table, "verified", None) is None:
        return  # records check their fields as they decode (stream/records.py): nothing to carry
    for window in windows:
        seqs = window.seq[window.verified]
        rows = np.searchsorted(table.seq, seqs)
        inside = rows < table.n
        rows, seqs = rows[inside], seqs[inside]
        rows = rows[table.seq[rows] == seqs]
        table.verified[rows] = True


#: The table load waits at most this long for the stream's first batch to reach the consumer.
LOAD_DELAY_S = 0.25


class TableLoader:
    """Runs ``load`` (read the whole table) on its own thread; :meth:`result` re-raises its exception.

    The load starts once ``delivered`` is set (the consumer holds its first
    batch) or after :data:`LOAD_DELAY_S`: parsing documents holds the GIL for
    milliseconds at a time, and each hand-off on the way to the first batch
    (fetch, assembly, decode, consumer threads) waited for it: 20-40 ms of a
    50 ms first batch on 2 cores.
    """

    def __init__(self, load: Callable[[], int], delivered: threading.Event | None = None) -> None:
        self._load, self._delivered = load, delivered
        self._value: int | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="tensordb-stream-index", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            if self._delivered is not None:
                self._delivered.wait(LOAD_DELAY_S)
            self._value = self._load()
        except BaseException as exc:  # noqa: BLE001 - handed to the fetch thread by result()
            self._error = exc

    def done(self) -> bool:
        return not self.thread.is_alive()

    def result(self, stop: threading.Event) -> int | None:
        """Wait for the load (None when ``stop`` is set first); re-raise what it raised."""
        while self.thread.is_alive():
            if stop.wait(0.05):
                return None
        if self._error is not None:
            raise self._error
        return self._value


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


__all__ = ["BlockReader", "TableLoader", "carry_verified", "extend_in_order", "head_layout", "population"]
