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

from tensordb_core.errors import InvalidURI
from tensordb_core.store.hookspecs import SchemeInfo, hookimpl
from tensordb_core.store.uri import StoreURI

INDEX_FILE = "index.sqlite"
BLOB_DIR = "blobs"


#: The module of the factories the declarations name, imported only to open a store (embedded/factories.py).
_HERE = "tensordb_core.embedded.factories"


@hookimpl
def tensordb_schemes() -> list[SchemeInfo]:
    return [
        SchemeInfo("file", index=f"{_HERE}:open_file_index", blobs=f"{_HERE}:open_file_blobs",
                   description="embedded: a local directory (SQLite index + files)"),
        SchemeInfo("sqlite", index=f"{_HERE}:open_sqlite_index", description="embedded SQLite index file"),
        SchemeInfo("memory", index=f"{_HERE}:open_memory_index", blobs=f"{_HERE}:open_memory_blobs",
                   description="in-process stores for tests"),
    ]


@hookimpl
def tensordb_index_exists(index_uri: StoreURI) -> bool | None:
    """The SQLite file of a ``file://`` or ``sqlite://`` index is there (opening would create it)."""
    if index_uri.scheme == "file":
        return os.path.isfile(os.path.join(index_uri.path, INDEX_FILE))
    if index_uri.scheme == "sqlite":
        return os.path.isfile(sqlite_path(index_uri))
    return None


@hookimpl
def tensordb_default_blobs(index_uri: StoreURI) -> StoreURI | None:
    if index_uri.scheme in ("file", "memory"):
        return index_uri
    if index_uri.scheme == "sqlite":
        # file:///X means "blobs under X/blobs", so point at the sibling folder's parent name.
        return StoreURI("file", (), sqlite_path(index_uri) + ".d")
    return None


def sqlite_path(uri: StoreURI) -> str:
    """The index file a ``sqlite://`` URI names.  Why this spelling: SQLAlchemy's, three slashes a relative
    path and four an absolute one."""
    path = uri.path.removeprefix("/")
    if uri.host:
        path = os.path.join(uri.host, path)
    if not path:
        raise InvalidURI("sqlite URI without a file: write sqlite:///relative.db or sqlite:////abs/path.db")
    return os.path.abspath(os.path.expanduser(path))


def memory_name(uri: StoreURI) -> str:
    """The name of the in-process stores a ``memory://`` URI shares."""
    return (uri.host or "") + uri.path
