"""``tensordb export``: writes the format asked, passes query/fields/options on, refuses in one line (exit 2)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

import tensordb_core as tdb
from tensordb_core.cli.main import main


@pytest.fixture
def warehouse(tmp_path):
    uri = str(tmp_path / "wh")
    with tdb.connect(uri, "s") as db:
        db.import_data(np.arange(60, dtype=np.float32).reshape(30, 2), np.arange(30) % 3,
                       tags=[{"split": "test" if i < 10 else "train"} for i in range(30)])
    return ["--uri", uri, "--study", "s"]


def test_export_writes_the_matching_samples_and_says_so(warehouse, tmp_path, capsys):
    out = tmp_path / "train.parquet"
    code = main(["export", *warehouse, "--format", "parquet", "--query", '{"split": "train"}', "--fields",
                 "x,label", "--row-group-size", "8", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"exported 20 samples (x, label) to {out} as parquet" in captured.out
    assert "exporting to parquet: 20 samples" in captured.err  # not a terminal: one plain line, no bar
    table = pq.read_table(out)
    assert table.column_names == ["_id", "x", "label"] and pq.ParquetFile(out).metadata.num_row_groups == 3
    np.testing.assert_array_equal(table.column("label").to_numpy(), np.arange(10, 30) % 3)


def test_webdataset_options_reach_the_writer(warehouse, tmp_path, capsys):
    assert main(["export", *warehouse, "--format", "webdataset", "--shard-samples", "10", str(tmp_path / "wds")]) == 0
    assert sorted(p.name for p in (tmp_path / "wds").iterdir()) == [f"wds-00000{i}.tar" for i in range(3)]


@pytest.mark.parametrize("argv, message", [
    (["--format", "tar"], "unknown export format 'tar'"),
    (["--format", "npz", "--query", "{split"], "the query must be JSON"),
    (["--format", "npz", "--query", '{"split": "val"}'], "nothing to export"),
    (["--format", "npz", "--fields", "x,nope"], "in no matching sample"),
    (["--format", "npz", "--fields", ","], "--fields takes"),
    (["--format", "npz", "--row-group-size", "5"], "does not take ['row_group_size']"),
])
def test_bad_input_is_one_error_line_and_exit_2(warehouse, tmp_path, capsys, argv, message):
    assert main(["export", *warehouse, *argv, str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tensordb: error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_an_existing_path_needs_overwrite(warehouse, tmp_path, capsys):
    out = tmp_path / "x.npz"
    out.write_bytes(b"old")
    assert main(["export", *warehouse, "--format", "npz", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"old"
    assert main(["export", *warehouse, "--format", "npz", "--overwrite", str(out)]) == 0
    with np.load(out) as z:
        assert z["x"].shape == (30, 2)


def test_no_warehouse_there_is_one_line_and_creates_nothing(tmp_path, capsys):
    where = tmp_path / "typo"
    assert main(["export", "--uri", str(where), "--format", "npz", str(tmp_path / "out.npz")]) == 2
    assert "no warehouse at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
