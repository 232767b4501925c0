"""Registers the MongoDB backend: ``mongodb://`` and ``mongodb+srv://`` serve both index and blobs.

One scheme, two stores: ``mongodb://host/lab`` opened as an index is the
collections of database ``lab``; opened as a blob store it is the GridFS bucket
``blobs`` in the same database.  So the default blob store of a Mongo index
is simply the same URI, and ``connect("mongodb://host/lab")`` needs nothing
else.  Both stores share one ``MongoClient`` (see :mod:`.clients`).

This module stays light: PyMongo is imported only when a store is opened.
"""

from __future__ import annotations

from typing import Any

from tensordb_core.errors import MissingDependency
from tensordb_core.store.hookspecs import SchemeInfo, hookimpl
from tensordb_core.store.uri import StoreURI

from .config import SCHEMES


def _require_pymongo() -> None:
    try:
        import gridfs  # noqa: F401
        import pymongo  # noqa: F401
    except ImportError as exc:
        raise MissingDependency("the MongoDB backend needs PyMongo: pip install 'tensordb[mongo]'") from exc


@hookimpl
def tensordb_schemes() -> list[SchemeInfo]:
    return [
        SchemeInfo(scheme, index=True, blobs=True, extra="mongo",
                   description="MongoDB: collections for the index, GridFS for blobs")
        for scheme in SCHEMES
    ]


@hookimpl
def tensordb_open_index(uri: StoreURI, options: dict[str, Any]) -> Any:
    if uri.scheme not in SCHEMES:
        return None
    _require_pymongo()
    from .index import MongoIndexStore

    return MongoIndexStore(uri, **options)


@hookimpl
def tensordb_open_blobs(uri: StoreURI, options: dict[str, Any]) -> Any:
    if uri.scheme not in SCHEMES:
        return None
    _require_pymongo()
    from .gridfs_blobs import GridFSBlobStore

    return GridFSBlobStore(uri, **options)


@hookimpl
def tensordb_default_blobs(index_uri: StoreURI) -> StoreURI | None:
    """GridFS in the index's own database: the same URI (index-only settings are ignored by the blob store)."""
    return index_uri if index_uri.scheme in SCHEMES else None
