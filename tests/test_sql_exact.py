"""The embedded index's exact SQL (embedded/sql_exact.py) against the reference evaluator, query by query.

``read_columns`` trusts SQLite alone to decide a match (no Python re-check),
so every clause shape of its small language is checked here against
:func:`tensordb_core.query.filters.matches` over documents of mixed types:
arrays of scalars and of arrays, null, missing, bools next to 0 and 1,
ints next to equal floats, strings that look like JSON.  Queries outside the
language must come back None (the stream then reads documents).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from tensordb_core.embedded.sqlite_index import SQLiteIndexStore
from tensordb_core.errors import InvalidQuery
from tensordb_core.query.filters import matches
from tensordb_core.testing.querygen import QueryGen

FIELDS = ["a", "b", "t", "n", "nope"]
VALUES: list[Any] = [0, 1, 2, 3, -1, 2**53, "", "a", "b", "[1]", '{"x":1}', "1"]
BOUNDS: list[Any] = [-1, 0, 0.5, 1, 1.0, 2, 2.5, 3, -(2**53), 1e300]
EXTRA_DOCS: list[dict[str, Any]] = [
    {"a": True}, {"a": False}, {"a": None}, {"a": 1.0}, {"a": [1.0, True]}, {"a": [[1], [2]]}, {"a": ["[1]"]},
    {"a": [1]}, {"a": {"x": 1}}, {"a": "[1]"}, {"a": '{"x":1}'}, {"a": 2**53}, {"a": float(2**53)},
    {"a": [0.5, 3]}, {"a": []}, {"b": ["a", "b", 2]}, {"a": 2.5, "b": "a"}, {"t": "1"}, {"t": 1},
    {"t": 0.1 + 0.2}, {"t": 5e-324}, {"t": -(2**63)}, {"t": "é \"q\" \\ 𝄞"}, {"b": {"x": [None, {"y": False}]}},
    {"t": "a line\nbreak, a comma"}, {"t": {"o": 1, "p": "q,r"}},
]


def clause(rng: random.Random) -> dict[str, Any]:
    name = rng.choice(FIELDS)
    kind = rng.random()
    if kind < 0.35:
        return {name: rng.choice(VALUES)}
    if kind < 0.5:
        return {name: {"$eq": rng.choice(VALUES)}}
    if kind < 0.65:
        return {name: {"$in": rng.sample(VALUES, rng.randint(1, 4))}}
    ops = rng.sample(["$gt", "$gte", "$lt", "$lte"], rng.randint(1, 2))
    return {name: {op: rng.choice(BOUNDS) for op in ops}}


def exact_query(rng: random.Random) -> dict[str, Any]:
    clauses = [clause(rng) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.3:
        clauses.append({"_seq": {rng.choice(["$gt", "$gte", "$lt", "$lte", "$eq"]): rng.randint(0, 40)}})
    if rng.random() < 0.5:
        return {"$and": clauses}
    merged: dict[str, Any] = {}
    for c in clauses:
        merged.update(c)
    return merged


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = SQLiteIndexStore(str(tmp_path_factory.mktemp("exact") / "index.sqlite"))
    docs = QueryGen(11).documents(60) + EXTRA_DOCS
    s.insert_many("c", [{"_id": f"d{i}", **d} for i, d in enumerate(docs)])
    stored = list(s.find("c", {}))
    yield s, stored
    s.close()


def test_every_exact_query_matches_what_the_reference_evaluator_matches(store):
    s, stored = store
    rng = random.Random(3)
    answered = 0
    for _ in range(600):
        query = exact_query(rng)
        cols = s.read_columns("c", query, [], after=0, until=10**6)
        assert cols is not None, query  # inside the language: SQL answers it
        want = [d["_id"] for d in stored if matches(d, query)]
        assert cols["_id"] == want, query
        assert s.count("c", query) == len(want), query  # count() answers the same language in SQL alone
        answered += bool(want)
    assert answered > 100  # the queries hit documents, not only empty results


def test_bounds_are_exclusive_below_and_inclusive_above(store):
    s, stored = store
    cols = s.read_columns("c", {}, [], after=5, until=9)
    assert cols is not None and cols["_seq"] == [d["_seq"] for d in stored if 5 < d["_seq"] <= 9]


@pytest.mark.parametrize("query", [
    {"a.x": 1}, {"a": True}, {"a": None}, {"a": 1.5}, {"a": [1]}, {"a": {"x": 1}}, {"a": {"$ne": 1}},
    {"$or": [{"a": 1}]}, {"a": {"$exists": True}}, {"a": {"$gt": "a"}}, {"a": {"$in": []}},
    {"a": {"$in": list(range(65))}}, {"_id": {"$gt": "d1"}}, {"_seq": 1.5}, {"a": 2**60}, {"a": {"$gt": True}},
])
def test_queries_outside_the_language_are_left_to_documents(store, query):
    s, _ = store
    assert s.read_columns("c", query, ["a"], after=0, until=10**6) is None


def test_columns_hold_each_paths_value_none_where_missing_or_through_a_non_object(store):
    s, stored = store
    paths = ["a", "a.x", "b", "t", "nope"]
    cols = s.read_columns("c", {}, paths, after=0, until=10**6)
    assert cols is not None and cols["_id"] == [d["_id"] for d in stored]

    def at(doc: Any, path: str) -> Any:
        for part in path.split("."):
            doc = doc.get(part) if isinstance(doc, dict) else None
        return doc

    for path in paths:
        got, want = cols[path], [at(d, path) for d in stored]
        assert got == want, path
        assert [type(v) for v in got] == [type(v) for v in want], path  # True stays a bool, 1.0 a float


def test_bad_arguments_are_typed_errors(store):
    s, _ = store
    with pytest.raises(InvalidQuery):
        s.read_columns("c", {}, ["a"], after="0", until=5)
    with pytest.raises(InvalidQuery):
        s.read_columns("c", {}, [3], after=0, until=5)
    with pytest.raises(InvalidQuery):
        s.read_columns("c", {"$where": "1"}, ["a"], after=0, until=5)
    assert s.read_columns("absent", {}, ["a"], after=0, until=5) == {"_seq": [], "_id": [], "a": []}
    for bounds in ({"origin": "1", "span": 2, "until": 9}, {"origin": 1, "span": 0, "until": 9},
                   {"origin": 1, "span": True, "until": 9}):
        with pytest.raises(InvalidQuery):
            s.count_blocks("c", {}, **bounds)
    with pytest.raises(InvalidQuery):
        s.count_blocks("c", {"$where": "1"}, origin=1, span=2, until=9)
    assert s.count_blocks("c", {"a": {"$ne": 1}}, origin=1, span=2, until=9) is None  # not exact: documents


def test_block_counts_are_exact_for_every_query_of_the_language(store):
    """Each exact query, counted per block by SQL alone (the tag spelled for an index), as the evaluator counts."""
    s, stored = store
    rng = random.Random(5)
    for _ in range(200):
        query = exact_query(rng)
        span = rng.choice([1, 3, 16])
        counts = s.count_blocks("c", query, origin=2, span=span, until=stored[-1]["_seq"])
        want = [0] * ((stored[-1]["_seq"] - 2) // span + 1)
        for d in stored:
            if d["_seq"] >= 2 and matches(d, query):
                want[(d["_seq"] - 2) // span] += 1
        assert counts == want, query
        matched = {d["_seq"] for d in stored if d["_seq"] >= 2 and matches(d, query)}
        many = s.count_blocks("c", query, origin=2, span=1, until=6000)  # more blocks than counted one by one
        assert many == [int(seq in matched) for seq in range(2, 6001)], query


@pytest.mark.parametrize("flat", [False, True])
def test_block_counts_over_tag_indexes_are_exact(tmp_path, flat):
    """With a ``json_type`` index per tag, a block count leaves out the array branch of a path where no document
    holds an array (asked in the count's own snapshot) and keeps it where one does: exact either way."""
    s = SQLiteIndexStore(str(tmp_path / "index.sqlite"))
    docs = QueryGen(11).documents(60) + EXTRA_DOCS
    if flat:  # no array anywhere: every tag's branch is left out
        docs = [{k: (v[0] if v else None) if isinstance(v, list) else v for k, v in d.items()} for d in docs]
    s.insert_many("c", [{"_id": f"d{i}", **d} for i, d in enumerate(docs)])
    for name in FIELDS:
        s.create_index("c", [(name, 1)])
    stored = list(s.find("c", {}))
    rng = random.Random(7)
    try:
        for _ in range(200):
            query = exact_query(rng)
            counts = s.count_blocks("c", query, origin=1, span=4, until=stored[-1]["_seq"])
            want = [0] * ((stored[-1]["_seq"] - 1) // 4 + 1)
            for d in stored:
                if matches(d, query):
                    want[(d["_seq"] - 1) // 4] += 1
            assert counts == want, query
    finally:
        s.close()
