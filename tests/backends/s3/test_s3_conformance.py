"""The S3 blob store passes the blob-store conformance suite against a real S3 REST server (moto)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tensordb_core as tdb
from tensordb_core.store.protocols import BlobStore
from tensordb_core.testing.blob_suite import BlobStoreSuite

pytestmark = pytest.mark.s3


class TestS3BlobStore(BlobStoreSuite):
    """Each test gets a fresh prefix in the session's bucket, opened through the plugin registry."""

    list_page_past = 1_001  # S3 pages list_objects_v2 by 1,000 keys

    @pytest.fixture
    def blob_store(self, s3_uri: str, s3_credentials: dict[str, str]) -> Iterator[BlobStore]:
        store = tdb.open_blobs(s3_uri, **s3_credentials)
        yield store
        store.close()
