"""Everyday queries past SQLite's limits: thousands of ids, a thousand $or clauses, odd field names, huge windows.

The embedded index translates queries into SQL; SQLite refuses an expression
tree deeper than 1,000 and more than 32,766 bound values, and its JSON paths
cannot spell every field name.  Each case here failed with a raw sqlite3 error
or a wrong answer before; the memory store (the reference evaluator) is the
expected answer.
"""

from __future__ import annotations

import pytest

from tensordb_core.embedded.memory import MemoryIndexStore
from tensordb_core.embedded.sqlite_index import SQLiteIndexStore
from tensordb_core.errors import InvalidQuery

C = "docs"
N = 1200


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    sqlite = SQLiteIndexStore(tmp_path_factory.mktemp("limits") / "index.db")
    memory = MemoryIndexStore()
    docs = [{"_id": f"id{i:05d}", "n": i, "f": i + 0.5, "tag": f"t{i % 700}", "arr": [i, -i],
             "odd\x01name": i % 3, "tab\tname": f"v{i % 5}"} for i in range(N)]
    for store in (sqlite, memory):
        for k in range(0, N, 400):
            store.insert_many(C, docs[k:k + 400])
    yield sqlite, memory
    sqlite.close()


def ids(store, query, **kw):
    return [d["_id"] for d in store.find(C, query, **kw)]


@pytest.mark.parametrize("query", [
    {"_id": {"$in": [f"id{i:05d}" for i in range(0, 3000, 2)]}},              # 1,500 ids
    {"n": {"$in": list(range(0, 40_000, 7))}},                                   # 5,715 ints
    {"f": {"$in": [i + 0.5 for i in range(0, 3000, 3)]}},                       # 1,000 floats
    {"arr": {"$all": [-i for i in range(1, 1200)]}},                            # a long $all: nothing has them all
    {"arr": {"$all": [7, -7] * 20_000}},                                          # 40,000 values, past SQLite's binds
    {"$or": [{"n": i} for i in range(0, 3000, 3)]},                              # 1,000 clauses
    {"$and": [{"n": {"$ne": i}} for i in range(1100)]},                          # 1,100 clauses
    {"$or": [{"tag": f"t{i}", "n": {"$gte": i}} for i in range(1200)]},
    {"_id": {"$nin": [f"id{i:05d}" for i in range(2500)]}},
])
def test_long_lists_and_chains_answer_like_the_reference(stores, query) -> None:
    sqlite, memory = stores
    assert ids(sqlite, query) == ids(memory, query)


def test_more_values_than_sqlite_binds(stores) -> None:
    sqlite, _ = stores
    tags = [f"t{i}" for i in range(0, 700, 3)]
    query = {"tag": {"$in": tags + [f"x{i}" for i in range(40_000)]}}  # past 32,766 bound values
    assert ids(sqlite, query) == [f"id{i:05d}" for i in range(N) if f"t{i % 700}" in set(tags)]


def test_a_few_thousand_ids_are_one_query(stores) -> None:
    sqlite, _ = stores
    wanted = [f"id{i:05d}" for i in range(N - 1, -1, -1)]
    assert ids(sqlite, {"_id": {"$in": wanted}}) == sorted(wanted)
    assert sqlite.count(C, {"_id": {"$in": wanted + ["nope"] * 50_000}}) == N


@pytest.mark.parametrize("query", [
    {"odd\x01name": 1}, {"odd\x01name": {"$gte": 1}}, {"tab\tname": "v3"}, {"tab\tname": {"$in": ["v1", "v2"]}},
])
def test_field_names_with_control_characters_match(stores, query) -> None:
    sqlite, memory = stores
    assert ids(sqlite, query) == ids(memory, query) and ids(memory, query)


def test_field_names_with_control_characters_sort(stores) -> None:
    sqlite, memory = stores
    for key in ("odd\x01name", "tab\tname"):
        sort = [(key, -1), ("n", 1)]
        assert ids(sqlite, {}, sort=sort, limit=50) == ids(memory, {}, sort=sort, limit=50)


@pytest.mark.parametrize("kwargs", [
    {"batch_size": 2**31}, {"batch_size": 2**64}, {"limit": 2**63}, {"skip": 2**63}, {"limit": 2**70},
])
def test_windows_past_int64_are_typed_errors(stores, kwargs) -> None:
    for store in stores:
        with pytest.raises(InvalidQuery):
            list(store.find(C, {}, **kwargs))


def test_the_largest_windows_still_work(stores) -> None:
    for store in stores:
        assert len(ids(store, {}, batch_size=2**31 - 1, limit=2**63 - 1)) == N
        assert ids(store, {}, skip=2**63 - 1) == []
