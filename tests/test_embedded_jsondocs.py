"""The embedded index's fast import path (embedded/jsondocs.py) stores and refuses exactly what the plain path does."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tensordb_core.embedded.jsondocs import stored_json
from tensordb_core.embedded.sqlite_index import SQLiteIndexStore
from tensordb_core.errors import InvalidDocument
from tensordb_core.query.values import check_document

GOOD = [
    {"label": 3, "part": 1, "_x": {"key": "chunks/ab", "shape": [3, 64, 64], "crc32": 2**32 - 1}},
    {"_id": "given", "name": "é – 字", "f": 0.1, "big": 2**63 - 1, "neg": -(2**63), "none": None, "b": True},
    {"t": (1, 2), "n": np.int64(5), "x": np.float32(0.5), "flag": np.bool_(True)},  # normalised by the plain path
    {"deep": {"a": [{"b": [1, {"c": "x.y"}]}]}, "_seq": 99},
]
BAD = [
    {"$set": 1}, {"a.b": 1}, {"": 1}, {"a\0": 1}, {"x": float("nan")}, {"x": float("inf")}, {"x": 2**63},
    {"s": "\ud800"}, {"\ud800": 1}, {"_id": ""}, {"_id": 5}, {"o": object()}, {"nest": {"$x": 1}},
    {"deep": json.loads("[" * 70 + "]" * 70)},
]


@pytest.mark.parametrize("doc", GOOD)
def test_stored_json_matches_the_plain_path(doc):
    doc_id, text = stored_json(doc, "document 0")
    checked = check_document(doc)
    assert doc_id == checked.get("_id")
    assert json.loads(text) == {k: v for k, v in checked.items() if k not in ("_id", "_seq")}


@pytest.mark.parametrize("doc", BAD)
def test_bad_documents_are_refused_by_both_paths_and_nothing_is_stored(tmp_path, doc):
    with pytest.raises(InvalidDocument):
        check_document(doc)
    store = SQLiteIndexStore(tmp_path / "idx.db")
    try:
        store.insert_many("data", [{"ok": 1}])
        with pytest.raises(InvalidDocument):
            store.insert_many("data", [{"fine": 2}, doc])
        assert [d["ok"] for d in store.find("data", {})] == [1]
    finally:
        store.close()
