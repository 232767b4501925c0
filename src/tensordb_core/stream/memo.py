"""Sample references kept between streams of one process, so a later epoch reads only what is new.

Why: building an epoch's :class:`~tensordb_core.stream.refs.RefTable` reads
every matching index document (several microseconds each, seconds for a
million samples).  A stream reuses its table across its own epochs, but a
torch ``DataLoader`` worker starts a new stream every epoch; with an
:class:`IndexMemo` that outlives those streams (the torch adapter keeps one
per worker process), the next stream starts from the table the last one
built and asks the index only for documents inserted since
(``tail(after=...)``), so an epoch starts in milliseconds however large the
warehouse.

Deleted, relabelled or compacted samples: each such change moves the
index's data generation (store/generations.py); a table is kept with the
generation read before it was built and lent only while the generation is
unchanged, so a memo never serves references a change made stale.

Thread safety: a table is lent to one stream at a time (:meth:`take` removes
it, :meth:`give` puts it back), so two live streams never extend one table;
a stream that finds its table lent builds its own.

Across processes: a memo given :class:`~tensordb_core.stream.snapshots.RefSnapshots`
(a stream's ``cache_dir``) also keeps each table it is given on local disk,
and lends a kept one when it holds none in memory (stream/snapshots.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import numpy as np

from tensordb_core.errors import TensorDBError
from tensordb_core.stream.refs import RefTable
from tensordb_core.stream.snapshots import RefSnapshots


def memo_key(collection: str, query: Any, projection: Any, fields: Any) -> Hashable:
    """What a kept table depends on: the collection, the query and what each document is read for."""
    return (collection, json.dumps(query, sort_keys=True, default=repr),
            json.dumps(projection, sort_keys=True, default=repr), None if fields is None else tuple(fields))


#: A table kept on disk up to this ``_seq`` bound loads before a stream's first window (~15 ms); a larger one
#: loads beside the first windows (:meth:`IndexMemo.load_later`).
LOAD_AT_ONCE_SEQS = 50_000


class KeptRows(NamedTuple):
    """A table kept on disk, once loaded: its rows, the ``_seq`` bound it holds, and its ``_seq`` column."""

    table: RefTable
    bound: int
    seq: np.ndarray


class KeptSeqs(NamedTuple):
    """A table kept on disk, its ``_seq`` column alone (:meth:`IndexMemo.kept_seqs`): what counts blocks."""

    bound: int
    seq: np.ndarray


class IndexMemo:
    """Tables of sample references by :func:`memo_key`, each with the ``_seq`` bound it was read up to."""

    def __init__(self, snapshots: RefSnapshots | None = None) -> None:
        self._lock = threading.Lock()
        self._tables: dict[Hashable, tuple[RefTable, int, int]] = {}
        self._on_disk: dict[Hashable, tuple[int, int]] = {}  # key -> (generation, bound) this memo knows kept
        self.snapshots = snapshots

    def take(self, key: Hashable, generation: int = 0, index: str | None = None, most_seqs: int | None = None
             ) -> tuple[RefTable, int] | None:
        """Borrow the table kept under ``key`` and its bound: None when none is kept, it is lent out, or it was
        built in another data generation (then it is dropped: its references may be stale).  With snapshots
        and the index's identity (``index``, :func:`~tensordb_core.stream.snapshots.index_identity`), a table
        kept on disk serves when none is kept here (one read up to ``_seq`` ``most_seqs`` at most: a larger
        one is for :meth:`load_later`)."""
        with self._lock:
            kept = self._tables.pop(key, None)
        if kept is not None and kept[2] == generation:
            return kept[0], kept[1]
        if self.snapshots is None or index is None:
            return None
        return self._load(key, generation, index, most_seqs)

    def _load(self, key: Hashable, generation: int, index: str, most_seqs: int | None = None
              ) -> tuple[RefTable, int] | None:
        loaded = self.snapshots.load(index, key, generation, most_seqs) if self.snapshots is not None else None
        if loaded is not None:
            with self._lock:
                self._on_disk[key] = (generation, loaded[1])
        return loaded

    def kept_seqs(self, key: Hashable, generation: int, index: str) -> KeptSeqs | None:
        """The ``_seq`` column of the table kept on disk for ``key`` (None: none kept, or it does not load), read
        without its rows: a shard counts its blocks from it while the rows load (:meth:`load_later`)."""
        if self.snapshots is None:
            return None
        try:
            found = self.snapshots.load_seqs(index, key, generation)
        except (TensorDBError, OSError, ValueError):  # a kept table that does not load: the index serves
            return None
        return KeptSeqs(found[1], found[0]) if found is not None else None

    def load_later(self, key: Hashable, generation: int, index: str) -> Callable[..., KeptRows | None]:
        """Load the table kept on disk for ``key`` on a thread of its own; the function returned gives it once
        loaded (None before, and when none loads; ``wait=True``: after the load ends).

        Why: a million-sample table takes ~0.3 s to load and as long again to
        order, which a stream's first batch waited for (0.6-0.8 s against
        ~12 ms from the index).  A fresh epoch streams its first windows from
        the index block by block meanwhile (stream/blocks.py) and takes the
        rest of its blocks from the table once it is here: the same rows in
        the same order, read either way.
        """
        loaded: list[KeptRows] = []
        done = threading.Event()

        def load() -> None:
            try:
                found = self._load(key, generation, index)
                if found is not None:  # frozen by the stream (its first window need not wait for ~0.2 s of it)
                    loaded.append(KeptRows(found[0], found[1], np.asarray(found[0].seq, dtype=np.int64)))
            except (TensorDBError, OSError, ValueError):  # a kept table that does not load: the index serves
                pass
            finally:
                done.set()

        threading.Thread(target=load, name="tensordb-kept-table", daemon=True).start()
        def earlier(wait: bool = False) -> KeptRows | None:
            if wait:
                done.wait()
            return loaded[0] if done.is_set() and loaded else None

        return earlier

    def save(self, key: Hashable, table: RefTable, scanned: int, generation: int = 0, index: str | None = None
             ) -> None:
        """Keep ``table`` on disk only (with snapshots and ``index``), while its stream goes on using it: a
        stream saves the table its first epoch completed, so a run stopped later still leaves it."""
        if self.snapshots is None or index is None or scanned <= 0:
            return
        with self._lock:
            known = self._on_disk.get(key)
        if known is not None and known[0] == generation and known[1] >= scanned:
            return  # kept as far already: no pointer read at every stream's end
        self.snapshots.save(index, key, table, scanned, generation)
        with self._lock:
            self._on_disk[key] = (generation, scanned)

    def give(self, key: Hashable, table: RefTable, scanned: int, generation: int = 0, index: str | None = None
             ) -> None:
        """Keep ``table``, read up to ``_seq`` ``scanned`` in data generation ``generation``, for the next stream
        asking with ``key`` (and on disk, as :meth:`save`)."""
        if scanned <= 0:
            return
        self.save(key, table, scanned, generation, index)
        with self._lock:
            kept = self._tables.get(key)
            if kept is None or kept[2] != generation or kept[1] < scanned:
                self._tables[key] = (table, scanned, generation)

    def clear(self) -> None:
        """Forget every kept table: the next stream reads the index afresh."""
        with self._lock:
            self._tables.clear()
            self._on_disk.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._tables)


__all__ = ["LOAD_AT_ONCE_SEQS", "IndexMemo", "KeptRows", "KeptSeqs", "memo_key"]
