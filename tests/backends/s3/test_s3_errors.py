"""The botocore → TensorDB error mapping, for the failures a local server cannot produce on demand
(throttling, 5xx, dropped connections), and the scrubbing of secrets a server might echo.

These build botocore's own exception objects exactly as botocore raises them; the
end-to-end paths (404, 403, missing bucket, dead endpoint) are covered against
moto in test_s3_store.py and test_s3_credentials.py.
"""

from __future__ import annotations

import traceback

import pytest
from botocore import exceptions as bce

from tensordb_core.errors import (
    BackendError,
    BackendUnavailable,
    BlobNotFound,
    PermissionDenied,
    TransientError,
)
from tensordb_s3.errors import BucketNotFound, scrub, translate

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
WHERE = "s3://bkt/p?endpoint_url=http://minio:9000"
ENDPOINT = "http://minio:9000"


def client_error(code: str, status: int, message: str = "boom", op: str = "GetObject") -> bce.ClientError:
    response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return bce.ClientError(response, op)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (client_error("NoSuchKey", 404), BlobNotFound),
        (client_error("404", 404, "Not Found", "HeadObject"), BlobNotFound),
        (client_error("NoSuchBucket", 404), BucketNotFound),
        (client_error("AccessDenied", 403), PermissionDenied),
        (client_error("403", 403, "Forbidden", "HeadObject"), PermissionDenied),
        (client_error("InvalidAccessKeyId", 403), PermissionDenied),
        (client_error("SignatureDoesNotMatch", 403), PermissionDenied),
        (client_error("ExpiredToken", 400), PermissionDenied),
        (client_error("InvalidToken", 400), PermissionDenied),
        (client_error("SlowDown", 503), TransientError),
        (client_error("Throttling", 400), TransientError),
        (client_error("RequestTimeout", 400), TransientError),
        (client_error("InternalError", 500), TransientError),
        (client_error("ServiceUnavailable", 503), TransientError),
        (client_error("BadGateway", 502), TransientError),
        (client_error("TooManyRequests", 429), TransientError),
        (client_error("InvalidArgument", 400), BackendError),
        (bce.EndpointConnectionError(endpoint_url="http://minio:9000/bkt"), BackendUnavailable),
        (bce.ConnectTimeoutError(endpoint_url="http://minio:9000/bkt"), BackendUnavailable),
        (bce.ReadTimeoutError(endpoint_url="http://minio:9000/bkt"), TransientError),
        (bce.ConnectionClosedError(endpoint_url="http://minio:9000/bkt"), TransientError),
        (bce.ResponseStreamingError(error="reset by peer"), TransientError),
        (bce.NoCredentialsError(), PermissionDenied),
        (bce.ProfileNotFound(profile="lab"), PermissionDenied),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, type) else None,
)
def test_mapping(exc: BaseException, expected: type[Exception]) -> None:
    err = translate(exc, op="get", where=WHERE, key="a/b", bucket="bkt", endpoint=ENDPOINT)
    assert type(err) is expected
    assert WHERE in str(err) or "a/b" in str(err)


def test_transient_and_unavailable_are_the_retryable_kinds() -> None:
    assert issubclass(BackendUnavailable, ConnectionError)
    throttled = translate(client_error("SlowDown", 503), op="put", where=WHERE, key="k")
    assert isinstance(throttled, TransientError) and "retry" in str(throttled)


def test_missing_bucket_message_says_what_to_do() -> None:
    err = translate(client_error("NoSuchBucket", 404), op="get", where=WHERE, key="k", bucket="bkt")
    assert "'bkt'" in str(err) and "create_bucket=true" in str(err)
    assert isinstance(err, LookupError) and not isinstance(err, BlobNotFound)


def test_a_secret_echoed_by_the_server_is_scrubbed_from_the_error_and_its_cause() -> None:
    exc = client_error("InvalidArgument", 400, f"bad header x-amz-security-token: {SECRET}")
    err = translate(exc, op="put", where=WHERE, secrets=[SECRET], key="k")
    try:
        raise err from exc
    except BackendError as raised:
        text = "".join(traceback.format_exception(raised))
    assert SECRET not in text
    assert "***" in text
    assert SECRET not in str(exc.response)


def test_scrub_replaces_longest_first_and_leaves_short_values() -> None:
    assert scrub(f"a {SECRET} b", [SECRET[:10], SECRET]) == "a *** b"
    assert scrub("the token is fine", ["tok"]) == "the token is fine"  # too short to be a real secret
