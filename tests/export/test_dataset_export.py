"""``dataset=``: an export of a named dataset version holds its pinned samples with their pinned labels."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

import tensordb_core as tdb
from tensordb_core.warehouse.datasets import DatasetNotFound


def test_a_version_exports_what_it_pinned_whatever_was_relabelled_deleted_or_imported_since(tmp_path):
    X = np.arange(60, dtype=np.float32).reshape(20, 3)
    with tdb.connect(tmp_path / "w", study="s") as db:
        ids = db.import_data(X, np.arange(20) % 3, tags={"split": "train"})
        db.save_dataset("v1", {"split": "train"})
        assert db.update_data({"label": 0}, {"$set": {"label": 9}}) == 7
        assert db.delete_data({"label": 1}) == 7
        db.import_data(np.zeros((5, 3), np.float32), np.zeros(5, int), tags={"split": "train"})

        db.export_data(tmp_path / "v1.parquet", format="parquet", dataset="v1", page_size=6)
        pinned = pq.read_table(tmp_path / "v1.parquet")
        assert pinned.column("_id").to_pylist() == ids
        assert pinned.column("label").to_pylist() == (np.arange(20) % 3).tolist()
        np.testing.assert_array_equal(pinned.column("x").combine_chunks().to_numpy_ndarray(), X)

        db.export_data(tmp_path / "now.parquet", format="parquet", page_size=6)
        assert sorted(set(pq.read_table(tmp_path / "now.parquet").column("label").to_pylist())) == [0, 2, 9]

        db.export_data(tmp_path / "v1-2.parquet", {"label": 2}, format="parquet", dataset="v1")
        assert pq.read_table(tmp_path / "v1-2.parquet").num_rows == 6


def test_an_unknown_version_is_refused_with_nothing_written(tmp_path):
    with tdb.connect(tmp_path / "w", study="s") as db:
        db.import_data(np.zeros((3, 2), np.float32))
        with pytest.raises(DatasetNotFound, match="nope"):
            db.export_data(tmp_path / "out.npz", format="npz", dataset="nope")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]
