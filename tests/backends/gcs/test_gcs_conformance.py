"""The GCS blob store passes the blob-store conformance suite against fake-gcs-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gcskit import SMALL_UPLOADS

import tensordb_core as tdb
from tensordb_core.store.protocols import BlobStore
from tensordb_core.testing.blob_suite import BlobStoreSuite

pytestmark = pytest.mark.gcs


class TestGCSBlobStore(BlobStoreSuite):
    """Each test gets a fresh prefix in the session's bucket, opened through the plugin registry.

    The fixture lowers the resumable-upload threshold to 1 MiB (4 MiB chunks),
    so the 1 MiB+ and 64 MiB round trips and the partial-read test go through
    resumable uploads, and lists 100 names per page, so 250 keys cross pages.
    """

    list_page_past = 250  # the fixture pages list() by 100 (GCS's own maximum is 1,000)

    @pytest.fixture
    def blob_store(self, gcs_uri: str) -> Iterator[BlobStore]:
        store = tdb.open_blobs(gcs_uri, page_size=100, **SMALL_UPLOADS)
        yield store
        store.close()
