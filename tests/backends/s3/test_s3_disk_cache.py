"""The on-disk chunk cache in front of S3 (moto server): a second epoch makes no GET; a corrupted file is refetched."""

from __future__ import annotations

import numpy as np
from s3kit import OPEN_CREDENTIALS

import tensordb_core as tdb


def _count_gets(db: tdb.TensorDB) -> dict[str, int]:
    """GetObject calls the warehouse's real S3 client makes (botocore's own event hook, no stand-in)."""
    store = db.scope.blobs
    while hasattr(store, "inner"):
        store = store.inner
    calls = {"get": 0}

    def count(**_: object) -> None:
        calls["get"] += 1

    store._client.meta.events.register("before-call.s3.GetObject", count)
    return calls


def _labels(db: tdb.TensorDB, cache_dir, epochs: int = 1) -> list[int]:
    with db.data_generator({}, batch_size=16, seed=2, epochs=epochs, cache_dir=str(cache_dir)) as stream:
        return [v for _, y in stream for v in y.tolist()]


def test_second_epoch_reads_no_chunk_from_s3_and_a_corrupted_file_is_refetched(tmp_path, s3_uri):
    rng = np.random.default_rng(3)
    X = rng.integers(0, 255, size=(96, 3, 8, 8), dtype=np.uint8)
    cache_dir = tmp_path / "chunk-cache"
    with tdb.connect(tmp_path / "idx", study="s", blobs=s3_uri, blob_options=dict(OPEN_CREDENTIALS)) as db:
        db.import_data(X, np.arange(96), chunk_bytes=4096)
        gets = _count_gets(db)
        with db.data_generator({}, batch_size=16, seed=2, epochs=1) as plain:
            want = [v for _, y in plain for v in y.tolist()]
        chunks = gets["get"]
        assert chunks >= 3  # several chunks, one GET each

        gets["get"] = 0
        assert _labels(db, cache_dir) == want
        assert gets["get"] == chunks  # the first epoch fetches every chunk once and keeps it
        digests = {doc["_x"]["key"].rsplit("/", 1)[-1] for doc in db.find_data({})}
        files = sorted(p for p in cache_dir.rglob("*") if p.is_file() and p.name in digests)
        assert len(files) == chunks
        assert len(list((cache_dir / "refs").iterdir())) == 1  # and the query's references (stream/snapshots.py)

        gets["get"] = 0
        assert _labels(db, cache_dir) == want  # a new stream (and a new cache object) over the same directory
        assert gets["get"] == 0
        two = _labels(db, cache_dir, epochs=2)
        assert sorted(two) == sorted(want * 2) and gets["get"] == 0

        damaged = files[0]
        data = bytearray(damaged.read_bytes())
        data[len(data) // 2] ^= 0xFF
        damaged.write_bytes(bytes(data))
        assert _labels(db, cache_dir) == want  # right samples: the bad copy failed its sha256 and was fetched again
        assert gets["get"] == 1
        assert damaged.read_bytes() != bytes(data)  # and replaced by the good bytes
