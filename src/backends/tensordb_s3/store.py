"""The S3 blob store: bytes by key in ``s3://bucket/prefix``, on AWS or any S3-compatible server.

The kit's :class:`~tensordb_core.store.kit.cloud.CloudBlobStore` owns the
flows (open, bucket check, conditional creates, ranges, errors); this module
is the S3 calls.  Why they look like this:

* **Content-addressed writes are conditional creates** (``If-None-Match: *``;
  ``412 PreconditionFailed`` means the same bytes are already there).  A
  server without conditional writes (``NotImplemented``) gets plain PUTs of
  the same bytes: as correct, only not deduplicated server-side.
* **Large blobs go up in parts** (above ``multipart_threshold``), uploaded
  concurrently and committed by one ``CompleteMultipartUpload``, which carries
  the same condition; a failed upload is aborted so no parts linger.
* **One client, many threads.**  botocore clients are thread-safe; its
  adaptive retry mode handles throttling and 5xx before they surface as
  :class:`~tensordb_core.errors.TransientError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from tensordb_core.store.blobkit import ordered_concurrent_map
from tensordb_core.store.kit.cloud import CloudBlobStore, is_content_address

from .client import build_client
from .config import MAX_PARTS, S3Config
from .errors import ERRORS, error_code, http_status

__all__ = ["S3BlobStore", "is_content_address"]

log = logging.getLogger(__name__)

_CONFLICT_RETRIES = 4


class S3BlobStore(CloudBlobStore):
    """A :class:`~tensordb_core.store.protocols.BlobStore` over one S3 bucket and key prefix.

    Build it with ``tensordb_core.open_blobs("s3://bucket/prefix?endpoint_url=...", **options)``
    or directly as ``S3BlobStore(uri, **options)``; options are described in
    ``docs/backends/s3.md`` and :mod:`tensordb_s3.config`.
    """

    config_type = S3Config
    errors = ERRORS
    config: S3Config

    def _connect(self) -> None:
        self._client, self._secrets = build_client(self.config)
        self._endpoint = str(self._client.meta.endpoint_url)
        self._conditional = self.config.conditional_writes

    def _disconnect(self) -> None:
        self._client.close()

    def _bucket_exists(self) -> bool:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if http_status(exc) == 400:  # a HEAD answer has no body to say more (region, token): let a call say it
                return True
            raise
        return True

    def _make_bucket(self) -> None:
        region = self._client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region and region not in ("us-east-1", "aws-global"):
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self._client.create_bucket(**kwargs)

    def _put(self, name: str, data: memoryview, conditional: bool) -> None:
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                if data.nbytes < self.config.multipart_threshold:
                    self._put_single(name, data, conditional)
                else:
                    self._put_multipart(name, data, conditional)
                return
            except ClientError as exc:
                code = error_code(exc)
                if conditional and code == "NotImplemented":
                    log.warning("%s does not support If-None-Match; writing unconditionally", self._where)
                    self._conditional = conditional = False
                    continue
                if code == "ConditionalRequestConflict" and attempt < _CONFLICT_RETRIES:
                    time.sleep(0.05 * 2**attempt)  # a concurrent conditional write of this key is in flight
                    continue
                raise

    def _put_single(self, name: str, view: memoryview, conditional: bool) -> None:
        whole = isinstance(view.obj, bytes) and view.nbytes == len(view.obj)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": name, "Body": view.obj if whole else view.tobytes()}
        if conditional:
            kwargs["IfNoneMatch"] = "*"
        self._client.put_object(**kwargs)

    def _put_multipart(self, name: str, view: memoryview, conditional: bool) -> None:
        chunk = max(self.config.multipart_chunksize, -(-view.nbytes // MAX_PARTS))
        upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=name)["UploadId"]

        def upload(part: tuple[int, int]) -> dict[str, Any]:
            number, offset = part
            body = view[offset : offset + chunk].tobytes()
            resp = self._client.upload_part(
                Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=body
            )
            return {"PartNumber": number, "ETag": resp["ETag"]}

        try:
            offsets = ((i + 1, off) for i, off in enumerate(range(0, view.nbytes, chunk)))
            parts = list(ordered_concurrent_map(upload, offsets, self.config.max_workers))
            kwargs: dict[str, Any] = {
                "Bucket": self.bucket,
                "Key": name,
                "UploadId": upload_id,
                "MultipartUpload": {"Parts": parts},
            }
            if conditional:
                kwargs["IfNoneMatch"] = "*"
            self._client.complete_multipart_upload(**kwargs)
        except BaseException:
            try:
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
            except Exception:  # noqa: BLE001 - the original failure matters; a bucket lifecycle rule reaps leftovers
                log.warning("could not abort a multipart upload in %s", self._where)
            raise

    def _read(self, name: str, start: int, end: int | None) -> bytes:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        body = self._client.get_object(**kwargs)["Body"]
        try:
            # Read through botocore's StreamingBody, never ``with body as raw``: its
            # ``__enter__`` hands back the bare urllib3 response, whose broken-body
            # ProtocolError would escape the error table as an "unexpected" failure
            # instead of the retryable ResponseStreamingError botocore wraps it in.
            return body.read()
        finally:
            body.close()

    def _stat(self, name: str) -> int | None:
        return int(self._client.head_object(Bucket=self.bucket, Key=name)["ContentLength"])

    def _delete(self, name: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=name)  # S3 answers 204 for a missing key too

    def _names(self, prefix: str) -> Iterator[str]:
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                yield item["Key"]
