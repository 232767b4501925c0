"""Registers the Google Cloud Storage blob store (``gs://bucket/prefix``) with TensorDB.

This module stays light on purpose: google-cloud-storage is imported only when a
``gs://`` store is opened, and its absence becomes a
:class:`~tensordb_core.errors.MissingDependency` naming the pip extra.
"""

from __future__ import annotations

from typing import Any

from tensordb_core.store.cloudkit import require_modules
from tensordb_core.store.hookspecs import SchemeInfo, hookimpl
from tensordb_core.store.uri import StoreURI

from .config import SCHEMES

EXTRA = "gcs"


@hookimpl
def tensordb_schemes() -> list[SchemeInfo]:
    return [
        SchemeInfo(scheme, blobs=True, description="Google Cloud Storage: gs://bucket/prefix", extra=EXTRA)
        for scheme in SCHEMES
    ]


def require_sdk() -> None:
    """Import the client library or fail with the extra that installs it."""
    require_modules(
        ("google.cloud.storage", "google.auth", "requests"), scheme="gs", package="google-cloud-storage", extra=EXTRA
    )


@hookimpl
def tensordb_open_blobs(uri: StoreURI, options: dict[str, Any]) -> Any:
    if uri.scheme not in SCHEMES:
        return None
    require_sdk()  # MissingDependency with the install hint, before anything touches the SDK
    from .store import GCSBlobStore

    return GCSBlobStore(uri, **options)
