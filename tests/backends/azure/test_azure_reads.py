"""Reads on Azure as the stream makes them: whole chunks and byte ranges of multi-megabyte blobs, and broken bodies.

The store reads response bodies in 4 MiB blocks rather than azure-core's
4 KiB default (``tensordb_azure.store.READ_BLOCK_SIZE``); these tests hold
that path to the same answers: exact bytes for every range shape, ``b""``
past the end, and a typed error (never short bytes) when the connection
drops mid-body (also after the SDK's own download retries, which wrap the
last failure in a statusless ``HttpResponseError``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import tensordb_core as tdb
from bigblobs import assert_every_range_shape, assert_get_many_in_request_order
from cutproxy import CutProxy
from tensordb_azure.store import READ_BLOCK_SIZE, AzureBlobStore
from tensordb_core.errors import TransientError

pytestmark = pytest.mark.azure

SIZE = READ_BLOCK_SIZE + 3 * 1024 * 1024 + 17  # more than one read block, not a multiple of any buffer size


@pytest.fixture
def store(azure_uri: str, azure_key: dict[str, str]) -> Iterator[AzureBlobStore]:
    with tdb.open_blobs(azure_uri, **azure_key) as opened:
        assert isinstance(opened, AzureBlobStore)
        yield opened


@pytest.fixture
def blob(store: AzureBlobStore) -> bytes:
    data = os.urandom(SIZE)
    store.put("chunks/big", data)
    return data


def test_whole_blobs_and_every_range_shape_come_back_exact(store: AzureBlobStore, blob: bytes) -> None:
    assert_every_range_shape(store, blob, READ_BLOCK_SIZE + 2)


def test_get_many_returns_each_range_in_request_order(store: AzureBlobStore, blob: bytes) -> None:
    assert_get_many_in_request_order(store, blob, stride=197_331, count=30)


def test_a_body_cut_short_is_a_transient_error_not_short_bytes(
    azure_endpoint: str, azure_container: str, azure_prefix: str, azure_key: dict[str, str], blob: bytes
) -> None:
    port = int(azure_endpoint.split(":")[2].split("/")[0])
    endpoint = azure_endpoint.replace(f":{port}/", ":{}/")
    with CutProxy(port, body_bytes=100_000) as proxy:
        uri = f"az://{azure_container}/{azure_prefix}?endpoint={endpoint.format(proxy.port)}"
        with tdb.open_blobs(uri, **azure_key, check_container=False, max_attempts=1) as cut:
            with pytest.raises(TransientError):
                cut.get("chunks/big")
            with pytest.raises(TransientError):
                cut.get("chunks/big", 10, 2_000_000)
        assert proxy.cuts >= 2
