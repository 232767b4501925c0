"""Read commands on a path that holds no warehouse say so (exit 2, one line) and create nothing."""

from __future__ import annotations

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.cli.main import main
from tensordb_core.errors import NotFound

READ_COMMANDS = [["find"], ["status"], ["check"], ["logs"], ["jobs"], ["compare"], ["runs"], ["gc", "--dry-run"]]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: c[0])
def test_read_command_on_a_missing_directory(tmp_path, capsys, command):
    where = tmp_path / "typo"
    assert main([*command, "--uri", str(where)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"tensordb: error: no warehouse at file://{where}: run `tensordb demo` or import data first"
    assert not where.exists()


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: c[0])
def test_read_command_on_an_empty_directory(tmp_path, capsys, command):
    assert main([*command, "--uri", str(tmp_path)]) == 2
    assert "no warehouse at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_sqlite_and_memory_uris(tmp_path, capsys):
    db_file = tmp_path / "index.db"
    assert main(["status", "--uri", f"sqlite:///{db_file}"]) == 2
    assert not db_file.exists()
    with tdb.connect(f"sqlite:///{db_file}", "s") as db:
        db.push_job({"epochs": 1})
    assert main(["jobs", "--uri", f"sqlite:///{db_file}", "--study", "s"]) == 0
    assert "queued" in capsys.readouterr().out
    assert main(["find", "--uri", "memory://nothing-here"]) == 2
    assert capsys.readouterr().err.count("no warehouse at") == 1


def test_the_store_says_whether_an_index_is_there(tmp_path):
    """connect(create=False) asks the plugin (store.registry.index_exists) instead of knowing its file names."""
    from tensordb_core.store.registry import index_exists

    assert not index_exists(str(tmp_path / "wh")) and not index_exists(f"sqlite:///{tmp_path / 'x.db'}")
    with tdb.connect(tmp_path / "wh", "s") as db:
        db.push_job({"epochs": 1})
    assert index_exists(str(tmp_path / "wh")) and index_exists(f"file://{tmp_path / 'wh'}")
    assert index_exists("memory://anything"), "a store that cannot tell is opened and looked into"


def test_connect_create_false(tmp_path):
    with pytest.raises(NotFound, match="no warehouse at"):
        tdb.connect(tmp_path / "none", create=False)
    assert not (tmp_path / "none").exists()
    with tdb.connect(tmp_path / "wh", "s") as db:
        db.import_data(np.zeros((2, 3), np.float32), np.arange(2))
    with tdb.connect(tmp_path / "wh", "s", create=False) as db:
        assert len(db.find_data()) == 2


def test_copy_from_a_missing_source(tmp_path, capsys):
    assert main(["copy", str(tmp_path / "nothing"), str(tmp_path / "dst")]) == 2
    assert "no warehouse at" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()
