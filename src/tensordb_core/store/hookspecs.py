"""The plugin author's contract: how a TensorDB backend plugin says which URI schemes it serves.

A plugin is a module (or object) with functions decorated by
``tensordb_core.hookimpl`` and named like the specs below, advertised through
the ``tensordb`` entry-point group::

    [project.entry-points.tensordb]
    mystore = "my_package.plugin"

Most plugins implement one hook, :func:`tensordb_schemes`, and name their
store classes by dotted path (fsspec-style)::

    @hookimpl
    def tensordb_schemes():
        return [SchemeInfo("kv", blobs="my_package.store:KVBlobStore", extra="kv",
                           description="blobs in a key-value file: kv:///path")]

The registry imports ``my_package.store`` only when a ``kv://`` store is
opened, builds it as ``KVBlobStore(uri, **options)``, and turns an
``ImportError`` of a library the store needs into
:class:`~tensordb_core.errors.MissingDependency` naming the pip extra.  So the
plugin module stays light without any effort, and writes no scheme checks.
The ``tensordb_open_index`` / ``tensordb_open_blobs`` hooks remain for plugins
whose stores need more than ``Factory(uri, **options)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from tensordb_core.store.protocols import BlobStore, IndexStore
    from tensordb_core.store.uri import StoreURI

PROJECT = "tensordb"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class SchemeInfo:
    """What a plugin says about one URI scheme it serves.

    ``index`` and ``blobs`` each say how a store of that kind is built:

    * ``"package.module:Factory"`` — a dotted path (``Factory`` may be
      ``Class.attribute``).  The registry imports ``package.module`` only when
      the scheme is opened and calls ``Factory(uri, **options)`` with the
      parsed :class:`~tensordb_core.store.uri.StoreURI` and the caller's
      keyword options;
    * ``True`` — served by this plugin's ``tensordb_open_index`` /
      ``tensordb_open_blobs`` hook (custom logic);
    * ``False`` (the default) — not offered.

    ``extra`` is the pip extra that installs the client library
    (``pip install 'tensordb[<extra>]'``), named when that library is missing.
    ``source`` is filled in by the registry with the plugin's name.
    """

    scheme: str
    index: str | bool = False
    blobs: str | bool = False
    description: str = ""
    extra: str | None = None
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for kind in ("index", "blobs"):
            value = getattr(self, kind)
            if isinstance(value, str) and not _is_dotted_path(value):
                raise ValueError(
                    f"SchemeInfo({self.scheme!r}, {kind}={value!r}): write 'package.module:Factory', or True for "
                    "a store built by the plugin's open hook"
                )

    @property
    def install_hint(self) -> str:
        return f"pip install 'tensordb[{self.extra}]'" if self.extra else ""

    def factory_path(self, kind: str) -> str | None:
        """The dotted path that builds this scheme's ``kind`` ("index" or "blobs") store, or None (hook or absent)."""
        value = self.index if kind == "index" else self.blobs
        return value if isinstance(value, str) else None


def _is_dotted_path(value: str) -> bool:
    module, colon, attr = value.partition(":")
    return bool(colon) and all(p.isidentifier() for p in module.split(".")) and all(
        p.isidentifier() for p in attr.split(".")
    )


@hookspec
def tensordb_schemes() -> list[SchemeInfo]:
    """Declare the URI schemes this plugin serves.

    Return a list of :class:`SchemeInfo`, one per scheme, naming the factory
    of its index store and of its blob store by dotted path (or ``True`` where
    the plugin's open hook builds it), and the pip extra that installs its
    client library.
    """


@hookspec(firstresult=True)
def tensordb_open_index(uri: StoreURI, options: dict[str, Any]) -> IndexStore | None:
    """Build an index store for ``uri`` or return None if this plugin does not serve its scheme.

    Only for schemes declared with ``index=True``: a dotted path in
    :class:`SchemeInfo` needs no hook.  ``options`` are keyword settings from
    the caller (``connect(..., index_options=...)``) that override the URI's
    query options.  Raise :class:`~tensordb_core.errors.MissingDependency` when
    the client library is absent and :class:`~tensordb_core.errors.InvalidURI`
    for a malformed URI.
    """


@hookspec(firstresult=True)
def tensordb_open_blobs(uri: StoreURI, options: dict[str, Any]) -> BlobStore | None:
    """Build a blob store for ``uri`` or return None; only for schemes declared with ``blobs=True``."""


@hookspec(firstresult=True)
def tensordb_index_exists(index_uri: StoreURI) -> bool | None:
    """Whether an index is already stored at ``index_uri``, asked without opening it.

    Answer False only when opening would *create* the index (an embedded file
    that is absent), so ``connect(..., create=False)`` can refuse a mistyped
    path without leaving an empty warehouse behind.  Return None if
    ``index_uri`` is not yours or you cannot tell cheaply (a server: the caller
    then opens it and finds its collections empty).
    """


@hookspec(firstresult=True)
def tensordb_default_blobs(index_uri: StoreURI) -> StoreURI | None:
    """The blob store that goes with an index store when the caller names none.

    E.g. ``mongodb://host/db`` → GridFS in the same database; an embedded
    directory → the ``blobs/`` folder beside its SQLite file.  Return None if
    ``index_uri`` is not yours.
    """
