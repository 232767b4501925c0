"""The Mongo index store's own guarantees: indexes, _seq ranges, batching, error translation.

The portable behaviour every index store shares is in the conformance suite
(test_mongo_conformance.py); these tests look at what only this backend does,
peeking at the server through a plain PyMongo handle (``raw_db``).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tensordb_core.errors import BackendError, IntegrityError, InvalidDocument, InvalidQuery
from tensordb_mongo import MongoIndexStore
from tensordb_mongo.common import COUNTERS

pytestmark = pytest.mark.mongo


@pytest.fixture
def store(mongo_uri):
    with_store = MongoIndexStore(mongo_uri)
    yield with_store
    with_store.close()


def index_specs(raw_db, collection):
    return {ix["name"]: (list(ix["key"].items()), bool(ix.get("unique"))) for ix in raw_db[collection].list_indexes()}


def test_seq_index_and_requested_indexes_are_created_idempotently(store, raw_db, mongo_uri):
    store.insert_many("data", [{"a": 1}])
    store.create_index("data", [("tags.split", 1), ("_seq", -1)])
    store.create_index("data", [("tags.split", 1), ("_seq", -1)])
    store.create_index("data", [("name", 1)], unique=True)
    other = MongoIndexStore(mongo_uri)  # a second process opening the same collection asks again: no-op
    other.insert_many("data", [{"a": 2, "name": "x"}])
    other.create_index("data", [("name", 1)], unique=True)
    other.close()
    specs = index_specs(raw_db, "data")
    assert specs["_seq_1"] == ([("_seq", 1)], True)
    assert specs["tags.split_1__seq_-1"] == ([("tags.split", 1), ("_seq", -1)], False)
    assert specs["name_1"] == ([("name", 1)], True)
    assert len(specs) == 4  # plus _id_
    with pytest.raises(IntegrityError):  # the unique index is enforced
        store.insert_many("data", [{"name": "x"}])
    with pytest.raises(BackendError):  # same keys, other options: MongoDB refuses rather than redefine
        store.create_index("data", [("name", 1)], unique=False)


@pytest.mark.parametrize("keys", [[], [("a", 2)], [("", 1)], [("$a", 1)]])
def test_bad_index_keys(store, keys):
    with pytest.raises(InvalidQuery):
        store.create_index("data", keys)


def test_ids_are_kept_or_assigned_and_seq_follows_batches(mongo_uri, raw_db):
    store = MongoIndexStore(mongo_uri, write_batch_size=7)
    try:
        ids = store.insert_many("data", [{"_id": "given", "_seq": 999, "v": 0}] + [{"v": i} for i in range(1, 30)])
    finally:
        store.close()
    assert ids[0] == "given" and len(set(ids)) == 30 and all(isinstance(i, str) and len(i) == 24 for i in ids[1:])
    docs = list(raw_db["data"].find().sort("_seq", 1))
    assert [d["_seq"] for d in docs] == list(range(1, 31))  # the caller's _seq is ignored
    assert [d["_id"] for d in docs] == ids
    assert raw_db[COUNTERS].find_one({"_id": "data"})["seq"] == 30


def test_seq_ranges_never_overlap_across_threads(store, raw_db):
    threads, calls, per_call = 8, 5, 13
    barrier = threading.Barrier(threads)

    def writer(t: int) -> list[str]:
        barrier.wait()
        out = []
        for c in range(calls):
            out += store.insert_many("data", [{"t": t, "c": c, "i": i} for i in range(per_call)])
        return out

    with ThreadPoolExecutor(threads) as pool:
        written = [i for ids in pool.map(writer, range(threads)) for i in ids]
    total = threads * calls * per_call
    docs = list(raw_db["data"].find({}, {"_seq": 1, "t": 1, "c": 1, "i": 1}))
    seqs = [d["_seq"] for d in docs]
    assert len(written) == len(set(written)) == len(docs) == total
    assert sorted(seqs) == list(range(1, total + 1))  # no duplicates, no gaps
    assert store.last_seq("data") == total
    for t in range(threads):  # within one writer, _seq follows its insertion order
        mine = sorted((d for d in docs if d["t"] == t), key=lambda d: d["_seq"])
        assert [(d["c"], d["i"]) for d in mine] == [(c, i) for c in range(calls) for i in range(per_call)]


def test_duplicate_ids_insert_nothing(store, raw_db):
    store.insert_many("data", [{"_id": "a"}, {"_id": "b"}])
    with pytest.raises(IntegrityError, match="'b'"):
        store.insert_many("data", [{"_id": "c"}, {"_id": "b"}, {"_id": "d"}])
    with pytest.raises(IntegrityError):
        store.insert_many("data", [{"_id": "e"}, {"_id": "e"}])
    assert sorted(d["_id"] for d in raw_db["data"].find()) == ["a", "b"]


def test_a_duplicate_lost_in_a_race_is_rolled_back(mongo_uri, raw_db, monkeypatch):
    """A concurrent writer inserts an _id after our duplicate check: what we inserted is removed again."""
    from pymongo.collection import Collection

    store = MongoIndexStore(mongo_uri, write_batch_size=2)
    real_allocate = Collection.find_one_and_update
    calls = []

    def allocate_then_race(self, *args, **kwargs):
        if self.name == "tensordb.counters":
            calls.append(kwargs)
            if len(calls) == 2:  # between our first and second batch, "someone else" takes id "x3"
                raw_db["data"].insert_one({"_id": "x3", "_seq": 10_000, "theirs": True})
        return real_allocate(self, *args, **kwargs)

    monkeypatch.setattr(Collection, "find_one_and_update", allocate_then_race)  # a spy: the real call still runs
    try:
        with pytest.raises(IntegrityError, match="x3"):
            store.insert_many("data", [{"_id": f"x{i}"} for i in range(1, 6)])
    finally:
        store.close()
    assert list(raw_db["data"].find()) == [{"_id": "x3", "_seq": 10_000, "theirs": True}]


@pytest.mark.parametrize(
    ("doc", "error"),
    [({"_id": 5}, InvalidDocument), ({1: "int key"}, InvalidDocument), ({"big": 2**70}, InvalidDocument),
     ({"_id": ""}, InvalidDocument)],
)
def test_bad_documents(store, doc, error):
    with pytest.raises(error):
        store.insert_many("data", [doc])


def test_bad_collection_names(store):
    for name in ("", "a$b", "system.users", "tensordb.counters"):
        with pytest.raises(InvalidQuery):
            store.count(name)


def test_server_side_code_is_refused_before_the_server(store):
    store.insert_many("data", [{"a": 1}])
    for query in ({"$where": "sleep(1000) || true"}, {"$expr": {"$eq": ["$a", 1]}}):
        with pytest.raises(InvalidQuery):
            list(store.find("data", query))


def test_cursor_pages_through_server_batches(store):
    store.insert_many("data", [{"i": i, "g": i % 3} for i in range(250)])
    cursor = store.find("data", {"g": 1}, batch_size=10)
    got = [d["i"] for d in cursor]
    assert got == [i for i in range(250) if i % 3 == 1]
    early = store.find("data", batch_size=5)
    assert next(iter(early))["i"] == 0
    early.close()
    early.close()  # idempotent


def test_sort_is_tie_broken_by_insertion_order(store):
    store.insert_many("data", [{"k": i % 2, "i": i} for i in range(20)])
    got = [(d["k"], d["i"]) for d in store.find("data", sort=[("k", -1)], skip=2, limit=12)]
    want = sorted(((i % 2, i) for i in range(20)), key=lambda t: (-t[0], t[1]))[2:14]
    assert got == want


def test_tail_and_last_seq_survive_deletes(store):
    store.insert_many("logs", [{"i": i} for i in range(10)])
    assert store.delete_many("logs", {"i": {"$gte": 7}}) == 3
    assert store.last_seq("logs") == 10  # the highest ever assigned, not the highest present
    assert [d["i"] for d in store.tail("logs", after=4)] == [4, 5, 6]
    store.insert_many("logs", [{"i": 10}])
    assert [(d["_seq"], d["i"]) for d in store.tail("logs", {"i": {"$gt": 5}}, after=6)] == [(7, 6), (11, 10)]
    assert store.last_seq("never") == 0


def test_find_one_and_update_returns_the_document_after(store):
    store.insert_many("jobs", [{"_id": f"j{i}", "state": "queued", "prio": i % 2} for i in range(4)])
    got = store.find_one_and_update("jobs", {"state": "queued"}, {"$set": {"state": "run"}, "$inc": {"n": 1}},
                                    sort=[("prio", -1)])
    assert (got["_id"], got["state"], got["n"]) == ("j1", "run", 1)
    assert store.find_one_and_update("jobs", {"state": "gone"}, {"$set": {"x": 1}}) is None
    assert store.update_many("jobs", {"state": "queued"}, {"$set": {"state": "held"}}) == 3
    assert [d["_id"] for d in store.find("jobs", {"state": "held"}, projection={"_id": 1})] == ["j0", "j2", "j3"]
    assert list(store.find("jobs", {"_id": "j0"}, projection={"state": 1, "_id": 0})) == [{"state": "held"}]
