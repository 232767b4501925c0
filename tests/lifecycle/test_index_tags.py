"""``db.index_tags``: an index on data tags changes what a read costs, never what it returns (every backend)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.embedded.sqlite_index import SQLiteIndexStore
from tensordb_core.errors import InvalidArgument
from tensordb_core.store.retrying import RetryingIndexStore
from tensordb_core.store.scope import DATA, MEMBERS
from tensordb_mongo.index import MongoIndexStore


def _indexes(db: tdb.TensorDB) -> set[str]:
    """What the index store holds for the data and members collections, as the store spells it."""
    index = db.index.inner if isinstance(db.index, RetryingIndexStore) else db.index
    if isinstance(index, SQLiteIndexStore):
        rows = index._conn().execute(
            "SELECT tbl_name, sql FROM sqlite_master WHERE type='index' AND tbl_name IN (?, ?) AND sql IS NOT NULL",
            (DATA, MEMBERS)).fetchall()
        return {f"{table}:{sql}" for table, sql in rows}
    if isinstance(index, MongoIndexStore):
        return {f"{c}:{sorted(v['key'])}" for c in (DATA, MEMBERS) for v in index._coll(c).index_information().values()}
    return set()  # the memory store keeps no indexes (hints): only results are compared there


def _import(db: tdb.TensorDB) -> None:
    # a dataset imported after another one: its first match lies behind 30 that do not match
    db.import_data(np.zeros((30, 2), np.float32), np.arange(30) % 3, tags={"ds": "other", "meta": {"src": "a"}})
    db.import_data(np.arange(24, dtype=np.float32).reshape(12, 2), np.arange(12), tags={"ds": "mine",
                                                                                       "meta": {"src": "b"}})


def _epoch(db: tdb.TensorDB, query: dict, **kwargs) -> tuple[list, list]:
    xs, ys = [], []
    for X, y in db.data_generator(query, batch_size=5, shuffle=True, seed=7, **kwargs):
        xs += X.tolist()
        ys += y.tolist()
    return xs, ys


def test_indexed_tags_read_the_same_samples_in_the_same_order(db: tdb.TensorDB) -> None:
    _import(db)
    db.save_dataset("v1", {"ds": "mine"})
    before = (_epoch(db, {"ds": "mine"}), _epoch(db, {"meta.src": "b"}), db.find_data({"ds": "mine"}).ids(),
              _epoch(db, {"ds": "mine"}, dataset="v1"))
    had = _indexes(db)
    assert db.index_tags("ds", "meta.src") == ["ds", "meta.src"]
    assert db.index_tags("ds") == ["ds"]  # idempotent
    after = (_epoch(db, {"ds": "mine"}), _epoch(db, {"meta.src": "b"}), db.find_data({"ds": "mine"}).ids(),
             _epoch(db, {"ds": "mine"}, dataset="v1"))
    assert after == before
    assert sorted(after[0][1]) == list(range(12))
    added = _indexes(db) - had
    if had:  # stores that keep indexes (not memory): one per tag and collection
        for collection in (DATA, MEMBERS):
            mine = [s for s in added if s.startswith(f"{collection}:")]
            assert any('"ds"' in s or "'ds'" in s for s in mine), added
            assert any("meta" in s and "src" in s for s in mine), added


@pytest.mark.parametrize("tags", [(), ("_x",), ("a..b",), ("",), (5,), ("$where",), ("ds.$x",)])
def test_bad_tag_names_are_typed_errors_and_index_nothing(db: tdb.TensorDB, tags: tuple) -> None:
    _import(db)
    had = _indexes(db)
    with pytest.raises(InvalidArgument):
        db.index_tags(*tags)
    assert _indexes(db) == had


def test_sqlite_walks_the_tag_index_for_a_late_dataset(tmp_path) -> None:
    """The embedded store's first match of an indexed tag comes from the index, not a scan of what precedes it."""
    with tdb.connect(str(tmp_path / "wh"), study="s") as db:
        _import(db)
        db.index_tags("ds")
        index = db.index.inner if isinstance(db.index, RetryingIndexStore) else db.index
        assert isinstance(index, SQLiteIndexStore)
        conn = sqlite3.connect(str(tmp_path / "wh" / "index.sqlite"))
        try:
            plan = conn.execute(
                "EXPLAIN QUERY PLAN SELECT seq FROM data WHERE json_extract(doc, '$.\"_study\"') = 's' "
                "AND json_extract(doc, '$.\"ds\"') = 'mine' ORDER BY seq LIMIT 1").fetchall()
            steps = [row[-1] for row in plan]
        finally:
            conn.close()
        assert any("USING INDEX" in s for s in steps), steps
