"""Fuzzed queries, updates, sorts, projections and tags: a typed error or a correct answer, never a crash.

Hypothesis builds hostile structures — unknown and server-side operators
(``$where``, ``$function``, ``$expr``, ``$accumulator``), operators in key
position, wrong operand types, non-JSON values (NaN, bytes, sets, objects,
integers past 64 bits), keys with ``$``/``.``/NUL, non-string keys and
nesting far past the limits — and throws them at the embedded stores and at
MongoDB.  Every rejection must be a :class:`TensorDBError`, and on MongoDB
it must happen before the driver sends anything (a command listener counts
what reaches the server).  A rejected write leaves no document behind.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tensordb_core as tdb
from serverkit import mongo_kit
from tensordb_core.embedded.memory import MemoryIndexStore
from tensordb_core.embedded.sqlite_index import SQLiteIndexStore
from tensordb_core.errors import TensorDBError
from tensordb_core.query.filters import compile_query, matches, validate_query
from tensordb_core.testing.querygen import QueryGen

TESTS = Path(__file__).resolve().parent
OPERATORS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$and", "$or", "$nor", "$not",
             "$all", "$size", "$elemMatch", "$where", "$function", "$expr", "$accumulator", "$regex", "$type",
             "$mod", "$text", "$jsonSchema", "$set", "$inc", "$unset", "$push", "$max", "$min", "$rename",
             "$currentDate", "$", "$$", "$eq.x"]
KEYS = ["a", "b", "a.b", "a.0", "x.y.z", "_id", "_seq", "_study", "", ".", "a..b", "a.", ".a", "k\x00", "é", "1"]
CASES = {"tried": 0, "rejected": 0}


class Opaque:
    """Not JSON: must never reach a backend."""


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8), st.binary(max_size=4),
    st.sampled_from([Opaque(), {1, 2}, (1, 2), np.float32(1.5), np.int64(3), np.array([1, 2]), b"\x00", 1j,
                     math.nan, float("inf"), 2**63, -(2**63) - 1]),
)
keys = st.one_of(st.sampled_from(OPERATORS + KEYS), st.text(max_size=6), st.integers(0, 3), st.none(),
                 st.tuples(st.just("a")))
structures = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(keys, inner, max_size=4)),
                          max_leaves=25)


def deep(depth: int, op: str = "$and") -> dict[str, Any]:
    q: dict[str, Any] = {"a": 1}
    for _ in range(depth):
        q = {op: [q]} if op.startswith("$") else {op: {"$elemMatch": q}}
    return q


HOSTILE = [
    {"$where": "sleep(100000)"}, {"$function": {"body": "function() {return true}", "args": [], "lang": "js"}},
    {"$expr": {"$gt": ["$a", 1]}}, {"a": {"$where": "1"}}, {"$and": [{"$where": "1"}]}, {"a": {"$not": {"$expr": 1}}},
    {"a": {"$elemMatch": {"$where": "1"}}}, {"a": {"$regex": ".*"}}, {"a": {"$gt": [1]}}, {"a": {"$in": 5}},
    {"a": {"$size": -1}}, {"a": {"$exists": "yes"}}, {"$or": {}}, {"$or": []}, {"a": {"$all": [{"$elemMatch": {}}]}},
    {"a": float("nan")}, {"a": {"$eq": float("inf")}}, {"a": b"bytes"}, {"a": {1, 2}}, {"a": 2**64}, {1: 2},
    {"a\x00": 1}, {"a": Opaque()}, deep(40), deep(40, "a"), deep(5000), {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
]
HOSTILE_UPDATES = [{"$where": 1}, {"a": 1}, {"$set": {"$where": 1}}, {"$set": {"a.$": 1}}, {"$set": {"_id": "x"}},
                   {"$inc": {"a": "one"}}, {"$set": {"a": float("nan")}}, {"$set": {"a": Opaque()}}, {"$rename": {"a": "b"}},
                   {"$set": {"": 1}}, {"$set": {"a": 1}, "$unset": {"a": ""}}, {}, {"$set": {}}, [], None, "x"]


# -- the stores -----------------------------------------------------------------------------------


def command_counter() -> Any:
    """A PyMongo command listener counting the commands that reached the server."""
    from pymongo import monitoring

    class CommandCounter(monitoring.CommandListener):
        count = 0

        def started(self, event: Any) -> None:
            self.count += 1

        def succeeded(self, event: Any) -> None:
            pass

        def failed(self, event: Any) -> None:
            pass

    return CommandCounter()


@pytest.fixture(scope="module")
def mongo_port() -> Iterator[int]:
    server = mongo_kit().launch("mongoeco-fuzz")
    yield server.port
    server.stop()


@pytest.fixture(params=["memory", "sqlite", "mongo"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """A seeded index store, and for MongoDB a counter of the commands that reached the server."""
    counter = None
    if request.param == "memory":
        s: Any = MemoryIndexStore()
    elif request.param == "sqlite":
        s = SQLiteIndexStore(tmp_path / "fuzz.sqlite")
    else:
        from tensordb_mongo import MongoIndexStore

        counter = command_counter()
        port = request.getfixturevalue("mongo_port")
        s = MongoIndexStore(f"mongodb://127.0.0.1:{port}/fz_{uuid.uuid4().hex[:12]}?directConnection=true",
                            event_listeners=[counter])
    s.insert_many("c", [{"a": i % 3, "b": {"c": [i, str(i)]}, "t": ["x", "y"][: i % 3]} for i in range(12)])
    yield s, counter
    if request.param == "mongo":
        s._client.drop_database(s.database)
    s.close()


def attempt(fn: Any) -> bool:
    """Run ``fn``; True if it succeeded, False for a typed rejection; anything else fails the test."""
    CASES["tried"] += 1
    try:
        fn()
        return True
    except TensorDBError as exc:
        assert str(exc), f"{type(exc).__name__} without a message"
        CASES["rejected"] += 1
        return False


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


@FUZZ
@given(query=structures)
def test_fuzzed_queries_are_answered_or_rejected_before_the_driver(store, query) -> None:
    s, counter = store
    valid = attempt(lambda: validate_query(query))
    before = counter.count if counter else 0
    for op in (lambda: list(s.find("c", query)), lambda: s.count("c", query), lambda: list(s.tail("c", query)),
               lambda: list(s.find("c", {}, sort=query)), lambda: list(s.find("c", {}, projection=query))):
        attempt(op)
    if not valid and counter is not None:
        # the filter was refused before the driver: only the sort/projection calls (if accepted) reached it
        assert counter.count - before <= 3
    assert s.count("c") == 12


@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_queries_are_refused_before_the_driver(store, query) -> None:
    s, counter = store
    before = counter.count if counter else 0
    for op in (lambda: list(s.find("c", query)), lambda: s.count("c", query), lambda: s.delete_many("c", query),
               lambda: s.update_many("c", query, {"$set": {"z": 1}}),
               lambda: s.find_one_and_update("c", query, {"$set": {"z": 1}})):
        assert not attempt(op)
    if counter is not None:
        assert counter.count == before, "a refused query must never reach MongoDB"
    assert s.count("c") == 12 and s.count("c", {"z": 1}) == 0


@pytest.mark.parametrize("update", HOSTILE_UPDATES, ids=range(len(HOSTILE_UPDATES)))
def test_hostile_updates_are_refused_and_change_nothing(store, update) -> None:
    s, counter = store
    snapshot = list(s.find("c"))
    before = counter.count if counter else 0
    assert not attempt(lambda: s.update_many("c", {}, update))
    assert not attempt(lambda: s.find_one_and_update("c", {}, update))
    if counter is not None:
        assert counter.count == before
    assert list(s.find("c")) == snapshot


@FUZZ
@given(update=structures)
def test_fuzzed_updates_never_crash(store, update) -> None:
    s, _ = store
    attempt(lambda: s.update_many("c", {"a": 99}, update))  # matches nothing: validation is what is exercised
    assert s.count("c") == 12


@FUZZ
@given(doc=st.dictionaries(keys, structures, max_size=4))
def test_fuzzed_documents_are_stored_whole_or_refused_whole(store, doc) -> None:
    s, _ = store
    n = s.count("c")
    ok = attempt(lambda: s.insert_many("c", [{"good": 1}, doc]))
    assert s.count("c") == n + (2 if ok else 0) or (not ok and s.count("c") <= n + 1)
    s.delete_many("c", {"good": 1})


# -- tags through the warehouse API ----------------------------------------------------------------


@pytest.fixture(params=["memory", "mongo"])
def warehouse(request: pytest.FixtureRequest) -> Iterator[tdb.TensorDB]:
    if request.param == "memory":
        uri = f"memory://fuzz-{uuid.uuid4().hex}"
    else:
        uri = f"mongodb://127.0.0.1:{request.getfixturevalue('mongo_port')}/fw_{uuid.uuid4().hex[:12]}?directConnection=true"
    db = tdb.connect(uri, study="fuzz")
    yield db
    if request.param == "mongo":
        from tensordb_core.store.retrying import unwrap

        unwrap(db.index)._client.drop_database(unwrap(db.index).database)
    db.close()


tags = st.one_of(st.dictionaries(keys, structures, max_size=4), structures)


def counts(db: tdb.TensorDB) -> tuple[int, ...]:
    return (*(db.index.count(c) for c in ("data", "params", "models", "jobs", "logs")), len(list(db.blobs.list())))


@settings(FUZZ, max_examples=60)
@given(tag=tags)
def test_fuzzed_tags_are_stored_or_refused_with_nothing_written(warehouse, tag) -> None:
    db = warehouse
    X = np.zeros((2, 3), np.float32)
    for write in (lambda: db.import_data(X, [0, 1], tag), lambda: db.import_data(X, None, [tag, {"ok": 1}]),
                  lambda: db.save_parameters({"w": X}, metrics=tag if isinstance(tag, dict) else None, tags=tag),
                  lambda: db.save_model_architecture("{}", tag), lambda: db.push_job(tag, tags={"k": 1}),
                  lambda: db.push_job({"spec": 1}, tags=tag)):
        before = counts(db)
        if not attempt(write):
            assert counts(db) == before, "a refused write left something behind"


def test_fuzz_case_count_is_reported() -> None:
    """Runs last in this module: the figures for the report (cases tried, and how many were refused, typed)."""
    print(f"\n[fuzz] queries/updates/documents/tags: {CASES['tried']} cases tried, {CASES['rejected']} refused "
          "with a typed TensorDBError, 0 untyped errors")
    assert CASES["tried"] > 0


# -- numeric path parts: every store against the reference evaluator ------------------------------

#: MongoDB 8.0's answers for numeric path parts, derived from its path walk (``BSONElementIterator``).
NUMERIC_PATH_CASES = [
    ({"a": [3]}, {"a.0.b": None}, False),  # a scalar short of the path's end reaches nothing
    ({"a": [{}]}, {"a.0": None}, True),  # inside a subdocument "0" is a field name: missing
    ({"a": [[1, 2], 3]}, {"a.0": 1}, False),  # the element at a position is compared whole
    ({"a": [[1, 2], 3]}, {"a.0": [1, 2]}, True),
    ({"a": [[1, 2]]}, {"a.0": {"$size": 2}}, True),
    ({"a": [{"b": 1}]}, {"a.0.b": 1}, True),
    ({"a": [[{"b": 1}]]}, {"a.0.b": 1}, True),  # an array at the position is traversed by the rest
    ({"a": [[1]]}, {"a.0.0": 1}, True),
    ({"a": [5]}, {"a.1": None}, False),  # past the end: nothing, not missing
    ({"a": [{"0": 5}]}, {"a.0": 5}, True),  # a digit-named field of an element
    ({"a": [7, {"1": 8}]}, {"a.1": 8}, True),
    ({"a": [5]}, {"a.00": 5}, False),  # "00" is no position
]


@pytest.mark.parametrize(("doc", "query", "expected"), NUMERIC_PATH_CASES, ids=lambda v: repr(v)[:40])
def test_numeric_path_parts_follow_mongodb(doc: dict[str, Any], query: dict[str, Any], expected: bool) -> None:
    assert matches(doc, query) is expected
    assert compile_query(query)(doc) is expected


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_numeric_paths_over_nested_arrays_agree_with_the_reference(kind: str, tmp_path: Path) -> None:
    """Seeded documents with nested arrays and digit-named fields, queried through numeric path parts:
    the SQL prefilter must never drop a match the evaluator keeps."""
    s: Any = MemoryIndexStore() if kind == "memory" else SQLiteIndexStore(tmp_path / "numeric.sqlite")
    gen = QueryGen(seed=6, numeric_paths=True)
    docs = [{"_id": f"case{i}", **doc} for i, (doc, _, _) in enumerate(NUMERIC_PATH_CASES)] + gen.documents(60)
    s.insert_many("c", docs)
    queries = [q for _, q, _ in NUMERIC_PATH_CASES] + [gen.query(docs) for _ in range(200)]
    failures = []
    for query in queries:
        expected = [d["_id"] for d in docs if matches(d, query)]
        got = [d["_id"] for d in s.find("c", query)]
        if got != expected:
            failures.append(f"{query!r}: unexpected {sorted(set(got) - set(expected))[:3]}, "
                            f"missing {sorted(set(expected) - set(got))[:3]}")
    s.close()
    assert not failures, f"{kind}: {len(failures)} of {len(queries)} disagree:\n" + "\n".join(failures[:15])


#: The cases mongoeco (the wire server the tests run; it indexes arrays positionally only and expands
#: the element found there, like this evaluator before) answers against MongoDB 8.0's rule.
MONGOECO_NUMERIC_PATH_DEVIATIONS = {0, 1, 2, 8, 9, 10, 11}


def test_mongoeco_numeric_path_deviations_are_the_known_ones(mongo_port: int) -> None:
    """The MongoDB backend passes queries through, so its semantics are the server's: record exactly where
    mongoeco departs from MongoDB 8.0 on numeric path parts (a real MongoDB answers all cases as listed)."""
    from tensordb_mongo import MongoIndexStore

    s = MongoIndexStore(f"mongodb://127.0.0.1:{mongo_port}/fn_{uuid.uuid4().hex[:12]}?directConnection=true")
    try:
        s.insert_many("c", [{"_id": f"case{i}", **doc} for i, (doc, _, _) in enumerate(NUMERIC_PATH_CASES)])
        deviations = {i for i, (_, query, expected) in enumerate(NUMERIC_PATH_CASES)
                      if (s.count("c", {"$and": [{"_id": f"case{i}"}, query]}) == 1) is not expected}
    finally:
        s._client.drop_database(s.database)
        s.close()
    assert deviations == MONGOECO_NUMERIC_PATH_DEVIATIONS, "mongoeco's numeric-path answers changed: update the set"
