"""The embedded index stores pass the index-store conformance suite, plus SQLite's own guarantees:
claims atomic across processes, typed errors, persistence, SQL sorting identical to the reference."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tensordb_core.embedded.memory import MemoryIndexStore
from tensordb_core.embedded.sqlite_index import SQLiteIndexStore
from tensordb_core.errors import BackendUnavailable, IntegrityError, InvalidURI, TransientError
from tensordb_core.query.filters import sort_key
from tensordb_core.store.registry import open_index
from tensordb_core.testing import IndexStoreSuite
from tensordb_core.testing.index_suite import C


class TestMemoryIndexStore(IndexStoreSuite):
    @pytest.fixture
    def index_store(self) -> Iterator[MemoryIndexStore]:
        store = MemoryIndexStore.named("")
        yield store
        store.close()


class TestSQLiteIndexStore(IndexStoreSuite):
    @pytest.fixture
    def index_store(self, tmp_path: Path) -> Iterator[SQLiteIndexStore]:
        # small pages so every cursor in the suite crosses page boundaries
        store = SQLiteIndexStore(tmp_path / "index.sqlite", page_size=16)
        yield store
        store.close()


class TestSQLiteIndexStoreWithIndexes(IndexStoreSuite):
    """The whole suite again with indexes on the fields it queries: the SQL then takes its index-only
    shortcuts (no array branches where a json_type index proves there are no arrays, index order)."""

    @pytest.fixture
    def index_store(self, tmp_path: Path) -> Iterator[SQLiteIndexStore]:
        store = SQLiteIndexStore(tmp_path / "index.sqlite", page_size=16)
        for key in ("a", "b", "t", "n", "n.x", "n.y", "n.x.y", "s", "k", "state", "p", "even", "tag", "odd"):
            store.create_index(C, [(key, 1)])
        store.create_index(C, [("g", -1), ("v", 1)])
        yield store
        store.close()


def test_memory_stores_are_shared_by_name_and_private_without_one() -> None:
    a, b = MemoryIndexStore.named("shared-test"), open_index("memory://shared-test")
    assert a is b
    a.insert_many("c", [{"_id": "seen"}])
    assert [d["_id"] for d in b.find("c")] == ["seen"]
    assert MemoryIndexStore.named("") is not MemoryIndexStore.named("")
    assert open_index("memory://").count("c") == 0


# --- SQLite across processes ----------------------------------------------------------------------


def _claim_all(path: str, worker: int, out: Any) -> None:
    store = SQLiteIndexStore(path, busy_timeout=60)
    claimed = []
    while True:
        doc = store.find_one_and_update(
            "jobs",
            {"state": "queued"},
            {"$set": {"state": "taken", "by": worker}, "$inc": {"claims": 1}},
            sort=[("priority", -1)],
        )
        if doc is None:
            break
        claimed.append(doc["_id"])
    store.close()
    out.put((worker, claimed))


def test_four_processes_claim_each_item_exactly_once(tmp_path: Path) -> None:
    path = str(tmp_path / "jobs.sqlite")
    store = SQLiteIndexStore(path)
    store.insert_many("jobs", [{"_id": f"job{i:03d}", "priority": i % 5, "state": "queued"} for i in range(80)])
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(path, w, out)) for w in range(4)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    claimed = [i for ids in results.values() for i in ids]
    assert sorted(claimed) == [f"job{i:03d}" for i in range(80)], "every job claimed, none twice"
    docs = list(store.find("jobs"))
    assert all(d["claims"] == 1 and d["state"] == "taken" for d in docs)
    assert {d["by"] for d in docs} <= {0, 1, 2, 3}
    store.close()


def _forked_writer(store: SQLiteIndexStore, k: int, out: Any) -> None:
    store.insert_many("c", [{"from": k, "i": i} for i in range(10)])
    out.put(store.count("c", {"from": k}))


def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    store = SQLiteIndexStore(tmp_path / "fork.sqlite")
    store.insert_many("c", [{"from": "parent"}])  # the parent's connection exists before the fork
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_forked_writer, args=(store, k, out)) for k in range(2)]
    for p in procs:
        p.start()
    counts = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert counts == [10, 10]
    assert store.count("c") == 21
    seqs = [d["_seq"] for d in store.find("c")]
    assert seqs == sorted(set(seqs)) and store.last_seq("c") == seqs[-1]


# --- SQLite errors, persistence, options ----------------------------------------------------------


def test_a_lock_held_beyond_busy_timeout_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite"
    store = SQLiteIndexStore(path, busy_timeout=0.05)
    store.insert_many("c", [{"a": 1}])
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        with pytest.raises(TransientError, match="busy_timeout"):
            store.insert_many("c", [{"a": 2}])
        with pytest.raises(TransientError):
            store.find_one_and_update("c", {}, {"$set": {"a": 3}})
        assert [d["a"] for d in store.find("c")] == [1], "readers are not blocked by a writer (WAL)"
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.insert_many("c", [{"a": 2}])
    assert store.count("c") == 2


def test_a_corrupt_file_is_an_integrity_error(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.sqlite"
    path.write_bytes(b"this is not a database at all" * 100)
    store = SQLiteIndexStore(path)
    with pytest.raises(IntegrityError):
        store.insert_many("c", [{"a": 1}])
    with pytest.raises(IntegrityError):
        list(store.find("c"))


def test_an_unopenable_path_is_backend_unavailable(tmp_path: Path) -> None:
    store = SQLiteIndexStore(tmp_path / "no" / "such" / "dir" / "x.sqlite")
    with pytest.raises(BackendUnavailable):
        store.count("c")


def test_documents_and_sequence_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "persist.sqlite"
    store = SQLiteIndexStore(path)
    store.insert_many("c", [{"_id": "a", "v": [1, {"x": None}]}, {"_id": "b"}])
    store.delete_many("c", {"_id": "b"})
    store.create_index("c", [("v.x", 1)])
    store.close()
    again = SQLiteIndexStore(path)
    assert list(again.find("c")) == [{"_id": "a", "_seq": 1, "v": [1, {"x": None}]}]
    assert again.last_seq("c") == 2
    again.insert_many("c", [{"_id": "c"}])
    assert again.last_seq("c") == 3
    again.close()


def test_options_from_kwargs_and_uri(tmp_path: Path) -> None:
    store = open_index(f"sqlite:///{tmp_path}/opts.sqlite?busy_timeout=2.5&page_size=7")
    assert isinstance(store, SQLiteIndexStore)
    assert store.busy_timeout == 2.5 and store.page_size == 7
    with pytest.raises(InvalidURI, match="busy_timeout"):
        SQLiteIndexStore(tmp_path / "x.sqlite", busy_tiemout=3)
    with pytest.raises(InvalidURI):
        SQLiteIndexStore(tmp_path / "x.sqlite", synchronous="sometimes")


def test_sql_sort_matches_the_reference_across_type_brackets(tmp_path: Path) -> None:
    """No objects or arrays: the sort runs in SQL (keyset pages of 3) and must equal sort_key's order."""
    store = SQLiteIndexStore(tmp_path / "sort.sqlite", page_size=3)
    values: list[Any] = [True, "a", None, 2.5, 1, "B", False, 2.5, 1.0, "", -3, 2**62, -0.5, "é", "Z"]
    docs = [{"_id": f"v{i:02d}", "s": v, "g": i % 3} for i, v in enumerate(values)] + [{"_id": "v99", "g": 0}]
    store.insert_many("c", docs)
    seqd = [dict(d, _seq=i + 1) for i, d in enumerate(docs)]
    for spec in ([("s", 1)], [("s", -1)], [("g", 1), ("s", -1)], [("g", -1), ("s", 1)], [("s", 1), ("_id", -1)]):
        expected = [d["_id"] for d in sorted(seqd, key=lambda d: sort_key(d, spec))]
        assert [d["_id"] for d in store.find("c", sort=spec)] == expected, spec
        assert [d["_id"] for d in store.find("c", sort=spec, skip=4, limit=6, batch_size=2)] == expected[4:10]
        filtered = [d for d in expected if d != "v03"]
        assert [d["_id"] for d in store.find("c", {"_id": {"$ne": "v03"}}, sort=spec)] == filtered
    store.close()


def test_create_index_reads_the_index_names_once_and_still_creates_what_another_handle_has_not(tmp_path: Path,
                                                                                            monkeypatch) -> None:
    """Every connect asks for the warehouse's 16 indexes: a store reads the file's index names once and takes
    no write lock where they all exist; an index it has not seen (another handle made the table since, or
    a new one) is still created, and a unique one still enforced."""
    path = tmp_path / "idx.sqlite"
    first, second = SQLiteIndexStore(path), SQLiteIndexStore(path)
    first.create_index("c", [("v", 1)])
    writes = []
    real = SQLiteIndexStore._write
    monkeypatch.setattr(SQLiteIndexStore, "_write", lambda self, what: writes.append(what) or real(self, what))
    for _ in range(3):
        second.create_index("c", [("v", 1)])  # made by the other handle before this one read the names
    assert writes == []
    first.insert_many("d", [{"_id": "x", "k": 1}])
    second.create_index("d", [("k", 1)], unique=True)  # not among the names read: created
    assert writes.count("create_index") == 1
    with pytest.raises(IntegrityError):
        first.insert_many("d", [{"_id": "y", "k": 1}])
    first.close()
    second.close()
