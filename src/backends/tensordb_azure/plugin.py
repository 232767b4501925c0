"""Registers the Azure Blob Storage blob store with TensorDB.

Schemes: ``az://``, and the spellings users bring from MLflow, fsspec/adlfs and
Hadoop: ``abfs://``, ``abfss://``, ``wasb://``, ``wasbs://`` (see
:mod:`tensordb_azure.config`).  One declaration per scheme, no code: the
registry imports :mod:`tensordb_azure.store` (and with it azure-storage-blob)
only when such a store is opened, and names the ``azure`` extra if the
library is missing.
"""

from __future__ import annotations

from tensordb_core.store.hookspecs import SchemeInfo, hookimpl

from .config import SCHEMES

_DESCRIPTIONS = {
    "az": "Azure Blob Storage: az://container/prefix",
    "abfs": "Azure Blob Storage: abfs://container@account.dfs.core.windows.net/prefix",
    "abfss": "Azure Blob Storage: abfss://container@account.dfs.core.windows.net/prefix",
    "wasb": "Azure Blob Storage: wasb://container@account.blob.core.windows.net/prefix",
    "wasbs": "Azure Blob Storage: wasbs://container@account.blob.core.windows.net/prefix",
}


@hookimpl
def tensordb_schemes() -> list[SchemeInfo]:
    return [
        SchemeInfo(scheme, blobs="tensordb_azure.store:AzureBlobStore", extra="azure",
                   description=_DESCRIPTIONS[scheme])
        for scheme in SCHEMES
    ]
