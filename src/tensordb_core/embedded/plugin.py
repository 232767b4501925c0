"""Registers the embedded stores through the same hooks a third-party plugin uses.

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

from tensordb_core.store.hookspecs import SchemeInfo, hookimpl
from tensordb_core.store.uri import StoreURI

INDEX_FILE = "index.sqlite"
BLOB_DIR = "blobs"


@hookimpl
def tensordb_schemes() -> list[SchemeInfo]:
    return [
        SchemeInfo("file", index=True, blobs=True, description="embedded: a local directory (SQLite index + files)"),
        SchemeInfo("sqlite", index=True, description="embedded SQLite index file"),
        SchemeInfo("memory", index=True, blobs=True, description="in-process stores for tests"),
    ]


@hookimpl
def tensordb_open_index(uri: StoreURI, options: dict[str, Any]) -> Any:
    if uri.scheme == "file":
        from tensordb_core.embedded.sqlite_index import SQLiteIndexStore

        os.makedirs(uri.path, exist_ok=True)
        return SQLiteIndexStore(os.path.join(uri.path, INDEX_FILE), uri=uri, **options)
    if uri.scheme == "sqlite":
        from tensordb_core.embedded.sqlite_index import SQLiteIndexStore

        return SQLiteIndexStore(_sqlite_path(uri), uri=uri, **options)
    if uri.scheme == "memory":
        from tensordb_core.embedded.memory import MemoryIndexStore

        return MemoryIndexStore.named(_memory_name(uri), uri=uri)
    return None


@hookimpl
def tensordb_open_blobs(uri: StoreURI, options: dict[str, Any]) -> Any:
    if uri.scheme == "file":
        from tensordb_core.embedded.file_blobs import FileBlobStore

        return FileBlobStore(os.path.join(uri.path, BLOB_DIR), uri=uri, **options)
    if uri.scheme == "memory":
        from tensordb_core.embedded.memory_blobs import MemoryBlobStore

        return MemoryBlobStore.named(_memory_name(uri), uri=uri)
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
        from tensordb_core.errors import InvalidURI

        raise InvalidURI("sqlite URI without a file: write sqlite:///relative.db or sqlite:////abs/path.db")
    return os.path.abspath(os.path.expanduser(path))


def _memory_name(uri: StoreURI) -> str:
    return (uri.host or "") + uri.path
