"""TensorDB: one warehouse for data, models, parameters, jobs and logs of every study.

Start with :func:`connect`::

    import tensordb_core as tdb
    db = tdb.connect("./warehouse", study="digits-mlp")
"""

from __future__ import annotations

from .errors import *  # noqa: F403  (the error hierarchy is part of the public API)
from .errors import TensorDBError
from .hookspecs import hookimpl
from .protocols import BlobStore, Cursor, IndexStore, new_id
from .registry import SchemeInfo, default_blobs, list_schemes, open_blobs, open_index, register, unregister
from .uri import StoreURI, parse_uri, redact

__version__ = "0.1.0"

__all__ = [
    "BlobStore",
    "Cursor",
    "IndexStore",
    "SchemeInfo",
    "StoreURI",
    "TensorDBError",
    "default_blobs",
    "hookimpl",
    "list_schemes",
    "new_id",
    "open_blobs",
    "open_index",
    "parse_uri",
    "redact",
    "register",
    "unregister",
]
