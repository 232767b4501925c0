"""Azure-specific behaviour against Azurite: spellings and credentials end to end, conditional creates,
block uploads, container checks, error translation and secret redaction."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import types
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from azure.core import exceptions as az
from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from azurekit import ACCOUNT, ACCOUNT_KEY, SMALL_UPLOADS, admin_client, connection_string

import tensordb_core as tdb
from serverkit import dead_port, exception_texts
from tensordb_azure import ContainerNotFound
from tensordb_azure.errors import SasLogScrubber, scrub, translate
from tensordb_azure.store import AzureBlobStore
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

pytestmark = pytest.mark.azure

#: Settings that make an unreachable endpoint fail at once (no retries, short connect timeout).
FAIL_FAST = {"max_attempts": 1, "connect_timeout": 1}


@pytest.fixture
def store(azure_uri: str, azure_key: dict[str, str]) -> Iterator[AzureBlobStore]:
    with tdb.open_blobs(azure_uri, **azure_key, **SMALL_UPLOADS) as opened:
        yield opened


def etag(endpoint: str, container: str, name: str) -> str:
    """The blob's ETag, read past the store under test: it changes whenever the blob is rewritten."""
    with admin_client(endpoint) as client:
        return str(client.get_blob_client(container, name).get_blob_properties().etag)


def sas_for(container: str, **permissions: bool) -> str:
    return generate_container_sas(
        ACCOUNT,
        container,
        account_key=ACCOUNT_KEY,
        permission=ContainerSasPermissions(**permissions),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )


def signature_of(sas: str) -> str:
    return next(part[4:] for part in sas.split("&") if part.startswith("sig="))


# -- opening ---------------------------------------------------------------------------------------


def test_open_blobs_builds_an_azure_store(
    azure_uri: str, azure_key: dict[str, str], azure_prefix: str, azure_endpoint: str
) -> None:
    with tdb.open_blobs(azure_uri, **azure_key) as store:
        assert isinstance(store, AzureBlobStore) and isinstance(store, tdb.BlobStore)
        assert store.container == "tensordb-test" and store.prefix == azure_prefix + "/"
        assert store.endpoint_url == azure_endpoint
        store.put("k", b"v")
        assert store.get("k") == b"v"


def test_plugin_lists_its_schemes() -> None:
    schemes = {s.scheme: s for s in tdb.list_schemes() if s.source == "azure"}
    assert set(schemes) == {"az", "abfs", "abfss", "wasb", "wasbs"}
    assert all(s.blobs and not s.index and s.extra == "azure" for s in schemes.values())


@pytest.mark.parametrize("scheme", ["abfs", "abfss", "wasb", "wasbs"])
def test_mlflow_and_fsspec_spellings_reach_the_same_blobs(
    scheme: str, azure_uri: str, azure_key: dict[str, str], azure_endpoint: str, azure_container: str, azure_prefix: str
) -> None:
    service = "dfs" if scheme.startswith("abfs") else "blob"
    other = (
        f"{scheme}://{azure_container}@{ACCOUNT}.{service}.core.windows.net/{azure_prefix}?endpoint={azure_endpoint}"
    )
    with tdb.open_blobs(azure_uri, **azure_key) as az_store, tdb.open_blobs(other, **azure_key) as spelled:
        az_store.put("shared", scheme.encode())
        assert spelled.get("shared") == scheme.encode()
        assert list(spelled.list()) == ["shared"]


def test_prefix_isolates_stores(azure_endpoint: str, azure_container: str, azure_key: dict[str, str]) -> None:
    base = f"az://{azure_container}/iso-{uuid.uuid4().hex}"
    with (
        tdb.open_blobs(f"{base}/a?endpoint={azure_endpoint}", **azure_key) as a,
        tdb.open_blobs(f"{base}/b?endpoint={azure_endpoint}", **azure_key) as b,
    ):
        a.put("k", b"in a")
        assert not b.exists("k") and list(b.list()) == [] and list(a.list()) == ["k"]


def test_connection_string_environment_variable_is_honoured(
    monkeypatch: pytest.MonkeyPatch, azure_endpoint: str, azure_container: str, azure_prefix: str
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string(azure_endpoint))
    with tdb.open_blobs(f"az://{azure_container}/{azure_prefix}") as store:
        assert store.endpoint_url == azure_endpoint
        store.put("via-env", b"ok")
        assert store.get("via-env") == b"ok"


def test_account_and_key_environment_variables_are_honoured(monkeypatch: pytest.MonkeyPatch, azure_uri: str) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_KEY", ACCOUNT_KEY)
    with tdb.open_blobs(azure_uri) as store:
        store.put("k", b"v")
    monkeypatch.setenv("AZURE_STORAGE_KEY", "A" * 86 + "==")  # a wrong key: Azurite refuses the signature
    with tdb.open_blobs(azure_uri) as wrong_key, pytest.raises(PermissionDenied):
        wrong_key.get("k")


def test_connection_string_option(azure_endpoint: str, azure_container: str, azure_prefix: str) -> None:
    with tdb.open_blobs(
        f"az://{azure_container}/{azure_prefix}", connection_string=connection_string(azure_endpoint)
    ) as store:
        store.put("k", b"v")
        assert store.get("k") == b"v"


def test_client_library_is_imported_only_when_an_azure_store_opens(azure_uri: str) -> None:
    code = (
        "import sys, tensordb_core as t\n"
        "t.list_schemes()\n"
        "import tensordb_azure, tensordb_azure.plugin\n"
        "assert 'azure.storage.blob' not in sys.modules, 'imported too early'\n"
        f"t.open_blobs({azure_uri!r}, account_key={ACCOUNT_KEY!r}).close()\n"
        "assert 'azure.storage.blob' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=dict(os.environ))


def test_missing_client_library_names_the_extra(monkeypatch: pytest.MonkeyPatch, azure_uri: str) -> None:
    monkeypatch.delitem(sys.modules, "tensordb_azure.store", raising=False)  # as if never imported in this process
    monkeypatch.setitem(sys.modules, "azure.storage.blob", None)  # what an absent package looks like to import
    with pytest.raises(MissingDependency) as info:
        tdb.open_blobs(azure_uri, account_key=ACCOUNT_KEY)
    assert "pip install 'tensordb[azure]'" in str(info.value)


def test_without_credentials_or_azure_identity_the_error_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, azure_uri: str
) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity", None)
    with pytest.raises(PermissionDenied) as info:
        tdb.open_blobs(azure_uri)
    for hint in ("AZURE_STORAGE_CONNECTION_STRING", "azure-identity", "account_key="):
        assert hint in str(info.value)


def test_default_azure_credential_is_used_when_installed(monkeypatch: pytest.MonkeyPatch, azure_uri: str) -> None:
    """With azure-identity importable and no other credential, the store authenticates with DefaultAzureCredential."""
    made: list[object] = []

    class DefaultAzureCredential:  # stands in for azure.identity's class; records that it was chosen
        def __init__(self) -> None:
            made.append(self)

        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise az.ClientAuthenticationError("no identity in this test")

    module = types.ModuleType("azure.identity")
    module.DefaultAzureCredential = DefaultAzureCredential  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "azure.identity", module)
    https = azure_uri.replace("endpoint=http://", "endpoint=https://")  # Azure sends tokens over TLS only
    with tdb.open_blobs(https, check_container=False) as store:
        assert len(made) == 1 and store.config.auth == "default"
    with pytest.raises(InvalidURI) as info:
        tdb.open_blobs(azure_uri, check_container=False)
    assert "HTTPS" in str(info.value)


# -- writes ----------------------------------------------------------------------------------------


def test_content_addressed_put_is_a_conditional_create(store: AzureBlobStore, azure_endpoint: str) -> None:
    data = payload(5000, seed=1)
    key = content_key(data)
    store.put(key, data)
    first = etag(azure_endpoint, store.container, store.prefix + key)
    store.put(key, data)  # BlobAlreadyExists is success, and nothing was rewritten
    store.put(key, memoryview(data))
    assert etag(azure_endpoint, store.container, store.prefix + key) == first
    assert store.get(key) == data


def test_other_keys_are_overwritten(store: AzureBlobStore, azure_endpoint: str) -> None:
    store.put("manifest.json", b"v1")
    first = etag(azure_endpoint, store.container, store.prefix + "manifest.json")
    store.put("manifest.json", b"v2")
    assert store.get("manifest.json") == b"v2"
    assert etag(azure_endpoint, store.container, store.prefix + "manifest.json") != first


def test_large_blobs_go_up_as_blocks(store: AzureBlobStore, azure_endpoint: str) -> None:
    big = payload(3 * 2**20 + 5, seed=2)  # six 512 KiB blocks and a short one
    key = content_key(big)
    store.put(key, big)
    with admin_client(azure_endpoint) as client:
        blob = client.get_blob_client(store.container, store.prefix + key)
        committed, uncommitted = blob.get_block_list("all")
    assert [b.size for b in committed] == [512 * 1024] * 6 + [5]
    assert not uncommitted
    assert store.get(key) == big and store.size(key) == len(big)
    assert store.get(key, 2**20 - 3, 2**20 + 3) == big[2**20 - 3 : 2**20 + 3]
    before = etag(azure_endpoint, store.container, store.prefix + key)
    store.put(key, big)  # already there: not uploaded again
    assert etag(azure_endpoint, store.container, store.prefix + key) == before

    small = payload(1000, seed=3)
    store.put(content_key(small), small)
    with admin_client(azure_endpoint) as client:
        committed, _ = client.get_blob_client(store.container, store.prefix + content_key(small)).get_block_list()
    assert len(committed) <= 1  # one Put Blob, no staged blocks


def test_get_many_uses_one_pool_big_enough_for_its_workers(
    azure_uri: str, azure_key: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with tdb.open_blobs(azure_uri, max_workers=24, **azure_key) as store:
        session = store._service._pipeline._transport.session  # the transport we built
        assert session.get_adapter("http://127.0.0.1")._pool_maxsize >= 24
        blobs = [payload(100 + i, seed=10 + i) for i in range(120)]
        keys = [content_key(b) for b in blobs]
        for k, b in zip(keys, blobs, strict=True):
            store.put(k, b)
        with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
            assert list(store.get_many(keys * 2)) == blobs * 2
        assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


# -- containers ------------------------------------------------------------------------------------


def test_a_missing_container_fails_at_open(azure_endpoint: str) -> None:
    with pytest.raises(ContainerNotFound) as info:
        tdb.open_blobs(f"az://no-such-{uuid.uuid4().hex[:8]}/p?endpoint={azure_endpoint}", account_key=ACCOUNT_KEY)
    assert "create_container=true" in str(info.value)
    assert isinstance(info.value, BackendError) and isinstance(info.value, LookupError)


def test_a_missing_container_is_told_apart_from_a_missing_blob(azure_endpoint: str) -> None:
    uri = f"az://no-such-{uuid.uuid4().hex[:8]}/p?endpoint={azure_endpoint}&check_container=false"
    with tdb.open_blobs(uri, account_key=ACCOUNT_KEY) as store:
        for call in (
            lambda: store.get("k"),
            lambda: store.exists("k"),
            lambda: store.size("k"),
            lambda: list(store.list()),
            lambda: store.put("k", b"v"),
            lambda: store.delete("k"),
            lambda: list(store.get_many(["k"])),
        ):
            with pytest.raises(ContainerNotFound):
                call()


def test_create_container_creates_it_once(azure_endpoint: str) -> None:
    uri = f"az://fresh-{uuid.uuid4().hex[:12]}/p?endpoint={azure_endpoint}&create_container=true"
    with tdb.open_blobs(uri, account_key=ACCOUNT_KEY) as store:
        store.put("k", b"v")
    with tdb.open_blobs(uri, account_key=ACCOUNT_KEY) as again:
        assert again.get("k") == b"v"


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_an_unreachable_endpoint_is_backend_unavailable(azure_container: str) -> None:
    endpoint = f"http://127.0.0.1:{dead_port()}/{ACCOUNT}"
    uri = f"az://{azure_container}/p?endpoint={endpoint}"
    with pytest.raises(BackendUnavailable) as info:
        tdb.open_blobs(uri, account_key=ACCOUNT_KEY, **FAIL_FAST)
    assert endpoint in str(info.value) and f"az://{azure_container}/p" in str(info.value)
    assert isinstance(info.value, ConnectionError)
    with tdb.open_blobs(uri, account_key=ACCOUNT_KEY, check_container=False, **FAIL_FAST) as store:
        for call in (
            lambda: store.get("k"),
            lambda: store.put("k", b"v"),
            lambda: list(store.list()),
            lambda: store.exists("k"),
        ):
            with pytest.raises(BackendUnavailable):
                call()


def test_a_wrong_key_is_permission_denied(azure_uri: str) -> None:
    wrong = "B" * 86 + "=="
    with (
        tdb.open_blobs(azure_uri, account_key=wrong, check_container=False) as store,
        pytest.raises(PermissionDenied) as info,
    ):
        store.get("k")
    assert wrong not in exception_texts(info.value)


def test_a_read_only_sas_cannot_write(azure_uri: str, azure_container: str, azure_key: dict[str, str]) -> None:
    with tdb.open_blobs(azure_uri, **azure_key) as writer:
        writer.put("k", b"v")
    read_only = sas_for(azure_container, read=True, list=True)
    with tdb.open_blobs(azure_uri, sas_token=read_only) as reader:
        assert reader.get("k") == b"v" and list(reader.list()) == ["k"]
        with pytest.raises(PermissionDenied) as info:
            reader.put("other", b"x")
        assert signature_of(read_only) not in exception_texts(info.value)


def test_a_missing_key_is_blob_not_found(store: AzureBlobStore) -> None:
    with pytest.raises(BlobNotFound) as info:
        store.get("nope")
    assert "nope" in str(info.value) and isinstance(info.value, FileNotFoundError)


def _http_error(cls: type[az.HttpResponseError], status: int, code: str = "") -> az.HttpResponseError:
    err = cls(message=f"HTTP {status}")
    err.status_code = status
    err.error_code = code or None
    return err


WHERE = "az://data/p"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_http_error(az.ResourceNotFoundError, 404, "BlobNotFound"), BlobNotFound),
        (_http_error(az.ResourceNotFoundError, 404, "ContainerNotFound"), ContainerNotFound),
        (_http_error(az.ClientAuthenticationError, 403, "AuthenticationFailed"), PermissionDenied),
        (_http_error(az.HttpResponseError, 403, "AuthorizationPermissionMismatch"), PermissionDenied),
        (_http_error(az.HttpResponseError, 401), PermissionDenied),
        (_http_error(az.HttpResponseError, 429), TransientError),
        (_http_error(az.HttpResponseError, 500, "InternalError"), TransientError),
        (_http_error(az.HttpResponseError, 503, "ServerBusy"), TransientError),
        (_http_error(az.HttpResponseError, 400, "InvalidHeaderValue"), BackendError),
        (az.ServiceRequestError("connection refused"), BackendUnavailable),
        (az.ServiceRequestTimeoutError("connect timed out"), BackendUnavailable),
        (az.ServiceResponseError("connection reset"), TransientError),
        (az.ServiceResponseTimeoutError("read timed out"), TransientError),
        (az.IncompleteReadError("short body"), TransientError),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__,
)
def test_error_translation(exc: BaseException, expected: type[Exception]) -> None:
    err = translate(exc, op="get", key="k", where=WHERE, endpoint="https://acct1.blob.core.windows.net")
    assert type(err) is expected
    assert WHERE in str(err)


# -- redaction -------------------------------------------------------------------------------------


def test_secrets_never_show(
    azure_uri: str, azure_endpoint: str, azure_container: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Account key, SAS signature and connection string: not in repr, str, messages, causes or DEBUG logs."""
    sas = sas_for(azure_container, read=True, write=True, create=True, list=True, delete=True)
    sig = signature_of(sas)
    cs = connection_string(azure_endpoint)
    caplog.set_level(logging.DEBUG)
    shown: list[str] = []
    dead = f"az://{azure_container}/p?endpoint=http://127.0.0.1:{dead_port()}/{ACCOUNT}"
    for uri, options in (
        (azure_uri, {"sas_token": sas}),
        (azure_uri, {"account_key": ACCOUNT_KEY}),
        (f"az://{azure_container}/x", {"connection_string": cs}),
    ):
        with tdb.open_blobs(uri, **options) as store:
            store.put("k", b"v")
            assert store.get("k") == b"v"
            with pytest.raises(BlobNotFound) as missing:
                store.get("absent")
            shown += [repr(store), str(store), repr(store.config), exception_texts(missing.value)]
        with pytest.raises(BackendUnavailable) as unreachable:
            tdb.open_blobs(dead, **options, **FAIL_FAST)
        shown.append(exception_texts(unreachable.value))
    uri_with_secrets = f"{azure_uri}&sas_token={quote(sas, safe='')}"
    with tdb.open_blobs(uri_with_secrets) as from_uri:
        from_uri.put("k2", b"v")
        shown += [repr(from_uri), str(from_uri.uri)]
    shown.append(caplog.text)
    everything = "\n".join(shown)
    assert "sig=***" in caplog.text  # the SAS was on the wire, and urllib3's DEBUG line shows it redacted
    for secret in (sig, ACCOUNT_KEY, cs):
        assert secret not in everything


def test_the_log_scrubber_hides_signatures_and_keeps_the_rest() -> None:
    record = logging.LogRecord(
        "urllib3.connectionpool",
        logging.DEBUG,
        __file__,
        1,
        '%s "GET /acct/c/k?sv=2025&sr=c&sig=%s HTTP/1.1" 200',
        ("http://h:1", "s3cr3t%2F"),
        None,
    )
    assert SasLogScrubber().filter(record)
    assert "s3cr3t" not in record.getMessage()
    assert "sv=2025&sr=c&sig=***" in record.getMessage()
    assert scrub("AccountName=a;AccountKey=abc==;X=1") == "AccountName=a;AccountKey=***;X=1"
    assert scrub("token hunter2 here", ["hunter2"]) == "token *** here"


def test_unknown_options_are_refused_before_any_request(azure_uri: str) -> None:
    with pytest.raises(InvalidURI):
        tdb.open_blobs(azure_uri, account_key=ACCOUNT_KEY, bogus=1)
