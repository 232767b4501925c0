"""Registers the ``s3://`` blob store through TensorDB's plugin hooks.

Kept light on purpose: this module is imported whenever TensorDB discovers its
plugins, so boto3 is imported only inside :func:`tensordb_open_blobs`, when an
``s3://`` store is actually opened.  S3 is a blob store only: it offers no
index store and no default blob store for an index.
"""

from __future__ import annotations

from typing import Any

from tensordb_core.store.hookspecs import SchemeInfo, hookimpl
from tensordb_core.store.uri import StoreURI

SCHEME = "s3"


@hookimpl
def tensordb_schemes() -> list[SchemeInfo]:
    return [
        SchemeInfo(
            SCHEME,
            blobs=True,
            extra="s3",
            description="Amazon S3 or an S3-compatible server (MinIO, Ceph, R2): s3://bucket/prefix",
        ),
    ]


@hookimpl
def tensordb_open_blobs(uri: StoreURI, options: dict[str, Any]) -> Any:
    if uri.scheme != SCHEME:
        return None
    from .client import import_boto3

    import_boto3()  # MissingDependency with the install hint, before any parsing that needs it
    from .store import S3BlobStore

    return S3BlobStore(uri, **options)
