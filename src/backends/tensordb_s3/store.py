"""The S3 blob store: bytes by key in ``s3://bucket/prefix``, on AWS or any S3-compatible server.

Why it looks like this:

* **Content-addressed writes are conditional creates.**  A key whose last
  segment is a sha256 (the warehouse's chunk and blob keys) is written with
  ``If-None-Match: *``; ``412 PreconditionFailed`` means the same bytes are
  already there, which is success.  Other keys are plain overwrites (S3 PUTs
  are atomic: a reader never sees a partial object).
* **Large blobs go up in parts** (above ``multipart_threshold``), uploaded
  concurrently and committed by one ``CompleteMultipartUpload``, which carries
  the same condition; a failed upload is aborted so no parts linger.
* **One client, many threads.**  botocore clients are thread-safe; ``get_many``
  runs ranged GETs on a bounded pool (:func:`~tensordb_core.store.blobkit.ordered_concurrent_map`)
  over one client whose connection pool is at least as large as the pool.
  Throttling and 5xx are retried by botocore's adaptive mode before they surface
  as :class:`~tensordb_core.errors.TransientError`.
* **Errors are translated at this boundary** (:mod:`tensordb_s3.errors`) and
  never carry a credential: ``repr``/``str`` show only the redacted URI.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, NoReturn

from tensordb_core.errors import BackendError, BlobNotFound
from tensordb_core.store.blobkit import check_key, ordered_concurrent_map, split_request
from tensordb_core.store.cloudkit import CloudBlobStore, is_content_address
from tensordb_core.store.protocols import BlobRequest
from tensordb_core.store.uri import StoreURI, parse_uri

from .client import build_client
from .config import MAX_PARTS, S3Config
from .errors import BucketNotFound, error_code, http_status, translate

log = logging.getLogger(__name__)

_CONFLICT_RETRIES = 4


class S3BlobStore(CloudBlobStore):
    """A :class:`~tensordb_core.store.protocols.BlobStore` over one S3 bucket and key prefix.

    Build it with ``tensordb_core.open_blobs("s3://bucket/prefix?endpoint_url=...", **options)``
    or directly as ``S3BlobStore(uri, **options)``; options are described in
    ``docs/backends/s3.md`` and :mod:`tensordb_s3.config`.  Opening checks the
    bucket once (``check_bucket=false`` skips that; ``create_bucket=true``
    creates a missing bucket).
    """

    def __init__(self, uri: str | StoreURI, **options: Any) -> None:
        self.uri = parse_uri(uri)
        self.config = S3Config.from_uri(self.uri, options)
        self.bucket = self.config.bucket
        self.prefix = self.config.prefix
        self._where = self.uri.redacted()
        self._secrets: tuple[str, ...] = self.config.secrets()
        self._conditional = self.config.conditional_writes
        self._closed = False
        try:
            self._client, self._secrets = build_client(self.config)
        except Exception as exc:  # noqa: BLE001 - translated (profile missing, bad endpoint...)
            self._fail(exc, "connect to")
        try:
            if self.config.create_bucket:
                self._ensure_bucket()
            elif self.config.check_bucket:
                self._check_bucket()
        except BaseException:
            self.close()
            raise

    # -- helpers -------------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """The endpoint the client talks to (from the options, the URI, the environment or AWS's default)."""
        return str(self._client.meta.endpoint_url)

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _fail(self, exc: BaseException, action: str, key: str | None = None) -> NoReturn:
        raise translate(
            exc, action=action, where=self._where, secrets=self._secrets, key=key, bucket=self.bucket
        ) from exc

    def _bucket_may_exist(self) -> bool:
        """One HEAD on the bucket: False only when S3 says it is missing; connection failures raise.

        400/401/403 count as "may exist": credentials allowed to read and write
        objects but not to list the bucket are a legitimate setup, and a HEAD
        answer has no body to say more (bad session token, wrong region), so the
        first real call reports the precise error instead.
        """
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # noqa: BLE001 - classified below, the rest translated
            status = http_status(exc)
            if status in (400, 401, 403):
                log.debug("HEAD bucket of %s answered %s; not checking further", self._where, status)
                return True
            if status == 404 or error_code(exc) in ("NoSuchBucket", "404", "NotFound"):
                return False
            self._fail(exc, "open")
        return True

    def _check_bucket(self) -> None:
        """Fail early, and clearly, when the bucket is missing or the endpoint is down."""
        if not self._bucket_may_exist():
            raise BucketNotFound(
                f"bucket {self.bucket!r} does not exist ({self._where}): create it, or open the store "
                "with create_bucket=true (an option, or ?create_bucket=true in the URI)"
            )

    def _ensure_bucket(self) -> None:
        if self._bucket_may_exist():
            return
        region = self._client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region and region not in ("us-east-1", "aws-global"):
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._client.create_bucket(**kwargs)
            log.info("created bucket %s for %s", self.bucket, self._where)
        except Exception as exc:  # noqa: BLE001
            if error_code(exc) not in ("BucketAlreadyOwnedByYou",):
                self._fail(exc, "create bucket for")

    # -- writes --------------------------------------------------------------------------------

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` under ``key``; a content-addressed key that already exists is left as is."""
        full = self._full(key)
        view = memoryview(data) if isinstance(data, bytes) else memoryview(data).cast("B")
        for attempt in range(_CONFLICT_RETRIES + 1):
            conditional = self._conditional and is_content_address(key)
            try:
                if view.nbytes < self.config.multipart_threshold:
                    self._put_single(full, view, conditional)
                elif not (conditional and self._head(full, key) is not None):  # skip re-uploading what is there
                    self._put_multipart(full, view, conditional)
                return
            except Exception as exc:  # noqa: BLE001
                code = error_code(exc)
                if conditional and (http_status(exc) == 412 or code == "PreconditionFailed"):
                    return  # If-None-Match: * met an object with the same content address: already stored
                if conditional and code == "NotImplemented":
                    # An S3-compatible server without conditional writes: plain PUTs of the
                    # same bytes are just as correct, only not deduplicated server-side.
                    log.warning("%s does not support If-None-Match; writing unconditionally", self._where)
                    self._conditional = False
                    continue
                if code == "ConditionalRequestConflict" and attempt < _CONFLICT_RETRIES:
                    time.sleep(0.05 * 2**attempt)  # a concurrent conditional write of this key is in flight
                    continue
                self._fail(exc, "write", key)

    def _put_single(self, full: str, view: memoryview, conditional: bool) -> None:
        whole = isinstance(view.obj, bytes) and view.nbytes == len(view.obj)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": full, "Body": view.obj if whole else view.tobytes()}
        if conditional:
            kwargs["IfNoneMatch"] = "*"
        self._client.put_object(**kwargs)

    def _put_multipart(self, full: str, view: memoryview, conditional: bool) -> None:
        chunk = max(self.config.multipart_chunksize, -(-view.nbytes // MAX_PARTS))
        upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=full)["UploadId"]

        def upload(part: tuple[int, int]) -> dict[str, Any]:
            number, offset = part
            body = view[offset : offset + chunk].tobytes()
            resp = self._client.upload_part(
                Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=body
            )
            return {"PartNumber": number, "ETag": resp["ETag"]}

        try:
            offsets = ((i + 1, off) for i, off in enumerate(range(0, view.nbytes, chunk)))
            parts = list(ordered_concurrent_map(upload, offsets, self.config.max_workers))
            kwargs: dict[str, Any] = {
                "Bucket": self.bucket,
                "Key": full,
                "UploadId": upload_id,
                "MultipartUpload": {"Parts": parts},
            }
            if conditional:
                kwargs["IfNoneMatch"] = "*"
            self._client.complete_multipart_upload(**kwargs)
        except BaseException:
            try:
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
            except Exception:  # noqa: BLE001 - the original failure matters; a bucket lifecycle rule reaps leftovers
                log.warning("could not abort a multipart upload in %s", self._where)
            raise

    def delete(self, key: str) -> None:
        """Remove a blob; a missing key is not an error (S3 answers 204 either way)."""
        full = self._full(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=full)
        except Exception as exc:  # noqa: BLE001
            self._fail(exc, "delete", key)

    # -- reads ---------------------------------------------------------------------------------

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` with one (ranged) GET; ``BlobNotFound`` if absent."""
        return self._get(*split_request((key, start, end)))

    def _get(self, key: str, start: int, end: int | None) -> bytes:
        full = self.prefix + key
        if end is not None and end <= start:
            self.size(key)  # an empty range of a missing blob is still "not found"
            return b""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            resp = self._client.get_object(**kwargs)
            with resp["Body"] as body:
                return body.read()
        except Exception as exc:  # noqa: BLE001
            if http_status(exc) == 416 or error_code(exc) == "InvalidRange":
                return b""  # the range starts at or past the end: the blob exists, the slice is empty
            self._fail(exc, "read", key)

    def _get_request(self, request: BlobRequest) -> bytes:
        return self._get(*split_request(request))

    def _head(self, full: str, key: str) -> dict[str, Any] | None:
        try:
            return dict(self._client.head_object(Bucket=self.bucket, Key=full))
        except Exception as exc:  # noqa: BLE001
            if http_status(exc) == 404 and error_code(exc) != "NoSuchBucket":
                return None
            self._fail(exc, "look up", key)

    def exists(self, key: str) -> bool:
        """Whether ``key`` is stored (one HEAD request)."""
        return self._head(self._full(key), key) is not None

    def size(self, key: str) -> int:
        """Length in bytes (one HEAD request); ``BlobNotFound`` if absent."""
        head = self._head(self._full(key), key)
        if head is None:
            raise BlobNotFound(f"blob {key!r} in {self._where} not found")
        return int(head["ContentLength"])

    def _list(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix`` (already checked by ``list``), 1,000 per page."""
        full_prefix = self.prefix + prefix
        paginator = self._client.get_paginator("list_objects_v2")
        cut = len(self.prefix)
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
                for item in page.get("Contents", ()):
                    yield item["Key"][cut:]
        except Exception as exc:  # noqa: BLE001
            self._fail(exc, "list")

    def close(self) -> None:
        """Release the connection pool (idempotent)."""
        if self._closed:
            return
        self._closed = True
        client = getattr(self, "_client", None)
        if client is not None:
            try:
                client.close()
            except Exception as exc:
                raise BackendError(f"could not close the S3 client of {self._where}") from exc
