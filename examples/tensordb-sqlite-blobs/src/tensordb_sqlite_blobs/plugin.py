"""Registers ``sqlite-blobs://`` with TensorDB: the whole plugin is one declaration.

TensorDB imports this module whenever it discovers plugins (every process that
opens a store), so it stays light: it names the store class as a dotted
``"module:Class"`` path, and TensorDB imports that module only when a
``sqlite-blobs://`` URI is opened, then builds ``SQLiteBlobStore(uri, **options)``.
"""

from __future__ import annotations

from tensordb_core import SchemeInfo, hookimpl


@hookimpl
def tensordb_schemes() -> list[SchemeInfo]:
    return [
        SchemeInfo(
            "sqlite-blobs",
            blobs="tensordb_sqlite_blobs.store:SQLiteBlobStore",
            extra=None,  # sqlite3 is in the standard library: nothing more to install
            description="example plugin: blobs as rows of one SQLite file, sqlite-blobs:///path/blobs.db",
        )
    ]
