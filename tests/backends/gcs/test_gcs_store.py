"""GCS-specific behaviour against fake-gcs-server: opening, credentials, conditional creates,
resumable uploads, bucket checks, error translation and redaction."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from gcskit import SMALL_UPLOADS, admin_client
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

import tensordb_core as tdb
from serverkit import dead_port, exception_texts
from tensordb_core.errors import (
    BackendError,
    BackendUnavailable,
    BlobNotFound,
    InvalidURI,
    MissingDependency,
    PermissionDenied,
    TransientError,
)
from tensordb_core.store.blobkit import content_key
from tensordb_core.testing.blob_suite import payload
from tensordb_gcs import BucketNotFound
from tensordb_gcs.config import GCSConfig
from tensordb_gcs.errors import translate
from tensordb_gcs.store import GCSBlobStore, resolve_credentials

pytestmark = pytest.mark.gcs

#: Settings that make an unreachable endpoint fail at once (no retries, short connect timeout).
FAIL_FAST = {"retry_timeout": 0, "connect_timeout": 1}


@pytest.fixture
def store(gcs_uri: str) -> Iterator[GCSBlobStore]:
    with tdb.open_blobs(gcs_uri, **SMALL_UPLOADS) as opened:
        yield opened


def generation(endpoint: str, bucket: str, name: str) -> int:
    """The object's generation, read past the store under test: it changes whenever the object is rewritten."""
    client = admin_client(endpoint)
    try:
        blob = client.bucket(bucket).get_blob(name)
        assert blob is not None, name
        return int(blob.generation)
    finally:
        client.close()


# -- opening ---------------------------------------------------------------------------------------


def test_open_blobs_builds_a_gcs_store(gcs_uri: str, gcs_prefix: str) -> None:
    with tdb.open_blobs(gcs_uri) as store:
        assert isinstance(store, GCSBlobStore)
        assert isinstance(store, tdb.BlobStore)
        assert store.bucket == "tensordb-test" and store.prefix == gcs_prefix + "/"
        assert store.endpoint_url == gcs_uri.split("emulator_host=")[1]
        store.put("k", b"v")
        assert store.get("k") == b"v"


def test_the_gcs_alias_scheme_opens_the_same_bucket(gcs_uri: str) -> None:
    with tdb.open_blobs(gcs_uri) as a, tdb.open_blobs("gcs" + gcs_uri[2:]) as b:
        a.put("shared", b"one")
        assert b.get("shared") == b"one"


def test_plugin_lists_its_schemes() -> None:
    schemes = {s.scheme: s for s in tdb.list_schemes() if s.source == "gcs"}
    assert set(schemes) == {"gs", "gcs"}
    assert all(s.blobs and not s.index and s.extra == "gcs" for s in schemes.values())


def test_prefix_isolates_stores(gcs_endpoint: str, gcs_bucket: str) -> None:
    base = f"gs://{gcs_bucket}/iso-{uuid.uuid4().hex}"
    with (
        tdb.open_blobs(f"{base}/a?emulator_host={gcs_endpoint}") as a,
        tdb.open_blobs(f"{base}/b?emulator_host={gcs_endpoint}") as b,
    ):
        a.put("k", b"in a")
        assert not b.exists("k")
        assert list(b.list()) == []
        assert list(a.list()) == ["k"]


def test_storage_emulator_host_environment_variable_is_honoured(
    monkeypatch: pytest.MonkeyPatch, gcs_endpoint: str, gcs_bucket: str, gcs_prefix: str
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    with tdb.open_blobs(f"gs://{gcs_bucket}/{gcs_prefix}") as store:
        assert store.endpoint_url == gcs_endpoint
        store.put("via-env", b"ok")
    with tdb.open_blobs(f"gs://{gcs_bucket}/{gcs_prefix}?emulator_host={gcs_endpoint}") as direct:
        assert direct.get("via-env") == b"ok"


def test_emulator_option_beats_the_environment(monkeypatch: pytest.MonkeyPatch, gcs_uri: str) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{dead_port()}")
    with tdb.open_blobs(gcs_uri) as store:  # the URI's emulator_host wins: it is the live one
        store.put("k", b"v")


def test_client_library_is_imported_only_when_a_gs_store_opens(gcs_uri: str) -> None:
    code = (
        "import sys, tensordb_core as t\n"
        "t.list_schemes()\n"
        "import tensordb_gcs, tensordb_gcs.plugin\n"
        "assert 'google.cloud.storage' not in sys.modules, 'imported too early'\n"
        f"t.open_blobs({gcs_uri!r}).close()\n"
        "assert 'google.cloud.storage' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env={**os.environ, "NO_GCE_CHECK": "true"})


def test_missing_client_library_names_the_extra(monkeypatch: pytest.MonkeyPatch, gcs_uri: str) -> None:
    monkeypatch.delitem(sys.modules, "tensordb_gcs.store", raising=False)  # as if never imported in this process
    monkeypatch.setitem(sys.modules, "google.cloud.storage", None)  # what an absent package looks like to import
    monkeypatch.delattr("google.cloud.storage")  # the package attribute an earlier import left behind
    with pytest.raises(MissingDependency) as info:
        tdb.open_blobs(gcs_uri)
    assert "pip install 'tensordb[gcs]'" in str(info.value)


def test_bad_options_fail_before_any_request(gcs_uri: str) -> None:
    with pytest.raises(InvalidURI):
        tdb.open_blobs(gcs_uri, chunk_size=1000)
    with pytest.raises(InvalidURI):
        tdb.open_blobs(gcs_uri + "&bogus=1")


# -- writes ----------------------------------------------------------------------------------------


def test_content_addressed_put_is_a_conditional_create(store: GCSBlobStore, gcs_endpoint: str) -> None:
    data = payload(5000, seed=1)
    key = content_key(data)
    store.put(key, data)
    first = generation(gcs_endpoint, store.bucket, store.prefix + key)
    store.put(key, data)  # the 412 is success, and nothing was rewritten
    store.put(key, bytearray(data))
    assert generation(gcs_endpoint, store.bucket, store.prefix + key) == first
    assert store.get(key) == data


def test_other_keys_are_overwritten(store: GCSBlobStore, gcs_endpoint: str) -> None:
    store.put("manifest.json", b"v1")
    first = generation(gcs_endpoint, store.bucket, store.prefix + "manifest.json")
    store.put("manifest.json", b"v2")
    assert store.get("manifest.json") == b"v2"
    assert generation(gcs_endpoint, store.bucket, store.prefix + "manifest.json") != first


class _Spy:
    """Records calls to one SDK method while still calling the real one (nothing is faked)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
        self.calls: list[dict[str, Any]] = []
        real = getattr(owner, name)

        def spy(this: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls.append(kwargs)
            return real(this, *args, **kwargs)

        monkeypatch.setattr(owner, name, spy)


def test_large_blobs_take_the_resumable_path_in_chunks(
    monkeypatch: pytest.MonkeyPatch, gcs_uri: str, gcs_endpoint: str
) -> None:
    resumable = _Spy(monkeypatch, storage.Blob, "open")
    simple = _Spy(monkeypatch, storage.Blob, "upload_from_string")
    with tdb.open_blobs(gcs_uri, resumable_threshold="1MiB", chunk_size="256KiB") as store:
        big = payload(3 * 2**20 + 5, seed=2)  # twelve full chunks and a short one
        key = content_key(big)
        store.put(key, big)
        assert [c["chunk_size"] for c in resumable.calls] == [256 * 1024]
        assert resumable.calls[0]["if_generation_match"] == 0
        assert store.get(key) == big
        assert store.size(key) == len(big)
        assert store.get(key, 2**20 - 3, 2**20 + 3) == big[2**20 - 3 : 2**20 + 3]

        before = generation(gcs_endpoint, store.bucket, store.prefix + key)
        store.put(key, big)  # already there: not uploaded again
        assert len(resumable.calls) == 1
        assert generation(gcs_endpoint, store.bucket, store.prefix + key) == before

        store.put("small", b"x" * 1000)
        assert len(simple.calls) == 1 and len(resumable.calls) == 1

        store.put("large-mutable", big[: 2**20])  # a non-content key at the threshold: resumable, unconditional
        assert len(resumable.calls) == 2 and "if_generation_match" not in resumable.calls[1]
        assert store.get("large-mutable") == big[: 2**20]


def test_get_many_uses_one_pool_big_enough_for_its_workers(gcs_uri: str, caplog: pytest.LogCaptureFixture) -> None:
    with tdb.open_blobs(gcs_uri, max_workers=24) as store:
        adapter = store._session.get_adapter("http://127.0.0.1")
        assert adapter._pool_maxsize >= 24
        blobs = [payload(100 + i, seed=10 + i) for i in range(120)]
        keys = [content_key(b) for b in blobs]
        for k, b in zip(keys, blobs, strict=True):
            store.put(k, b)
        with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
            assert list(store.get_many(keys * 2)) == blobs * 2
        assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


# -- buckets ---------------------------------------------------------------------------------------


def test_a_missing_bucket_fails_at_open(gcs_endpoint: str) -> None:
    with pytest.raises(BucketNotFound) as info:
        tdb.open_blobs(f"gs://no-such-bucket-{uuid.uuid4().hex[:8]}/p?emulator_host={gcs_endpoint}")
    assert "create_bucket=true" in str(info.value)
    assert isinstance(info.value, BackendError) and isinstance(info.value, LookupError)


def test_a_missing_bucket_is_told_apart_from_a_missing_blob(gcs_endpoint: str) -> None:
    uri = f"gs://no-such-bucket-{uuid.uuid4().hex[:8]}/p?emulator_host={gcs_endpoint}&check_bucket=false"
    with tdb.open_blobs(uri) as store:
        for call in (
            lambda: store.get("k"),
            lambda: store.exists("k"),
            lambda: store.size("k"),
            lambda: list(store.list()),
            lambda: store.put("k", b"v"),
            lambda: store.delete("k"),
            lambda: list(store.get_many(["k"])),
        ):
            with pytest.raises(BucketNotFound):
                call()


def test_create_bucket_creates_it_once(gcs_endpoint: str) -> None:
    name = f"fresh-{uuid.uuid4().hex[:12]}"
    uri = f"gs://{name}/p?emulator_host={gcs_endpoint}&create_bucket=true"
    with tdb.open_blobs(uri) as store:
        store.put("k", b"v")
    with tdb.open_blobs(uri) as again, tdb.open_blobs(uri.replace("&create_bucket=true", "")) as plain:
        assert again.get("k") == b"v" and plain.get("k") == b"v"


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_an_unreachable_endpoint_is_backend_unavailable(gcs_bucket: str) -> None:
    endpoint = f"http://127.0.0.1:{dead_port()}"
    uri = f"gs://{gcs_bucket}/p?emulator_host={endpoint}"
    with pytest.raises(BackendUnavailable) as info:
        tdb.open_blobs(uri, **FAIL_FAST)
    assert endpoint in str(info.value) and f"gs://{gcs_bucket}/p" in str(info.value)
    assert isinstance(info.value, ConnectionError)
    with tdb.open_blobs(uri, check_bucket=False, **FAIL_FAST) as store:
        for call in (
            lambda: store.get("k"),
            lambda: store.put("k", b"v"),
            lambda: list(store.list()),
            lambda: store.exists("k"),
        ):
            with pytest.raises(BackendUnavailable):
                call()


@pytest.mark.timeout(30)
def test_retries_are_bounded_by_retry_timeout(gcs_bucket: str) -> None:
    uri = f"gs://{gcs_bucket}/p?emulator_host=http://127.0.0.1:{dead_port()}&retry_timeout=1.5"
    with pytest.raises(BackendUnavailable):
        tdb.open_blobs(uri, connect_timeout=1)


def test_a_missing_key_is_blob_not_found(store: GCSBlobStore) -> None:
    with pytest.raises(BlobNotFound) as info:
        store.get("nope")
    assert "nope" in str(info.value) and isinstance(info.value, FileNotFoundError)


WHERE = "gs://b1b/p"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (api_exceptions.from_http_status(404, "No such object"), BlobNotFound),
        (api_exceptions.from_http_status(401, "Unauthorized"), PermissionDenied),
        (api_exceptions.from_http_status(403, "does not have storage.objects.get access"), PermissionDenied),
        (api_exceptions.from_http_status(408, "Request timeout"), TransientError),
        (api_exceptions.from_http_status(429, "Rate limit"), TransientError),
        (api_exceptions.from_http_status(500, "Backend error"), TransientError),
        (api_exceptions.from_http_status(502, "Bad gateway"), TransientError),
        (api_exceptions.from_http_status(503, "Unavailable"), TransientError),
        (api_exceptions.from_http_status(504, "Gateway timeout"), TransientError),
        (api_exceptions.from_http_status(400, "Bad request"), BackendError),
        (api_exceptions.RetryError("gave up", requests.ConnectionError("refused")), BackendUnavailable),
        (api_exceptions.RetryError("gave up", api_exceptions.from_http_status(503, "x")), TransientError),
        (requests.ConnectTimeout("connect timed out"), BackendUnavailable),
        (requests.ReadTimeout("read timed out"), TransientError),
        (requests.exceptions.ChunkedEncodingError("cut"), TransientError),
        (auth_exceptions.DefaultCredentialsError("none found"), PermissionDenied),
        (auth_exceptions.RefreshError("invalid_grant"), PermissionDenied),
        (auth_exceptions.TransportError("token endpoint down"), BackendUnavailable),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__,
)
def test_error_translation(exc: BaseException, expected: type[Exception]) -> None:
    err = translate(exc, op="get", key="k", where=WHERE, endpoint="http://e")
    assert type(err) is expected
    if expected is not BlobNotFound:
        assert WHERE in str(err)


# -- credentials and redaction -----------------------------------------------------------------------

CLIENT_SECRET = "client-secret-" + "9f8e7d6c5b4a"
REFRESH_TOKEN = "1//refresh-token-" + "a1b2c3d4e5f6"


def user_credentials_file(tmp_path: Path, name: str, token_uri: str) -> Path:
    """An ``authorized_user`` credentials file (what ``gcloud auth application-default login`` writes)."""
    path = tmp_path / name
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": f"{name}.apps.googleusercontent.com",
                "client_secret": CLIENT_SECRET,
                "refresh_token": REFRESH_TOKEN,
                "token_uri": token_uri,
            }
        )
    )
    return path


def test_credentials_option_beats_google_application_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from_env = user_credentials_file(tmp_path, "env", "http://127.0.0.1:1/token")
    explicit = user_credentials_file(tmp_path, "explicit", "http://127.0.0.1:2/token")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(from_env))
    uri = tdb.parse_uri("gs://b1b/p")
    assert resolve_credentials(GCSConfig.from_uri(uri, {})).client_id == "env.apps.googleusercontent.com"
    chosen = resolve_credentials(GCSConfig.from_uri(uri, {"credentials": str(explicit)}))
    assert chosen.client_id == "explicit.apps.googleusercontent.com"
    assert isinstance(resolve_credentials(GCSConfig.from_uri(uri, {"anonymous": True})), AnonymousCredentials)
    assert isinstance(resolve_credentials(GCSConfig.from_uri(uri, {"emulator_host": "h:1"})), AnonymousCredentials)
    assert resolve_credentials(GCSConfig.from_uri(uri, {"credentials": chosen})) is chosen


def test_no_credentials_anywhere_is_permission_denied(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud ADC file either
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{dead_port()}")
    monkeypatch.setenv("GCE_METADATA_IP", f"127.0.0.1:{dead_port()}")
    with pytest.raises(PermissionDenied) as info:
        tdb.open_blobs("gs://b1b/p", **FAIL_FAST)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in str(info.value)


@pytest.mark.timeout(60)
def test_a_credentials_file_is_used_and_its_secrets_never_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gcs_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Real credentials are used even against an emulator; here their token service is down.

    The store must say so (the request never reached storage), and neither the
    client secret nor the refresh token may appear anywhere: repr, message,
    chained causes, or DEBUG logs of every library involved.
    """
    key_file = user_credentials_file(tmp_path, "user", f"http://127.0.0.1:{dead_port()}/token")
    caplog.set_level(logging.DEBUG)
    store = tdb.open_blobs(gcs_uri, credentials=str(key_file), check_bucket=False, **FAIL_FAST)
    try:
        with pytest.raises(BackendUnavailable) as info:
            store.get("k")
        assert "token" in str(info.value)
        shown = "\n".join([repr(store), str(store), repr(store.config), exception_texts(info.value), caplog.text])
        assert CLIENT_SECRET not in shown and REFRESH_TOKEN not in shown
    finally:
        store.close()
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    with tdb.open_blobs(gcs_uri.split("?")[0], check_bucket=False, **FAIL_FAST) as via_adc:  # no emulator: ADC
        with pytest.raises(BackendUnavailable) as info:
            via_adc.exists("k")
        assert "token" in str(info.value)
        assert CLIENT_SECRET not in exception_texts(info.value) + caplog.text


def test_unusable_credentials_files_are_refused(tmp_path: Path) -> None:
    external = tmp_path / "external.json"
    external.write_text(json.dumps({"type": "external_account", "audience": "x"}))
    for path in (external, tmp_path / "missing.json"):
        with pytest.raises(InvalidURI) as info:
            tdb.open_blobs("gs://b1b/p", credentials=str(path))
        assert "credentials" in str(info.value)
