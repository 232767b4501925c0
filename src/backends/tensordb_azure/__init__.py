"""TensorDB's Azure Blob Storage backend: ``az://container/prefix`` and the abfs[s]/wasb[s] spellings.

Importing this package is cheap: :class:`~tensordb_azure.store.AzureBlobStore`
(and with it azure-storage-blob) loads on first attribute access.  Open stores
with ``tensordb_core.open_blobs("az://container/prefix", **options)``; options,
credentials and Azurite are described in docs/backends/azure.md.
"""

from __future__ import annotations

from tensordb_core.store.kit import lazy_exports

from .errors import ContainerNotFound

__all__ = ["AzureBlobStore", "AzureConfig", "ContainerNotFound"]


__getattr__ = lazy_exports(__name__, {"AzureBlobStore": "store", "AzureConfig": "config"})
