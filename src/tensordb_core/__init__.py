"""TensorDB: one warehouse for data, models, parameters, jobs and logs of every study.

Start with :func:`connect`::

    import tensordb_core as tdb
    db = tdb.connect("./warehouse", study="digits-mlp")
"""

from __future__ import annotations

from tensordb_core.errors import *  # the error hierarchy is part of the public API
from tensordb_core.errors import TensorDBError
from tensordb_core.format.media import Encoded
from tensordb_core.store.hookspecs import SchemeInfo, hookimpl
from tensordb_core.store.protocols import (
    BlobCapabilities,
    BlobStore,
    Cursor,
    IndexCapabilities,
    IndexStore,
    new_id,
)
from tensordb_core.store.registry import default_blobs, list_schemes, open_blobs, open_index, register, unregister
from tensordb_core.store.uri import StoreURI, parse_uri, redact

__version__ = "0.1.0"


def __getattr__(name: str):
    # The warehouse layer is imported on first use so that `import tensordb_core`
    # (e.g. by a plugin's entry point) stays cheap.
    if name in ("TensorDB", "connect", "preload", "seed_uri"):
        from tensordb_core.warehouse import handle as warehouse

        return getattr(warehouse, name)
    raise AttributeError(f"module 'tensordb_core' has no attribute {name!r}")


__all__ = [
    "BlobCapabilities",
    "BlobStore",
    "Cursor",
    "Encoded",
    "IndexCapabilities",
    "IndexStore",
    "SchemeInfo",
    "StoreURI",
    "TensorDB",
    "TensorDBError",
    "connect",
    "default_blobs",
    "hookimpl",
    "list_schemes",
    "new_id",
    "open_blobs",
    "open_index",
    "parse_uri",
    "preload",
    "redact",
    "register",
    "seed_uri",
    "unregister",
]
