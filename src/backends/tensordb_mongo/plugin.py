"""Registers the MongoDB backend: ``mongodb://`` and ``mongodb+srv://`` serve both index and blobs.

One scheme, two stores: ``mongodb://host/lab`` opened as an index is the
collections of database ``lab``; opened as a blob store it is the GridFS bucket
``blobs`` in the same database.  So the default blob store of a Mongo index
is simply the same URI, and ``connect("mongodb://host/lab")`` needs nothing
else.  Both stores share one ``MongoClient`` (see :mod:`.clients`).

This module stays light: the registry imports the store modules (and PyMongo) only when a
store is opened, and names the ``mongo`` extra if PyMongo is missing.
"""

from __future__ import annotations

from tensordb_core.store.hookspecs import SchemeInfo, hookimpl
from tensordb_core.store.uri import StoreURI

from .config import SCHEMES


@hookimpl
def tensordb_schemes() -> list[SchemeInfo]:
    return [
        SchemeInfo(scheme, index="tensordb_mongo.index:MongoIndexStore",
                   blobs="tensordb_mongo.gridfs_blobs:GridFSBlobStore", extra="mongo",
                   description="MongoDB: collections for the index, GridFS for blobs")
        for scheme in SCHEMES
    ]


@hookimpl
def tensordb_default_blobs(index_uri: StoreURI) -> StoreURI | None:
    """GridFS in the index's own database: the same URI (index-only settings are ignored by the blob store)."""
    return index_uri if index_uri.scheme in SCHEMES else None
