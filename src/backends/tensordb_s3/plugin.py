"""Registers the ``s3://`` blob store with TensorDB: one declaration, no code.

The registry imports :mod:`tensordb_s3.store` (and with it boto3) only when an
``s3://`` store is opened, and names the ``s3`` extra if boto3 is missing.  S3
is a blob store only: it offers no index store and no default blob store for
an index.
"""

from __future__ import annotations

from tensordb_core.store.hookspecs import SchemeInfo, hookimpl


@hookimpl
def tensordb_schemes() -> list[SchemeInfo]:
    return [
        SchemeInfo(
            "s3",
            blobs="tensordb_s3.store:S3BlobStore",
            extra="s3",
            description="Amazon S3 or an S3-compatible server (MinIO, Ceph, R2): s3://bucket/prefix",
        ),
    ]
