"""Registers the embedded stores through the same declarations a third-party plugin uses.

Schemes:
* ``file:///dir`` (or a plain path): SQLite index at ``dir/index.sqlite`` and
  files under ``dir/blobs/``.
* ``sqlite:///path/index.db``: only the index; its default blobs live in
  ``path/index.db.blobs/``.
* ``memory://`` or ``memory://name``: in-process stores, shared per name, for tests.
"""

from __future__ import annotations

import os
from typing import Any

from tensordb_core.errors import InvalidURI
from tensordb_core.store.hookspecs import SchemeInfo, hookimpl
from tensordb_core.store.uri import StoreURI

INDEX_FILE = "index.sqlite"
BLOB_DIR = "blobs"


_HERE = "tensordb_core.embedded.plugin"


@hookimpl
def tensordb_schemes() -> list[SchemeInfo]:
    return [
        SchemeInfo("file", index=f"{_HERE}:open_file_index", blobs=f"{_HERE}:open_file_blobs",
                   description="embedded: a local directory (SQLite index + files)"),
        SchemeInfo("sqlite", index=f"{_HERE}:open_sqlite_index", description="embedded SQLite index file"),
        SchemeInfo("memory", index=f"{_HERE}:open_memory_index", blobs=f"{_HERE}:open_memory_blobs",
                   description="in-process stores for tests"),
    ]


# The factories the declarations name.  Each imports its store only when called, so discovering this
# plugin stays cheap.  A file:// URI is read by two stores, so each accepts the other's query options.


def open_file_index(uri: StoreURI, **options: Any) -> Any:
    """``file:///dir``: the SQLite index at ``dir/index.sqlite``."""
    from tensordb_core.embedded import file_blobs
    from tensordb_core.embedded.sqlite_index import SQLiteIndexStore

    try:
        os.makedirs(uri.path, exist_ok=True)
    except OSError as exc:  # a file in the way, a name too long, no permission, a read-only disk
        raise InvalidURI(f"cannot use {uri.redacted()} as a warehouse directory: {exc.strerror or exc}") from exc
    return SQLiteIndexStore(os.path.join(uri.path, INDEX_FILE), uri=uri, shared=file_blobs.OPTIONS.names, **options)


def open_file_blobs(uri: StoreURI, **options: Any) -> Any:
    """``file:///dir``: the files under ``dir/blobs/``."""
    from tensordb_core.embedded import sqlite_index
    from tensordb_core.embedded.file_blobs import FileBlobStore

    return FileBlobStore(os.path.join(uri.path, BLOB_DIR), uri=uri, shared=sqlite_index.OPTIONS.names, **options)


def open_sqlite_index(uri: StoreURI, **options: Any) -> Any:
    """``sqlite:///path/index.db``: only the index."""
    from tensordb_core.embedded.sqlite_index import SQLiteIndexStore

    return SQLiteIndexStore(_sqlite_path(uri), uri=uri, **options)


def open_memory_index(uri: StoreURI, **options: Any) -> Any:
    """``memory://name``: the in-process index of that name (options are ignored)."""
    from tensordb_core.embedded.memory import MemoryIndexStore

    return MemoryIndexStore.named(_memory_name(uri), uri=uri)


def open_memory_blobs(uri: StoreURI, **options: Any) -> Any:
    """``memory://name``: the in-process blob store of that name (options are ignored)."""
    from tensordb_core.embedded.memory_blobs import MemoryBlobStore

    return MemoryBlobStore.named(_memory_name(uri), uri=uri)


@hookimpl
def tensordb_index_exists(index_uri: StoreURI) -> bool | None:
    """The SQLite file of a ``file://`` or ``sqlite://`` index is there (opening would create it)."""
    if index_uri.scheme == "file":
        return os.path.isfile(os.path.join(index_uri.path, INDEX_FILE))
    if index_uri.scheme == "sqlite":
        return os.path.isfile(_sqlite_path(index_uri))
    return None


@hookimpl
def tensordb_default_blobs(index_uri: StoreURI) -> StoreURI | None:
    if index_uri.scheme in ("file", "memory"):
        return index_uri
    if index_uri.scheme == "sqlite":
        # file:///X means "blobs under X/blobs", so point at the sibling folder's parent name.
        return StoreURI("file", (), _sqlite_path(index_uri) + ".d")
    return None


def _sqlite_path(uri: StoreURI) -> str:
    # sqlite:///relative.db -> path "/relative.db"? Follow SQLAlchemy: three slashes = relative, four = absolute.
    path = uri.path.removeprefix("/")
    if uri.host:
        path = os.path.join(uri.host, path)
    if not path:

        raise InvalidURI("sqlite URI without a file: write sqlite:///relative.db or sqlite:////abs/path.db")
    return os.path.abspath(os.path.expanduser(path))


def _memory_name(uri: StoreURI) -> str:
    return (uri.host or "") + uri.path
