"""The index-store conformance suite: a backend is done when its subclass passes.

Use it by subclassing and providing one function-scoped fixture::

    class TestMyIndex(IndexStoreSuite):
        @pytest.fixture
        def index_store(self, tmp_path):
            store = MyIndexStore(...)      # fresh and empty
            yield store
            store.close()

Why it checks against :func:`tensordb_core.query.filters.matches`: the portable query
language is defined as MongoDB's semantics, and the reference evaluator is its
executable statement (verified against MongoDB's own ``null_query_semantics``
tests).  Hundreds of seeded random queries over mixed-type documents compare
the store with it; :meth:`test_mongodb_semantics_examples` pins the famous
corners with hand-written expectations so a reference bug cannot hide behind
agreement.

What a backend may legitimately lack it declares on the store
(:class:`~tensordb_core.store.protocols.IndexCapabilities`, e.g.
``atomic_insert_many=False``); the suite reads that declaration and tests what
the store promises instead.  The class attributes only size the tests to the
server (``insert_batch``, ``random_queries``, ``claim_threads``).  A contract
test a backend cannot pass is overridden in its subclass with the reason in
code, never skipped silently.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from tensordb_core.errors import IntegrityError, InvalidDocument, InvalidQuery
from tensordb_core.query.filters import matches, sort_key
from tensordb_core.store.protocols import IndexCapabilities, IndexStore
from tensordb_core.testing.columns_suite import ColumnsSuite
from tensordb_core.testing.querygen import QueryGen

C = "things"


class IndexStoreSuite(ColumnsSuite):
    """Conformance tests every :class:`~tensordb_core.store.protocols.IndexStore` must pass."""

    #: The suite writes in chunks of this many documents (some servers, e.g. the
    #: mongoeco emulator, slow down sharply on larger batches).
    insert_batch: ClassVar[int] = 100
    #: How many random queries are compared with the reference evaluator.
    random_queries: ClassVar[int] = 350
    #: Threads racing in the atomic-claim test.
    claim_threads: ClassVar[int] = 6

    @pytest.fixture
    def index_store(self) -> Iterator[IndexStore]:  # pragma: no cover - subclasses provide it
        raise NotImplementedError("subclass IndexStoreSuite and provide an `index_store` fixture")

    # helpers --------------------------------------------------------------------------------
    def insert(self, store: IndexStore, docs: list[dict[str, Any]], collection: str = C) -> list[str]:
        ids: list[str] = []
        for k in range(0, len(docs), self.insert_batch):
            ids.extend(store.insert_many(collection, docs[k : k + self.insert_batch]))
        return ids

    @staticmethod
    def ids(cursor: Any) -> list[str]:
        return [d["_id"] for d in cursor]

    # insert and read back ---------------------------------------------------------------------
    def test_is_an_index_store(self, index_store: IndexStore) -> None:
        assert isinstance(index_store, IndexStore)

    def test_declares_its_capabilities(self, index_store: IndexStore) -> None:
        caps = index_store.capabilities
        assert isinstance(caps, IndexCapabilities), "a store declares IndexCapabilities (the defaults are a valid choice)"
        assert math.isfinite(caps.tail_grace_s) and caps.tail_grace_s >= 0

    def test_round_trip_of_json_like_values(self, index_store: IndexStore) -> None:
        doc = {
            "_id": "doc-1",
            "i": 7,
            "big": 2**63 - 1,
            "neg": -(2**63),
            "f": 0.1,
            "whole_float": 2.0,
            "tiny": 5e-324,
            "huge": 1.5e300,
            "s": "héllo ✓ 𝄞 \"quoted\" 'single' \\ back",
            "empty_s": "",
            "t": True,
            "fa": False,
            "none": None,
            "arr": [1, "two", 3.5, None, [4, [5]], {"six": 6}],
            "empty_arr": [],
            "sub": {"z": 1, "a": {"deep": [True]}, "m": {}},
        }
        index_store.insert_many(C, [doc])
        (got,) = list(index_store.find(C))
        assert got == {**doc, "_seq": got["_seq"]}
        assert type(got["i"]) is int and type(got["big"]) is int
        assert type(got["whole_float"]) is float and type(got["t"]) is bool
        assert list(got["sub"]) == ["z", "a", "m"], "field order inside subdocuments is kept"
        got["sub"]["z"] = 99
        (again,) = list(index_store.find(C))
        assert again["sub"]["z"] == 1, "returned documents are copies"

    def test_ids_assigned_and_caller_seq_ignored(self, index_store: IndexStore) -> None:
        ids = index_store.insert_many(C, [{"x": 1}, {"_id": "mine", "x": 2}, {"x": 3, "_seq": 10**6}])
        assert len(ids) == 3 and ids[1] == "mine"
        assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == 3
        docs = list(index_store.find(C))
        assert [d["_id"] for d in docs] == ids
        assert [d["x"] for d in docs] == [1, 2, 3]
        assert docs[2]["_seq"] != 10**6 and docs[2]["_seq"] == index_store.last_seq(C)
        assert index_store.insert_many(C, []) == []

    def test_duplicate_id_is_an_integrity_error(self, index_store: IndexStore) -> None:
        index_store.insert_many(C, [{"_id": "a", "v": 1}])
        with pytest.raises(IntegrityError):
            index_store.insert_many(C, [{"_id": "b", "v": 2}, {"_id": "a", "v": 3}])
        with pytest.raises(IntegrityError):
            index_store.insert_many(C, [{"_id": "c"}, {"_id": "c"}])
        by_id = {d["_id"]: d for d in index_store.find(C)}
        assert by_id["a"]["v"] == 1, "a failed insert never overwrites"
        if index_store.capabilities.atomic_insert_many:
            assert set(by_id) == {"a"}, "insert_many is all or nothing"

    def test_seq_is_strictly_increasing_in_insertion_order(self, index_store: IndexStore) -> None:
        assert index_store.last_seq(C) == 0
        self.insert(index_store, [{"n": i} for i in range(5)])
        index_store.insert_many(C, [{"n": 5}])
        self.insert(index_store, [{"n": i} for i in range(6, 9)])
        docs = list(index_store.find(C))
        seqs = [d["_seq"] for d in docs]
        assert [d["n"] for d in docs] == list(range(9))
        assert all(type(s) is int for s in seqs) and seqs == sorted(set(seqs))
        assert index_store.last_seq(C) == seqs[-1]
        assert index_store.delete_many(C, {}) == 9
        assert index_store.last_seq(C) == seqs[-1], "last_seq never goes back"
        index_store.insert_many(C, [{"n": 9}])
        (new,) = list(index_store.find(C))
        assert new["_seq"] > seqs[-1], "a _seq is never reused"

    @pytest.mark.parametrize(
        "bad",
        [
            {"v": {1, 2}},
            {"v": b"bytes"},
            {"v": float("nan")},
            {"v": float("inf")},
            {"v": 2**64},
            {"$v": 1},
            {"a.b": 1},
            {"sub": {"$set": 1}},
            {1: "int key"},
            {"_id": 5},
            {"_id": ""},
            {"v": object()},
        ],
        ids=lambda d: repr(d)[:30],
    )
    def test_non_json_documents_are_refused(self, index_store: IndexStore, bad: dict[Any, Any]) -> None:
        with pytest.raises(InvalidDocument):
            index_store.insert_many(C, [{"ok": 1}, bad])
        if index_store.capabilities.atomic_insert_many:
            assert index_store.count(C) == 0

    def test_collections_are_independent(self, index_store: IndexStore) -> None:
        index_store.insert_many("one", [{"_id": "x", "c": 1}])
        index_store.insert_many("two.sub-name_2", [{"_id": "x", "c": 2}])
        assert [d["c"] for d in index_store.find("one")] == [1]
        assert [d["c"] for d in index_store.find("two.sub-name_2")] == [2]
        assert index_store.count("never_written") == 0
        assert list(index_store.find("never_written")) == []
        assert list(index_store.tail("never_written")) == []
        assert index_store.last_seq("never_written") == 0

    @pytest.mark.parametrize("name", ["", "a$b", "nul\x00name", "system.users", 5])
    def test_invalid_collection_names(self, index_store: IndexStore, name: Any) -> None:
        with pytest.raises(InvalidQuery):
            index_store.insert_many(name, [{"a": 1}])
        with pytest.raises(InvalidQuery):
            list(index_store.find(name))

    # queries --------------------------------------------------------------------------------
    def test_random_queries_agree_with_the_reference(self, index_store: IndexStore) -> None:
        gen = QueryGen(seed=20240517)
        docs = gen.documents(80)
        self.insert(index_store, docs)
        failures = []
        for n in range(self.random_queries):
            query = gen.query(docs)
            expected = [d["_id"] for d in docs if matches(d, query)]
            got = self.ids(index_store.find(C, query))
            if got != expected:
                extra = sorted(set(got) - set(expected))[:3]
                missing = sorted(set(expected) - set(got))[:3]
                failures.append(f"{query!r}: unexpected {extra}, missing {missing}")
            elif n % 7 == 0 and index_store.count(C, query) != len(expected):
                failures.append(f"count({query!r}) != {len(expected)}")
        assert not failures, f"{len(failures)} queries disagree with MongoDB semantics:\n" + "\n".join(failures[:10])

    MONGO_DOCS: ClassVar[list[dict[str, Any]]] = [
        {"_id": "num", "a": 4},
        {"_id": "float", "a": 4.0},
        {"_id": "true", "a": True},
        {"_id": "one", "a": 1},
        {"_id": "str", "a": "4"},
        {"_id": "null", "a": None},
        {"_id": "missing"},
        {"_id": "arr", "a": [1, 4, "x"]},
        {"_id": "nested", "a": [[4]]},
        {"_id": "sub", "a": {"b": 4, "c": 1}},
        {"_id": "subs", "a": [{"b": 4}, {"c": 1}]},
        {"_id": "scalars", "a": [5, 6]},
        {"_id": "empty", "a": []},
    ]
    ALL = frozenset(d["_id"] for d in MONGO_DOCS)
    GT3 = frozenset({"num", "float", "arr", "scalars"})
    MONGO_CASES: ClassVar[list[tuple[dict[str, Any], frozenset[str]]]] = [
        ({"a": 4}, frozenset({"num", "float", "arr"})),
        ({"a": True}, frozenset({"true"})),
        ({"a": 1}, frozenset({"one", "arr"})),
        ({"a": {"$gt": 3}}, GT3),
        ({"a": {"$gt": "3"}}, frozenset({"str", "arr"})),
        ({"a": {"$gt": False}}, frozenset({"true"})),
        ({"a": None}, frozenset({"null", "missing"})),
        ({"a": {"$ne": None}}, ALL - {"null", "missing"}),
        ({"a": {"$lte": None}}, frozenset({"null", "missing"})),
        ({"a": {"$gt": None}}, frozenset()),
        ({"a": {"$exists": False}}, frozenset({"missing"})),
        ({"a.b": 4}, frozenset({"sub", "subs"})),
        ({"a.b": None}, frozenset({"num", "float", "true", "one", "str", "null", "missing", "subs"})),
        ({"a.b": {"$exists": True}}, frozenset({"sub", "subs"})),
        ({"a": {"$size": 2}}, frozenset({"scalars", "subs"})),
        ({"a": {"$size": 0}}, frozenset({"empty"})),
        ({"a": {"$all": [1, 4]}}, frozenset({"arr"})),
        ({"a": {"$all": []}}, frozenset()),
        ({"a": {"$in": []}}, frozenset()),
        ({"a": {"$elemMatch": {"$gte": 4, "$lt": 6}}}, frozenset({"arr", "scalars"})),
        ({"a": {"$elemMatch": {"b": 4}}}, frozenset({"subs"})),
        ({"a": {"$in": [None, "4"]}}, frozenset({"null", "missing", "str"})),
        ({"a": {"$nin": [4, None]}}, frozenset({"true", "one", "str", "nested", "sub", "scalars", "subs", "empty"})),
        ({"a": {"$not": {"$gt": 3}}}, ALL - GT3),
        ({"a": {"b": 4, "c": 1}}, frozenset({"sub"})),
        ({"a": {"c": 1, "b": 4}}, frozenset()),
        ({"a": [1, 4, "x"]}, frozenset({"arr"})),
        ({"a": [4]}, frozenset({"nested"})),
        ({"a": []}, frozenset({"empty"})),
        ({"$or": [{"a": True}, {"a": "4"}]}, frozenset({"true", "str"})),
        ({"$nor": [{"a": {"$exists": True}}]}, frozenset({"missing"})),
        ({"$and": [{"a": {"$gte": 4}}, {"a": {"$lte": 4}}]}, frozenset({"num", "float", "arr"})),
        ({"a": {"$gte": 4, "$lte": 5}}, frozenset({"num", "float", "arr", "scalars"})),
        ({"_id": {"$in": ["num", "nope"]}}, frozenset({"num"})),
    ]

    def test_mongodb_semantics_examples(self, index_store: IndexStore) -> None:
        """Hand-written MongoDB answers: type brackets, null vs missing, arrays, subdocument order."""
        index_store.insert_many(C, self.MONGO_DOCS)
        failures = []
        for query, expected in self.MONGO_CASES:
            assert {d["_id"] for d in self.MONGO_DOCS if matches(d, query)} == expected, f"reference: {query}"
            got = set(self.ids(index_store.find(C, query)))
            if got != expected:
                failures.append(f"{query!r}: got {sorted(got)}, MongoDB gives {sorted(expected)}")
        assert not failures, "\n".join(failures)

    def test_count(self, index_store: IndexStore) -> None:
        self.insert(index_store, [{"n": i, "even": i % 2 == 0} for i in range(30)])
        assert index_store.count(C) == 30
        assert index_store.count(C, None) == 30
        assert index_store.count(C, {"even": True}) == 15
        assert index_store.count(C, {"n": {"$gte": 25}}) == 5
        assert index_store.count(C, {"n": "25"}) == 0

    # sort, limit, skip, projection, cursors ---------------------------------------------------
    def test_sort_follows_type_brackets_and_breaks_ties_by_seq(self, index_store: IndexStore) -> None:
        values: list[Any] = [True, "a", None, 2.5, {"x": 1}, 1, "B", False, 2.5, {"x": 0, "y": 1}, 1.0, "", -3]
        docs = [{"_id": f"v{i:02d}", "s": v} for i, v in enumerate(values)] + [{"_id": "v99"}]
        self.insert(index_store, docs)
        asc = self.ids(index_store.find(C, sort=[("s", 1)]))
        assert asc == [
            "v02", "v99",  # null and missing tie: _seq order
            "v12", "v05", "v10", "v03", "v08",  # numbers: -3, 1, 1.0, 2.5, 2.5
            "v11", "v06", "v01",  # strings by code point: "", "B", "a"
            "v09", "v04",  # {"x": 0, "y": 1} < {"x": 1}
            "v07", "v00",  # false < true
        ]  # fmt: skip
        desc = self.ids(index_store.find(C, sort={"s": -1}))
        assert desc[:2] == ["v00", "v07"] and desc[-2:] == ["v02", "v99"], "ties stay in _seq order when descending"
        assert desc[7:9] == ["v03", "v08"] and desc[9:11] == ["v05", "v10"]

    def test_random_sorts_agree_with_the_reference(self, index_store: IndexStore) -> None:
        gen = QueryGen(seed=77)
        docs = gen.documents(60)
        self.insert(index_store, docs)
        for _ in range(25):
            spec = gen.sort()
            query = gen.query(docs) if gen.rng.random() < 0.5 else {}
            hits = [dict(d, _seq=i) for i, d in enumerate(docs) if matches(d, query)]
            expected = [d["_id"] for d in sorted(hits, key=lambda d: sort_key(d, spec))]
            assert self.ids(index_store.find(C, query, sort=spec)) == expected, f"sort={spec} query={query}"
            assert self.ids(index_store.find(C, query, sort=spec, skip=3, limit=5)) == expected[3:8]

    def test_multi_key_sort(self, index_store: IndexStore) -> None:
        docs = [{"_id": f"d{i}", "g": i % 3, "v": (i * 7) % 5} for i in range(15)]
        self.insert(index_store, docs)
        got = list(index_store.find(C, sort=[("g", -1), ("v", 1)]))
        assert [(d["g"], d["v"]) for d in got] == sorted(((d["g"], d["v"]) for d in docs), key=lambda t: (-t[0], t[1]))
        for a, b in itertools.pairwise(got):
            if (a["g"], a["v"]) == (b["g"], b["v"]):
                assert a["_seq"] < b["_seq"]

    def test_limit_and_skip(self, index_store: IndexStore) -> None:
        self.insert(index_store, [{"n": i} for i in range(20)])

        def n(cursor: Any) -> list[int]:
            return [d["n"] for d in cursor]

        assert n(index_store.find(C, limit=5)) == [0, 1, 2, 3, 4]
        assert n(index_store.find(C, skip=17)) == [17, 18, 19]
        assert n(index_store.find(C, skip=25)) == []
        assert n(index_store.find(C, limit=0)) == list(range(20))
        assert n(index_store.find(C, {"n": {"$gte": 10}}, skip=2, limit=3)) == [12, 13, 14]
        assert n(index_store.find(C, sort=[("n", -1)], skip=1, limit=2)) == [18, 17]
        for bad in ({"limit": -1}, {"skip": -1}, {"limit": "5"}):
            with pytest.raises(InvalidQuery):
                index_store.find(C, **bad)

    def test_cursor_spanning_many_pages(self, index_store: IndexStore) -> None:
        self.insert(index_store, [{"n": i, "odd": i % 2} for i in range(250)])
        assert [d["n"] for d in index_store.find(C, batch_size=7)] == list(range(250))
        odd = [d["n"] for d in index_store.find(C, {"odd": 1}, sort=[("n", -1)], batch_size=4)]
        assert odd == list(range(249, 0, -2))
        window = [d["n"] for d in index_store.find(C, {"odd": 0}, skip=10, limit=30, batch_size=3)]
        assert window == list(range(20, 80, 2))
        cursor = index_store.find(C, batch_size=5)
        it = iter(cursor)
        assert [next(it)["n"] for _ in range(12)] == list(range(12))
        cursor.close()
        cursor.close()

    def test_cursor_survives_writes_while_iterating(self, index_store: IndexStore) -> None:
        self.insert(index_store, [{"n": i, "state": "new"} for i in range(30)])
        seen = []
        for doc in index_store.find(C, {"state": "new"}, batch_size=4):
            seen.append(doc["n"])
            index_store.update_many(C, {"_id": doc["_id"]}, {"$set": {"state": "done"}})
        assert sorted(seen) == list(range(30)) and len(seen) == 30
        assert index_store.count(C, {"state": "done"}) == 30

    def test_projection(self, index_store: IndexStore) -> None:
        index_store.insert_many(
            C, [{"_id": "p", "a": 1, "b": {"c": 2, "d": 3}, "arr": [{"x": 1, "y": 2}, 5, {"y": 3}], "z": "z"}]
        )
        (inc,) = list(index_store.find(C, projection={"a": 1, "b.c": 1, "arr.y": 1}))
        assert inc == {"_id": "p", "a": 1, "b": {"c": 2}, "arr": [{"y": 2}, {"y": 3}]}
        (no_id,) = list(index_store.find(C, projection={"_id": 0, "z": 1}))
        assert no_id == {"z": "z"}
        (exc,) = list(index_store.find(C, projection={"b.d": 0, "arr.x": 0, "z": 0, "_seq": 0}))
        assert exc == {"_id": "p", "a": 1, "b": {"c": 2}, "arr": [{"y": 2}, 5, {"y": 3}]}
        (only_id,) = list(index_store.find(C, projection={"_id": 1}))
        assert only_id == {"_id": "p"}
        for bad in ({"a": 1, "z": 0}, {"a": "yes"}, {"a": 1, "a.b": 1}, {"$where": 1}):
            with pytest.raises(InvalidQuery):
                index_store.find(C, projection=bad)

    # updates and deletes --------------------------------------------------------------------
    def test_update_many_operators(self, index_store: IndexStore) -> None:
        index_store.insert_many(
            C,
            [
                {"_id": "u1", "kind": "a", "n": 1, "tags": ["x"], "m": {"best": 0.5}},
                {"_id": "u2", "kind": "a", "n": 2.5, "m": {"best": 0.9}},
                {"_id": "u3", "kind": "b", "n": 3},
            ],
        )
        update = {
            "$set": {"m.last": 0.7, "state": "seen"},
            "$inc": {"n": 2},
            "$push": {"tags": "y"},
            "$max": {"m.best": 0.7},
            "$unset": {"kind": ""},
        }
        assert index_store.update_many(C, {"kind": "a"}, update) == 2
        docs = {d["_id"]: d for d in index_store.find(C)}
        assert docs["u1"] == {
            "_id": "u1", "_seq": docs["u1"]["_seq"], "n": 3, "tags": ["x", "y"],
            "m": {"best": 0.7, "last": 0.7}, "state": "seen",
        }  # fmt: skip
        assert type(docs["u1"]["n"]) is int and docs["u2"]["n"] == 4.5
        assert docs["u2"]["tags"] == ["y"] and docs["u2"]["m"] == {"best": 0.9, "last": 0.7}
        assert docs["u3"] == {"_id": "u3", "_seq": docs["u3"]["_seq"], "kind": "b", "n": 3}
        assert index_store.update_many(C, {"n": {"$gt": 100}}, {"$set": {"x": 1}}) == 0
        assert index_store.update_many(C, {}, {"$min": {"n": 3.5}, "$push": {"log": {"$each": [1, 2]}}}) == 3
        assert sorted(d["n"] for d in index_store.find(C)) == [3, 3, 3.5]
        assert all(d["log"] == [1, 2] for d in index_store.find(C))

    @pytest.mark.parametrize(
        "bad",
        [
            {"state": "replacement"},
            {"$set": {"_id": "new"}},
            {"$set": {"_seq": 1}},
            {"$inc": {"n": "1"}},
            {"$rename": {"a": "b"}},
            {"$set": {"a": 1}, "$inc": {"a": 1}},
            {"$set": {"a": 1, "a.b": 2}},
            {},
            {"$set": {}},
            {"$set": {"v": float("nan")}},
        ],
        ids=lambda d: repr(d)[:30],
    )
    def test_invalid_updates(self, index_store: IndexStore, bad: dict[str, Any]) -> None:
        index_store.insert_many(C, [{"_id": "x", "n": 1}])
        with pytest.raises(InvalidQuery):
            index_store.update_many(C, {}, bad)
        with pytest.raises(InvalidQuery):
            index_store.find_one_and_update(C, {}, bad)
        assert [d["n"] for d in index_store.find(C)] == [1]

    def test_update_that_cannot_apply_to_a_document(self, index_store: IndexStore) -> None:
        index_store.insert_many(C, [{"_id": "x", "s": "text", "k": 5}])
        for bad in ({"$inc": {"s": 1}}, {"$push": {"k": 1}}, {"$set": {"k.sub": 1}}):
            with pytest.raises(InvalidQuery):
                index_store.update_many(C, {"_id": "x"}, bad)
        (doc,) = list(index_store.find(C))
        assert doc["s"] == "text" and doc["k"] == 5

    def test_find_one_and_update_returns_the_updated_first_match(self, index_store: IndexStore) -> None:
        self.insert(index_store, [{"_id": f"j{i}", "p": i % 3, "state": "queued"} for i in range(9)])
        got = index_store.find_one_and_update(C, {"state": "queued"}, {"$set": {"state": "taken"}})
        assert got is not None and got["_id"] == "j0" and got["state"] == "taken" and "_seq" in got
        got = index_store.find_one_and_update(
            C, {"state": "queued"}, {"$set": {"state": "taken"}, "$inc": {"tries": 1}}, sort=[("p", -1)]
        )
        assert got is not None and got["_id"] == "j2" and got["tries"] == 1, "first by sort, then by _seq"
        assert index_store.find_one_and_update(C, {"state": "nope"}, {"$set": {"x": 1}}) is None
        assert index_store.count(C, {"state": "taken"}) == 2

    def test_find_one_and_update_is_atomic_across_threads(self, index_store: IndexStore) -> None:
        n_items = 60
        self.insert(index_store, [{"_id": f"item{i:03d}", "n": i, "state": "queued"} for i in range(n_items)])
        claimed: list[list[str]] = [[] for _ in range(self.claim_threads)]
        errors: list[BaseException] = []
        start = threading.Barrier(self.claim_threads)

        def worker(k: int) -> None:
            try:
                start.wait()
                while True:
                    doc = index_store.find_one_and_update(
                        C,
                        {"state": "queued"},
                        {"$set": {"state": "taken", "by": k}, "$inc": {"claims": 1}},
                        sort=[("n", 1)],
                    )
                    if doc is None:
                        return
                    assert doc["state"] == "taken" and doc["by"] == k
                    claimed[k].append(doc["_id"])
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(self.claim_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        everything = [i for ids in claimed for i in ids]
        assert sorted(everything) == [f"item{i:03d}" for i in range(n_items)], "each item claimed exactly once"
        assert all(d["claims"] == 1 for d in index_store.find(C))

    def test_delete_many(self, index_store: IndexStore) -> None:
        self.insert(index_store, [{"n": i, "tag": ["even" if i % 2 == 0 else "odd"]} for i in range(10)])
        assert index_store.delete_many(C, {"tag": "odd", "n": {"$gt": 4}}) == 3
        assert index_store.delete_many(C, {"n": 1000}) == 0
        assert [d["n"] for d in index_store.find(C)] == [0, 1, 2, 3, 4, 6, 8]
        assert index_store.delete_many(C, {}) == 7
        assert index_store.count(C) == 0

    # indexes, tailing -----------------------------------------------------------------------
    def test_create_index_is_idempotent(self, index_store: IndexStore) -> None:
        self.insert(index_store, [{"k": i % 4, "s": {"t": i}} for i in range(12)])
        for _ in range(2):
            index_store.create_index(C, [("k", 1)])
            index_store.create_index(C, [("k", 1), ("s.t", -1)])
        assert index_store.count(C, {"k": 2}) == 3
        assert [d["s"]["t"] for d in index_store.find(C, {"k": 1}, sort=[("s.t", -1)])] == [9, 5, 1]
        index_store.create_index("fresh_collection", [("k", 1)])
        assert index_store.count("fresh_collection") == 0
        with pytest.raises(InvalidQuery):
            index_store.create_index(C, [("k", 2)])

    def test_unique_index(self, index_store: IndexStore) -> None:
        if not index_store.capabilities.unique_indexes:
            return  # a hint-only store: nothing to check (its declaration says so)
        index_store.insert_many(C, [{"name": "a"}, {"name": "b"}])
        index_store.create_index(C, [("name", 1)], unique=True)
        index_store.create_index(C, [("name", 1)], unique=True)
        with pytest.raises(IntegrityError):
            index_store.insert_many(C, [{"name": "a"}])
        with pytest.raises(IntegrityError):
            index_store.update_many(C, {"name": "b"}, {"$set": {"name": "a"}})
        assert sorted(d["name"] for d in index_store.find(C)) == ["a", "b"]
        index_store.insert_many("dups", [{"v": 1}, {"v": 1}])
        with pytest.raises(IntegrityError):
            index_store.create_index("dups", [("v", 1)], unique=True)

    def test_tail_after_a_position(self, index_store: IndexStore) -> None:
        self.insert(index_store, [{"n": i, "odd": i % 2 == 1} for i in range(10)])
        everything = list(index_store.tail(C))
        assert [d["n"] for d in everything] == list(range(10))
        mark = everything[5]["_seq"]
        assert [d["n"] for d in index_store.tail(C, after=mark)] == [6, 7, 8, 9]
        assert [d["n"] for d in index_store.tail(C, {"odd": True}, after=mark)] == [7, 9]
        assert [d["n"] for d in index_store.tail(C, after=mark, limit=2)] == [6, 7]
        last = index_store.last_seq(C)
        assert list(index_store.tail(C, after=last)) == []
        self.insert(index_store, [{"n": 10, "odd": False}])
        follow = list(index_store.tail(C, after=last))
        assert [d["n"] for d in follow] == [10] and follow[0]["_seq"] > last == everything[-1]["_seq"]

    # refusals -------------------------------------------------------------------------------
    BAD_QUERIES: ClassVar[list[Any]] = [
        {"$where": "this.a > 1"},
        {"a": {"$where": "1"}},
        {"$expr": {"$gt": ["$a", 1]}},
        {"$function": {"body": "return true", "args": [], "lang": "js"}},
        {"a": {"$accumulator": {}}},
        {"a": {"$regex": "^x"}},
        {"a": {"$bogus": 1}},
        {"a": {"$in": 5}},
        {"a": {"$size": -1}},
        {"a": {"$size": "2"}},
        {"a": {"$exists": "yes"}},
        {"$and": []},
        {"$or": [1]},
        {"$not": {"a": 1}},
        {"a": {"$gt": 1, "b": 2}},
        {1: "x"},
        {"a": {"$eq": float("nan")}},
        {"a": {1, 2}},
        {"a..b": 1},
        "not a dict",
    ]

    @pytest.mark.parametrize("bad", BAD_QUERIES, ids=lambda q: repr(q)[:40])
    def test_invalid_queries_are_refused_before_the_store(self, index_store: IndexStore, bad: Any) -> None:
        index_store.insert_many(C, [{"_id": "keep", "a": 1}])
        with pytest.raises(InvalidQuery):
            index_store.find(C, bad)
        with pytest.raises(InvalidQuery):
            index_store.count(C, bad)
        with pytest.raises(InvalidQuery):
            index_store.delete_many(C, bad)
        with pytest.raises(InvalidQuery):
            index_store.update_many(C, bad, {"$set": {"a": 2}})
        with pytest.raises(InvalidQuery):
            index_store.find_one_and_update(C, bad, {"$set": {"a": 2}})
        with pytest.raises(InvalidQuery):
            list(index_store.tail(C, bad))
        assert [(d["_id"], d["a"]) for d in index_store.find(C)] == [("keep", 1)]

    def test_deep_queries_are_refused(self, index_store: IndexStore) -> None:
        query: dict[str, Any] = {"a": 1}
        for _ in range(40):
            query = {"$and": [query]}
        with pytest.raises(InvalidQuery):
            index_store.find(C, query)

    def test_invalid_sorts_are_refused(self, index_store: IndexStore) -> None:
        for bad in ([("a", 2)], [("a", True)], "a", [("$a", 1)], [("a", 1), ("a", -1)]):
            with pytest.raises(InvalidQuery):
                index_store.find(C, sort=bad)
