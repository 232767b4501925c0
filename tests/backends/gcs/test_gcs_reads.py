"""Reads on GCS as the stream makes them: whole chunks and byte ranges of multi-megabyte blobs, and broken bodies.

The store reads each response body in one call rather than through the
SDK's 8 KiB download loop (``tensordb_gcs.store``); these tests hold that
path to the same answers: exact bytes for every range shape, ``b""`` past
the end, and a typed, retryable error (never short bytes) when the
connection drops mid-body.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import tensordb_core as tdb
from bigblobs import assert_every_range_shape, assert_get_many_in_request_order
from cutproxy import CutProxy
from tensordb_core.errors import TransientError
from tensordb_gcs import GCSBlobStore

pytestmark = pytest.mark.gcs

SIZE = 3 * 1024 * 1024 + 17  # several MiB: many socket reads, not a multiple of any buffer size


@pytest.fixture
def store(gcs_uri: str) -> Iterator[GCSBlobStore]:
    with tdb.open_blobs(gcs_uri) as opened:
        assert isinstance(opened, GCSBlobStore)
        yield opened


@pytest.fixture
def blob(store: GCSBlobStore) -> bytes:
    data = os.urandom(SIZE)
    store.put("chunks/big", data)
    return data


def test_whole_blobs_and_every_range_shape_come_back_exact(store: GCSBlobStore, blob: bytes) -> None:
    assert_every_range_shape(store, blob, 2_000_001)


def test_get_many_returns_each_range_in_request_order(store: GCSBlobStore, blob: bytes) -> None:
    assert_get_many_in_request_order(store, blob, stride=97_331, count=40)


def test_a_body_cut_short_is_a_transient_error_not_short_bytes(
    gcs_endpoint: str, gcs_bucket: str, gcs_prefix: str, store: GCSBlobStore, blob: bytes
) -> None:
    port = int(gcs_endpoint.rsplit(":", 1)[1])
    with CutProxy(port, body_bytes=100_000) as proxy:
        uri = f"gs://{gcs_bucket}/{gcs_prefix}?emulator_host=http://127.0.0.1:{proxy.port}"
        with tdb.open_blobs(uri, check_bucket=False, retry_timeout=0) as cut:
            with pytest.raises(TransientError):
                cut.get("chunks/big")
            with pytest.raises(TransientError):
                cut.get("chunks/big", 10, 2_000_000)
        assert proxy.cuts >= 2
