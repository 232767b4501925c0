"""Find backend plugins and build stores from URIs.

Plugins are discovered through the ``tensordb`` entry-point group (the
built-in embedded, Mongo, S3, GCS and Azure backends register exactly that
way) or registered at run time with :func:`register`.  Discovery is lazy and
happens once; entry-point modules are expected to be light (client libraries
are imported only when a store is opened).
"""

from __future__ import annotations

import threading
from importlib.metadata import entry_points
from typing import Any

import pluggy

from tensordb_core.errors import InvalidURI, UnknownScheme
from tensordb_core.store import hookspecs
from tensordb_core.store.hookspecs import SchemeInfo
from tensordb_core.store.protocols import BlobStore, IndexStore
from tensordb_core.store.uri import StoreURI, parse_uri

ENTRY_POINT_GROUP = "tensordb"


_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, loading entry points on first use."""
    global _manager
    with _lock:
        if _manager is None:
            pm = pluggy.PluginManager(hookspecs.PROJECT)
            pm.add_hookspecs(hookspecs)
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                if pm.get_plugin(ep.name) is None and not pm.is_blocked(ep.name):
                    pm.register(ep.load(), name=ep.name)
            _manager = pm
        return _manager


def register(plugin: object, name: str | None = None) -> str:
    """Register a plugin object or module at run time (tests, notebooks); returns its name."""
    pm = plugin_manager()
    registered = pm.register(plugin, name=name)
    if registered is None:
        raise ValueError(f"plugin {name or plugin!r} is already registered")
    return registered


def unregister(name: str) -> None:
    """Remove a plugin registered with :func:`register`."""
    plugin_manager().unregister(name=name)


def list_schemes() -> list[SchemeInfo]:
    """Every scheme every installed plugin serves, with the plugin's name as ``source``."""
    pm = plugin_manager()
    out: list[SchemeInfo] = []
    for impl in pm.hook.tensordb_schemes.get_hookimpls():
        for info in impl.function() or ():
            out.append(SchemeInfo(info.scheme, info.index, info.blobs, info.description, info.extra, impl.plugin_name))
    return sorted(out, key=lambda s: (s.scheme, s.source))


def _known(kind: str) -> str:
    names = sorted({s.scheme for s in list_schemes() if getattr(s, kind)})
    return ", ".join(names) or "(none)"


def open_index(uri: str | StoreURI, **options: Any) -> IndexStore:
    """Build the index store a URI names, via whichever plugin serves its scheme."""
    parsed = parse_uri(uri)
    store = plugin_manager().hook.tensordb_open_index(uri=parsed, options=dict(options))
    if store is None:
        raise UnknownScheme(
            f"no installed plugin offers an index store for {parsed.scheme}:// ({parsed.redacted()}); "
            f"index schemes known here: {_known('index')}"
        )
    return store


def open_blobs(uri: str | StoreURI, **options: Any) -> BlobStore:
    """Build the blob store a URI names, via whichever plugin serves its scheme."""
    parsed = parse_uri(uri)
    store = plugin_manager().hook.tensordb_open_blobs(uri=parsed, options=dict(options))
    if store is None:
        raise UnknownScheme(
            f"no installed plugin offers a blob store for {parsed.scheme}:// ({parsed.redacted()}); "
            f"blob schemes known here: {_known('blobs')}"
        )
    return store


def default_blobs(index_uri: str | StoreURI) -> StoreURI:
    """The blob store URI that pairs with ``index_uri`` when the caller names none."""
    parsed = parse_uri(index_uri)
    found = plugin_manager().hook.tensordb_default_blobs(index_uri=parsed)
    if found is None:
        raise InvalidURI(
            f"{parsed.scheme}:// has no default blob store; pass blobs=... (blob schemes known here: {_known('blobs')})"
        )
    return found
