"""Persistent DataLoader workers and the index memo (issue 16): epochs without restarting workers or rereading the index.

Needs the CPU build of torch (CI installs it; see ``.ci/run``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch  # installed by .ci/run: missing fails, never skips

import tensordb_core as tdb
from tensordb_core.stream.batches import DEFAULT_WINDOW_BYTES, InvalidStreamArgument, data_stream
from tensordb_core.stream.memo import IndexMemo
from tensordb_core.stream.order import StreamState
from tensordb_core.torch import TensorDBIterableDataset

N = 120


def _import(db: tdb.TensorDB, labels: np.ndarray) -> None:
    X = (labels[:, None] + np.zeros(6)).astype(np.float32).reshape(len(labels), 2, 3)
    db.import_data(X, labels, chunk_bytes=512)


@pytest.fixture
def warehouse(tmp_path):
    path = str(tmp_path / "wh")
    with tdb.connect(path, study="torch") as db:
        _import(db, np.arange(N))
    return path


def _epoch_labels(ds: TensorDBIterableDataset, loader, epoch: int) -> list[int]:
    ds.set_epoch(epoch)
    return [v for _, y in loader for v in y.tolist()]


@pytest.mark.timeout(120)
def test_persistent_workers_stream_each_epoch_like_fresh_workers(warehouse):
    """Same epochs, same order as workers restarted every epoch; new samples join the next epoch."""
    def make(persistent: bool):
        ds = TensorDBIterableDataset(warehouse, study="torch", batch_size=8, seed=3, window_bytes=1000)
        return ds, torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=persistent)

    kept_ds, kept = make(True)
    fresh_ds, fresh = make(False)
    first = [_epoch_labels(kept_ds, kept, e) for e in range(2)]
    assert first == [_epoch_labels(fresh_ds, fresh, e) for e in range(2)]
    assert all(sorted(labels) == list(range(N)) for labels in first)
    assert first[0] != first[1]
    with tdb.connect(warehouse, study="torch") as db:
        _import(db, np.arange(N, N + 40))
    grown = _epoch_labels(kept_ds, kept, 2)
    assert sorted(grown) == list(range(N + 40))  # the memo's table was extended by the tail, not reused stale
    assert grown == _epoch_labels(fresh_ds, fresh, 2)


def test_a_memo_makes_the_next_stream_read_only_new_documents(warehouse, monkeypatch):
    with tdb.connect(warehouse, study="torch") as db:
        index = db.scope.index
        reads = {"find": 0, "tail": 0}
        for name in reads:
            real = getattr(index, name)

            def counted(*args, _real=real, _name=name, **kwargs):
                for doc in _real(*args, **kwargs):
                    reads[_name] += not kwargs.get("limit")  # not the one-document probe for records
                    yield doc

            monkeypatch.setattr(index, name, counted)
        reads["columns"] = 0
        real_columns = index.read_columns

        def counted_columns(*args, **kwargs):
            cols = real_columns(*args, **kwargs)
            reads["columns"] += len(cols["_seq"]) if cols is not None else 0
            return cols

        monkeypatch.setattr(index, "read_columns", counted_columns)
        memo = IndexMemo()

        def epoch_labels(epoch: int) -> list[int]:
            with data_stream(db.scope, {}, batch_size=16, seed=1, index_memo=memo, epochs=epoch + 1,
                             state=StreamState({}, 1, True, DEFAULT_WINDOW_BYTES, epoch=epoch)) as stream:
                return [v for _, y in stream for v in y.tolist()]

        first = epoch_labels(0)
        # the table (N) plus the windows streamed from index blocks before it was in (stream/blocks.py);
        # the embedded index answers both as columns (IndexCapabilities.columns), a memory index as documents
        read = sum(reads.values())
        assert N <= read <= 2 * N + 64 and reads["tail"] == 0 and len(memo) == 1
        assert (reads["columns"] >= N) == index.capabilities.columns
        again = epoch_labels(0)
        assert again == first and sum(reads.values()) == read  # nothing read again
        _import(db, np.arange(N, N + 10))
        third = epoch_labels(1)
        assert sorted(third) == list(range(N + 10))
        assert sum(reads.values()) == read + 10  # only the documents inserted since
        with data_stream(db.scope, {}, batch_size=16, seed=1, epochs=2,
                         state=StreamState({}, 1, True, DEFAULT_WINDOW_BYTES, epoch=1)) as plain:
            assert [v for _, y in plain for v in y.tolist()] == third


def test_a_memo_never_serves_deleted_or_relabelled_samples(warehouse):
    """A delete or a relabel moves the data generation: the memo's table is dropped and the index read afresh
    (a persistent loader worker would otherwise train on deleted samples and old labels for the whole run)."""
    with tdb.connect(warehouse, study="torch") as db:
        memo = IndexMemo()

        def labels() -> list[int]:
            with data_stream(db.scope, {}, batch_size=16, seed=1, index_memo=memo, epochs=1) as stream:
                return sorted(v for _, y in stream for v in y.tolist())

        assert labels() == list(range(N)) and len(memo) == 1
        assert db.delete_data({"label": {"$lt": 5}}) == 5
        assert labels() == list(range(5, N))
        assert db.update_data({"label": 5}, {"$set": {"label": 1000}}) == 1
        assert labels() == [*range(6, N), 1000]
        assert labels() == [*range(6, N), 1000]  # unchanged since: the kept table serves again


def test_index_memo_must_be_a_memo(warehouse):
    with tdb.connect(warehouse, study="torch") as db, pytest.raises(InvalidStreamArgument):
        data_stream(db.scope, {}, index_memo={"not": "a memo"})


def test_a_cache_dir_is_one_cache_object_per_process_across_epochs(warehouse, tmp_path):
    ds = TensorDBIterableDataset(warehouse, study="torch", batch_size=16, seed=2, cache_dir=str(tmp_path / "cache"),
                                 disk_cache_bytes=1 << 20)
    seen = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        assert sorted(v for _, y in ds for v in y.tolist()) == list(range(N))
        seen.append(ds._disk)
    assert seen[0] is seen[1]
    # a local warehouse's chunks are files already: the cache keeps the query's references alone, for the next process
    assert seen[0].nbytes() > 0 and ds._index_memo().snapshots is not None
    assert ds._index_memo().snapshots.cache is seen[0]


def test_the_environments_cache_dir_is_one_cache_object_per_process_too(warehouse, tmp_path, monkeypatch):
    """Given no ``cache_dir``, a loader dataset uses ``$TENSORDB_CACHE_DIR``'s, made once per process (and none
    when the variable is unset)."""
    unset = TensorDBIterableDataset(warehouse, study="torch", batch_size=16, seed=2)
    assert sorted(v for _, y in unset for v in y.tolist()) == list(range(N))
    assert unset._disk is None and unset._index_memo().snapshots is None
    monkeypatch.setenv("TENSORDB_CACHE_DIR", str(tmp_path / "env"))
    ds = TensorDBIterableDataset(warehouse, study="torch", batch_size=16, seed=2, disk_cache_bytes=1 << 20)
    seen = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        assert sorted(v for _, y in ds for v in y.tolist()) == list(range(N))
        seen.append(ds._disk)
    assert seen[0] is seen[1] and seen[0].directory == tmp_path / "env" and seen[0].max_bytes == 1 << 20
    assert seen[0].nbytes() > 0 and ds._index_memo().snapshots.cache is seen[0]


@pytest.mark.parametrize("columns", [True, False])
def test_a_stream_stopped_while_its_table_loads_leaves_the_memo_only_what_it_read(warehouse, monkeypatch, columns):
    """A closed stream's table load ends part way; the memo keeps that table with the bound it really read,
    so the next stream reads the rest (a bound of the whole epoch silently dropped the unread samples)."""
    from tensordb_core.embedded.sqlite_index import SQLiteIndexStore
    from tensordb_core.store.protocols import IndexCapabilities
    from tensordb_core.stream import blocks, engine

    if not columns:  # the documents path: an index without the columnar read
        monkeypatch.setattr(SQLiteIndexStore, "capabilities", IndexCapabilities(tail_grace_s=0.0))
    monkeypatch.setattr(blocks, "COLUMN_PAGE_SEQS", 16)
    # the table is read from the index (as for rows the windows cannot lend: records, _y labels), not copied
    monkeypatch.setattr(blocks.BlockReader, "whole_table", lambda self, table: False)
    real_columns, real_docs = engine.extend_by_columns, engine.extend_in_order

    def columns_then_stop(scope, q, table, after, until, stop):
        reached = real_columns(scope, q, table, after, min(until, after + 32), stop)  # two pages of 16
        stop.set()  # as a close() arriving mid-load
        return reached

    def documents_then_stop(table, docs, max_seq, weigh=None, stop=None):
        real_docs(table, (d for d in docs if d["_seq"] <= 40), max_seq, weigh, None)  # what was read before
        stop.set()

    if columns:
        monkeypatch.setattr(engine, "extend_by_columns", columns_then_stop)
    else:
        monkeypatch.setattr(engine, "extend_in_order", documents_then_stop)
    with tdb.connect(warehouse, study="torch") as db:
        memo = IndexMemo()
        with data_stream(db.scope, {}, batch_size=16, seed=1, index_memo=memo, epochs=1) as stream:
            for _ in stream:  # the epoch, then the load; batches still queued when the stop comes are dropped
                pass
        assert len(memo) == 1
        [(table, scanned, _)] = memo._tables.values()
        assert 0 < scanned < N and len(table) == scanned  # ids are _seq 1..N: what it holds, no more
        monkeypatch.setattr(engine, "extend_by_columns", real_columns)
        monkeypatch.setattr(engine, "extend_in_order", real_docs)
        with data_stream(db.scope, {}, batch_size=16, seed=1, index_memo=memo, epochs=2,
                         state=StreamState({}, 1, True, DEFAULT_WINDOW_BYTES, epoch=1)) as again:
            assert sorted(v for _, y in again for v in y.tolist()) == list(range(N))
