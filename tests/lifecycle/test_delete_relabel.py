"""Delete and relabel (issue 15): what changes, what is refused with nothing changed, and the audit trail."""

from __future__ import annotations

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.warehouse import lifecycle


def _import(db: tdb.TensorDB, n: int = 12) -> list[str]:
    X = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    return db.import_data(X, np.arange(n) % 4, tags={"split": "train"})


def _state(db: tdb.TensorDB) -> list[tuple]:
    return [(d["_id"], d.get("label"), d.get("split"), d.get("source")) for d in db.find_data()]


def test_relabel_sets_and_unsets_labels_and_tags(db: tdb.TensorDB) -> None:
    ids = _import(db)
    assert db.update_data({"label": 3}, {"$set": {"label": 7, "source": "model-a"}}) == 3
    assert db.update_data({"label": 0}, {"$unset": {"split": ""}}) == 3
    X, y = db.find_data({"label": 7}).arrays()
    assert X.shape == (3, 3) and list(y) == [7, 7, 7]
    assert db.find_data({"source": "model-a"}).ids() == [ids[3], ids[7], ids[11]]
    assert len(db.find_data({"split": "train"})) == 9
    assert len(db.use_study("other").find_data()) == 0


def test_delete_removes_matches_of_this_study_only(db: tdb.TensorDB) -> None:
    ids = _import(db)
    other = db.use_study("s2")
    other_ids = _import(other, 4)
    assert db.delete_data({"label": {"$in": [1, 2]}}) == 6
    assert db.find_data().ids() == [i for k, i in enumerate(ids) if k % 4 not in (1, 2)]
    assert db.delete_data({}) == 6
    assert other.find_data().ids() == other_ids


@pytest.mark.parametrize("update", [
    {"$inc": {"label": 1}},
    {"$set": {"_seq": 5}},
    {"$set": {"_id": "x"}},
    {"$set": {"_x.key": "deadbeef"}},
    {"$unset": {"_chunk": ""}},
    {"$set": {"_study": "s2"}},
    {"$set": {"study": "s2"}},
    {"label": 3},
    {},
    {"$set": {"a..b": 1}},
    {"$set": {"bad": float("nan")}},
    "label=3",
])
def test_bad_updates_are_typed_errors_and_change_nothing(db: tdb.TensorDB, update) -> None:
    _import(db)
    before = _state(db)
    with pytest.raises(tdb.InvalidQuery):
        db.update_data({}, update)
    assert _state(db) == before
    assert lifecycle.recent(db.scope) == []


def test_binary_fields_of_records_are_immutable(db: tdb.TensorDB) -> None:
    db.import_records([{"image": np.zeros((2, 2), np.uint8), "caption": "a"}])
    with pytest.raises(tdb.InvalidQuery, match="binary field"):
        db.update_data({}, {"$set": {"image": "x"}})
    assert db.update_data({}, {"$set": {"caption": "b"}}) == 1
    assert db.find_data().records()[0]["caption"] == "b"


def test_array_labels_are_immutable(db: tdb.TensorDB) -> None:
    db.import_data(np.zeros((3, 2), np.float32), np.ones((3, 4), np.float32))
    with pytest.raises(tdb.InvalidQuery, match="binary field"):
        db.update_data({}, {"$set": {"label": 1}})
    assert db.find_data().arrays()[1].shape == (3, 4)


def test_bad_queries_are_typed_and_delete_nothing(db: tdb.TensorDB) -> None:
    _import(db)
    with pytest.raises(tdb.InvalidQuery):
        db.delete_data({"$where": "1"})
    with pytest.raises(tdb.InvalidQuery):
        db.delete_logs("nope", {})
    assert len(db.find_data()) == 12


def test_every_delete_and_relabel_is_audited(db: tdb.TensorDB) -> None:
    _import(db)
    db.update_data({"label": 1}, {"$set": {"label": 5}})
    db.delete_data({"label": 2})
    audit = lifecycle.recent(db.scope)
    assert [(a["action"], a["count"], a["collection"]) for a in audit] == [("delete", 3, "data"), ("relabel", 3, "data")]
    assert audit[0]["query"] == '{"label": 2}' and audit[0]["who"] and audit[0]["at"] > 0
    assert lifecycle.recent(db.use_study("s2").scope) == []


def test_parameters_in_use_are_not_deleted(db: tdb.TensorDB) -> None:
    keep = db.save_parameters({"w": np.ones(2)}, tags={"epoch": 1})
    loose = db.save_parameters({"w": np.zeros(2)}, tags={"epoch": 2})
    db.set_alias("production", keep)
    with pytest.raises(lifecycle.ReferencedParameters):
        db.delete_parameters({})
    assert len(db.find_parameter_docs()) == 2
    assert db.delete_parameters({"epoch": 2}) == 1
    assert [d["_id"] for d in db.find_parameter_docs()] == [keep]
    db.set_alias("production", db.save_parameters({"w": np.ones(3)}))
    db.register_model("m", keep)
    with pytest.raises(tdb.UnsafeOperation):
        db.delete_parameters({"_id": keep})
    assert loose not in [d["_id"] for d in db.find_parameter_docs()]


def test_delete_logs_jobs_and_architectures(db: tdb.TensorDB) -> None:
    for step in range(4):
        db.train_log({"loss": 1.0 / (step + 1)}, step=step)
        db.valid_log({"acc": 0.5}, step=step)
    assert db.delete_logs("train", {"step": {"$lt": 2}}) == 2
    assert len(db.find_logs("train")) == 2 and len(db.find_logs("valid")) == 4
    assert db.delete_logs(None) == 6
    db.push_job({"a": 1}, tags={"type": "train"})
    db.push_job({"a": 2}, tags={"type": "train"})
    job = db.pop_job({"type": "train"}, lease_s=60)
    with pytest.raises(lifecycle.RunningJobs):
        db.delete_jobs({})
    assert len(db.find_jobs()) == 2
    assert db.delete_jobs({"status": "queued"}) == 1
    job.complete({"ok": True})
    assert db.delete_jobs({}) == 1
    db.save_model_architecture("code-1", tags={"name": "a"})
    db.save_model_architecture("code-2", tags={"name": "b"})
    assert db.delete_model_architectures({"name": "a"}) == 1
    assert db.find_model_architecture({})[0] == "code-2"


def test_cross_study_view_cannot_delete(db: tdb.TensorDB) -> None:
    _import(db)
    with pytest.raises(tdb.TensorDBError):
        db.all_studies().delete_data({})
    assert len(db.find_data()) == 12


def test_every_blob_writer_registers_its_index(tmp_path) -> None:
    """Parameters, architectures and records written alone still register the index with the blob store."""
    from tensordb_core.store.owners import index_id, registered_indexes

    shared = f"file://{tmp_path / 'blobs'}"
    for i, write in enumerate([lambda db: db.save_parameters({"w": np.ones(3)}),
                               lambda db: db.save_model_architecture("x" * 300_000),
                               lambda db: db.import_records([{"b": b"payload"}])]):
        with tdb.connect(f"sqlite:///{tmp_path}/i{i}.db", study="s", blobs=shared) as db:
            write(db)
            assert index_id(db.index) in registered_indexes(db.blobs)
