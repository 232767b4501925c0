"""S3-specific behaviour against a real S3 REST server (moto): opening, conditional creates,
multipart uploads, the client's retry/pool settings, and the boto3 environment."""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any

import pytest
from s3kit import REGION, admin_client

import tensordb_core as tdb
from tensordb_core.errors import BackendUnavailable, BlobNotFound, TransientError
from tensordb_core.store.blobkit import content_key
from tensordb_s3 import BucketNotFound
from tensordb_s3.config import MiB
from tensordb_s3.store import S3BlobStore, is_content_address

pytestmark = pytest.mark.s3


def unique_uri(endpoint: str, bucket: str, **query: str) -> str:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return f"s3://{bucket}/t-{uuid.uuid4().hex}?endpoint_url={endpoint}&region={REGION}{extra}"


@pytest.fixture
def store(s3_uri: str, s3_credentials: dict[str, str]) -> Any:
    with tdb.open_blobs(s3_uri, **s3_credentials) as opened:
        yield opened


def test_open_blobs_builds_an_s3_store_under_the_prefix(store: S3BlobStore, s3_endpoint: str, s3_bucket: str) -> None:
    assert isinstance(store, S3BlobStore)
    assert store.endpoint_url == s3_endpoint
    store.put("a/b", b"hello")
    raw = admin_client(s3_endpoint).get_object(Bucket=s3_bucket, Key=store.prefix + "a/b")
    assert raw["Body"].read() == b"hello"  # the prefix is a real key prefix in the bucket
    assert store.prefix.startswith("t-") and store.prefix.endswith("/")


def test_content_addressed_put_is_a_conditional_create(store: S3BlobStore, s3_endpoint: str, s3_bucket: str) -> None:
    data = b"the real bytes"
    key = "chunks/" + content_key(data)
    assert is_content_address(key)
    # Someone else already stored an object under this address.  A conditional create must
    # leave it alone (If-None-Match: * answers 412, which put treats as "already there").
    admin_client(s3_endpoint).put_object(Bucket=s3_bucket, Key=store.prefix + key, Body=b"planted")
    store.put(key, data)
    store.put(key, data)  # idempotent, no error
    assert store.get(key) == b"planted"


def test_plain_keys_are_overwritten(store: S3BlobStore) -> None:
    store.put("name", b"one")
    store.put("name", b"two")
    assert store.get("name") == b"two"


def test_conditional_writes_can_be_turned_off(s3_endpoint: str, s3_bucket: str, s3_credentials: dict[str, str]) -> None:
    data = b"bytes"
    key = content_key(data)
    with tdb.open_blobs(unique_uri(s3_endpoint, s3_bucket, conditional_writes="false"), **s3_credentials) as st:
        admin_client(s3_endpoint).put_object(Bucket=s3_bucket, Key=st.prefix + key, Body=b"planted")
        st.put(key, data)
        assert st.get(key) == data  # an unconditional PUT overwrote it


def _multipart_store(endpoint: str, bucket: str, credentials: dict[str, str]) -> S3BlobStore:
    return S3BlobStore(
        unique_uri(endpoint, bucket),
        multipart_threshold="6MiB",
        multipart_chunksize="5MiB",
        max_workers=4,
        **credentials,
    )


def test_large_blobs_go_up_in_parts(s3_endpoint: str, s3_bucket: str, s3_credentials: dict[str, str]) -> None:
    data = bytes(range(256)) * (11 * MiB // 256) + b"tail"
    key = content_key(data)
    with _multipart_store(s3_endpoint, s3_bucket, s3_credentials) as st:
        st.put(key, data)
        head = admin_client(s3_endpoint).head_object(Bucket=s3_bucket, Key=st.prefix + key)
        assert head["ETag"].strip('"').endswith("-3")  # a multipart object of 5 + 5 + 1 MiB parts
        assert st.get(key) == data
        assert st.get(key, 5 * MiB - 2, 5 * MiB + 2) == data[5 * MiB - 2 : 5 * MiB + 2]  # across a part seam
        small = b"x" * (6 * MiB - 1)
        st.put("small", small)
        head = admin_client(s3_endpoint).head_object(Bucket=s3_bucket, Key=st.prefix + "small")
        assert "-" not in head["ETag"]  # below the threshold: one PUT


def test_multipart_skips_an_existing_content_address(
    s3_endpoint: str, s3_bucket: str, s3_credentials: dict[str, str]
) -> None:
    data = b"\x01" * (7 * MiB)
    key = content_key(data)
    admin = admin_client(s3_endpoint)
    with _multipart_store(s3_endpoint, s3_bucket, s3_credentials) as st:
        admin.put_object(Bucket=s3_bucket, Key=st.prefix + key, Body=b"planted")
        st.put(key, data)
        assert st.get(key) == b"planted"
        uploads = admin.list_multipart_uploads(Bucket=s3_bucket, Prefix=st.prefix).get("Uploads", [])
        assert uploads == []


def test_a_conditional_multipart_commit_that_loses_is_aborted(
    s3_endpoint: str, s3_bucket: str, s3_credentials: dict[str, str]
) -> None:
    """The race the HEAD check cannot close: the object appears while the parts upload."""
    data = b"\x02" * (7 * MiB)
    key = content_key(data)
    admin = admin_client(s3_endpoint)
    with _multipart_store(s3_endpoint, s3_bucket, s3_credentials) as st:
        admin.put_object(Bucket=s3_bucket, Key=st.prefix + key, Body=b"winner")
        with pytest.raises(Exception) as info:
            st._put_multipart(st.prefix + key, memoryview(data), conditional=True)
        assert getattr(info.value, "response", {})["Error"]["Code"] == "PreconditionFailed"
        assert admin.list_multipart_uploads(Bucket=s3_bucket, Prefix=st.prefix).get("Uploads", []) == []
        assert st.get(key) == b"winner"


def test_client_uses_adaptive_retries_and_a_pool_as_large_as_the_workers(
    s3_uri: str, s3_credentials: dict[str, str]
) -> None:
    with tdb.open_blobs(s3_uri, max_workers=48, max_attempts=7, **s3_credentials) as st:
        config = st._client.meta.config
        assert config.retries == {"mode": "adaptive", "total_max_attempts": 7}
        assert config.max_pool_connections >= 48
        assert config.s3["addressing_style"] == "path"
        keys = [f"k{i}" for i in range(100)]
        for k in keys:
            st.put(k, k.encode())
        assert list(st.get_many(keys)) == [k.encode() for k in keys]


def test_missing_bucket_says_how_to_fix_it(s3_endpoint: str, s3_credentials: dict[str, str]) -> None:
    bucket = f"missing-{uuid.uuid4().hex[:12]}"
    with pytest.raises(BucketNotFound) as info:
        tdb.open_blobs(unique_uri(s3_endpoint, bucket), **s3_credentials)
    assert bucket in str(info.value) and "create_bucket=true" in str(info.value)


def test_create_bucket_creates_it(s3_endpoint: str, s3_credentials: dict[str, str]) -> None:
    bucket = f"created-{uuid.uuid4().hex[:12]}"
    with tdb.open_blobs(unique_uri(s3_endpoint, bucket, create_bucket="true"), **s3_credentials) as st:
        st.put("k", b"v")
        assert st.get("k") == b"v"
    with tdb.open_blobs(unique_uri(s3_endpoint, bucket, create_bucket="true"), **s3_credentials) as st:
        assert list(st.list()) == []  # opening again with create_bucket is fine


def test_a_bucket_deleted_under_an_open_store(s3_endpoint: str, s3_credentials: dict[str, str]) -> None:
    bucket = f"doomed-{uuid.uuid4().hex[:12]}"
    with tdb.open_blobs(unique_uri(s3_endpoint, bucket, create_bucket="true"), **s3_credentials) as st:
        admin_client(s3_endpoint).delete_bucket(Bucket=bucket)
        with pytest.raises(BucketNotFound, match="create_bucket=true"):
            st.get("k")
        with pytest.raises(BucketNotFound):
            st.put("k", b"v")
        with pytest.raises(BucketNotFound):
            list(st.list())


def test_missing_key_is_blob_not_found(store: S3BlobStore) -> None:
    with pytest.raises(BlobNotFound) as info:
        store.get("nope/never")
    assert "nope/never" in str(info.value)
    assert isinstance(info.value.__cause__, Exception)  # translated at the boundary, cause kept


@pytest.mark.timeout(60)  # one connection attempt each; botocore's default backoff would take far longer
def test_dead_endpoint_is_backend_unavailable_quickly(s3_credentials: dict[str, str]) -> None:
    from serverkit import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    uri = (
        f"s3://bkt/p?endpoint_url={dead}&region={REGION}&max_attempts=1&connect_timeout=1"
        f"&aws_secret_access_key={s3_credentials['aws_secret_access_key']}"
        f"&aws_access_key_id={s3_credentials['aws_access_key_id']}"
    )
    with pytest.raises(BackendUnavailable) as info:
        tdb.open_blobs(uri)
    message = str(info.value)
    assert "s3://bkt/p" in message and dead in message  # names the (redacted) store and the endpoint
    assert "aws_secret_access_key=***" in message
    assert s3_credentials["aws_secret_access_key"] not in message
    with S3BlobStore(uri, check_bucket=False) as unchecked:  # an open store that loses its server
        assert unchecked._client.meta.config.retries["total_max_attempts"] == 1
        with pytest.raises(BackendUnavailable):
            unchecked.get("k")
        with pytest.raises(BackendUnavailable):
            unchecked.put("k", b"v")


def test_environment_supplies_endpoint_region_and_credentials(
    monkeypatch: pytest.MonkeyPatch, s3_endpoint: str, s3_bucket: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    with tdb.open_blobs(f"s3://{s3_bucket}/t-{uuid.uuid4().hex}") as st:
        assert st.endpoint_url == s3_endpoint
        assert st._client.meta.config.s3["addressing_style"] == "path"
        st.put("k", b"from the environment")
        assert st.get("k") == b"from the environment"


def test_the_uri_overrides_the_environment_and_options_override_the_uri(
    monkeypatch: pytest.MonkeyPatch, s3_endpoint: str, s3_bucket: str, s3_credentials: dict[str, str]
) -> None:
    from serverkit import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    prefix = f"t-{uuid.uuid4().hex}"
    with tdb.open_blobs(f"s3://{s3_bucket}/{prefix}?endpoint_url={s3_endpoint}", **s3_credentials) as st:
        assert st.endpoint_url == s3_endpoint
        st.put("k", b"v")
    uri = f"s3://{s3_bucket}/{prefix}?endpoint_url={dead}"
    with tdb.open_blobs(uri, endpoint_url=s3_endpoint, **s3_credentials) as st:
        assert st.endpoint_url == s3_endpoint
        assert st.get("k") == b"v"


def test_ranged_reads_fetch_only_the_range(store: S3BlobStore) -> None:
    data = hashlib.sha256(b"seed").digest() * 4096
    key = content_key(data)
    store.put(key, data)
    assert store.get(key, 100, 164) == data[100:164]
    assert store.get(key, len(data) - 3) == data[-3:]
    assert list(store.get_many([(key, 0, 1), key, (key, 5, 5)])) == [data[:1], data, b""]


def test_a_body_cut_short_is_a_transient_error_not_short_bytes(
    store: S3BlobStore, s3_endpoint: str, s3_bucket: str, s3_credentials: dict[str, str]
) -> None:
    """A connection dropped mid-body is retryable, on whole and ranged reads alike (it once escaped as 'unexpected')."""
    from cutproxy import CutProxy

    data = os.urandom(3 * MiB + 17)
    store.put("chunks/big", data)
    prefix = store.prefix.rstrip("/")
    port = int(s3_endpoint.rsplit(":", 1)[1])
    with CutProxy(port, body_bytes=100_000) as proxy:
        uri = f"s3://{s3_bucket}/{prefix}?endpoint_url=http://127.0.0.1:{proxy.port}&region={REGION}&max_attempts=1"
        with tdb.open_blobs(uri, check_bucket=False, **s3_credentials) as cut:
            with pytest.raises(TransientError) as info:
                cut.get("chunks/big")
            assert "unexpected" not in str(info.value)
            with pytest.raises(TransientError):
                cut.get("chunks/big", 10, 2_000_000)
        assert proxy.cuts >= 2
    assert store.get("chunks/big") == data  # the server itself was never short
