"""Translate google-cloud-storage, google-auth and requests failures into TensorDB's typed errors.

Why one function: every store operation funnels its exceptions through
:func:`translate`, so "404 means BlobNotFound, 429/5xx may be retried, an
unreachable endpoint names the (redacted) URI" holds for every call alike.
The SDK is imported inside the functions: this module is also imported by the
light package ``__init__`` (for :class:`BucketNotFound`).
"""

from __future__ import annotations

from tensordb_core.errors import (
    BackendError,
    BackendUnavailable,
    BlobNotFound,
    PermissionDenied,
    TensorDBError,
    TransientError,
)
from tensordb_core.store.cloudkit import TRANSIENT_STATUS, BucketNotFound, subject

__all__ = ["TRANSIENT_STATUS", "BucketNotFound", "status_of", "translate", "unwrap"]


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a Google API error, or None for transport failures."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def unwrap(exc: BaseException) -> BaseException:
    """The last real failure inside an exhausted ``RetryError``."""
    from google.api_core import exceptions as api_exceptions

    while isinstance(exc, api_exceptions.RetryError) and exc.cause is not None:
        exc = exc.cause
    return exc


def translate(exc: BaseException, *, op: str, key: str | None, where: str, endpoint: str) -> TensorDBError:
    """The TensorDB error for a failure of ``op`` on ``key`` in the store at ``where`` (a redacted URI).

    A 404 becomes :class:`BlobNotFound`; the caller decides beforehand whether
    the 404 meant a missing bucket (see ``GCSBlobStore._raise_if_bucket_missing``).
    """
    import requests
    from google.auth import exceptions as auth_exceptions

    inner = unwrap(exc)
    what = subject(op, key, where)
    if isinstance(inner, TensorDBError):
        return inner
    status = status_of(inner)
    if status is not None:
        detail = getattr(inner, "message", "") or type(inner).__name__
        if status == 404:
            return BlobNotFound(f"no blob {key!r} in {where}")
        if status in (401, 403):
            return PermissionDenied(
                f"{what}: GCS refused the credentials (HTTP {status}: {detail}); check the service account's "
                "roles on the bucket (roles/storage.objectAdmin) or the credentials= option"
            )
        if status in TRANSIENT_STATUS:
            return TransientError(f"{what}: GCS answered HTTP {status} ({detail}); retry later")
        return BackendError(f"{what}: GCS answered HTTP {status}: {detail}")
    if isinstance(inner, auth_exceptions.DefaultCredentialsError):
        return PermissionDenied(
            f"{what}: no usable Google credentials ({inner}); set GOOGLE_APPLICATION_CREDENTIALS to a key "
            "file, pass credentials=PATH, run 'gcloud auth application-default login', or use anonymous=true "
            "for public buckets"
        )
    if isinstance(inner, auth_exceptions.RefreshError):
        return PermissionDenied(f"{what}: could not obtain a Google access token ({type(inner).__name__})")
    if isinstance(inner, auth_exceptions.TransportError):
        return BackendUnavailable(
            f"cannot obtain a Google access token for {where}: the token service is unreachable "
            f"({type(inner).__name__}); check the network, proxy settings, or the credentials' token_uri"
        )
    if isinstance(inner, requests.ConnectionError):
        return BackendUnavailable(
            f"cannot reach GCS at {endpoint} for {where} ({type(inner).__name__}); check the network, "
            "STORAGE_EMULATOR_HOST / emulator_host, or proxy settings"
        )
    if isinstance(inner, (requests.Timeout, requests.exceptions.ChunkedEncodingError, ConnectionError, TimeoutError)):
        return TransientError(f"{what}: the connection to GCS failed mid-request ({type(inner).__name__})")
    return BackendError(f"{what}: unexpected {type(inner).__name__}: {inner}")
