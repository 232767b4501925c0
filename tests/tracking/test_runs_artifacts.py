"""Artifacts: files, bytes, text, JSON and figures per run, as verified content-addressed parts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import tensordb_core as tdb
from tensordb_core.errors import DocumentNotFound, IntegrityError, InvalidDocument
from tensordb_core.warehouse import artifacts
from tensordb_core.warehouse.maintenance import check, gc


def test_files_text_json_and_figures_round_trip(tdb_handle: tdb.TensorDB, tmp_path: Path) -> None:
    db = tdb_handle
    src = tmp_path / "weights.bin"
    src.write_bytes(bytes(range(256)) * 100)
    with db.start_run() as run:
        run.log_artifact(src)
        run.log_artifact(b"raw", "raw.bin")
        run.log_text("précis", "notes.txt")
        run.log_dict({"layers": [64, 32], "lr": 0.1}, "config.json")
        import matplotlib  # in [dev]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot([1, 2, 3])
        run.log_figure(fig, "curve.png")
        plt.close(fig)
    listed = db.list_artifacts(run.id)
    assert [d["name"] for d in listed] == ["config.json", "curve.png", "notes.txt", "raw.bin", "weights.bin"]
    assert db.load_artifact(run.id, "weights.bin") == src.read_bytes()
    assert db.load_artifact(run.id, "raw.bin") == b"raw"
    assert db.load_artifact(run.id, "notes.txt") == "précis"
    assert db.load_artifact(run.id, "config.json") == {"layers": [64, 32], "lr": 0.1}
    assert db.load_artifact(run.id, "curve.png")[:8] == b"\x89PNG\r\n\x1a\n"
    out = db.load_artifact(run.id, "weights.bin", path=tmp_path / "copy.bin")
    assert out.read_bytes() == src.read_bytes()
    doc = next(d for d in listed if d["name"] == "weights.bin")
    assert doc["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest() and doc["size"] == 25600


def test_large_files_are_streamed_in_parts_and_survive_gc(tdb_handle: tdb.TensorDB, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "PART_SIZE", 1000)
    db = tdb_handle
    src = tmp_path / "big.bin"
    src.write_bytes(bytes(i % 251 for i in range(3500)))
    with db.start_run() as run:
        doc = run.log_artifact(src)
        run.log_artifact(b"x" * 2000, "even.bin")
    assert [p["size"] for p in doc["parts"]] == [1000, 1000, 1000, 500]
    assert [p["size"] for p in db.list_artifacts(run.id)[1]["parts"]] == [1000, 1000]
    assert gc(db.index, db.blobs, grace_s=0) == [], "gc must see every part as referenced"
    report = check(db.index, db.blobs)
    assert report.ok and not report.orphans
    assert db.load_artifact(run.id, "big.bin", path=tmp_path / "back.bin").read_bytes() == src.read_bytes()


def test_a_damaged_part_is_caught(tdb_handle: tdb.TensorDB, tmp_path: Path) -> None:
    db = tdb_handle
    with db.start_run() as run:
        doc = run.log_artifact(b"payload" * 10, "p.bin")
    db.blobs.put(doc["parts"][0]["key"], b"tampered")
    with pytest.raises(IntegrityError):
        db.load_artifact(run.id, "p.bin")
    with pytest.raises(IntegrityError):
        db.load_artifact(run.id, "p.bin", path=tmp_path / "p.bin")
    assert not (tmp_path / "p.bin").exists() and not (tmp_path / "p.bin.partial").exists()


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", "..", ".", "", "x\x00y", "a..b", "x" * 256])
def test_unsafe_names_are_refused_before_anything_is_written(tdb_handle: tdb.TensorDB, name: str) -> None:
    db = tdb_handle
    with db.start_run() as run:
        blobs_before = set(db.blobs.list(""))
        with pytest.raises(InvalidDocument):
            run.log_artifact(b"data", name)
        assert set(db.blobs.list("")) == blobs_before
    assert db.list_artifacts(run.id) == []


def test_other_bad_sources_and_missing_artifacts(tdb_handle: tdb.TensorDB, tmp_path: Path) -> None:
    db = tdb_handle
    with db.start_run() as run:
        with pytest.raises(InvalidDocument):
            run.log_artifact(b"no name")
        with pytest.raises(InvalidDocument):
            run.log_artifact(object(), "x")
        with pytest.raises(InvalidDocument):
            run.log_dict({"f": print}, "x.json")
        with pytest.raises(DocumentNotFound):
            run.log_artifact(tmp_path / "missing.bin")
        run.log_text("v1", "notes.txt")
        run.log_text("v2", "notes.txt")
    assert db.load_artifact(run.id, "notes.txt") == "v2", "the newest version wins"
    assert len(db.list_artifacts(run.id)) == 1
    with pytest.raises(DocumentNotFound):
        db.load_artifact(run.id, "nope")


def test_artifacts_are_per_study(tracking_uri: str) -> None:
    with tdb.connect(tracking_uri, study="a") as a, tdb.connect(tracking_uri, study="b") as b:
        with a.start_run() as run:
            run.log_text("secret", "s.txt")
        assert b.list_artifacts(run.id) == []
        with pytest.raises(DocumentNotFound):
            b.load_artifact(run.id, "s.txt")
        with pytest.raises(DocumentNotFound):
            artifacts.log_artifact(b.scope, run.id, b"x", "planted.bin")
