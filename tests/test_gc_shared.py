"""gc on warehouses that share one blob store: refused unless forced, never deletes the other's chunks.

Two SQLite indexes (a.db, b.db) over one ``file:///blobs`` store: each sees
the other's chunks as orphans.  Every index that writes there leaves a marker
blob ``_tensordb/indexes/<index id>``; gc refuses while another is registered.
"""

from __future__ import annotations

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.cli.main import main as cli_main
from tensordb_core.errors import UnsafeOperation
from tensordb_core.warehouse.maintenance import (
    OWNERS_PREFIX,
    SharedBlobStore,
    check,
    gc,
    index_id,
    registered_indexes,
)


@pytest.fixture
def pair(tmp_path):
    blobs = f"file://{tmp_path}/blobs"
    with tdb.connect(f"sqlite:///{tmp_path}/a.db", study="s", blobs=blobs) as a, \
            tdb.connect(f"sqlite:///{tmp_path}/b.db", study="s", blobs=blobs) as b:
        a.import_data(np.ones((8, 4), np.float32), np.arange(8))
        b.import_data(np.full((8, 4), 2, np.float32), np.arange(8))
        yield a, b


def test_gc_refuses_on_a_shared_blob_store_and_deletes_nothing(pair):
    a, b = pair
    assert registered_indexes(a.blobs) == {index_id(a.index), index_id(b.index)}
    assert index_id(a.index) != index_id(b.index)
    before = set(a.blobs.list())
    for db in (a, b):
        for dry_run in (True, False):
            with pytest.raises(SharedBlobStore, match="--force") as info:
                gc(db.index, db.blobs, grace_s=0, dry_run=dry_run)
            assert isinstance(info.value, UnsafeOperation) and "shared with 1 other index" in str(info.value)
    assert set(a.blobs.list()) == before
    for db in (a, b):  # each still reads its own samples
        X, y = db.find_data({}).arrays()
        assert len(X) == 8 and y.tolist() == list(range(8))
        assert check(db.index, db.blobs, grace_s=0).dangling == []


def test_gc_force_deletes_what_this_index_does_not_reference(pair):
    a, b = pair
    deleted = gc(a.index, a.blobs, grace_s=0, force=True)
    assert len(deleted) == 1  # b's chunk: exactly what --force is for when b is gone
    assert not any(key.startswith(OWNERS_PREFIX) for key in deleted)
    assert check(b.index, b.blobs, grace_s=0).dangling


def test_a_warehouse_alone_with_its_blob_store_still_collects_orphans(tmp_path):
    with tdb.connect(f"sqlite:///{tmp_path}/a.db", study="s", blobs=f"file://{tmp_path}/blobs") as a:
        a.import_data(np.ones((8, 4), np.float32))
        a.blobs.put("0" * 64, b"orphan")
        assert gc(a.index, a.blobs, grace_s=0) == ["0" * 64]
        assert registered_indexes(a.blobs) == {index_id(a.index)}
        report = check(a.index, a.blobs, grace_s=0)
        assert report.ok and report.orphans == []  # the marker is no orphan
        assert len(a.find_data({}).arrays()[0]) == 8


def test_an_index_that_never_wrote_registers_when_it_runs_gc(tmp_path):
    """gc registers its own index first, so a later writer's gc sees it (and the other way round)."""
    blobs = f"file://{tmp_path}/blobs"
    with tdb.connect(f"sqlite:///{tmp_path}/a.db", study="s", blobs=blobs) as a:
        assert gc(a.index, a.blobs, grace_s=0) == []
        with tdb.connect(f"sqlite:///{tmp_path}/b.db", study="s", blobs=blobs) as b:
            b.import_data(np.ones((8, 4), np.float32))
            with pytest.raises(SharedBlobStore):
                gc(a.index, a.blobs, grace_s=0)


def test_cli_gc_says_why_and_force_overrides(pair, tmp_path, capsys):
    _, b = pair
    args = ["gc", "--uri", f"sqlite:///{tmp_path}/a.db", "--blobs", f"file://{tmp_path}/blobs", "--study", "s",
            "--grace", "0"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "shared with 1 other index" in err and "--force" in err and "Traceback" not in err
    assert b.find_data({}).arrays()[0].shape == (8, 4)
    assert cli_main([*args, "--force"]) == 0
    assert "deleted 1 orphan blob(s)" in capsys.readouterr().out
