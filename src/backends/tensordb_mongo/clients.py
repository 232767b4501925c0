"""One ``MongoClient`` per server address and credentials, shared by the stores of a process.

Why share: a ``MongoClient`` owns a connection pool and monitoring threads per
server.  ``connect("mongodb://host/lab")`` opens an index store and a GridFS
blob store on the same URI; giving each its own client would double the
connections and threads for nothing.  Clients are reference counted and
closed when the last store using them closes.

The key is the full driver URI (password included, never printed) plus the
keyword arguments, so two users of one server never share a client.  It also
holds the process id: PyMongo clients must not cross ``fork()``, so a forked
child (DataLoader workers) gets its own client instead of its parent's.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from .config import MongoConfig
from .translate import driver_errors

if TYPE_CHECKING:
    from pymongo import MongoClient

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], list[Any]] = {}  # key -> [client, refcount]


def _key(config: MongoConfig) -> tuple[Any, ...]:
    kwargs = tuple(sorted((k, repr(v)) for k, v in config.client_kwargs.items()))
    return (os.getpid(), config.driver_uri.reveal(), kwargs)


def client_kwargs(config: MongoConfig) -> dict[str, Any]:
    """Keyword arguments for ``MongoClient``/``AsyncMongoClient``: ours, then the caller's."""
    kwargs: dict[str, Any] = {"document_class": dict, "tz_aware": False}
    if not any(k.lower() == "appname" for k, _ in config.driver_uri.options):
        kwargs["appname"] = "tensordb"
    kwargs.update(config.client_kwargs)
    return kwargs


def acquire(config: MongoConfig) -> MongoClient:
    """The shared client for ``config`` (created on first use); pair with :func:`release`."""
    from pymongo import MongoClient

    key = _key(config)
    with _lock:
        entry = _clients.get(key)
        if entry is None:
            with driver_errors(config.uri, "connect"):
                client: MongoClient = MongoClient(config.driver_uri.reveal(), **client_kwargs(config))
            entry = _clients[key] = [client, 0]
        entry[1] += 1
        return entry[0]


def release(config: MongoConfig, client: MongoClient) -> None:
    """Drop one reference to ``client``; close it when no store uses it any more."""
    key = _key(config)
    with _lock:
        entry = _clients.get(key)
        if entry is None or entry[0] is not client:
            return  # already closed, or created before a fork: not ours to close
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _clients[key]
    client.close()


def shared_count() -> int:
    """How many distinct clients are open in this process (for tests and diagnostics)."""
    with _lock:
        return sum(1 for key in _clients if key[0] == os.getpid())
