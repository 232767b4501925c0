"""The factories the embedded plugin's declarations name (embedded/plugin.py): they build its stores.

Why a module of their own: discovering plugins imports every plugin's
module (store/registry.py), so the plugin itself stays light, and the stores
are imported with this module, when a ``file://``, ``sqlite://`` or
``memory://`` URI is first opened, or ahead of it
(:func:`~tensordb_core.store.registry.import_factory`: a torch loader's
parent, once for all its workers).  A ``file://`` URI is read by two stores,
so each accepts the other's query options.
"""

from __future__ import annotations

import os
from typing import Any

from tensordb_core.embedded import file_blobs, sqlite_index
from tensordb_core.embedded.file_blobs import FileBlobStore
from tensordb_core.embedded.memory import MemoryIndexStore
from tensordb_core.embedded.memory_blobs import MemoryBlobStore
from tensordb_core.embedded.plugin import BLOB_DIR, INDEX_FILE, memory_name, sqlite_path
from tensordb_core.embedded.sqlite_index import SQLiteIndexStore
from tensordb_core.errors import InvalidURI
from tensordb_core.store.uri import StoreURI


def open_file_index(uri: StoreURI, **options: Any) -> SQLiteIndexStore:
    """``file:///dir``: the SQLite index at ``dir/index.sqlite``."""
    try:
        os.makedirs(uri.path, exist_ok=True)
    except OSError as exc:  # a file in the way, a name too long, no permission, a read-only disk
        raise InvalidURI(f"cannot use {uri.redacted()} as a warehouse directory: {exc.strerror or exc}") from exc
    return SQLiteIndexStore(os.path.join(uri.path, INDEX_FILE), uri=uri, shared=file_blobs.OPTIONS.names, **options)


def open_file_blobs(uri: StoreURI, **options: Any) -> FileBlobStore:
    """``file:///dir``: the files under ``dir/blobs/``."""
    return FileBlobStore(os.path.join(uri.path, BLOB_DIR), uri=uri, shared=sqlite_index.OPTIONS.names, **options)


def open_sqlite_index(uri: StoreURI, **options: Any) -> SQLiteIndexStore:
    """``sqlite:///path/index.db``: only the index."""
    return SQLiteIndexStore(sqlite_path(uri), uri=uri, **options)


def open_memory_index(uri: StoreURI, **options: Any) -> MemoryIndexStore:
    """``memory://name``: the in-process index of that name (options are ignored)."""
    return MemoryIndexStore.named(memory_name(uri), uri=uri)


def open_memory_blobs(uri: StoreURI, **options: Any) -> MemoryBlobStore:
    """``memory://name``: the in-process blob store of that name (options are ignored)."""
    return MemoryBlobStore.named(memory_name(uri), uri=uri)


__all__ = ["open_file_blobs", "open_file_index", "open_memory_blobs", "open_memory_index", "open_sqlite_index"]
