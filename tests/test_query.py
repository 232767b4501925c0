"""The portable query language: validation, the reference evaluator, sort, projection and updates.

Expected answers are MongoDB's; the null/missing/array cases are the ones
MongoDB's own ``jstests/core/query/null_query_semantics.js`` pins (8.0).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tensordb_core.errors import InvalidDocument, InvalidQuery
from tensordb_core.query.filters import (
    MAX_QUERY_DEPTH,
    apply_projection,
    apply_update,
    check_collection,
    compile_query,
    matches,
    sort_key,
    validate_projection,
    validate_query,
    validate_sort,
    validate_update,
)
from tensordb_core.query.values import check_document, check_value, compare, value_key, values_equal
from tensordb_core.testing import IndexStoreSuite, QueryGen

# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ({"$where": "this.a == 1"}, "$where"),
        ({"$expr": {"$eq": ["$a", 1]}}, "$expr"),
        ({"$function": {"body": "x", "args": [], "lang": "js"}}, "$function"),
        ({"a": {"$accumulator": {}}}, "$accumulator"),
        ({"a": {"$where": "1"}}, "$where"),
        ({"$and": [{"a": 1}, {"$where": "1"}]}, "$where"),
        ({"a": {"$elemMatch": {"$expr": 1}}}, "$expr"),
        ({"a": {"$not": {"$function": {}}}}, "$function"),
        ({"a": {"$elemMatch": {"b": 1, "$where": "1"}}}, "$where"),
    ],
)
def test_server_side_code_is_refused_and_named(query: dict[str, Any], key: str) -> None:
    with pytest.raises(InvalidQuery, match="server-side code") as err:
        validate_query(query)
    assert key in str(err.value)


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"a": {"$regex": "x"}}, "$regex"),
        ({"$text": {"$search": "x"}}, "$text"),
        ({"a": {"$type": "string"}}, "$type"),
        ({"a": {"$in": 5}}, "$in"),
        ({"a": {"$nin": "ab"}}, "$nin"),
        ({"a": {"$all": {"x": 1}}}, "$all"),
        ({"a": {"$size": -1}}, "$size"),
        ({"a": {"$size": 1.0}}, "$size"),
        ({"a": {"$size": True}}, "$size"),
        ({"a": {"$exists": 1}}, "$exists"),
        ({"a": {"$gt": [1]}}, "$gt"),
        ({"a": {"$lte": {"x": 1}}}, "$lte"),
        ({"a": {"$not": {}}}, "$not"),
        ({"a": {"$not": 5}}, "$not"),
        ({"a": {"$not": {"b": 1}}}, "$not"),
        ({"a": {"$elemMatch": 5}}, "$elemMatch"),
        ({"a": {"$elemMatch": {"$gt": 1, "b": 2}}}, "$gt"),
        ({"a": {"$in": [{"$gt": 1}]}}, "$in"),
        ({"a": {"$all": [{"$elemMatch": {"b": 1}}]}}, "$all"),
        ({"$and": []}, "$and"),
        ({"$or": {"a": 1}}, "$or"),
        ({"$nor": [5]}, "$nor"),
        ({"$gt": 5}, "$gt"),
        ({"$not": {"a": 1}}, "$not"),
        ({"a": {"$and": [{"b": 1}]}}, "$and"),
        ({"a": {"$gt": 1, "b": 2}}, "'b'"),
        ({"a": {"b": 1, "$gt": 2}}, "b"),
        ({3: 1}, "3"),
        ({"a": {"$in": [1, {2: 3}]}}, "2"),
        ({"a..b": 1}, "a..b"),
        ({"a.$b": 1}, "$b"),
        ({"": 1}, "''"),
        ({"a": {1, 2}}, "set"),
        ({"a": b"raw"}, "bytes"),
        ({"a": float("nan")}, "nan"),
        ({"a": {"$gt": float("inf")}}, "inf"),
        ({"a": 2**64}, "64 bits"),
        ({"a": object()}, "object"),
        ({"a": {"b": {"$gt": 1}}}, "$gt"),
    ],
)
def test_invalid_queries_name_the_offending_key(query: dict[Any, Any], named: str) -> None:
    with pytest.raises(InvalidQuery) as err:
        validate_query(query)
    assert named in str(err.value)


@pytest.mark.parametrize("bad", ["a", 5, [("a", 1)], {"a"}])
def test_a_query_is_a_dict(bad: Any) -> None:
    with pytest.raises(InvalidQuery):
        validate_query(bad)


def test_validate_returns_a_normalized_copy() -> None:
    raw = {"t": ("a", "b"), "$or": ({"n": {"$in": (1, 2)}},), "m": {"x": (1,)}}
    got = validate_query(raw)
    assert got == {"t": ["a", "b"], "$or": [{"n": {"$in": [1, 2]}}], "m": {"x": [1]}}
    assert validate_query(None) == {} and validate_query({}) == {}
    got["t"].append("c")
    assert raw["t"] == ("a", "b")


def _nest_and(depth: int) -> dict[str, Any]:
    q: dict[str, Any] = {"a": 1}
    for _ in range(depth):
        q = {"$and": [q]}
    return q


def test_nesting_depth_limit() -> None:
    validate_query(_nest_and(MAX_QUERY_DEPTH // 2 - 1))
    with pytest.raises(InvalidQuery, match="deeper than 32"):
        validate_query(_nest_and(MAX_QUERY_DEPTH))
    deep_not: dict[str, Any] = {"$gt": 1}
    for _ in range(40):
        deep_not = {"$not": deep_not}
    with pytest.raises(InvalidQuery, match="deeper"):
        validate_query({"a": deep_not})
    deep_literal: Any = 1
    for _ in range(40):
        deep_literal = {"x": deep_literal}
    with pytest.raises(InvalidQuery, match="deeper"):
        validate_query({"a": deep_literal})


def test_collection_names() -> None:
    for good in ("data", "study-1.data_v2", "_private", "A" * 120):
        assert check_collection(good) == good
    for bad in ("", "1abc", "a$b", "a b", "x\x00", "system.users", "sqlite_master", "a..b", "a.", "A" * 121, None):
        with pytest.raises(InvalidQuery):
            check_collection(bad)


def test_documents_are_checked_and_normalized() -> None:
    doc = check_document({"_id": "x", "_seq": 9, "t": (1, 2), "n": {"k": True}})
    assert doc == {"_id": "x", "t": [1, 2], "n": {"k": True}}
    for bad in ({"a": {1, 2}}, {"$a": 1}, {"a.b": 1}, {"a": float("-inf")}, {"_id": 3}, {"": 1}, {"s": "\ud800"}):
        with pytest.raises(InvalidDocument):
            check_document(bad)
    with pytest.raises(InvalidDocument):
        check_document(["not", "a", "dict"])


def test_numpy_scalars_become_plain_numbers() -> None:
    import numpy as np
    got = check_value({"i": np.int64(3), "f": np.float32(0.5), "b": np.bool_(True)}, "doc")
    assert got == {"i": 3, "f": 0.5, "b": True}
    assert type(got["i"]) is int and type(got["f"]) is float and type(got["b"]) is bool


# --- the evaluator: MongoDB semantics -----------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), IndexStoreSuite.MONGO_CASES, ids=lambda v: repr(v)[:50])
def test_suite_cases_hold_for_the_reference(query: dict[str, Any], expected: frozenset[str]) -> None:
    assert {d["_id"] for d in IndexStoreSuite.MONGO_DOCS if matches(d, query)} == expected


# MongoDB 8.0, jstests/core/query/null_query_semantics.js (documents without `undefined`).
NULL_DOCS = {
    "a_empty_subobject": {"a": {}},
    "a_null": {"a": None},
    "a_number": {"a": 4},
    "a_subobject_b_not_null": {"a": {"b": "hi"}},
    "a_subobject_b_null": {"a": {"b": None}},
    "no_a": {},
    "a_double_array": {"a": [[]]},
    "a_empty_array": {"a": []},
    "a_object_array_no_b_nulls": {"a": [{"b": 1}, {"b": 3}, {"b": "string"}]},
    "a_object_array_some_b_nulls": {"a": [{"b": None}, {"b": 3}, {"b": None}]},
    "a_object_array_some_b_missing": {"a": [{"b": 3}, {}]},
    "a_value_array_all_nulls": {"a": [None, None]},
    "a_value_array_no_nulls": {"a": [1, "string", 4]},
    "a_value_array_with_null": {"a": [1, "string", None, 4]},
}
NULL_CASES = [
    ({"a": None}, {"a_null", "a_value_array_all_nulls", "a_value_array_with_null", "no_a"}),
    ({"a": {"$in": [None, 75]}}, {"a_null", "a_value_array_all_nulls", "a_value_array_with_null", "no_a"}),
    ({"a": {"$nin": [None, []]}}, set(NULL_DOCS) - {
        "a_null", "no_a", "a_double_array", "a_empty_array", "a_value_array_all_nulls", "a_value_array_with_null"}),
    ({"a": {"$exists": False}}, {"no_a"}),
    ({"a": {"$elemMatch": {"$eq": None}}}, {"a_value_array_all_nulls", "a_value_array_with_null"}),
    ({"a": {"$elemMatch": {"$ne": None}}}, {
        "a_double_array", "a_object_array_no_b_nulls", "a_object_array_some_b_nulls",
        "a_object_array_some_b_missing", "a_value_array_no_nulls", "a_value_array_with_null"}),
    ({"a.b": None}, {
        "a_empty_subobject", "a_null", "a_number", "a_subobject_b_null", "no_a",
        "a_object_array_some_b_nulls", "a_object_array_some_b_missing"}),
    ({"a.b": {"$ne": None}}, {
        "a_subobject_b_not_null", "a_double_array", "a_empty_array", "a_object_array_no_b_nulls",
        "a_value_array_all_nulls", "a_value_array_no_nulls", "a_value_array_with_null"}),
    ({"a.b": {"$exists": False}}, {"no_a", "a_empty_subobject", "a_null", "a_number",
                                   "a_double_array", "a_empty_array", "a_value_array_all_nulls",
                                   "a_value_array_no_nulls", "a_value_array_with_null"}),
    ({"a.b": {"$elemMatch": {"$eq": None}}}, set()),
    ({"a": {"$elemMatch": {"b": None}}}, {
        "a_double_array", "a_object_array_some_b_nulls", "a_object_array_some_b_missing"}),
    ({"a": {"$elemMatch": {"b": {"$ne": None}}}}, {
        "a_object_array_no_b_nulls", "a_object_array_some_b_nulls", "a_object_array_some_b_missing"}),
    ({"a": {"$not": {"$gte": None}}}, set(NULL_DOCS) - {
        "a_null", "no_a", "a_value_array_all_nulls", "a_value_array_with_null"}),
]  # fmt: skip


@pytest.mark.parametrize(("query", "expected"), NULL_CASES, ids=lambda v: repr(v)[:50])
def test_mongodb_null_semantics(query: dict[str, Any], expected: set[str]) -> None:
    assert {name for name, doc in NULL_DOCS.items() if matches(doc, query)} == expected


@pytest.mark.parametrize(
    ("doc", "query", "expected"),
    [
        ({"tags": ["a", "b"]}, {"tags": "a"}, True),
        ({"tags": ["a", "b"]}, {"tags": ["b", "a"]}, False),
        ({"tags": [["a", "b"], "c"]}, {"tags": ["a", "b"]}, True),
        ({"tags": [["a"]]}, {"tags": "a"}, False),  # one level of expansion only
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": 0.0}, {"a": -0.0}, True),
        ({"a": True}, {"a": 1}, False),
        ({"a": 1}, {"a": {"$gte": True}}, False),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": 1.0, "y": 2}}, True),
        ({"a": {"x": 1, "y": 2}}, {"a": {"y": 2, "x": 1}}, False),
        ({"a": "é"}, {"a": {"$gt": "z"}}, True),  # code point order
        ({"a": "B"}, {"a": {"$lt": "a"}}, True),
        ({"a": [{"b": [1, 2]}, {"b": 3}]}, {"a.b": 2}, True),
        ({"a": [{"b": [1, 2]}, {"b": 3}]}, {"a.b": {"$size": 2}}, True),
        ({"a": [{"b": [1, 2]}]}, {"a.b": {"$size": 1}}, False),
        ({"a": [[{"b": 1}]]}, {"a.b": 1}, False),  # nested arrays are not traversed
        ({"a": [5, 6]}, {"a.1": 6}, True),  # numeric path part indexes the array
        ({"a": [5, 6]}, {"a.1": 5}, False),
        ({"a": [{"b": 1}, {"b": 2}]}, {"a.0.b": 1}, True),
        ({"a": [1, 5]}, {"a": {"$gt": 2, "$lt": 4}}, True),  # each operator may pick another element
        ({"a": [1, 5]}, {"a": {"$elemMatch": {"$gt": 2, "$lt": 4}}}, False),
        ({"a": [1, 5]}, {"a": {"$not": {"$gt": 2, "$lt": 4}}}, False),
        ({"a": [[1, 2], [3]]}, {"a": {"$elemMatch": {"$size": 1}}}, True),
        ({"a": [[1, 2], [3]]}, {"a": {"$elemMatch": {"$elemMatch": {"$gt": 2}}}}, True),
        ({"a": [[1]]}, {"a": {"$elemMatch": {"0": 1}}}, True),  # an array element acts as {"0": ...}
        ({"a": [{"b": 1, "c": 2}, {"b": 2, "c": 1}]}, {"a": {"$elemMatch": {"b": 1, "c": 1}}}, False),
        ({"a": [{"b": 1, "c": 2}, {"b": 2, "c": 1}]}, {"a.b": 1, "a.c": 1}, True),
        ({"a": [{"b": 1}]}, {"a": {"$elemMatch": {"$or": [{"b": 2}, {"b": 1}]}}}, True),
        ({"a": [1, 2, 3]}, {"a": {"$all": [3, 1]}}, True),
        ({"a": [[1, 2]]}, {"a": {"$all": [[1, 2]]}}, True),
        ({"a": []}, {"a": {"$all": [[]]}}, True),
        ({"a": None}, {"a": {"$gt": None}}, False),
        ({}, {"a": {"$lte": None}}, True),
        ({}, {"a": {"$ne": 1}}, True),
        ({}, {"a": {"$nin": [1]}}, True),
        ({}, {"a": {"$not": {"$size": 0}}}, True),
        ({"a": {"b": {"c": [7]}}}, {"a.b.c": 7}, True),
        ({"a": 5}, {"a.b": {"$exists": False}}, True),
        ({"_seq": 4}, {"_seq": {"$gt": 3}}, True),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_evaluator_cases(doc: dict[str, Any], query: dict[str, Any], expected: bool) -> None:
    assert matches(doc, query) is expected
    assert compile_query(query)(doc) is expected


# --- sorting -------------------------------------------------------------------------------------


def test_validate_sort_forms() -> None:
    assert validate_sort(None) == [] and validate_sort([]) == []
    assert validate_sort({"a": 1, "b.c": -1}) == [("a", 1), ("b.c", -1)]
    assert validate_sort([("a", -1), ["b", 1]]) == [("a", -1), ("b", 1)]
    for bad in ("a", [("a", 0)], [("a", "asc")], [("a", True)], [("a",)], [("$a", 1)], [("a", 1), ("a", 1)], 5):
        with pytest.raises(InvalidQuery):
            validate_sort(bad)


def test_sort_key_orders_brackets_then_values_then_seq() -> None:
    values = [True, "b", None, 3, {"x": 1}, [0], "A", False, 2.5, {"x": 0, "y": 5}, {"y": 0}]
    docs = [{"_seq": i, "v": v} for i, v in enumerate(values)] + [{"_seq": 99}]
    order = [d["_seq"] for d in sorted(docs, key=lambda d: sort_key(d, [("v", 1)]))]
    # missing/null, [0] sorts by its element (0), numbers, strings, objects, bools
    assert order == [2, 99, 5, 8, 3, 6, 1, 9, 4, 10, 7, 0]
    desc = [d["_seq"] for d in sorted(docs, key=lambda d: sort_key(d, [("v", -1)]))]
    assert desc[:2] == [0, 7] and desc[-2:] == [2, 99], "descending keeps ties in _seq order"


def test_sort_on_arrays_uses_min_ascending_max_descending() -> None:
    docs = [{"_seq": 1, "v": [5, 1]}, {"_seq": 2, "v": 3}, {"_seq": 3, "v": []}, {"_seq": 4, "v": None}]
    asc = [d["_seq"] for d in sorted(docs, key=lambda d: sort_key(d, {"v": 1}))]
    desc = [d["_seq"] for d in sorted(docs, key=lambda d: sort_key(d, {"v": -1}))]
    assert asc == [3, 4, 1, 2] and desc == [1, 2, 4, 3]


# --- projection ----------------------------------------------------------------------------------


def test_projection_inclusion_and_exclusion() -> None:
    doc = {"_id": "i", "_seq": 3, "a": 1, "b": {"c": 2, "d": 3}, "arr": [{"x": 1, "y": 2}, 5, [{"x": 3}]], "z": 0}
    assert apply_projection(doc, {"z": 1, "a": 1}) == {"_id": "i", "a": 1, "z": 0}
    assert list(apply_projection(doc, {"z": 1, "a": 1})) == ["_id", "a", "z"], "document order, not spec order"
    assert apply_projection(doc, {"arr.x": 1, "_id": 0}) == {"arr": [{"x": 1}, [{"x": 3}]]}
    assert apply_projection(doc, {"b.c": 1, "a.q": 1}) == {"_id": "i", "b": {"c": 2}}
    assert apply_projection({"a": {"c": 1}}, {"a.b": 1}) == {"a": {}}
    assert apply_projection(doc, {"_id": 1}) == {"_id": "i"}
    assert apply_projection(doc, {"_id": 0}) == {k: v for k, v in doc.items() if k != "_id"}
    assert apply_projection(doc, {"b.d": 0, "arr.y": 0, "_seq": 0}) == {
        "_id": "i", "a": 1, "b": {"c": 2}, "arr": [{"x": 1}, 5, [{"x": 3}]], "z": 0}  # fmt: skip
    assert apply_projection(doc, {"_id": 1, "a": 0}) == {k: v for k, v in doc.items() if k != "a"}
    assert apply_projection(doc, None) == doc and apply_projection(doc, {}) == doc
    projected = apply_projection(doc, {"b": 1})
    projected["b"]["c"] = 99
    assert doc["b"]["c"] == 2, "projections copy"


@pytest.mark.parametrize("bad", [{"a": 1, "b": 0}, {"a": 2}, {"a": "1"}, {"a": 1, "a.b": 1}, {"a.b": 0, "a": 0}, [1]])
def test_invalid_projections(bad: Any) -> None:
    with pytest.raises(InvalidQuery):
        validate_projection(bad)


# --- updates -------------------------------------------------------------------------------------


def test_updates_apply_like_mongodb() -> None:
    doc = {"_id": "u", "_seq": 1, "n": 1, "f": 1.5, "arr": [1, 2], "m": {"best": 3}}
    new = apply_update(doc, {
        "$set": {"m.last": 4, "deep.er.field": "x", "arr.4": 9},
        "$inc": {"n": 2, "f": 1, "fresh": 5},
        "$push": {"log": "start"},
        "$max": {"m.best": 2},
        "$min": {"low": 7},
        "$unset": {"nothing": ""},
    })  # fmt: skip
    assert new == {
        "_id": "u", "_seq": 1, "n": 3, "f": 2.5, "arr": [1, 2, None, None, 9], "m": {"best": 3, "last": 4},
        "deep": {"er": {"field": "x"}}, "fresh": 5, "log": ["start"], "low": 7,
    }  # fmt: skip
    assert type(new["n"]) is int and doc["arr"] == [1, 2] and "last" not in doc["m"], "the input is not modified"
    assert apply_update({"a": [1, 2]}, {"$unset": {"a.0": ""}}) == {"a": [None, 2]}
    assert apply_update({"a": [1]}, {"$push": {"a": {"$each": [2, 3]}}}) == {"a": [1, 2, 3]}
    assert apply_update({"a": 5}, {"$max": {"a": "text"}}) == {"a": "text"}, "strings rank above numbers"
    assert apply_update({"a": True}, {"$min": {"a": "text"}}) == {"a": "text"}, "bools rank above strings"
    assert apply_update({"a": 1}, {"$max": {"a": 1.0}}) == {"a": 1}


def test_new_fields_are_added_in_lexicographic_order() -> None:
    new = apply_update({}, {"$set": {"z": 1, "b.y": 1, "b.x": 2}, "$inc": {"a": 1}})
    assert list(new) == ["a", "b", "z"] and list(new["b"]) == ["x", "y"]


@pytest.mark.parametrize(
    "bad",
    [
        {"a": 1},
        {"$set": {"_id": 1}},
        {"$unset": {"_seq": ""}},
        {"$set": {"_id.x": 1}},
        {"$rename": {"a": "b"}},
        {"$set": 5},
        {"$set": {}},
        {},
        None,
        {"$inc": {"a": "1"}},
        {"$inc": {"a": True}},
        {"$push": {"a": {"$slice": 2}}},
        {"$set": {"a": 1}, "$unset": {"a": ""}},
        {"$set": {"a.b": 1}, "$inc": {"a": 1}},
        {"$set": {"a..b": 1}},
        {"$set": {"a": {"$x": 1}}},
        {"$set": {"a": float("nan")}},
    ],
    ids=lambda v: repr(v)[:40],
)
def test_invalid_updates(bad: Any) -> None:
    with pytest.raises(InvalidQuery):
        validate_update(bad)


@pytest.mark.parametrize(
    ("doc", "update"),
    [
        ({"s": "x"}, {"$inc": {"s": 1}}),
        ({"n": 2**63 - 1}, {"$inc": {"n": 1}}),
        ({"n": 1e308}, {"$inc": {"n": 1e308}}),
        ({"k": 5}, {"$push": {"k": 1}}),
        ({"k": 5}, {"$set": {"k.sub": 1}}),
        ({"k": None}, {"$set": {"k.sub": 1}}),
        ({"k": [1]}, {"$set": {"k.name": 1}}),
    ],
)
def test_updates_that_cannot_apply_name_the_document(doc: dict[str, Any], update: dict[str, Any]) -> None:
    with pytest.raises(InvalidQuery, match="cannot apply to document 'd'"):
        apply_update({"_id": "d", **doc}, update)


# --- properties ----------------------------------------------------------------------------------

field_names = st.text(alphabet="abcxyz_é", min_size=1, max_size=3)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(field_names, inner, max_size=3), max_leaves=8
)
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(json_values)
def test_checked_values_survive_json(value: Any) -> None:
    checked = check_value(value, "v")
    assert json.loads(json.dumps(checked, allow_nan=False)) == checked
    assert values_equal(checked, value)


@PROPS
@given(json_values, json_values)
def test_equality_agrees_with_the_total_order(a: Any, b: Any) -> None:
    assert values_equal(a, b) == (compare(a, b) == 0)
    assert compare(a, b) == -compare(b, a)
    assert values_equal(a, a) and compare(a, a) == 0


@PROPS
@given(st.lists(json_values, max_size=6))
def test_the_order_is_total_and_consistent(values: list[Any]) -> None:
    ordered = sorted(values, key=value_key)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            assert compare(a, b) <= 0


@PROPS
@given(json_values)
def test_every_value_matches_itself_and_inside_an_array(value: Any) -> None:
    assert matches({"a": value}, {"a": value})
    assert matches({"a": value}, {"a": {"$eq": value}})
    assert matches({"a": value}, {"a": {"$in": [value]}})
    assert not matches({"a": value}, {"a": {"$ne": value}})
    assert matches({"a": [0, value]}, {"a": value})
    assert matches({"a": [0, value]}, {"a": {"$all": [value, 0]}})


@PROPS
@given(st.integers(0, 2**31), st.integers(0, 2))
def test_negations_are_exact(seed: int, depth: int) -> None:
    gen = QueryGen(seed)
    docs = gen.documents(12)
    q1, q2 = gen.query(docs, depth), gen.query(docs, depth)
    for doc in docs:
        a, b = matches(doc, q1), matches(doc, q2)
        assert matches(doc, {"$nor": [q1]}) is not a
        assert matches(doc, {"$and": [q1, q2]}) is (a and b)
        assert matches(doc, {"$or": [q1, q2]}) is (a or b)
    for path, cond in q1.items():
        if path.startswith("$") or not (isinstance(cond, dict) and cond and next(iter(cond)).startswith("$")):
            continue
        for doc in docs:
            assert matches(doc, {path: {"$not": cond}}) is not matches(doc, {path: cond})


@PROPS
@given(st.integers(0, 2**31))
def test_validation_is_idempotent_on_generated_queries(seed: int) -> None:
    gen = QueryGen(seed)
    for _ in range(5):
        q = gen.query(gen.documents(3))
        once = validate_query(q)
        assert validate_query(once) == once == q


garbage = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=3)
    | st.binary(max_size=2)
    | st.sampled_from(["$gt", "$in", "$and", "$elemMatch", "$not", "$where", "$size", "$exists", "a.b", "a"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["$gt", "$in", "$and", "$or", "$elemMatch", "$not", "$where", "$size", "$all", "a", "a.b", 1]
            ),
            inner,
            max_size=3,
        )
    ),
    max_leaves=12,
)


@PROPS
@given(garbage)
def test_validation_only_ever_raises_invalid_query(query: Any) -> None:
    try:
        checked = validate_query(query)
    except InvalidQuery:
        return
    for doc in ({}, {"a": [1, {"b": None}]}, {"a": {"b": "x"}}):
        assert isinstance(matches(doc, checked), bool)


@PROPS
@given(st.dictionaries(field_names, json_values, max_size=4), json_values)
def test_set_then_query_finds_the_value(doc: dict[str, Any], value: Any) -> None:
    new = apply_update(doc, {"$set": {"fresh_field.inner": value}})
    assert matches(new, {"fresh_field.inner": value})
    assert apply_projection(new, {"fresh_field.inner": 1, "_id": 0}) == {"fresh_field": {"inner": value}}
    assert "fresh_field" not in apply_projection(new, {"fresh_field": 0})
    if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 2**62:
        bumped = apply_update(new, {"$inc": {"fresh_field.inner": 1}})
        assert bumped["fresh_field"]["inner"] == value + 1


@pytest.mark.parametrize("seed", range(8))
def test_the_compiled_predicate_agrees_with_the_reference_evaluator(seed: int) -> None:
    """compile_query takes shortcuts (top-level string/int equality under an AND, as the study
    filter is); on random documents and queries every answer must still be the reference's."""
    gen = QueryGen(seed)
    docs = gen.documents(60)
    docs += [{"_id": "s", "b": "a", "a": 1}, {"_id": "f", "b": 1.0, "a": True}, {"_id": "l", "b": ["a", 1]}]
    queries = [gen.query(docs) for _ in range(150)]
    queries += [{"b": "a"}, {"b": 1}, {"a": 1}, {"$and": [{"b": "a"}, {"a": 1}]}, {"b": 2**60},
                {"$and": [{"b": 1}, {"$or": [{"a": True}, {"a": 1}]}]}, {"_id": "s", "b": "a"}]
    for query in queries:
        predicate = compile_query(query)
        for doc in docs:
            assert predicate(doc) == matches(doc, query), (query, doc)


def test_the_numeric_range_shortcut_answers_like_the_evaluator():
    """compile_query answers top-level numeric ranges in plain Python for plain numbers; every other stored
    value (bool, NaN, arrays, strings, None, missing, huge ints) must still get the evaluator's answer."""
    from tensordb_core.query.filters import _match_filter, compile_query

    values = [0, 1, 2, 4.5, 5, -3, 2**60, 1.0, float("nan"), float("inf"), True, False, None, "3", [1, 6], [7],
              [], {"x": 1}, [[2]]]
    docs = [{"v": v} for v in values] + [{}]
    queries = [{"v": {"$gte": 1, "$lt": 5}}, {"v": {"$gt": 2}}, {"v": {"$lte": 4.5}},
               {"_seq": {"$lte": 3}}, {"v": {"$gte": -1}, "w": 1}]
    for query in queries:
        pred = compile_query(query)
        for doc in docs:
            assert pred(doc) == _match_filter(doc, query), (query, doc)
