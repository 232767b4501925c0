"""gc gives the space of deleted samples back: mostly-dead chunks are rewritten, readers of old references finish."""

from __future__ import annotations

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.stream.batches import read_batch
from tensordb_core.warehouse import maintenance

N = 200


def _stored_bytes(db: tdb.TensorDB) -> int:
    return sum(db.blobs.size(k) for k in db.blobs.list() if not k.startswith("_tensordb/"))


def _fill(db: tdb.TensorDB) -> np.ndarray:
    X = np.random.default_rng(0).standard_normal((N, 64)).astype(np.float32)  # incompressible: stored raw-ish
    db.import_data(X, np.arange(N), tags={"split": "train"}, chunk_bytes=20 * X[0].nbytes)
    return X


def test_deleting_90_percent_and_gc_returns_the_space(db: tdb.TensorDB) -> None:
    X = _fill(db)
    before = _stored_bytes(db)
    keep = np.sort(np.random.default_rng(1).choice(N, N // 10, replace=False))
    assert db.delete_data({"label": {"$nin": keep.tolist()}}) == N - len(keep)
    assert maintenance.gc(db.index, db.blobs, grace_s=0)
    after = _stored_bytes(db)
    assert after < 0.2 * before
    Xk, yk = db.find_data().arrays()
    assert np.array_equal(yk, keep) and np.array_equal(Xk, X[keep])
    report = maintenance.check(db.index, db.blobs, grace_s=0)
    assert report.ok and report.orphans == []


def test_versions_are_repointed_with_the_samples_they_pin(db: tdb.TensorDB) -> None:
    X = _fill(db)
    db.save_dataset("few", {"label": {"$lt": 15}})
    db.delete_data({"label": {"$gte": 5}})  # the version pins 15, the data keeps 5: most chunk bytes are dead
    maintenance.gc(db.index, db.blobs, grace_s=0)
    assert np.array_equal(db.find_data(dataset="few").arrays()[0], X[:15])
    assert np.array_equal(db.find_data().arrays()[0], X[:5])
    assert maintenance.check(db.index, db.blobs, grace_s=0).ok


def test_a_reader_of_the_old_references_finishes_within_the_grace(db: tdb.TensorDB) -> None:
    X = _fill(db)
    db.delete_data({"label": {"$gte": 6}})
    planned = list(db.index.find("data", db.scope.query()))  # a reader planned its reads before gc
    maintenance.gc(db.index, db.blobs, grace_s=60)
    assert [d["_x"]["key"] for d in db.find_data()] != [d["_x"]["key"] for d in planned]  # repointed
    assert np.array_equal(read_batch(db.blobs, planned).X, X[:6])  # the old chunks wait out the grace
    maintenance.gc(db.index, db.blobs, grace_s=0)
    assert np.array_equal(db.find_data().arrays()[0], X[:6])


def test_a_stream_planned_before_a_delete_finishes_after_gc(db: tdb.TensorDB) -> None:
    X = _fill(db)
    planned = list(db.index.find("data", db.scope.query()))
    db.delete_data({})
    maintenance.gc(db.index, db.blobs, grace_s=60)  # the deleted samples' chunks wait out the grace
    assert np.array_equal(read_batch(db.blobs, planned).X, X)
    assert maintenance.gc(db.index, db.blobs, grace_s=0)
    assert _stored_bytes(db) == 0


def test_bad_grace_is_a_typed_error_and_deletes_nothing(db: tdb.TensorDB) -> None:
    _fill(db)
    db.delete_data({})
    keys = set(db.blobs.list())
    for grace in (-1, float("nan"), float("inf"), "10", None, True):
        with pytest.raises(tdb.InvalidArgument):
            maintenance.gc(db.index, db.blobs, grace_s=grace)
        with pytest.raises(tdb.InvalidArgument):
            maintenance.check(db.index, db.blobs, grace_s=grace)
    with pytest.raises(tdb.InvalidArgument):
        maintenance.gc(db.index, db.blobs, compact_below=2)
    assert set(db.blobs.list()) == keys


def test_gc_under_concurrent_writers_and_readers(db: tdb.TensorDB) -> None:
    """Writers import and delete, readers read and stream, gc compacts meanwhile: every read is right, nothing dangles."""
    import threading
    import time

    stop, errors, rounds = threading.Event(), [], {"gc": 0, "reads": 0}
    written: dict[str, str] = {}  # sample id -> the chunk it was imported into

    def write() -> None:
        i = 0
        while not stop.is_set():
            labels = np.arange(i * 100, i * 100 + 20)
            ids = db.import_data(np.repeat(labels[:, None], 4, axis=1).astype(np.float32), labels, chunk_bytes=10 * 16)
            written.update({d["_id"]: d["_x"]["key"] for d in db.find_data({"_id": {"$in": ids}})})
            db.delete_data({"label": {"$in": [int(v) for v in labels if v % 3]}})
            i += 1

    def read() -> None:
        while not stop.is_set():
            X, y = db.find_data().arrays()
            assert y is None or np.array_equal(X[:, 0], y)
            for Xb, yb in db.data_generator(batch_size=16, seed=rounds["reads"]):
                assert np.array_equal(Xb[:, 0], yb)
            rounds["reads"] += 1

    def guard(work):
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
                stop.set()
        return run

    threads = [threading.Thread(target=guard(f)) for f in (write, read)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 3
    try:
        while time.monotonic() < deadline and not errors:
            maintenance.gc(db.index, db.blobs, grace_s=30)
            rounds["gc"] += 1
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert rounds["gc"] >= 2 and rounds["reads"] >= 1
    report = maintenance.check(db.index, db.blobs, grace_s=30)
    assert report.dangling == [] and report.corrupted == []
    X, y = db.find_data().arrays()
    assert np.array_equal(X[:, 0], y) and all(v % 3 == 0 for v in y)
    assert any(d["_x"]["key"] != written[d["_id"]] for d in db.find_data()), "gc compacted no chunk"


def test_the_old_chunk_is_held_by_an_intent_before_any_document_leaves_it(db: tdb.TensorDB, monkeypatch) -> None:
    """From the first repoint on nothing references the old chunk: a concurrent gc would take it from readers
    still planned on it unless its intent was written first."""
    from tensordb_core.store.scope import INTENTS
    from tensordb_core.warehouse import compaction

    _fill(db)
    db.delete_data({"label": {"$gte": 6}})
    db.index.delete_many(INTENTS, {})  # the delete's own intents long expired: only compaction's may hold the chunk
    held: list[bool] = []
    repoint = compaction._repoint

    def checking(index, collection, doc_id, old, *args):
        held.append(bool(list(index.find(INTENTS, {"key": old}))))
        return repoint(index, collection, doc_id, old, *args)

    monkeypatch.setattr(compaction, "_repoint", checking)
    assert compaction.compact(db.index, db.blobs).chunks >= 1
    assert held and all(held)
