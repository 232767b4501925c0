"""TensorDB's Google Cloud Storage blob store backend: ``gs://bucket/prefix`` on GCS or an emulator.

Importing this package is cheap: :class:`~tensordb_gcs.store.GCSBlobStore` (and
with it google-cloud-storage) loads on first attribute access.  Open stores
with ``tensordb_core.open_blobs("gs://bucket/prefix", **options)``; options,
credentials and the emulator are described in docs/backends/gcs.md.
"""

from __future__ import annotations

from tensordb_core.store.kit import lazy_exports

from .errors import BucketNotFound

__all__ = ["BucketNotFound", "GCSBlobStore", "GCSConfig"]


__getattr__ = lazy_exports(__name__, {"GCSBlobStore": "store", "GCSConfig": "config"})
