"""Find backend plugins and build stores from URIs.

Plugins are discovered through the ``tensordb`` entry-point group (the
built-in embedded, Mongo, S3, GCS and Azure backends register exactly that
way) or registered at run time with :func:`register`.  Discovery is lazy and
happens once; it imports each plugin module, never a backend's client library.

Opening a URI (fsspec-style): the plugins' :class:`SchemeInfo` declarations
are searched for the scheme, newest registration first; a dotted path
(``"tensordb_s3.store:S3BlobStore"``) is imported only now and called as
``Factory(uri, **options)``, and an ``ImportError`` of a library it needs
becomes :class:`~tensordb_core.errors.MissingDependency` naming the pip extra.
Schemes declared with ``True`` are built by the plugins' open hooks.
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points
from typing import Any

import pluggy

from tensordb_core.errors import InvalidURI, MissingDependency, UnknownScheme
from tensordb_core.store import hookspecs
from tensordb_core.store.hookspecs import SchemeInfo
from tensordb_core.store.protocols import BlobStore, IndexStore
from tensordb_core.store.uri import StoreURI, parse_uri

ENTRY_POINT_GROUP = "tensordb"
_KIND_WORDS = {"index": "an index store", "blobs": "a blob store"}


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
    """Register a plugin object or module at run time (tests, notebooks); returns its name.

    A plugin registered later wins a scheme that an earlier one also declares.
    """
    pm = plugin_manager()
    registered = pm.register(plugin, name=name)
    if registered is None:
        raise ValueError(f"plugin {name or plugin!r} is already registered")
    return registered


def unregister(name: str) -> None:
    """Remove a plugin registered with :func:`register`."""
    plugin_manager().unregister(name=name)


def _declarations() -> list[SchemeInfo]:
    """Every plugin's declarations, newest registration first (the order pluggy calls hooks in)."""
    pm = plugin_manager()
    out: list[SchemeInfo] = []
    for impl in reversed(pm.hook.tensordb_schemes.get_hookimpls()):
        for info in impl.function() or ():
            out.append(SchemeInfo(info.scheme, info.index, info.blobs, info.description, info.extra, impl.plugin_name))
    return out


def list_schemes() -> list[SchemeInfo]:
    """Every scheme every installed plugin serves, with the plugin's name as ``source``."""
    return sorted(_declarations(), key=lambda s: (s.scheme, s.source))


def _known(kind: str) -> str:
    names = sorted({s.scheme for s in _declarations() if getattr(s, kind)})
    return ", ".join(names) or "(none)"


def _missing(info: SchemeInfo, kind: str, exc: ImportError) -> MissingDependency:
    library = exc.name or "a library"
    how = info.install_hint or f"install the package that provides {library}"
    return MissingDependency(
        f"the {info.scheme}:// {'index' if kind == 'index' else 'blob'} store needs {library}, which is not "
        f"installed: {how}"
    )


def _is_dependency(exc: ImportError, module: str) -> bool:
    """True when a module outside the factory's own package is absent: a library to install, not a bug."""
    if isinstance(exc, MissingDependency) or not isinstance(exc, ModuleNotFoundError) or exc.name is None:
        return False
    top = module.split(".")[0]
    return not (exc.name == top or exc.name.startswith(top + "."))


def _factory(info: SchemeInfo, kind: str, path: str) -> Any:
    """Import ``path`` ("module:Factory") and return ``Factory``; a library its module needs that is not
    installed becomes :class:`~tensordb_core.errors.MissingDependency`."""
    module_name, _, attr = path.partition(":")
    try:
        factory: Any = importlib.import_module(module_name)
    except ImportError as exc:
        if not _is_dependency(exc, module_name):
            raise
        raise _missing(info, kind, exc) from exc
    for part in attr.split("."):
        factory = getattr(factory, part)
    return factory


def _build(info: SchemeInfo, kind: str, path: str, uri: StoreURI, options: dict[str, Any]) -> Any:
    """Import ``path`` ("module:Factory") and return ``Factory(uri, **options)``."""
    factory = _factory(info, kind, path)
    try:
        return factory(uri, **options)
    except ImportError as exc:  # a library the store imports when it is built
        module_name = path.partition(":")[0]
        if not _is_dependency(exc, module_name):
            raise
        raise _missing(info, kind, exc) from exc


def _declared(kind: str, parsed: StoreURI) -> tuple[SchemeInfo, str] | None:
    """The newest declaration of ``parsed``'s scheme with a factory path for ``kind``, and that path."""
    for info in _declarations():
        path = info.factory_path(kind)
        if info.scheme == parsed.scheme and path is not None:
            return info, path
    return None


def import_factory(kind: str, uri: str | StoreURI) -> bool:
    """Import the module that builds ``uri``'s ``kind`` ("index" or "blobs") store, building nothing; False
    when no declaration names a factory for its scheme.

    Why: a process about to fork workers (a torch ``DataLoader``) imports
    it once for all of them; each worker otherwise imported its store's
    modules and client library again before its first batch (the embedded
    store: 13 ms of CPU a worker with bytecode caches, ~30 ms without; S3's
    boto3 ~100 ms, GCS ~130, Azure ~230).  A scheme no declaration names a
    factory for imports nothing here (its plugin's hooks import when
    called, and opening it says whether any plugin serves it); a library
    the module needs that is missing raises as opening would.
    """
    found = _declared(kind, parse_uri(uri))
    if found is not None:
        _factory(found[0], kind, found[1])
    return found is not None


def _open(kind: str, uri: str | StoreURI, options: dict[str, Any]) -> Any:
    parsed = parse_uri(uri)
    found = _declared(kind, parsed)
    if found is not None:
        return _build(found[0], kind, found[1], parsed, options)
    hook = plugin_manager().hook.tensordb_open_index if kind == "index" else plugin_manager().hook.tensordb_open_blobs
    store = hook(uri=parsed, options=options)
    if store is None:
        raise UnknownScheme(
            f"no installed plugin offers {_KIND_WORDS[kind]} for {parsed.scheme}:// ({parsed.redacted()}); "
            f"{'index' if kind == 'index' else 'blob'} schemes known here: {_known(kind)}"
        )
    return store


def open_index(uri: str | StoreURI, **options: Any) -> IndexStore:
    """Build the index store a URI names, via whichever plugin serves its scheme."""
    store: IndexStore = _open("index", uri, options)
    return store


def open_blobs(uri: str | StoreURI, **options: Any) -> BlobStore:
    """Build the blob store a URI names, via whichever plugin serves its scheme."""
    store: BlobStore = _open("blobs", uri, options)
    return store


def index_exists(index_uri: str | StoreURI) -> bool:
    """False only when a plugin says no index is stored at ``index_uri`` (opening it would create one)."""
    return plugin_manager().hook.tensordb_index_exists(index_uri=parse_uri(index_uri)) is not False


def default_blobs(index_uri: str | StoreURI) -> StoreURI:
    """The blob store URI that pairs with ``index_uri`` when the caller names none."""
    parsed = parse_uri(index_uri)
    found = plugin_manager().hook.tensordb_default_blobs(index_uri=parsed)
    if found is None:
        raise InvalidURI(
            f"{parsed.scheme}:// has no default blob store; pass blobs=... (blob schemes known here: {_known('blobs')})"
        )
    return found
