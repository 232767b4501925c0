"""``tensordb copy`` on the embedded stores: same answers on both sides, resumable, idempotent, verified."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.cli.main import main
from tensordb_core.errors import IntegrityError
from tensordb_core.warehouse.copying import COLLECTIONS, blob_keys, copy_stores, copy_warehouse

#: Queries a user would ask after moving a study; each must answer the same on both sides.
QUERIES: list[tuple[str, dict[str, Any], list[tuple[str, int]] | None]] = [
    ("data", {}, None),
    ("data", {"split": "train", "label": {"$in": [1, 3]}}, None),
    ("data", {"label": {"$gte": 5}}, [("label", -1)]),
    ("params", {}, [("metrics.valid_acc", -1)]),
    ("params", {"metrics.valid_acc": {"$gt": 0.5}}, None),
    ("models", {"name": "mlp"}, None),
    ("jobs", {"status": "done"}, None),
    ("logs", {"kind": "train"}, [("step", 1)]),
    ("aliases", {}, None),
    ("alias_history", {}, [("at", 1)]),
    ("datasets", {}, None),
    ("audit", {}, [("at", 1)]),
]


def make_study(uri: str, study: str = "s1", seed: int = 0) -> None:
    """A small study touching every collection: two data imports, an architecture, parameters, jobs, logs, an alias."""
    rng = np.random.default_rng(seed)
    with tdb.connect(uri, study) as db:
        db.import_data(rng.normal(size=(30, 3, 2)).astype(np.float32), rng.integers(0, 10, 30),
                       tags={"split": "train"}, chunk_bytes=200)
        db.import_data(rng.integers(0, 255, size=(10, 4), dtype=np.uint8), rng.integers(0, 10, 10),
                       tags={"split": "test"})
        arch = db.save_model_architecture(json.dumps({"builder": "numpy-mlp", "inputs": 6, "outputs": 10}),
                                          tags={"name": "mlp"})
        pids = [db.save_parameters({"w": rng.normal(size=(6, 10)).astype(np.float32)},
                                   metrics={"valid_acc": float(v)}, tags={"arch": arch}, step=i)
                for i, v in enumerate((0.3, 0.7, 0.6))]
        db.push_job({"epochs": 1}, tags={"type": "train"})
        job = db.pop_job(worker="w")
        job.complete({"ok": True})
        db.push_job({"epochs": 2}, tags={"type": "train"})
        for step in range(5):
            db.train_log({"loss": 1.0 / (step + 1)}, step=step)
        db.set_alias("best", pids[1], who="test")
        db.set_alias("best", pids[2], who="test")


def add_lifecycle(uri: str, study: str = "s1") -> int:
    """A dataset version, then a relabel and a delete it must not see (both audited); returns the live count."""
    with tdb.connect(uri, study) as db:
        db.save_dataset("v1", {"split": "train"}, description="pinned before the relabel and the delete")
        db.update_data({"split": "train", "label": {"$lt": 3}}, {"$set": {"label": 0}})
        db.delete_data({"split": "train", "label": 9})
        return len(db.find_data())


def strip(docs: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in d.items() if k != "_seq"} for d in docs]


def assert_same_study(src: str, dst: str, study: str = "s1", *, src_blobs: str | None = None,
                      dst_blobs: str | None = None, dst_options: dict[str, Any] | None = None) -> int:
    """Every query answers the same documents in the same order; every referenced blob has the same bytes.

    Returns how many blobs were compared.
    """
    opts = dst_options or {}
    with tdb.connect(src, study, blobs=src_blobs) as a, tdb.connect(dst, study, blobs=dst_blobs,
                                                                        blob_options=opts) as b:
        for collection, query, sort in QUERIES:
            left = strip(a.index.find(collection, a.scope.query(query), sort=sort))
            right = strip(b.index.find(collection, b.scope.query(query), sort=sort))
            assert left == right, (collection, query)
        for collection in COLLECTIONS:  # tail order (relative _seq order) survives the copy
            assert strip(a.index.tail(collection, a.scope.query({}))) == strip(b.index.tail(collection,
                                                                                            b.scope.query({})))
        keys = {k for c in COLLECTIONS for d in a.index.find(c, a.scope.query({})) for k in blob_keys(c, d)}
        assert keys
        for key in sorted(keys):
            assert a.blobs.get(key) == b.blobs.get(key)
        Xa, ya = a.find_data({"split": "train"}).arrays()
        Xb, yb = b.find_data({"split": "train"}).arrays()
        np.testing.assert_array_equal(Xa, Xb)
        np.testing.assert_array_equal(ya, yb)
        assert a.list_datasets() == b.list_datasets()
        for version in a.list_datasets():  # its pinned samples and labels, deleted ones too
            Va, va = a.find_data(dataset=version["name"]).arrays()
            Vb, vb = b.find_data(dataset=version["name"]).arrays()
            np.testing.assert_array_equal(Va, Vb)
            np.testing.assert_array_equal(va, vb)
            assert a.find_data(dataset=version["name"]).ids() == b.find_data(dataset=version["name"]).ids()
        assert a.best_parameters("valid_acc")[1]["_id"] == b.best_parameters("valid_acc")[1]["_id"]
        assert a.get_alias("best") == b.get_alias("best")
        return len(keys)


def test_copy_gives_the_same_answers_and_blobs(tmp_path):
    src, dst = str(tmp_path / "src"), f"memory://copy-{tmp_path.name}"
    make_study(src)
    live = add_lifecycle(src)  # 40 imported, less the deleted label-9 samples
    report = copy_warehouse(src, dst, study="s1")
    assert live < 40 and report.copied["data"] == live and report.copied["params"] == 3 and report.copied["jobs"] == 2
    assert report.copied["dataset_members"] == 30 and report.copied["datasets"] == 1 and report.copied["audit"] == 2
    assert report.blobs_copied > 3  # several data chunks (chunk_bytes=200) and three parameter archives
    assert assert_same_study(src, dst) == report.blobs_copied


def test_a_second_copy_copies_nothing(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    make_study(src)
    first = copy_warehouse(src, dst)
    again = copy_warehouse(src, dst)
    assert again.documents_copied == 0 and again.blobs_copied == 0
    assert sum(again.skipped.values()) == first.documents_copied
    assert_same_study(src, dst)


class FailingBlobs:
    """A destination blob store that breaks after ``n`` writes (a copy interrupted half way)."""

    def __init__(self, inner: Any, n: int) -> None:
        self.inner, self.left = inner, n

    def put(self, key: str, data: bytes) -> None:
        if self.left <= 0:
            raise ConnectionError("network gone")
        self.left -= 1
        self.inner.put(key, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_interrupted_copy_resumes_and_keeps_order(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    make_study(src)
    with tdb.connect(src, "s1") as a, tdb.connect(dst, "s1") as b:
        with pytest.raises(ConnectionError):
            copy_stores(a.index, a.blobs, b.index, FailingBlobs(b.blobs, 3), study="s1", page=4)
        live = a.index.count("data", {})
        partial = b.index.count("data", {})
        assert 0 < partial < live  # some pages made it, the rest did not
        assert not [d for d in b.index.find("data", {}) if not b.blobs.exists(d["_x"]["key"])]  # none dangling
        report = copy_stores(a.index, a.blobs, b.index, b.blobs, study="s1", page=4)
    assert report.skipped["data"] == partial and report.copied["data"] == live - partial
    assert report.blobs_present >= 1  # written before the failure, its documents not yet: reused, not rewritten
    assert_same_study(src, dst)


def test_only_the_named_study_is_copied(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    make_study(src, "s1")
    make_study(src, "other", seed=1)
    copy_warehouse(src, dst, study="other")
    with tdb.connect(dst, "s1") as b:
        assert len(b.find_data()) == 0
        assert len(b.use_study("other").find_data()) == 40
    assert_same_study(src, dst, "other")


def _chunk_files(root: Path) -> Iterator[Path]:
    return (p for p in (root / "blobs").rglob("*") if p.is_file() and len(p.name) == 64)


def test_a_corrupted_source_blob_stops_the_copy(tmp_path):
    src, dst = tmp_path / "src", str(tmp_path / "dst")
    make_study(str(src))
    with tdb.connect(str(src), "s1") as a:
        key = next(iter(a.find_data({"split": "test"})))["_x"]["key"]
    victim = next(p for p in _chunk_files(src) if p.name == key)
    victim.write_bytes(b"x" + victim.read_bytes()[1:])
    with pytest.raises(IntegrityError, match=key):
        copy_warehouse(str(src), dst)
    with tdb.connect(dst, "s1") as b:  # the documents of the bad chunk were not copied
        assert len(b.find_data({"split": "test"})) == 0


def test_copy_command(tmp_path, capsys):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    make_study(src)
    assert main(["copy", src, dst, "--study", "s1"]) == 0
    out = capsys.readouterr().out
    assert "data: 40 copied, 0 present" in out and "blobs:" in out
    assert main(["copy", src, dst, "--study", "s1"]) == 0
    assert "data: 0 copied, 40 present" in capsys.readouterr().out
    assert_same_study(src, dst)
    assert main(["copy", src, "nosuchscheme://x"]) == 2
    assert "nosuchscheme" in capsys.readouterr().err


def test_a_copy_shows_no_source_worker_alive_and_no_job_running(tmp_path, capsys):
    """The source's workers do not follow the copy: their records arrive stopped, their jobs queued."""
    from tensordb_core.cli.status import study_status
    from tensordb_core.loop.worker import WORKERS

    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    make_study(src)
    with tdb.connect(src, "s1") as db:
        running = db.pop_job(worker="trainer-1", lease_s=3600)
        db.index.insert_many(WORKERS, [db.scope.new_doc(name="trainer-1", role="trainer", state="running",
                                                        heartbeat=time.time(), heartbeat_s=5.0, job=running.id)])
        assert study_status(db)["jobs"]["running"] == 1 and study_status(db)["workers"][0]["alive"]
    assert main(["copy", src, dst, "--study", "s1"]) == 0
    out = capsys.readouterr().out
    assert "1 job(s) running in the source copied as queued (lease cleared)" in out
    assert "1 worker record(s) running in the source copied as stopped" in out
    with tdb.connect(dst, "s1") as db:
        status = study_status(db)
        assert status["jobs"]["running"] == 0 and status["jobs"]["queued"] == 1 and status["workers"] == []
        job = db.find_jobs({"_id": running.id})[0]
        assert job["lease_until"] is None and job["attempts_left"] == running.doc["attempts_left"] + 1
        taken = db.pop_job(worker="dst-worker")  # a destination worker can take it
        assert taken is not None
    with tdb.connect(src, "s1") as db:  # the source is untouched
        assert study_status(db)["jobs"]["running"] == 1


def test_a_second_copy_reports_the_blobs_it_found(tmp_path, capsys):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    make_study(src)
    first = copy_warehouse(src, dst, study="s1")
    again = copy_warehouse(src, dst, study="s1")
    assert first.blobs_copied > 0 and first.blobs_present == 0
    assert again.blobs_copied == 0 and again.blobs_present == first.blobs_copied
    assert main(["copy", src, dst, "--study", "s1"]) == 0
    assert f"blobs: 0 copied (0 bytes), {first.blobs_copied} already present" in capsys.readouterr().out
    victim = next(_chunk_files(Path(dst)))  # a blob lost at the destination is restored by the rerun
    victim.unlink()
    third = copy_warehouse(src, dst, study="s1")
    assert third.blobs_copied == 1 and third.blobs_present == first.blobs_copied - 1
    assert_same_study(src, dst)
