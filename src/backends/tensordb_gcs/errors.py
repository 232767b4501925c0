"""What google-cloud-storage, google-auth and requests failures mean: the GCS row of the kit's error table.

GCS speaks in HTTP statuses (404, 401/403, 409/412, 416, 429/5xx); transport
and credential failures are exception classes.  The kit's
:class:`~tensordb_core.store.kit.errors.ErrorTable` turns them into TensorDB's
typed errors; the SDK's ``RetryError`` is unwrapped to the last real failure
first.  A 404 is the same for a missing object and a missing bucket: the
store template asks once which it was.  The SDK is imported only when the
table is first used: this module is imported by the light package ``__init__``
too (for :class:`BucketNotFound`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tensordb_core.store.kit.errors import TRANSIENT_STATUS, BucketNotFound, ErrorTable, Kind, Rule

__all__ = ["ERRORS", "TRANSIENT_STATUS", "BucketNotFound", "status_of", "translate", "unwrap"]


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


def _types() -> Sequence[tuple[Any, Kind | Rule]]:
    import requests
    from google.auth import exceptions as auth_exceptions

    return (
        (
            auth_exceptions.DefaultCredentialsError,
            Rule(
                Kind.NO_CREDENTIALS,
                "set GOOGLE_APPLICATION_CREDENTIALS to a key file, pass credentials=PATH, run 'gcloud auth "
                "application-default login', or use anonymous=true for public buckets",
                service="Google",
            ),
        ),
        (
            auth_exceptions.RefreshError,
            Rule(Kind.DENIED, "could not obtain an access token: check the credentials file or account",
                 service="the Google token service"),
        ),
        (
            auth_exceptions.TransportError,
            Rule(Kind.UNAVAILABLE, "check the network, proxy settings, or the credentials' token_uri",
                 service="the Google token service"),
        ),
        (requests.ConnectionError, Kind.UNAVAILABLE),
        ((requests.Timeout, requests.exceptions.ChunkedEncodingError, ConnectionError, TimeoutError), Kind.TRANSIENT),
    )


ERRORS = ErrorTable(
    service="GCS",
    statuses={
        404: Kind.NOT_FOUND, 401: Kind.DENIED, 403: Kind.DENIED, 409: Kind.EXISTS, 412: Kind.EXISTS, 416: Kind.RANGE,
        **dict.fromkeys(TRANSIENT_STATUS, Kind.TRANSIENT),
    },
    types=_types,
    status_of=status_of,
    unwrap=unwrap,
    hints={
        Kind.DENIED: "check the service account's roles on the bucket (roles/storage.objectAdmin) or the "
        "credentials= option",
        Kind.UNAVAILABLE: "check the network, STORAGE_EMULATOR_HOST / emulator_host, or proxy settings",
        Kind.BUCKET_MISSING: "create it (gcloud storage buckets create gs://BUCKET)",
    },
)

#: ``translate(exc, *, op, key, where, endpoint, bucket, secrets)``: the TensorDB error for a GCS failure.
translate = ERRORS.translate
