"""Translate botocore failures into TensorDB's typed errors, scrubbed of secrets.

Why one function: every S3 call goes through :func:`translate`, so the mapping
(404 → ``BlobNotFound``, 403 → ``PermissionDenied``, throttling/5xx →
``TransientError``, unreachable endpoint → ``BackendUnavailable``) is the same
for every operation, and no message escapes without its secrets replaced.
botocore is imported inside the function: this module is imported by the light
plugin code too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tensordb_core.errors import (
    BackendError,
    BackendUnavailable,
    BlobNotFound,
    PermissionDenied,
    TensorDBError,
    TransientError,
)
from tensordb_core.store.cloudkit import BucketNotFound, scrub_secrets

NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
BUCKET_MISSING_CODES = frozenset({"NoSuchBucket"})
DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "403",
        "401",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
        "AccountProblem",
        "InvalidSecurity",
        "UnauthorizedAccess",
        "AuthorizationHeaderMalformed",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "503",
        "500",
        "ConditionalRequestConflict",
        "OperationAborted",
    }
)


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ``ClientError`` ('' for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def http_status(exc: BaseException) -> int:
    """The HTTP status of a botocore ``ClientError`` (0 for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


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


def translate(
    exc: BaseException,
    *,
    action: str,
    where: str,
    secrets: Iterable[str] = (),
    key: str | None = None,
    bucket: str | None = None,
) -> TensorDBError:
    """The TensorDB error for a botocore failure while doing ``action`` on ``where`` (a redacted URI).

    The caller raises the result ``from exc``; ``exc`` is scrubbed of ``secrets`` first.
    """
    import botocore.exceptions as bce

    secrets = tuple(secrets)
    scrub_exception(exc, secrets)
    if isinstance(exc, TensorDBError):
        return exc
    code, status = error_code(exc), http_status(exc)
    detail = scrub(str(exc), secrets)
    subject = f"blob {key!r} in {where}" if key is not None else where
    if isinstance(exc, bce.ClientError):
        if code in BUCKET_MISSING_CODES:
            return BucketNotFound(
                f"bucket {bucket!r} does not exist ({where}): create it, or open the store with "
                "create_bucket=true (an option, or ?create_bucket=true in the URI)"
            )
        if code in NOT_FOUND_CODES or status == 404:
            return BlobNotFound(f"{subject} not found")
        if code in DENIED_CODES or status in (401, 403):
            return PermissionDenied(
                f"S3 refused to {action} {subject}: {code or status}; check the credentials "
                "(options, URI, AWS profile or environment) and the bucket policy"
            )
        if code in TRANSIENT_CODES or status == 429 or status >= 500:
            return TransientError(f"S3 could not {action} {subject} after retries: {code or status}; retry later")
        return BackendError(f"S3 failed to {action} {subject}: {detail}")
    if isinstance(exc, bce.ConnectionError):  # refused, DNS, connect timeout, proxy, TLS
        return BackendUnavailable(
            f"cannot reach the S3 endpoint for {where} to {action}: {detail}; check endpoint_url "
            "(or AWS_ENDPOINT_URL) and that the server is up"
        )
    if isinstance(
        exc,
        (
            bce.ReadTimeoutError,
            bce.ConnectionClosedError,
            bce.ResponseStreamingError,
            bce.IncompleteReadError,
            bce.HTTPClientError,
        ),
    ):
        return TransientError(f"connection dropped while trying to {action} {subject}: {detail}; retry")
    if isinstance(
        exc,
        (
            bce.NoCredentialsError,
            bce.PartialCredentialsError,
            bce.ProfileNotFound,
            bce.CredentialRetrievalError,
            bce.TokenRetrievalError,
        ),
    ):
        return PermissionDenied(
            f"no usable AWS credentials to {action} {where}: {detail}; pass aws_access_key_id and "
            "aws_secret_access_key as options, name a profile, or configure the AWS credential chain"
        )
    return BackendError(f"S3 failed to {action} {subject}: {type(exc).__name__}: {detail}")
