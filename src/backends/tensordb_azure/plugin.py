"""Registers the Azure Blob Storage blob store with TensorDB.

Schemes: ``az://``, and the spellings users bring from MLflow, fsspec/adlfs and
Hadoop: ``abfs://``, ``abfss://``, ``wasb://``, ``wasbs://`` (see
:mod:`tensordb_azure.config`).  This module stays light on purpose:
azure-storage-blob is imported only when such a store is opened, and its
absence becomes a :class:`~tensordb_core.errors.MissingDependency` naming the
pip extra.
"""

from __future__ import annotations

from typing import Any

from tensordb_core.store.cloudkit import require_modules
from tensordb_core.store.hookspecs import SchemeInfo, hookimpl
from tensordb_core.store.uri import StoreURI

from .config import SCHEMES

EXTRA = "azure"
_DESCRIPTIONS = {
    "az": "Azure Blob Storage: az://container/prefix",
    "abfs": "Azure Blob Storage: abfs://container@account.dfs.core.windows.net/prefix",
    "abfss": "Azure Blob Storage: abfss://container@account.dfs.core.windows.net/prefix",
    "wasb": "Azure Blob Storage: wasb://container@account.blob.core.windows.net/prefix",
    "wasbs": "Azure Blob Storage: wasbs://container@account.blob.core.windows.net/prefix",
}


@hookimpl
def tensordb_schemes() -> list[SchemeInfo]:
    return [SchemeInfo(scheme, blobs=True, description=_DESCRIPTIONS[scheme], extra=EXTRA) for scheme in SCHEMES]


def require_sdk() -> None:
    """Import the client library or fail with the extra that installs it."""
    require_modules(
        ("azure.storage.blob", "azure.core", "requests"), scheme="az", package="azure-storage-blob", extra=EXTRA
    )


@hookimpl
def tensordb_open_blobs(uri: StoreURI, options: dict[str, Any]) -> Any:
    if uri.scheme not in SCHEMES:
        return None
    require_sdk()  # MissingDependency with the install hint, before anything touches the SDK
    from .store import AzureBlobStore

    return AzureBlobStore(uri, **options)
