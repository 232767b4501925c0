"""What only this store promises, beyond the shipped suite: its URI, its options, its limits as typed errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tensordb_core.errors import BackendError, BlobNotFound, InvalidURI, TransientError
from tensordb_core.store.uri import parse_uri

from tensordb_sqlite_blobs.store import SQLiteBlobStore


def open_store(path: Path, query: str = "", **options: object) -> SQLiteBlobStore:
    return SQLiteBlobStore(parse_uri(f"sqlite-blobs://{path}{query}"), **options)


@pytest.mark.parametrize("uri", ["sqlite-blobs://host/blobs.db", "sqlite-blobs:///", "sqlite-blobs://"])
def test_a_uri_needs_an_absolute_path_and_no_host(uri: str) -> None:
    with pytest.raises(InvalidURI, match="three slashes"):
        SQLiteBlobStore(parse_uri(uri))


def test_options_come_from_keywords_then_the_uri(tmp_path: Path) -> None:
    store = open_store(tmp_path / "a" / "blobs.db", "?max_workers=1&timeout=2.5", timeout=7)
    assert (store.max_workers, store.timeout) == (1, 7.0)
    assert (tmp_path / "a" / "blobs.db").exists()  # the folder and file are created on first use
    store.close()
    for bad in ("?max_workers=0", "?max_workers=many", "?timeout=soon"):
        with pytest.raises(InvalidURI):
            open_store(tmp_path / "b.db", bad)


def test_an_unknown_option_is_named_but_its_value_never_shown(tmp_path: Path) -> None:
    with pytest.raises(InvalidURI, match="secret_key") as info:
        open_store(tmp_path / "c.db", "?secret_key=hunter2")
    assert "hunter2" not in str(info.value)


def test_a_file_that_is_not_a_database_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not a SQLite file, just text long enough to have a header" * 10)
    with pytest.raises(BackendError, match="not a SQLite database") as info:
        open_store(path)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)  # the driver error stays as the cause
    assert f"sqlite-blobs://{path}" in str(info.value)


def test_one_writer_at_a_time_and_readers_never_wait(tmp_path: Path) -> None:
    store = open_store(tmp_path / "blobs.db", timeout=0.05)
    store.put("k", b"before")
    other = sqlite3.connect(tmp_path / "blobs.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process mid-write holds the write lock
        other.execute("UPDATE blobs SET data = x'00' WHERE key = 'k'")
        assert store.get("k") == b"before"  # WAL: the reader sees the last committed blob, without waiting
        with pytest.raises(TransientError, match="timeout") as info:
            store.put("k2", b"after")
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        other.execute("ROLLBACK")
        store.put("k2", b"after")  # the lock is free again: the store's connections were not left broken
        assert store.get("k2") == b"after"
    finally:
        other.close()
        store.close()


def test_the_layout_is_one_table_any_sqlite_client_reads(tmp_path: Path) -> None:
    store = open_store(tmp_path / "blobs.db")
    store.put("runs/1/model.json", b"{}")
    store.put("chunk", bytes(range(256)))
    store.close()
    with sqlite3.connect(tmp_path / "blobs.db") as db:
        rows = db.execute("SELECT key, length(data) FROM blobs ORDER BY key").fetchall()
    assert rows == [("chunk", 256), ("runs/1/model.json", 2)]
    reopened = open_store(tmp_path / "blobs.db")
    assert reopened.get("chunk", 250) == bytes(range(250, 256))
    with pytest.raises(BlobNotFound, match="sqlite-blobs://"):
        reopened.get("absent")
    reopened.close()
