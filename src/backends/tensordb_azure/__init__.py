"""TensorDB's Azure Blob Storage backend: ``az://container/prefix`` and the abfs[s]/wasb[s] spellings.

Importing this package is cheap: :class:`~tensordb_azure.store.AzureBlobStore`
(and with it azure-storage-blob) loads on first attribute access.  Open stores
with ``tensordb_core.open_blobs("az://container/prefix", **options)``; options,
credentials and Azurite are described in docs/backends/azure.md.
"""

from __future__ import annotations

from typing import Any

from .errors import ContainerNotFound

__all__ = ["AzureBlobStore", "AzureConfig", "ContainerNotFound"]


def __getattr__(name: str) -> Any:
    if name == "AzureBlobStore":
        from .store import AzureBlobStore

        return AzureBlobStore
    if name == "AzureConfig":
        from .config import AzureConfig

        return AzureConfig
    raise AttributeError(f"module 'tensordb_azure' has no attribute {name!r}")
