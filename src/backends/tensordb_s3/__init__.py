"""TensorDB's S3 blob store backend: ``s3://bucket/prefix`` on AWS S3 or an S3-compatible server.

Importing this package is cheap: :class:`~tensordb_s3.store.S3BlobStore` (and
with it boto3) loads on first attribute access.  Open stores with
``tensordb_core.open_blobs("s3://bucket/prefix", **options)``.
"""

from __future__ import annotations

from typing import Any

from .errors import BucketNotFound

__all__ = ["BucketNotFound", "S3BlobStore", "S3Config"]


def __getattr__(name: str) -> Any:
    if name == "S3BlobStore":
        from .store import S3BlobStore

        return S3BlobStore
    if name == "S3Config":
        from .config import S3Config

        return S3Config
    raise AttributeError(f"module 'tensordb_s3' has no attribute {name!r}")
