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
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tensordb_core.errors import InvalidURI

from .config import MongoConfig
from .translate import driver_errors, scrub

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


def check_driver_uri(config: MongoConfig) -> None:
    """Refuse driver options PyMongo would only warn about and ignore (``tls=maybe``, a misspelt option).

    ``MongoClient`` drops an invalid URI option with a warning, so a typo in
    ``tlsCAFile`` would silently connect without it; here it is ``InvalidURI``.
    ``mongodb+srv`` URIs are checked in their ``mongodb`` form, so no DNS lookup happens here.
    """
    from pymongo import uri_parser
    from pymongo.errors import ConfigurationError
    from pymongo.errors import InvalidURI as DriverInvalidURI

    uri = config.driver_uri
    if uri.scheme == "mongodb+srv":  # SRV-only options are valid there; drop them for the mongodb:// form
        srv_only = {k for k, _ in uri.options if k.lower() in ("srvmaxhosts", "srvservicename")}
        uri = replace(uri.with_options(**dict.fromkeys(srv_only)), scheme="mongodb")
    text = uri.reveal()
    try:
        uri_parser.parse_uri(text, warn=False)
    except (ConfigurationError, DriverInvalidURI, ValueError) as exc:
        raise InvalidURI(f"{config.uri.redacted()}: {scrub(str(exc), config.uri)}") from None


def new_client(factory: Callable[..., Any], config: MongoConfig) -> Any:
    """``factory(uri, **kwargs)`` (``MongoClient`` or ``AsyncMongoClient``), any refusal typed.

    The driver checks keyword options with bare ``TypeError``/``ValueError``
    (``event_listeners=5``, ``maxPoolSize="abc"``): those are the caller's
    configuration, so they become :class:`InvalidURI` naming the redacted URI.
    """
    with driver_errors(config.uri, "connect"):
        try:
            return factory(config.driver_uri.reveal(), **client_kwargs(config))
        except (TypeError, ValueError) as exc:
            raise InvalidURI(f"{config.uri.redacted()}: invalid client option: {scrub(str(exc), config.uri)}") from None


def acquire(config: MongoConfig) -> MongoClient:
    """The shared client for ``config`` (created on first use); pair with :func:`release`."""
    from pymongo import MongoClient

    key = _key(config)
    with _lock:
        entry = _clients.get(key)
        if entry is None:
            check_driver_uri(config)
            client: MongoClient = new_client(MongoClient, config)
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
