"""Registers the Google Cloud Storage blob store (``gs://bucket/prefix``, also ``gcs://``) with TensorDB.

One declaration, no code: the registry imports :mod:`tensordb_gcs.store`
(and with it google-cloud-storage) only when such a store is opened, and
names the ``gcs`` extra if the library is missing.
"""

from __future__ import annotations

from tensordb_core.store.hookspecs import SchemeInfo, hookimpl

from .config import SCHEMES


@hookimpl
def tensordb_schemes() -> list[SchemeInfo]:
    return [
        SchemeInfo(scheme, blobs="tensordb_gcs.store:GCSBlobStore", extra="gcs",
                   description="Google Cloud Storage: gs://bucket/prefix")
        for scheme in SCHEMES
    ]
