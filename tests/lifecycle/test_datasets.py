"""Named dataset versions (issue 15): a version reads exactly what it pinned, whatever happened since."""

from __future__ import annotations

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.store.scope import MEMBERS
from tensordb_core.warehouse import datasets, maintenance


def _import(db: tdb.TensorDB, n: int = 20, start: int = 0) -> list[str]:
    X = np.arange(start * 2, (start + n) * 2, dtype=np.float32).reshape(n, 2)
    return db.import_data(X, (np.arange(n) + start) % 5, tags={"split": "train"}, chunk_bytes=64)


def _epoch(db: tdb.TensorDB, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for X, y in db.data_generator(batch_size=7, seed=3, **kwargs):
        xs.append(X)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def test_version_keeps_ids_labels_and_order_through_relabel_import_and_delete(db: tdb.TensorDB) -> None:
    ids = _import(db)
    X0, y0 = _epoch(db, query={"split": "train"})  # the live data's order for seed 3
    info = db.save_dataset("v1", {"split": "train"}, description="first cut")
    assert (info["name"], info["count"], info["query"], info["description"], info["state"]) == \
        ("v1", 20, {"split": "train"}, "first cut", "ready")
    db.update_data({"label": 1}, {"$set": {"label": 9}})
    _import(db, 5, start=100)
    db.delete_data({"label": 2})
    assert len(db.find_data()) == 20  # 25 imported, 5 labelled 2 deleted
    cur = db.find_data(dataset="v1")
    assert len(cur) == 20 and cur.ids() == ids
    X, y = cur.arrays()
    assert list(y) == [i % 5 for i in range(20)] and X[19].tolist() == [38.0, 39.0]
    assert [d["_id"] for d in cur] == ids
    Xs, ys = _epoch(db, dataset="v1")
    assert np.array_equal(Xs, X0) and np.array_equal(ys, y0)  # same population, same seed: same order
    assert len(db.find_data({"label": 1}, dataset="v1")) == 4  # queries see the pinned labels
    assert db.current_lineage()["data"]["dataset"] == "v1"


def test_deleted_pinned_samples_survive_gc_until_the_version_is_dropped(db: tdb.TensorDB) -> None:
    _import(db)
    db.save_dataset("v1")
    db.delete_data({})
    assert maintenance.gc(db.index, db.blobs, grace_s=0) == []
    assert len(db.find_data(dataset="v1").arrays()[0]) == 20
    assert db.drop_dataset("v1") == 20
    assert len(maintenance.gc(db.index, db.blobs, grace_s=0)) > 0
    assert db.index.count(MEMBERS) == 0


def test_list_info_drop_and_bad_names(db: tdb.TensorDB) -> None:
    _import(db)
    db.save_dataset("a", {"label": 0})
    db.save_dataset("b")
    assert [(d["name"], d["count"]) for d in db.list_datasets()] == [("a", 4), ("b", 20)]
    with pytest.raises(datasets.DatasetExists):
        db.save_dataset("a")
    assert db.dataset_info("a")["count"] == 4
    for bad in ("", "a b", "../x", None, 3):
        with pytest.raises(tdb.InvalidArgument):
            db.save_dataset(bad)
    with pytest.raises(datasets.DatasetNotFound):
        db.find_data(dataset="nope")
    with pytest.raises(tdb.NotFound):
        db.drop_dataset("nope")
    with pytest.raises(tdb.InvalidQuery):
        db.save_dataset("c", {"$where": "1"})
    assert [d["name"] for d in db.list_datasets()] == ["a", "b"]
    db.drop_dataset("a")
    assert [d["name"] for d in db.list_datasets()] == ["b"]
    assert db.use_study("s2").list_datasets() == []
    with pytest.raises(datasets.DatasetNotFound):
        db.use_study("s2").dataset_info("b")


def test_stream_over_a_version_refuses_follow_and_as_of(db: tdb.TensorDB) -> None:
    _import(db)
    db.save_dataset("v1")
    with pytest.raises(tdb.InvalidArgument):
        db.data_generator(dataset="v1", follow=True)
    with pytest.raises(tdb.InvalidArgument):
        db.data_generator(dataset="v1", as_of=3)
    with pytest.raises(datasets.DatasetNotFound):
        db.data_generator(dataset="v2")


def test_an_interrupted_save_is_refused_until_dropped(db: tdb.TensorDB) -> None:
    _import(db)
    db.save_dataset("v1")
    db.index.update_many(datasets.DATASETS, {"name": "v1"}, {"$set": {"state": "saving"}})  # as a killed save leaves it
    with pytest.raises(datasets.DatasetNotFound, match="incomplete"):
        db.find_data(dataset="v1")
    db.drop_dataset("v1")
    assert db.save_dataset("v1")["count"] == 20


def test_records_versions_read_pinned_json_fields(db: tdb.TensorDB) -> None:
    db.import_records([{"image": np.full((2, 2), i, np.uint8), "caption": f"c{i}"} for i in range(6)])
    db.save_dataset("r")
    db.update_data({}, {"$set": {"caption": "changed"}})
    recs = db.find_data(dataset="r").records()
    assert [r["caption"] for r in recs] == [f"c{i}" for i in range(6)]
    assert recs[5]["image"].tolist() == [[5, 5], [5, 5]]
    batches = list(db.data_generator(dataset="r", batch_size=6, shuffle=False))
    assert batches[0]["caption"] == [f"c{i}" for i in range(6)]


def test_gc_removes_members_of_a_version_whose_drop_died(db: tdb.TensorDB) -> None:
    _import(db)
    db.save_dataset("keep")
    db.save_dataset("gone")
    db.delete_data({})
    doc = db.index.find(datasets.DATASETS, {"name": "gone"}).__iter__().__next__()
    db.index.delete_many(datasets.DATASETS, {"_id": doc["_id"]})  # as a drop killed after its first delete leaves it
    maintenance.gc(db.index, db.blobs, grace_s=0)
    assert db.index.count(MEMBERS) == 20 and len(db.find_data(dataset="keep").arrays()[0]) == 20


def test_a_version_is_queried_and_sorted_by_the_samples_own_ids(db: tdb.TensorDB) -> None:
    ids = _import(db, 6)
    db.save_dataset("v-ids", {})
    db.delete_data({"_id": ids[2]})  # deleted since: still found by its id through the version
    assert db.find_data({"_id": ids[2]}, dataset="v-ids").ids() == [ids[2]]
    assert db.find_data({"$or": [{"_id": {"$in": ids[:2]}}, {"label": 5}]}, dataset="v-ids").ids() == ids[:2]
    assert db.find_data({"_id": {"$in": ids}}, dataset="v-ids", sort=[("_id", -1)]).ids() == sorted(ids)[::-1]
