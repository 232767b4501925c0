"""A :class:`~tensordb_core.store.protocols.BlobStore` on Google Cloud Storage (or an emulator speaking its JSON API).

What it guarantees, and how:

* **Idempotent, atomic writes.** Every upload is a conditional create
  (``if_generation_match=0``): GCS makes an object visible only when its upload
  completes, and a 412 answer means the content-addressed blob is already
  there, which is success.  Blobs of ``resumable_threshold`` bytes or more go
  up as a resumable upload in ``chunk_size`` pieces, so a dropped connection
  costs one chunk, not the whole blob.
* **Ranged reads** map ``[start, end)`` onto GCS's inclusive ``end``.
* **Concurrent reads**: ``get_many`` runs single reads on
  :func:`~tensordb_core.store.blobkit.ordered_concurrent_map` over one shared client
  whose HTTP connection pool is sized to ``max_workers`` (requests' default of
  10 would otherwise throttle and warn).
* **Typed errors** (:mod:`tensordb_gcs.errors`); a 404 is told apart from a
  missing bucket by asking once whether the bucket exists.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import google.auth
import requests
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from tensordb_core.errors import InvalidURI, TensorDBError
from tensordb_core.store.blobkit import check_key, split_request
from tensordb_core.store.cloudkit import CloudBlobStore, as_bytes, is_content_address
from tensordb_core.store.uri import StoreURI, parse_uri

from .config import GCSConfig
from .errors import BucketNotFound, status_of, translate, unwrap

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
    ``docs/backends/gcs.md`` and :mod:`tensordb_gcs.config`.  Opening checks the
    bucket once (``check_bucket=false`` skips that; ``create_bucket=true``
    creates a missing bucket).
    """

    def __init__(self, uri: str | StoreURI, **options: Any) -> None:
        self.uri = parse_uri(uri)
        self.config = config = GCSConfig.from_uri(self.uri, options)
        self.bucket = config.bucket
        self.prefix = config.prefix
        self._where = self.uri.redacted()
        self._closed = False
        self._endpoint = config.emulator_host or PUBLIC_ENDPOINT
        self._retry = _retry_policy(config.retry_timeout)
        self._timeout = config.http_timeout
        self._bucket_checked = False
        self._check_lock = threading.Lock()
        try:
            credentials = resolve_credentials(config)
            session = AuthorizedSession(credentials)
            # One pool slot per get_many worker plus headroom for a concurrent put/list.
            adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=config.max_workers + 4)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            client_options = {"api_endpoint": config.emulator_host} if config.emulator_host else None
            self._client = storage.Client(
                project=config.project, credentials=credentials, _http=session, client_options=client_options
            )
        except TensorDBError:
            raise
        except Exception as exc:
            raise translate(exc, op="connect", key=None, where=self._where, endpoint=self._endpoint) from exc
        self._session = session
        self._bucket = self._client.bucket(config.bucket)
        try:
            if config.create_bucket:
                self._create_bucket()
            elif config.check_bucket:
                self._raise_if_bucket_missing()
        except BaseException:
            self.close()
            raise

    @property
    def endpoint_url(self) -> str:
        """The JSON API endpoint the client talks to (an emulator's, or Google's)."""
        return self._endpoint

    # -- helpers -------------------------------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        return self.config.prefix + check_key(key)

    def _fail(self, exc: BaseException, op: str, key: str | None) -> TensorDBError:
        if status_of(unwrap(exc)) == 404:
            self._raise_if_bucket_missing(exc)
        return translate(exc, op=op, key=key, where=self._where, endpoint=self._endpoint)

    def _raise_if_bucket_missing(self, cause: BaseException | None = None) -> None:
        """GCS answers 404 alike for a missing object and a missing bucket; ask once which it was."""
        if self._bucket_checked:
            return
        with self._check_lock:
            if self._bucket_checked:
                return
            try:
                exists = self._bucket.exists(retry=self._retry, timeout=self._timeout)
            except api_exceptions.Forbidden:
                exists = True  # object-level roles without storage.buckets.get: the bucket is there
            except Exception as exc:
                raise translate(exc, op="check bucket", key=None, where=self._where, endpoint=self._endpoint) from exc
            if not exists:
                raise BucketNotFound(
                    f"GCS bucket {self.config.bucket!r} does not exist ({self._where}): create it (gcloud storage "
                    f"buckets create gs://{self.config.bucket}), open the store with create_bucket=true, or fix the URI"
                ) from cause
            self._bucket_checked = True

    def _create_bucket(self) -> None:
        try:
            self._client.create_bucket(self.config.bucket, retry=self._retry, timeout=self._timeout)
        except api_exceptions.Conflict:
            pass  # already there (ours, or taken by someone else: the first write will say which)
        except Exception as exc:
            raise translate(exc, op="create bucket", key=None, where=self._where, endpoint=self._endpoint) from exc
        self._bucket_checked = True

    # -- BlobStore -----------------------------------------------------------------------------------------------

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` under ``key``; a content-addressed key that already exists is left as is.

        Content-addressed keys are conditional creates (a 412 means the same
        bytes are there); other keys are plain overwrites, atomic on GCS.
        """
        name = self._name(key)
        payload = as_bytes(data)
        conditional = is_content_address(key)
        condition = {"if_generation_match": 0} if conditional else {}
        blob = self._bucket.blob(name)
        try:
            if len(payload) < self.config.resumable_threshold:
                blob.upload_from_string(
                    payload, content_type=_CONTENT_TYPE, retry=self._retry, timeout=self._timeout, **condition
                )
            elif not (conditional and self._stat(key) is not None):  # skip re-uploading what is there
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
                    writer.write(payload)
        except TensorDBError:
            raise
        except Exception as exc:
            if conditional and status_of(unwrap(exc)) == 412:
                return  # if_generation_match=0 met an object with the same content address: already stored
            raise self._fail(exc, "put", key) from exc

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)``; a range past the end is cut short like a slice."""
        key, start, end = split_request((key, start, end))
        if end is not None and end <= start:
            self.size(key)  # still a BlobNotFound for a missing key
            return b""
        blob = self._bucket.blob(self._name(key))
        try:
            return blob.download_as_bytes(
                start=start or None,
                end=None if end is None else end - 1,  # GCS ranges are inclusive
                retry=self._retry,
                timeout=self._timeout,
            )
        except api_exceptions.RequestRangeNotSatisfiable:
            return b""  # start at or past the end of an existing blob
        except Exception as exc:
            if status_of(unwrap(exc)) == 416:
                return b""
            raise self._fail(exc, "get", key) from exc

    def exists(self, key: str) -> bool:
        return self._stat(key) is not None

    def size(self, key: str) -> int:
        blob = self._stat(key)
        if blob is None:
            raise translate(
                api_exceptions.NotFound("no such object"),
                op="size",
                key=key,
                where=self._where,
                endpoint=self._endpoint,
            )
        return int(blob.size or 0)

    def _stat(self, key: str) -> storage.Blob | None:
        """The object's metadata, or None when it is absent (after making sure the bucket is there)."""
        name = self._name(key)
        try:
            blob = self._bucket.get_blob(name, retry=self._retry, timeout=self._timeout)
        except Exception as exc:
            raise self._fail(exc, "stat", key) from exc
        if blob is None:
            self._raise_if_bucket_missing()
        return blob

    def delete(self, key: str) -> None:
        blob = self._bucket.blob(self._name(key))
        try:
            blob.delete(retry=self._retry, timeout=self._timeout)
        except Exception as exc:
            if status_of(unwrap(exc)) == 404:
                self._raise_if_bucket_missing(exc)
                return
            raise self._fail(exc, "delete", key) from exc

    def _list(self, prefix: str) -> Iterator[str]:
        full = self.config.prefix + prefix
        cut = len(self.config.prefix)
        pages = self._client.list_blobs(
            self.config.bucket,
            prefix=full or None,
            page_size=self.config.page_size,
            fields="items(name),nextPageToken",
            retry=self._retry,
            timeout=self._timeout,
        )
        try:
            for blob in pages:
                yield blob.name[cut:]
        except Exception as exc:
            raise self._fail(exc, "list", prefix or None) from exc

    def close(self) -> None:
        """Release pooled connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._client.close()
        finally:
            self._session.close()


__all__ = ["BucketNotFound", "GCSBlobStore", "is_content_address"]
