"""Records survive the warehouse's maintenance: gc keeps their chunks, check finds them, copy carries them."""

from __future__ import annotations

import numpy as np

import tensordb_core as tdb
from tensordb_core.testing.warehouse_checks import sample_records
from tensordb_core.warehouse import maintenance
from tensordb_core.warehouse.copying import copy_warehouse


def test_gc_keeps_record_chunks_and_check_sees_them(tmp_path):
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_records(sample_records(20), chunk_bytes=2048)
        assert maintenance.gc(db.index, db.blobs, grace_s=0) == []
        report = maintenance.check(db.index, db.blobs, grace_s=0)
        assert report.ok and not report.orphans
        assert len(db.find_data().records()) == 20


def test_copy_carries_records_to_another_warehouse(tmp_path):
    records = sample_records(12)
    with tdb.connect(tmp_path / "src", study="s") as db:
        db.import_records(records, chunk_bytes=2048)
    copy_warehouse(str(tmp_path / "src"), str(tmp_path / "dst"), study="s")
    with tdb.connect(tmp_path / "dst", study="s") as db:
        got = db.find_data({"label": 1}).records()
    assert [r["caption"] for r in got] == ["caption 1", "caption 5", "caption 9"]
    np.testing.assert_array_equal(got[0]["tokens"], records[1]["tokens"])
