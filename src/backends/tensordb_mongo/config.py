"""Read a ``mongodb://`` / ``mongodb+srv://`` store URI into driver and TensorDB settings.

Why a separate step: one URI carries two audiences.  MongoDB's own options
(``authSource``, ``replicaSet``, ``tls``, ``serverSelectionTimeoutMS``, ...) go to
PyMongo untouched; a few TensorDB settings (``write_batch_size``, ``bucket``,
...) are ours and are stripped before the URI reaches the driver, so PyMongo
never warns about options it does not know.  The database is the URI path
(``mongodb://host/lab`` → ``lab``); without one it is :data:`DEFAULT_DATABASE`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tensordb_core.errors import InvalidURI
from tensordb_core.store.kit.options import Option, OptionSet, whole
from tensordb_core.store.uri import StoreURI

SCHEMES = ("mongodb", "mongodb+srv")
DEFAULT_DATABASE = "tensordb"
DEFAULT_BUCKET = "blobs"
#: GridFS chunk size.  1 MiB: a multi-MiB sample chunk is a handful of chunk
#: documents (fewer per-document lookups and BSON frames than the 255 KiB GridFS
#: default), while a sparse ranged read over-fetches at most two chunks.  It
#: stays far below the 16 MiB BSON document limit.  See docs/backends/mongo.md.
DEFAULT_CHUNK_SIZE = 1024 * 1024
MAX_CHUNK_SIZE = 15 * 1024 * 1024
DEFAULT_WRITE_BATCH = 1000
DEFAULT_MAX_IN_FLIGHT = 8

_BAD_DB_CHARS = set('/\\. "$\x00')


def _collection_prefix(name: str, value: Any, where: str | None = None) -> str:
    """A GridFS bucket name: a non-empty collection-name prefix."""
    text = str(value)
    if not text or _BAD_DB_CHARS & set(text.replace(".", "")):
        raise InvalidURI(f"option {name}={text!r} is not a valid collection name prefix, for {where}")
    return text


#: The settings TensorDB owns; any other URI or keyword option belongs to PyMongo.
OPTIONS = OptionSet(
    "MongoDB TensorDB option",
    [
        Option("write_batch_size", DEFAULT_WRITE_BATCH, whole(1, 100_000)),
        Option("read_batch_size", None, whole(1, 1_000_000)),
        Option("chunk_size_bytes", DEFAULT_CHUNK_SIZE, whole(1024, MAX_CHUNK_SIZE)),
        Option("max_in_flight", DEFAULT_MAX_IN_FLIGHT, whole(1, 256)),
        # Seconds a _seq range may stay allocated but uncommitted; followers lag by this much (stream/follow.py).
        Option("tail_grace_s", 30, whole(0, 86_400)),
        Option("bucket", DEFAULT_BUCKET, _collection_prefix),
    ],
)
#: Every option name TensorDB owns; removed from the URI handed to PyMongo.
TENSORDB_OPTIONS = OPTIONS.names


@dataclass(frozen=True)
class MongoConfig:
    """Everything a store needs from its URI: where, which database, which TensorDB settings."""

    uri: StoreURI  #: the caller's URI, kept for ``repr`` and error messages (redacted there)
    driver_uri: StoreURI  #: the same URI without TensorDB options: what PyMongo gets (via ``reveal()``)
    database: str
    settings: dict[str, Any] = field(default_factory=dict)
    client_kwargs: dict[str, Any] = field(default_factory=dict, repr=False)

    def setting(self, name: str) -> Any:
        return self.settings[name]


def parse_config(uri: StoreURI, options: dict[str, Any] | None = None) -> MongoConfig:
    """Split ``uri`` (plus keyword ``options``, which win) into a :class:`MongoConfig`.

    Keyword options that are not TensorDB settings are passed to ``MongoClient``
    as keyword arguments (``tlsCAFile=...``, ``serverSelectionTimeoutMS=500``).
    """
    if uri.scheme not in SCHEMES:
        raise InvalidURI(f"{uri.redacted()} is not a MongoDB URI: use mongodb://host/db or mongodb+srv://host/db")
    if not uri.hosts:
        raise InvalidURI(f"{uri.redacted()} names no host: write mongodb://host:27017/db")
    if uri.scheme == "mongodb+srv" and (len(uri.hosts) != 1 or uri.port is not None):
        raise InvalidURI(f"{uri.redacted()}: mongodb+srv:// takes exactly one host name and no port")
    database = uri.path.lstrip("/") or DEFAULT_DATABASE
    if len(database.encode()) > 63 or _BAD_DB_CHARS & set(database):
        raise InvalidURI(
            f"{uri.redacted()}: database name {database!r} is not valid on MongoDB "
            "(at most 63 bytes, none of / \\ . space \" $)"
        )
    ours, client_kwargs = OPTIONS.split(dict(options or {}))
    driver_options = OPTIONS.split(uri.query)[1]  # PyMongo's own: checked by clients.check_driver_uri
    settings = OPTIONS.parse(uri, ours, shared=driver_options)
    driver_uri = uri.with_options(**{name: None for name in uri.query if name in OPTIONS})
    return MongoConfig(uri, driver_uri, database, settings, client_kwargs)

