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

#: Integer settings TensorDB reads from the URI or keyword options: name -> (default, minimum, maximum).
_INT_SETTINGS: dict[str, tuple[int | None, int, int]] = {
    "write_batch_size": (DEFAULT_WRITE_BATCH, 1, 100_000),
    "read_batch_size": (None, 1, 1_000_000),
    "chunk_size_bytes": (DEFAULT_CHUNK_SIZE, 1024, MAX_CHUNK_SIZE),
    "max_in_flight": (DEFAULT_MAX_IN_FLIGHT, 1, 256),
    # Seconds a _seq range may stay allocated but uncommitted; followers lag by this much (tensordb_core.stream.follow).
    "tail_grace_s": (30, 0, 86_400),
}
_STR_SETTINGS: dict[str, str] = {"bucket": DEFAULT_BUCKET}
#: Every option name TensorDB owns; removed from the URI handed to PyMongo.
TENSORDB_OPTIONS = frozenset(_INT_SETTINGS) | frozenset(_STR_SETTINGS)
_BAD_DB_CHARS = set('/\\. "$\x00')


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
    options = dict(options or {})
    merged: dict[str, Any] = {k: v for k, v in uri.options if k in TENSORDB_OPTIONS}
    merged.update({k: v for k, v in options.items() if k in TENSORDB_OPTIONS})
    settings: dict[str, Any] = {}
    for name, (default, low, high) in _INT_SETTINGS.items():
        settings[name] = _int_setting(uri, name, merged.get(name, default), low, high)
    for name, default in _STR_SETTINGS.items():
        value = str(merged.get(name, default))
        if not value or _BAD_DB_CHARS & set(value.replace(".", "")):
            raise InvalidURI(f"{uri.redacted()}: {name}={value!r} is not a valid collection name prefix")
        settings[name] = value
    driver_uri = uri.with_options(**{name: None for name in TENSORDB_OPTIONS})
    client_kwargs = {k: v for k, v in options.items() if k not in TENSORDB_OPTIONS}
    return MongoConfig(uri, driver_uri, database, settings, client_kwargs)


def _int_setting(uri: StoreURI, name: str, value: Any, low: int, high: int) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or not low <= number <= high:
        raise InvalidURI(f"{uri.redacted()}: {name} must be an integer from {low} to {high}, not {value!r}")
    return number
