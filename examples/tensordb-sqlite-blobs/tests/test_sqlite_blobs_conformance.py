"""The example store against TensorDB's shipped blob-store conformance suite: a subclass and a fixture.

Run twice: once as users get it (ranged reads through ``Connection.blobopen``),
once on the ``substr()`` fallback, so both read paths are held to the contract.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tensordb_core.store.uri import parse_uri
from tensordb_core.testing import BlobStoreSuite

from tensordb_sqlite_blobs.store import LIST_PAGE, SQLiteBlobStore


class TestSQLiteBlobStore(BlobStoreSuite):
    list_page_past = LIST_PAGE + 1  # list() pages by LIST_PAGE keys: prove it follows the pages

    @pytest.fixture
    def blob_store(self, tmp_path: Path) -> Iterator[SQLiteBlobStore]:
        store = SQLiteBlobStore(parse_uri(f"sqlite-blobs://{tmp_path}/blobs.db"))
        yield store
        store.close()


class TestSQLiteBlobStoreSubstrReads(TestSQLiteBlobStore):
    large_blob_bytes = 4 * 2**20  # the large round trip already ran above; this class tests the read path
    list_page_past = 0

    @pytest.fixture
    def blob_store(self, tmp_path: Path) -> Iterator[SQLiteBlobStore]:
        store = SQLiteBlobStore(parse_uri(f"sqlite-blobs://{tmp_path}/blobs.db"))
        store.incremental_io = False
        yield store
        store.close()
