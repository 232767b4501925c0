"""TensorDB's Google Cloud Storage blob store backend: ``gs://bucket/prefix`` on GCS or an emulator.

Importing this package is cheap: :class:`~tensordb_gcs.store.GCSBlobStore` (and
with it google-cloud-storage) loads on first attribute access.  Open stores
with ``tensordb_core.open_blobs("gs://bucket/prefix", **options)``; options,
credentials and the emulator are described in docs/backends/gcs.md.
"""

from __future__ import annotations

from typing import Any

from .errors import BucketNotFound

__all__ = ["BucketNotFound", "GCSBlobStore", "GCSConfig"]


def __getattr__(name: str) -> Any:
    if name == "GCSBlobStore":
        from .store import GCSBlobStore

        return GCSBlobStore
    if name == "GCSConfig":
        from .config import GCSConfig

        return GCSConfig
    raise AttributeError(f"module 'tensordb_gcs' has no attribute {name!r}")
