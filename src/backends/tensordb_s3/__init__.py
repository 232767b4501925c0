"""TensorDB's S3 blob store backend: ``s3://bucket/prefix`` on AWS S3 or an S3-compatible server.

Importing this package is cheap: :class:`~tensordb_s3.store.S3BlobStore` (and
with it boto3) loads on first attribute access.  Open stores with
``tensordb_core.open_blobs("s3://bucket/prefix", **options)``.
"""

from __future__ import annotations

from tensordb_core.store.kit import lazy_exports

from .errors import BucketNotFound

__all__ = ["BucketNotFound", "S3BlobStore", "S3Config"]


__getattr__ = lazy_exports(__name__, {"S3BlobStore": "store", "S3Config": "config"})
