"""The plugin author's contract: the hooks a TensorDB backend plugin implements.

A plugin is a module (or object) with functions decorated by
``tensordb_core.hookimpl`` and named like the specs below, advertised through
the ``tensordb`` entry-point group::

    [project.entry-points.tensordb]
    mystore = "my_package.plugin"

Keep the module light: import your client library inside the ``open`` hooks,
so ``import tensordb_core`` never pays for backends the user does not use.
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
    """What a plugin says about one URI scheme it serves."""

    scheme: str
    index: bool = False
    blobs: bool = False
    description: str = ""
    extra: str | None = None  # pip extra that installs the client, e.g. "s3"
    source: str = field(default="", compare=False)  # filled in by the registry: plugin name

    @property
    def install_hint(self) -> str:
        return f"pip install 'tensordb[{self.extra}]'" if self.extra else ""


@hookspec
def tensordb_schemes() -> list[SchemeInfo]:
    """Declare the URI schemes this plugin serves.

    Return a list of :class:`SchemeInfo`, one per
    scheme, saying whether it offers an index store, a blob store or both, and
    which pip extra installs its client library.
    """


@hookspec(firstresult=True)
def tensordb_open_index(uri: StoreURI, options: dict[str, Any]) -> IndexStore | None:
    """Build an index store for ``uri`` or return None if this plugin does not serve its scheme.

    ``options`` are keyword settings from the caller (``connect(..., index_options=...)``)
    that override the URI's query options.  Raise
    :class:`~tensordb_core.errors.MissingDependency` when the client library is
    absent and :class:`~tensordb_core.errors.InvalidURI` for a malformed URI.
    """


@hookspec(firstresult=True)
def tensordb_open_blobs(uri: StoreURI, options: dict[str, Any]) -> BlobStore | None:
    """Build a blob store for ``uri`` or return None if this plugin does not serve its scheme."""


@hookspec(firstresult=True)
def tensordb_default_blobs(index_uri: StoreURI) -> StoreURI | None:
    """The blob store that goes with an index store when the caller names none.

    E.g. ``mongodb://host/db`` → GridFS in the same database; an embedded
    directory → the ``blobs/`` folder beside its SQLite file.  Return None if
    ``index_uri`` is not yours.
    """
