"""A :class:`~tensordb_core.store.protocols.BlobStore` on Azure Blob Storage (or Azurite).

What it guarantees, and how:

* **Idempotent, atomic writes.** Uploads use ``overwrite=False`` (an
  ``If-None-Match: *`` create): a ``ResourceExistsError`` means the
  content-addressed blob is already there, which is success.  Blobs larger
  than ``max_single_put_size`` go up as staged blocks, ``max_concurrency`` at a
  time, and become visible only when the block list commits, so a reader never
  sees a partial blob.
* **Ranged reads** map ``[start, end)`` onto ``offset``/``length``.
* **Concurrent reads**: ``get_many`` runs single reads on
  :func:`~tensordb_core.store.blobkit.ordered_concurrent_map` over one shared client
  whose HTTP connection pool is sized to ``max_workers``.
* **Typed errors without secrets** (:mod:`tensordb_azure.errors`): account
  keys, SAS tokens and connection strings appear in no repr, message, chained
  exception or urllib3 log line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import requests
from azure.core import exceptions as az
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobServiceClient, ContentSettings, ExponentialRetry
from urllib3.util.retry import Retry

from tensordb_core.errors import PermissionDenied, TensorDBError
from tensordb_core.store.blobkit import check_key, split_request
from tensordb_core.store.cloudkit import CloudBlobStore, as_bytes, is_content_address
from tensordb_core.store.uri import StoreURI, parse_uri

from .config import AzureConfig
from .errors import ContainerNotFound, chain_leaks, error_code, install_log_scrubber, status_of, translate

T = TypeVar("T")
_CONTENT = ContentSettings(content_type="application/octet-stream")


def _credential(config: AzureConfig, where: str) -> Any:
    """The credential object azure-storage-blob expects for ``config.auth``."""
    if config.auth == "key":
        return {"account_name": config.account_name, "account_key": config.account_key}
    if config.auth == "sas":
        return config.sas_token
    if config.auth == "credential":
        return config.credential
    if config.auth == "anonymous":
        return None
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise PermissionDenied(
            f"no Azure credentials for {where}: set AZURE_STORAGE_CONNECTION_STRING (or AZURE_STORAGE_ACCOUNT with "
            "AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN), pass account_key=, sas_token=, connection_string= or "
            "credential=, use anonymous=true for a public container, or pip install azure-identity to use "
            "DefaultAzureCredential (managed identity, az login, workload identity)"
        ) from None
    return DefaultAzureCredential()


def _session(pool_size: int) -> requests.Session:
    """A requests session whose pool holds ``pool_size`` connections; retries stay with azure-core's policy."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4,
        pool_maxsize=pool_size,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class AzureBlobStore(CloudBlobStore):
    """A :class:`~tensordb_core.store.protocols.BlobStore` over one Azure container and key prefix.

    Build it with ``tensordb_core.open_blobs("az://container/prefix", **options)``
    or directly as ``AzureBlobStore(uri, **options)``; options are described in
    ``docs/backends/azure.md`` and :mod:`tensordb_azure.config`.  Opening checks
    the container once (``check_container=false`` skips that;
    ``create_container=true`` creates a missing container).
    """

    def __init__(self, uri: str | StoreURI, **options: Any) -> None:
        self.uri = parse_uri(uri)
        self.config = config = AzureConfig.from_uri(self.uri, options)
        self.container = config.container
        self.prefix = config.prefix
        self._where = self.uri.redacted()
        self._endpoint = config.account_url
        self._secrets = config.secrets()
        self._closed = False
        if config.auth == "sas":
            install_log_scrubber()
        kwargs: dict[str, Any] = {
            "transport": RequestsTransport(
                session=_session(config.max_workers + config.max_concurrency + 4),
                session_owner=True,
                connection_timeout=config.connect_timeout,
                read_timeout=config.read_timeout,
            ),
            "retry_policy": ExponentialRetry(
                initial_backoff=1, increment_base=3, retry_total=config.max_attempts - 1, random_jitter_range=1
            ),
            "max_single_put_size": config.max_single_put_size,
            "max_block_size": config.max_block_size,
            "connection_timeout": config.connect_timeout,
            "read_timeout": config.read_timeout,
        }
        if config.api_version:
            kwargs["api_version"] = config.api_version
        self._service = self._call(
            "connect",
            None,
            lambda: BlobServiceClient(config.account_url, credential=_credential(config, self._where), **kwargs),
        )
        self._container = self._service.get_container_client(config.container)
        try:
            if config.create_container:
                self._create_container()
            elif config.check_container:
                self._check_container()
        except BaseException:
            self.close()
            raise

    @property
    def endpoint_url(self) -> str:
        """The account URL the client talks to (Azure's, or an emulator's)."""
        return self._endpoint

    # -- helpers -------------------------------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        return self.config.prefix + check_key(key)

    def _call(self, op: str, key: str | None, fn: Callable[[], T]) -> T:
        """Run ``fn`` and translate its failure; a driver error whose text holds a secret is not chained."""
        try:
            return fn()
        except TensorDBError:
            raise
        except Exception as exc:
            error = translate(exc, op=op, key=key, where=self._where, endpoint=self._endpoint, secrets=self._secrets)
            if not chain_leaks(exc, self._secrets):
                raise error from exc
            error.add_note("(the driver's own error was withheld because its text contained a credential)")
        raise error from None  # outside the except block, so not even __context__ keeps the leaking text

    def _check_container(self) -> None:
        """Fail early, and clearly, when the container is missing or the endpoint is down.

        A 403 is let through: a SAS or role allowed to read and write blobs but
        not to read container properties is a legitimate setup.
        """

        def check() -> None:
            try:
                self._container.get_container_properties()
            except az.HttpResponseError as exc:
                if status_of(exc) not in (401, 403):
                    raise

        self._call("open", None, check)

    def _create_container(self) -> None:
        def create() -> None:
            try:
                self._container.create_container()
            except az.ResourceExistsError:
                pass

        self._call("create container", None, create)

    # -- BlobStore -----------------------------------------------------------------------------------------------

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` under ``key``; a content-addressed key that already exists is left as is.

        Content-addressed keys are created with ``overwrite=False`` (an existing
        blob has the same bytes); other keys are plain overwrites, atomic on Azure.
        """
        name = self._name(key)
        payload = as_bytes(data)
        conditional = is_content_address(key)
        if conditional and len(payload) > self.config.max_single_put_size and self.exists(key):
            return  # skip re-uploading a large blob that is already there

        def upload() -> None:
            try:
                self._container.upload_blob(
                    name,
                    payload,
                    overwrite=not conditional,
                    max_concurrency=self.config.max_concurrency,
                    content_settings=_CONTENT,
                )
            except az.ResourceExistsError as exc:
                # BlobAlreadyExists: stored before.  Another 409 (a lease, a pending copy) is a real failure.
                if not conditional or error_code(exc) not in ("BlobAlreadyExists", ""):
                    raise

        self._call("put", key, upload)

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)``; a range past the end is cut short like a slice."""
        key, start, end = split_request((key, start, end))
        if end is not None and end <= start:
            self.size(key)  # still a BlobNotFound for a missing key
            return b""
        name = self._name(key)

        def download() -> bytes:
            try:
                stream = self._container.download_blob(
                    name,
                    offset=start if start or end is not None else None,
                    length=None if end is None else end - start,
                    max_concurrency=self.config.max_concurrency,
                )
                return stream.readall()
            except az.HttpResponseError as exc:
                if status_of(exc) == 416:
                    return b""  # start at or past the end of an existing blob
                raise

        return self._call("get", key, download)

    def _properties(self, key: str) -> Any:
        """The blob's properties, or None when it is absent (a missing container still raises)."""
        blob = self._container.get_blob_client(self._name(key))

        def stat() -> Any:
            try:
                return blob.get_blob_properties()
            except az.ResourceNotFoundError as exc:
                if error_code(exc) == "ContainerNotFound":
                    raise
                return None

        return self._call("stat", key, stat)

    def exists(self, key: str) -> bool:
        return self._properties(key) is not None

    def size(self, key: str) -> int:
        props = self._properties(key)
        if props is None:
            raise translate(
                az.ResourceNotFoundError("absent"), op="size", key=key, where=self._where, endpoint=self._endpoint
            )
        return int(props.size)

    def delete(self, key: str) -> None:
        name = self._name(key)

        def remove() -> None:
            try:
                self._container.delete_blob(name, delete_snapshots="include")
            except az.ResourceNotFoundError as exc:
                if error_code(exc) == "ContainerNotFound":
                    raise

        self._call("delete", key, remove)

    def _list(self, prefix: str) -> Iterator[str]:
        full = self.config.prefix + prefix
        cut = len(self.config.prefix)
        names = self._call(
            "list",
            None,
            lambda: iter(
                self._container.list_blob_names(name_starts_with=full or None, results_per_page=self.config.page_size)
            ),
        )
        while True:
            name = self._call("list", prefix or None, lambda: next(names, None))
            if name is None:
                return
            yield name[cut:]

    def close(self) -> None:
        """Release pooled connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._service.close()


__all__ = ["AzureBlobStore", "ContainerNotFound", "is_content_address"]
