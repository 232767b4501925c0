"""The Azure blob store passes the blob-store conformance suite against Azurite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azurekit import SMALL_UPLOADS

import tensordb_core as tdb
from tensordb_core.store.protocols import BlobStore
from tensordb_core.testing.blob_suite import BlobStoreSuite

pytestmark = pytest.mark.azure


class TestAzureBlobStore(BlobStoreSuite):
    """Each test gets a fresh prefix in the session's container, opened through the plugin registry.

    The fixture lowers the single-put limit to 1 MiB (512 KiB blocks), so the
    1 MiB+ and 64 MiB round trips and the partial-read test go up as staged
    blocks, and lists 100 names per page, so 250 keys cross pages.
    """

    list_page_past = 250  # the fixture pages list() by 100 (Azure's own default is 5,000)

    @pytest.fixture
    def blob_store(self, azure_uri: str, azure_key: dict[str, str]) -> Iterator[BlobStore]:
        store = tdb.open_blobs(azure_uri, page_size=100, **azure_key, **SMALL_UPLOADS)
        yield store
        store.close()
