"""TensorDB's MongoDB backend: an index store on collections and a blob store on GridFS.

Registered through the ``tensordb`` entry point ``mongo = "tensordb_mongo.plugin"``
for the ``mongodb://`` and ``mongodb+srv://`` schemes; the classes are also
importable directly.  PyMongo is imported only when a store is built
(``pip install 'tensordb[mongo]'``).  An asyncio index store lives in
:mod:`tensordb_mongo.aio`.  See docs/backends/mongo.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .gridfs_blobs import GridFSBlobStore
    from .index import MongoIndexStore

__all__ = ["GridFSBlobStore", "MongoIndexStore"]


def __getattr__(name: str) -> Any:
    """Import the store classes on first use, keeping ``import tensordb_mongo.plugin`` light."""
    if name == "MongoIndexStore":
        from .index import MongoIndexStore

        return MongoIndexStore
    if name == "GridFSBlobStore":
        from .gridfs_blobs import GridFSBlobStore

        return GridFSBlobStore
    raise AttributeError(f"module 'tensordb_mongo' has no attribute {name!r}")
