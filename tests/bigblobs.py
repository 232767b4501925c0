"""Read checks on one multi-MiB blob, shared by the GCS and Azure read tests (tests/backends/*/test_*_reads.py).

Why not the shipped conformance suite: these blobs span several of a store's read blocks, which only the
stores that read bodies in blocks need, and uploading them to every backend would slow every suite.
"""

from __future__ import annotations

import pytest

from tensordb_core.errors import BlobNotFound


def assert_every_range_shape(store, blob: bytes, inner_end: int) -> None:
    """Whole, open-ended, one-byte, interior (``[1000, inner_end)``), past-the-end and missing reads of
    ``chunks/big``, which holds ``blob``."""
    size = len(blob)
    assert store.get("chunks/big") == blob
    assert store.get("chunks/big", 1) == blob[1:]
    assert store.get("chunks/big", 0, 1) == blob[:1]
    assert store.get("chunks/big", 1000, inner_end) == blob[1000:inner_end]
    assert store.get("chunks/big", size - 5, size + 100) == blob[-5:]  # past the end: cut short like a slice
    assert store.get("chunks/big", size) == b""
    assert store.get("chunks/big", size + 10, size + 20) == b""
    with pytest.raises(BlobNotFound):
        store.get("chunks/absent", 0, 10)


def assert_get_many_in_request_order(store, blob: bytes, stride: int, count: int) -> None:
    """``count`` ranges of ``chunks/big`` spread by ``stride`` and the whole blob, in one ``get_many``."""
    spans = [(i * stride % len(blob), i * stride % len(blob) + 50_000 + i) for i in range(count)]
    got = list(store.get_many([("chunks/big", a, b) for a, b in spans] + ["chunks/big"]))
    assert got[:-1] == [blob[a:b] for a, b in spans]
    assert got[-1] == blob
