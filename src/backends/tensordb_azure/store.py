"""A :class:`~tensordb_core.store.protocols.BlobStore` on Azure Blob Storage (or Azurite).

The kit's :class:`~tensordb_core.store.kit.cloud.CloudBlobStore` owns the
flows (open, container check, conditional creates, ranges, errors); this
module is the Azure calls.  Why they look like this:

* **Content addresses are conditional creates** (``overwrite=False``, an
  ``If-None-Match: *`` create; ``BlobAlreadyExists`` means the blob is already
  there).  Blobs larger than ``max_single_put_size`` go up as staged blocks,
  ``max_concurrency`` at a time, and become visible only when the block list
  commits, so a reader never sees a partial blob.
* **Ranged reads** map ``[start, end)`` onto ``offset``/``length``.
* **One client, many threads**, whose HTTP connection pool is sized to
  ``max_workers``.
* **No secrets anywhere** (:mod:`tensordb_azure.errors`): account keys, SAS
  tokens and connection strings appear in no repr, message, chained exception
  or urllib3 log line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobServiceClient, ContentSettings, ExponentialRetry
from urllib3.util.retry import Retry

from tensordb_core.errors import PermissionDenied
from tensordb_core.store.kit.cloud import CloudBlobStore, is_content_address
from tensordb_core.store.kit.http import pooled_session

from .config import AzureConfig
from .errors import ERRORS, ContainerNotFound, install_log_scrubber

_CONTENT = ContentSettings(content_type="application/octet-stream")
#: Bytes per read of a response body.  azure-core's default is 4 KiB (the SDK raises it to 256 KiB only for a
#: transport it builds itself); at 4 KiB a 1.5 MB chunk took ~370 trips through urllib3's Python read loop and
#: downloading was most of a remote first epoch's CPU.  A read never allocates past the body's announced length.
READ_BLOCK_SIZE = 4 * 1024 * 1024


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


class AzureBlobStore(CloudBlobStore):
    """A :class:`~tensordb_core.store.protocols.BlobStore` over one Azure container and key prefix.

    Build it with ``tensordb_core.open_blobs("az://container/prefix", **options)``
    or directly as ``AzureBlobStore(uri, **options)``; options are described in
    ``docs/backends/azure.md`` and :mod:`tensordb_azure.config`.  Opening checks
    the container once (``check_container=false`` skips that;
    ``create_container=true`` creates a missing container).
    """

    config_type = AzureConfig
    errors = ERRORS
    config: AzureConfig

    @property
    def container(self) -> str:
        return self.config.container

    def _connect(self) -> None:
        config = self.config
        self._endpoint = config.account_url
        if config.auth == "sas":
            install_log_scrubber()
        kwargs: dict[str, Any] = {
            "transport": RequestsTransport(
                # retries stay with azure-core's policy; the environment's proxies and CA bundle read once here
                session=pooled_session(config.account_url, config.max_workers + config.max_concurrency + 4,
                                       retries=Retry(total=False, redirect=False, raise_on_status=False)),
                session_owner=True,
                connection_data_block_size=READ_BLOCK_SIZE,
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
        self._service = BlobServiceClient(config.account_url, credential=_credential(config, self._where), **kwargs)
        self._container = self._service.get_container_client(config.container)

    def _disconnect(self) -> None:
        self._service.close()

    def _bucket_exists(self) -> bool:
        self._container.get_container_properties()
        return True

    def _make_bucket(self) -> None:
        self._container.create_container()

    def _put(self, name: str, data: memoryview, conditional: bool) -> None:
        self._container.upload_blob(
            name,
            data.obj if isinstance(data.obj, bytes) and data.nbytes == len(data.obj) else data.tobytes(),
            overwrite=not conditional,
            max_concurrency=self.config.max_concurrency,
            content_settings=_CONTENT,
        )

    def _read(self, name: str, start: int, end: int | None) -> bytes:
        stream = self._container.download_blob(
            name,
            offset=start if start or end is not None else None,
            length=None if end is None else end - start,
            max_concurrency=self.config.max_concurrency,
        )
        return bytes(stream.readall())

    def _stat(self, name: str) -> int | None:
        return int(self._container.get_blob_client(name).get_blob_properties().size)

    def _delete(self, name: str) -> None:
        self._container.delete_blob(name, delete_snapshots="include")

    def _names(self, prefix: str) -> Iterator[str]:
        yield from self._container.list_blob_names(name_starts_with=prefix or None,
                                                   results_per_page=self.config.page_size)


__all__ = ["AzureBlobStore", "ContainerNotFound", "is_content_address"]
