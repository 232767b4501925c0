"""What botocore's failures mean: the S3 row of the kit's error table, and scrubbing secrets it might echo.

The mapping (``NoSuchKey``/404 → not found, ``NoSuchBucket`` → bucket missing,
403 and the credential codes → denied, throttling and 5xx → transient, an
unreachable endpoint → unavailable, ...) is data; the kit's
:class:`~tensordb_core.store.kit.errors.ErrorTable` turns it into TensorDB's
typed errors.  botocore is imported only when the table is first used: this
module is imported by the light package ``__init__`` too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tensordb_core.store.kit.errors import TRANSIENT_STATUS, BucketNotFound, ErrorTable, Kind, Rule, scrub_secrets

__all__ = ["ERRORS", "BucketNotFound", "error_code", "http_status", "scrub", "scrub_exception", "translate"]

_DENIED = (
    "AccessDenied", "403", "401", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem", "InvalidSecurity", "UnauthorizedAccess",
    "AuthorizationHeaderMalformed",
)  # fmt: skip
_TRANSIENT = (
    "SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "RequestLimitExceeded",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "RequestTimeout",
    "RequestTimeoutException", "InternalError", "ServiceUnavailable", "503", "500", "ConditionalRequestConflict",
    "OperationAborted",
)  # fmt: skip


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ``ClientError`` ('' for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a botocore ``ClientError`` (None for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0) or None
    return None


#: Shorter values are not scrubbed: replacing "tok" would mangle every "token" in a message,
#: and no real AWS key id (20 characters), secret (40) or session token is that short.
MIN_SCRUB_LENGTH = 8


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value (of at least ``MIN_SCRUB_LENGTH`` characters) replaced by ``***``."""
    return scrub_secrets(text, secrets, min_length=MIN_SCRUB_LENGTH)


def scrub_exception(exc: BaseException, secrets: Iterable[str]) -> None:
    """Remove secrets from a driver exception in place, since it travels on as ``__cause__``."""
    secrets = tuple(s for s in secrets if s and len(s) >= MIN_SCRUB_LENGTH)
    if not secrets:
        return
    exc.args = tuple(scrub(a, secrets) if isinstance(a, str) else a for a in exc.args)
    kwargs = getattr(exc, "kwargs", None)  # botocore's BotoCoreError keeps its format fields here
    if isinstance(kwargs, dict):
        for k, v in list(kwargs.items()):
            if isinstance(v, str):
                kwargs[k] = scrub(v, secrets)
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and isinstance(response.get("Error"), dict):
        err: dict[str, Any] = response["Error"]
        for k, v in list(err.items()):
            if isinstance(v, str):
                err[k] = scrub(v, secrets)


_NO_CREDENTIALS = Rule(
    Kind.NO_CREDENTIALS,
    "pass aws_access_key_id and aws_secret_access_key as options, name a profile, or configure the AWS "
    "credential chain",
)


def _types() -> Sequence[tuple[Any, Kind | Rule]]:
    import botocore.exceptions as bce

    return (
        (bce.ConnectionError, Kind.UNAVAILABLE),  # refused, DNS, connect timeout, proxy, TLS
        (
            (bce.ReadTimeoutError, bce.ConnectionClosedError, bce.ResponseStreamingError, bce.IncompleteReadError,
             bce.HTTPClientError),
            Kind.TRANSIENT,
        ),
        (
            (bce.NoCredentialsError, bce.PartialCredentialsError, bce.ProfileNotFound, bce.CredentialRetrievalError,
             bce.TokenRetrievalError),
            _NO_CREDENTIALS,
        ),
    )


ERRORS = ErrorTable(
    service="S3",
    codes={
        "NoSuchBucket": Kind.BUCKET_MISSING,
        **dict.fromkeys(("NoSuchKey", "404", "NotFound"), Kind.NOT_FOUND),
        **dict.fromkeys(_DENIED, Kind.DENIED),
        **dict.fromkeys(_TRANSIENT, Kind.TRANSIENT),
        **dict.fromkeys(("PreconditionFailed", "BucketAlreadyOwnedByYou"), Kind.EXISTS),
        "InvalidRange": Kind.RANGE,
    },
    statuses={
        404: Kind.NOT_FOUND, 401: Kind.DENIED, 403: Kind.DENIED, 412: Kind.EXISTS, 416: Kind.RANGE,
        **dict.fromkeys(TRANSIENT_STATUS, Kind.TRANSIENT),
    },
    types=_types,
    code_of=error_code,
    status_of=http_status,
    hints={
        Kind.DENIED: "check the credentials (options, URI, AWS profile or environment) and the bucket policy",
        Kind.UNAVAILABLE: "check endpoint_url (or AWS_ENDPOINT_URL) and that the server is up",
        Kind.BUCKET_MISSING: "create it",
    },
    scrub=scrub_exception,
    scrub_text=scrub,
)

#: ``translate(exc, *, op, key, where, endpoint, bucket, secrets)``: the TensorDB error for a botocore failure.
translate = ERRORS.translate
