"""Bad input to an export is a typed error and leaves the output path exactly as it was.

Checked before anything is written: the format and its options, the fields,
the path (exists, not writable), a query that matches nothing.  A failure
while writing leaves nothing behind either: the export is staged beside the
path and renamed into place only when complete.
"""

from __future__ import annotations

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.errors import (
    DocumentNotFound,
    InvalidArgument,
    InvalidDocument,
    OutputExists,
    OutputNotWritable,
)
from tensordb_core.warehouse.export import FORMATS, export_data


def _listing(directory):
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("kwargs", [
    {"format": "zip"},
    {"format": None},
    {"format": "npz", "shard_samples": 10},  # an option of another format
    {"format": "webdataset", "shard_samples": 0},
    {"format": "parquet", "row_group_size": "many"},
    {"format": "npz", "fields": "x"},
    {"format": "npz", "fields": []},
    {"format": "npz", "fields": ["_id"]},
    {"format": "npz", "fields": ["x", "nope"]},
    {"format": "npz", "page_size": 0},
    {"format": "npz", "dataset": ""},
])
def test_bad_arguments_are_refused_with_nothing_written(xy, tmp_path, kwargs):
    with pytest.raises(InvalidArgument):
        export_data(xy.db, tmp_path / "out", **kwargs)
    assert _listing(tmp_path) == []


def test_a_field_named_like_a_companion_column_is_refused(tmp_path):
    with tdb.connect(tmp_path / "w", study="s") as db:
        db.import_records([{"tokens": np.arange(n), "tokens_shape": "mine"} for n in (2, 3)])
        with pytest.raises(InvalidDocument, match="tokens_shape"):
            export_data(db, tmp_path / "out.parquet", format="parquet")
        export_data(db, tmp_path / "out.parquet", format="parquet", fields=["tokens"])
    assert _listing(tmp_path) == ["out.parquet", "w"]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_query_matching_nothing_is_refused(xy, tmp_path, fmt):
    with pytest.raises(DocumentNotFound, match="nothing to export"):
        export_data(xy.db, tmp_path / "out", {"split": "nowhere"}, format=fmt)
    assert _listing(tmp_path) == []


def test_an_existing_file_is_refused_unless_overwrite(xy, tmp_path):
    path = tmp_path / "out.npz"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputExists, match="overwrite"):
        export_data(xy.db, path, format="npz")
    assert path.read_bytes() == b"keep me" and _listing(tmp_path) == ["out.npz"]
    export_data(xy.db, path, format="npz", overwrite=True)
    with np.load(path) as z:
        assert len(z["x"]) == 150
    assert _listing(tmp_path) == ["out.npz"]


def test_a_non_empty_directory_is_refused_and_an_empty_one_is_used(xy, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("x")
    with pytest.raises(OutputExists):
        export_data(xy.db, tmp_path / "full", format="webdataset")
    assert _listing(tmp_path / "full") == ["mine.txt"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(OutputExists):  # a file format never replaces a directory unasked
        export_data(xy.db, tmp_path / "empty", format="npz")
    export_data(xy.db, tmp_path / "empty", format="webdataset")
    assert _listing(tmp_path / "empty") == ["empty-000000.tar"]


def test_an_unwritable_place_is_refused(xy, tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    for path in (tmp_path / "missing" / "out.npz", tmp_path / "a-file" / "out.npz"):
        with pytest.raises(OutputNotWritable):
            export_data(xy.db, path, format="npz")
    assert _listing(tmp_path) == ["a-file"]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_failure_while_writing_leaves_the_old_content_and_no_partial_files(xy, tmp_path, fmt):
    path = tmp_path / "out"
    path.write_bytes(b"the previous export")

    def interrupted(n):
        raise KeyboardInterrupt  # the user pressed ^C half way

    with pytest.raises(KeyboardInterrupt):
        export_data(xy.db, path, format=fmt, overwrite=True, page_size=32, progress=interrupted)
    assert path.read_bytes() == b"the previous export" and _listing(tmp_path) == ["out"]



def test_a_format_whose_library_is_missing_names_the_extra_to_install():
    from tensordb_core.errors import MissingDependency
    from tensordb_core.warehouse.export import Format

    missing = Format("lance", "tensordb_core.warehouse.export.npz", directory=True, requires=("no_such_library_for_tensordb",))
    with pytest.raises(MissingDependency, match=r"pip install 'tensordb\[export\]'"):
        missing.writer()
