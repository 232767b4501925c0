"""A :class:`~tensordb_core.store.protocols.BlobStore` on Google Cloud Storage (or an emulator speaking its JSON API).

The kit's :class:`~tensordb_core.store.kit.cloud.CloudBlobStore` owns the
flows (open, bucket check, conditional creates, ranges, errors); this module
is the GCS calls.  Why they look like this:

* **Content addresses are conditional creates** (``if_generation_match=0``;
  412 means the blob is already there).  GCS makes an object visible only
  when its upload completes.  Blobs of ``resumable_threshold`` bytes or more
  go up as a resumable upload in ``chunk_size`` pieces, so a dropped
  connection costs one chunk, not the whole blob.
* **Reads are one media GET each**, their body taken in one ``read()``
  (see :meth:`GCSBlobStore._fetch`); ranged reads map ``[start, end)`` onto
  GCS's inclusive ``end``.
* **One client, many threads**, whose HTTP connection pool is sized to
  ``max_workers`` (requests' default of 10 would otherwise throttle and warn).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import google.auth
import requests
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import exceptions as gcs_exceptions
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY
from urllib3 import exceptions as urllib3_exceptions

from tensordb_core.errors import InvalidURI
from tensordb_core.store.kit.cloud import CloudBlobStore, is_content_address
from tensordb_core.store.kit.http import pooled_session

from .config import GCSConfig
from .errors import ERRORS, BucketNotFound

PUBLIC_ENDPOINT = "https://storage.googleapis.com"
_SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
_CONTENT_TYPE = "application/octet-stream"


def _retry_policy(seconds: float) -> Any:
    """The SDK's default retry (429, 5xx, connection errors) bounded to ``seconds`` in total; None disables it."""
    if seconds <= 0:
        return None
    with_timeout = getattr(DEFAULT_RETRY, "with_timeout", None) or DEFAULT_RETRY.with_deadline
    return with_timeout(seconds)


def resolve_credentials(config: GCSConfig) -> Any:
    """Pick credentials: explicit object or key file, else anonymous (emulator/public), else ADC."""
    creds = config.credentials
    if isinstance(creds, Credentials):
        return creds
    if isinstance(creds, str):
        return _credentials_from_file(creds)
    if creds is not None:
        raise InvalidURI(f"credentials= must be a key-file path or google.auth credentials, not {type(creds).__name__}")
    if config.anonymous or config.emulator_host:
        return AnonymousCredentials()
    found, _project = google.auth.default(scopes=_SCOPES)
    return found


def _credentials_from_file(path: str) -> Any:
    """A service-account key or an ``authorized_user`` file (``gcloud auth application-default login``).

    Other types (workload identity federation, impersonation) run code paths
    that fetch tokens from URLs named in the file; they are left to
    Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``).
    """
    from google.oauth2 import credentials as user_credentials
    from google.oauth2 import service_account

    try:
        with open(path, encoding="utf-8") as handle:
            kind = json.load(handle).get("type")
    except (OSError, ValueError, AttributeError) as exc:
        raise InvalidURI(f"credentials= names {path!r}, which is not a readable JSON credentials file") from exc
    if kind == "service_account":
        return service_account.Credentials.from_service_account_file(path, scopes=_SCOPES)
    if kind == "authorized_user":
        return user_credentials.Credentials.from_authorized_user_file(path, scopes=_SCOPES)
    raise InvalidURI(
        f"credentials= file {path!r} is of type {kind!r}; pass a service-account key or an authorized_user file, "
        "or point GOOGLE_APPLICATION_CREDENTIALS at it to use Application Default Credentials"
    )


class GCSBlobStore(CloudBlobStore):
    """A :class:`~tensordb_core.store.protocols.BlobStore` over one GCS bucket and key prefix.

    Build it with ``tensordb_core.open_blobs("gs://bucket/prefix?emulator_host=...", **options)``
    or directly as ``GCSBlobStore(uri, **options)``; options are described in
    ``docs/backends/gcs.md`` and :mod:`tensordb_gcs.config`.
    """

    config_type = GCSConfig
    errors = ERRORS
    config: GCSConfig

    def _connect(self) -> None:
        config = self.config
        self._endpoint = config.emulator_host or PUBLIC_ENDPOINT
        self._retry = _retry_policy(config.retry_timeout)
        self._timeout = config.http_timeout
        credentials = resolve_credentials(config)
        # One pool slot per get_many worker plus headroom for a concurrent put/list; the environment's proxies
        # and CA bundle read once here, not per request (store/kit/http.py).
        self._session = pooled_session(self._endpoint, config.max_workers + 4, AuthorizedSession(credentials))
        client_options = {"api_endpoint": config.emulator_host} if config.emulator_host else None
        self._client = storage.Client(
            project=config.project, credentials=credentials, _http=self._session, client_options=client_options
        )
        self._bucket = self._client.bucket(config.bucket)
        # The JSON API's media download URL, as the SDK builds it (Blob._get_download_url) from the public endpoint.
        bucket_part = quote(config.bucket, safe="~")
        self._download_base = f"{self._client.api_endpoint}/download/storage/v1/b/{bucket_part}/o/"

    def _disconnect(self) -> None:
        try:
            self._client.close()
        finally:
            self._session.close()

    def _bucket_exists(self) -> bool:
        return bool(self._bucket.exists(retry=self._retry, timeout=self._timeout))

    def _make_bucket(self) -> None:
        self._client.create_bucket(self.config.bucket, retry=self._retry, timeout=self._timeout)

    def _put(self, name: str, data: memoryview, conditional: bool) -> None:
        condition = {"if_generation_match": 0} if conditional else {}
        blob = self._bucket.blob(name)
        if data.nbytes < self.config.resumable_threshold:
            payload = data.obj if isinstance(data.obj, bytes) and data.nbytes == len(data.obj) else data.tobytes()
            blob.upload_from_string(
                payload, content_type=_CONTENT_TYPE, retry=self._retry, timeout=self._timeout, **condition
            )
            return
        # BlobWriter cancels the session if a chunk fails, so no partial object is ever created.
        with blob.open(
            "wb",
            chunk_size=self.config.chunk_size,
            content_type=_CONTENT_TYPE,
            ignore_flush=True,
            retry=self._retry,
            timeout=self._timeout,
            **condition,
        ) as writer:
            writer.write(data)

    def _read(self, name: str, start: int, end: int | None) -> bytes:
        fetch = functools.partial(self._fetch, self._download_base + quote(name, safe="~") + "?alt=media", start, end)
        return self._retry(fetch)() if self._retry is not None else fetch()

    def _fetch(self, url: str, start: int, end: int | None) -> bytes:
        """One media GET, its body read whole in one call; the SDK's errors for a failed one.

        Why not ``Blob.download_as_bytes``: it reads the body in 8 KiB pieces
        through urllib3's Python read loop (~2,700 iterations for the 15
        chunks, 22 MB, of 400 large samples: 41 of the 48 ms their GETs took;
        read in one call, 14 of 22 ms) and checksums whole-object reads with
        crc32c, which TensorDB repeats anyway: every sample's crc32 is checked
        before it is decoded, and ranged reads, the stream's usual request,
        were never checked by the library.  Here the body arrives in one
        ``read()`` (one copy, the size the server announced, a short body is
        an error) and failures are the SDK's own exception types
        (``from_http_response`` for a non-2xx status, requests' for a broken
        body), so the retry predicate and the error table treat them exactly
        as before.
        """
        ranged = bool(start) or end is not None
        headers = {"Range": f"bytes={start}-{'' if end is None else end - 1}"} if ranged else None  # GCS: inclusive
        response = self._session.get(url, headers=headers, timeout=self._timeout, stream=True)
        try:
            if response.status_code >= 300:
                raise gcs_exceptions.from_http_response(response)
            try:
                data = response.raw.read(decode_content=True)
            except urllib3_exceptions.ReadTimeoutError as exc:
                raise requests.ConnectionError(exc) from exc
            except urllib3_exceptions.DecodeError as exc:
                raise requests.exceptions.ContentDecodingError(exc) from exc
            except urllib3_exceptions.SSLError as exc:
                raise requests.exceptions.SSLError(exc) from exc
            except urllib3_exceptions.ProtocolError as exc:  # a short body (IncompleteRead) or a dropped connection
                raise requests.exceptions.ChunkedEncodingError(exc) from exc
        finally:
            response.close()
        if ranged and response.status_code == 200:  # a server that ignored the Range header sent the whole object
            return data[start:end]
        return data

    def _stat(self, name: str) -> int | None:
        blob = self._bucket.get_blob(name, retry=self._retry, timeout=self._timeout)
        return None if blob is None else int(blob.size or 0)

    def _delete(self, name: str) -> None:
        self._bucket.blob(name).delete(retry=self._retry, timeout=self._timeout)

    def _names(self, prefix: str) -> Iterator[str]:
        pages = self._client.list_blobs(
            self.config.bucket,
            prefix=prefix or None,
            page_size=self.config.page_size,
            fields="items(name),nextPageToken",
            retry=self._retry,
            timeout=self._timeout,
        )
        for blob in pages:
            yield blob.name


__all__ = ["BucketNotFound", "GCSBlobStore", "is_content_address"]
