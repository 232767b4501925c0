"""The contract of ``IndexCapabilities.columns`` (:class:`~tensordb_core.store.protocols.ReadsColumns`).

Part of :class:`~tensordb_core.testing.index_suite.IndexStoreSuite`: a store
that declares the ability must answer ``read_columns`` as its own documents
say (the matches of the query, in ``_seq`` order, with each path's value),
and ``count_blocks`` as counting them would, or say None; a store that does
not declare it is not asked.
"""

from __future__ import annotations

from typing import Any

from tensordb_core.query.filters import matches
from tensordb_core.store.protocols import IndexStore, ReadsColumns

PATHS = ["k", "v", "sub.x", "sub.y", "arr", "arr.x", "flag", "absent"]
DOCS: list[dict[str, Any]] = [
    {"k": "a", "v": 1, "sub": {"x": 1.5, "y": [1, 2]}, "arr": [{"x": 1}], "flag": True},
    {"k": "b", "v": 2.0, "sub": "flat", "arr": [], "flag": False},
    {"k": ["a", "c"], "v": None, "sub": {"x": {"deep": 1}}, "flag": 0},
    {"k": "a", "v": -7, "sub": {}, "arr": "[1]", "flag": 1},
    {"v": 3},
]
QUERIES: list[dict[str, Any]] = [{}, {"k": "a"}, {"v": {"$gte": 1}}, {"$and": [{"k": "a"}, {"v": {"$lt": 0}}]},
                                 {"flag": {"$in": [0, 1]}}, {"k": {"$ne": "a"}}, {"sub.x": 1.5}, {"k": "none"},
                                 {"v": 2}, {"v": "2"}, {"flag": 1}, {"flag": True}]  # alike in text, not in matches
#: Every path, one path alone (a store may spell one path differently from many), none (only _seq and _id).
PATH_SETS = [PATHS, ["flag"], []]


def _at(doc: Any, path: str) -> Any:
    for part in path.split("."):
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


class ColumnsSuite:
    def test_read_columns_agree_with_the_documents(self, index_store: IndexStore) -> None:
        if not index_store.capabilities.columns:
            return  # the ability is optional: a store without it is never asked
        assert isinstance(index_store, ReadsColumns), "columns=True needs a read_columns method"
        index_store.insert_many("columned", [dict(d) for d in DOCS])
        stored = list(index_store.find("columned", {}))
        answered = 0
        for query, paths in ((q, p) for q in QUERIES for p in PATH_SETS):
            for after, until in ((0, 10**9), (stored[1]["_seq"], stored[3]["_seq"])):
                cols = index_store.read_columns("columned", query, paths, after=after, until=until)
                if cols is None:
                    continue  # outside what this store answers as columns: the caller reads documents
                answered += 1
                want = [d for d in stored if after < d["_seq"] <= until and matches(d, query)]
                assert cols["_seq"] == [d["_seq"] for d in want], query
                assert cols["_id"] == [d["_id"] for d in want], query
                assert set(cols) == {"_seq", "_id", *paths}, (query, paths)
                for path in paths:
                    assert cols[path] == [_at(d, path) for d in want], (query, path)
                    assert [type(v) for v in cols[path]] == [type(_at(d, path)) for d in want], (query, path)
        assert answered, "a store declaring columns answers at least the empty query"

    def test_count_blocks_agree_with_the_documents(self, index_store: IndexStore) -> None:
        if not index_store.capabilities.columns:
            return  # the ability is optional: a store without it is never asked
        assert isinstance(index_store, ReadsColumns), "columns=True needs a count_blocks method"
        index_store.insert_many("blocked", [dict(d) for d in DOCS * 3])
        index_store.delete_many("blocked", {"v": 3})  # gaps in _seq
        stored = list(index_store.find("blocked", {}))
        seqs = [d["_seq"] for d in stored]
        answered = 0
        for query in QUERIES:
            for origin, span, until in ((seqs[0], 1, seqs[-1]), (seqs[0], 4, seqs[-1]), (seqs[2], 3, seqs[-3]),
                                        (seqs[-1] + 1, 5, seqs[-1] + 20)):
                counts = index_store.count_blocks("blocked", query, origin=origin, span=span, until=until)
                if counts is None:
                    continue  # outside what this store answers so: the caller reads documents
                answered += 1
                want = [0] * ((until - origin) // span + 1)
                for d in stored:
                    if origin <= d["_seq"] <= until and matches(d, query):
                        want[(d["_seq"] - origin) // span] += 1
                assert counts == want, (query, origin, span, until)
        assert answered, "a store declaring columns counts at least the empty query"
        assert index_store.count_blocks("absent", {}, origin=1, span=2, until=6) in (None, [0, 0, 0])
