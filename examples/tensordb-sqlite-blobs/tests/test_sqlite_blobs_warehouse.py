"""The plugin as a user reaches it (installed, by URI) and TensorDB's shipped warehouse checks over it.

The checks pair the embedded SQLite index with these blobs: import, query,
stream (the order must equal an all-embedded warehouse's), parameters,
architectures, then ``tensordb demo`` with two worker processes writing the
one SQLite file at once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tensordb_core as tdb
from tensordb_core.testing.warehouse_checks import check_warehouse_and_stream, run_cli_demo

from tensordb_sqlite_blobs.store import SQLiteBlobStore


def run_python(*args: str) -> str:
    """Run ``python *args`` in a fresh interpreter (nothing imported yet) and return what it printed."""
    out = subprocess.run([sys.executable, *args], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_the_entry_point_registers_the_scheme() -> None:
    [info] = [s for s in tdb.list_schemes() if s.scheme == "sqlite-blobs"]
    assert info.blobs and not info.index
    assert info.source == "sqlite-blobs"  # the entry point's name in pyproject.toml


def test_the_store_module_is_imported_only_when_a_uri_is_opened(tmp_path: Path) -> None:
    printed = run_python(
        "-c",
        "import sys, tensordb_core as tdb\n"
        "tdb.list_schemes()\n"
        "print('tensordb_sqlite_blobs.store' in sys.modules)\n"
        f"store = tdb.open_blobs('sqlite-blobs://{tmp_path}/blobs.db?max_workers=2')\n"
        "print('tensordb_sqlite_blobs.store' in sys.modules, type(store).__name__, store.max_workers)\n"
    )
    assert printed.splitlines() == ["False", "True SQLiteBlobStore 2"]


def test_open_blobs_by_uri_with_keyword_options(tmp_path: Path) -> None:
    store = tdb.open_blobs(f"sqlite-blobs://{tmp_path}/blobs.db", timeout=5)
    try:
        assert isinstance(store, SQLiteBlobStore) and store.timeout == 5.0
        store.put("k", b"v")
        assert store.get("k") == b"v"
    finally:
        store.close()


def test_tensordb_plugins_lists_it() -> None:
    printed = run_python("-m", "tensordb_core.cli", "plugins")
    [line] = [line for line in printed.splitlines() if line.startswith("sqlite-blobs")]
    assert "one SQLite file" in line


def test_warehouse_api_and_stream(tmp_path: Path) -> None:
    check_warehouse_and_stream(tmp_path, f"sqlite-blobs://{tmp_path}/blobs.db")


def test_demo_with_two_workers_on_one_sqlite_file(tmp_path: Path) -> None:
    run_cli_demo(str(tmp_path / "idx"), blobs=f"sqlite-blobs://{tmp_path}/blobs.db")
    store = SQLiteBlobStore(tdb.parse_uri(f"sqlite-blobs://{tmp_path}/blobs.db"))
    try:
        assert any(True for _ in store.list())  # the demo's chunks and parameters landed in the file
    finally:
        store.close()
