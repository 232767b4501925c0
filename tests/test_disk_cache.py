"""The on-disk chunk cache (stream/disk_cache.py): bound, LRU eviction, atomic files, content-address check, bad options."""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.stream.batches import InvalidStreamArgument
from tensordb_core.stream.disk_cache import DiskCachedBlobs, DiskCacheError, DiskChunkCache


def _chunk(i: int, size: int = 1000) -> tuple[str, bytes]:
    data = bytes([i % 256]) * size
    return f"chunks/{hashlib.sha256(data).hexdigest()}", data


def test_bound_is_kept_by_evicting_least_recently_used(tmp_path):
    cache = DiskChunkCache(tmp_path / "c", max_bytes=10_000)
    keys = []
    for i in range(8):
        key, data = _chunk(i)
        cache.put(key, data)
        keys.append(key)
        os.utime(cache._path(key), (1000 + i, 1000 + i))  # an explicit LRU clock: chunk i used at time i
    assert cache.get(keys[0]) is not None  # chunk 0 is now the most recently used
    for i in range(8, 14):
        cache.put(*_chunk(i))
    assert cache.nbytes() <= 10_000
    assert cache.get(keys[0]) is not None  # kept: used recently
    assert cache.get(keys[1]) is None  # evicted: the least recently used
    assert not [p for p in (tmp_path / "c").rglob(".tmp-*")]  # written under a temporary name, renamed into place


def test_ranges_come_from_a_cached_chunk_and_a_bad_copy_is_dropped(tmp_path):
    cache = DiskChunkCache(tmp_path / "c", max_bytes=1 << 20)
    key, data = _chunk(7)
    cache.put(key, data)
    fresh = pickle.loads(pickle.dumps(cache))  # what a loader worker gets: same directory, nothing verified yet
    assert fresh.get(key, 10, 20) == data[10:20]
    path = cache._path(key)
    path.write_bytes(b"x" + data[1:])
    again = DiskChunkCache(tmp_path / "c", max_bytes=1 << 20)
    assert again.get(key) is None and not path.exists() and again.refetched == 1


def test_only_content_addressed_whole_chunks_are_kept(tmp_path):
    with tdb.connect(f"memory://dc-{os.getpid()}", study="s") as db:
        key, data = _chunk(3)
        db.scope.blobs.put(key, data)
        db.scope.blobs.put("named/thing", b"mutable bytes")
        cache = DiskChunkCache(tmp_path / "c", max_bytes=1 << 20)
        blobs = DiskCachedBlobs(db.scope.blobs, cache)
        assert list(blobs.get_many([(key, 0, 5), "named/thing"])) == [data[:5], b"mutable bytes"]
        assert cache.nbytes() == 0  # a range is not a chunk; a name is not a content address
        assert list(blobs.get_many([key])) == [data]
        assert cache.nbytes() == len(data)
        assert list(blobs.get_many([(key, 2, 4)])) == [data[2:4]] and cache.hits == 1


def test_a_hit_is_a_read_only_view_of_the_file_that_outlives_its_eviction(tmp_path):
    """Hits are mapped, not copied: a stream decodes from the page cache, as from a local store's chunks."""
    cache = DiskChunkCache(tmp_path / "c", max_bytes=1 << 20)
    key, data = _chunk(5, 100_000)
    cache.put(key, data)
    view = cache.get(key)
    assert isinstance(view, memoryview) and view.readonly and view == data
    assert cache.get(key, 99_990, None) == data[99_990:] and cache.get(key, 5, 9) == data[5:9]
    with pytest.raises(TypeError):
        view[0] = 1
    cache._path(key).unlink()  # evicted (by this or another process) while a window holds the view
    assert view == data and cache.get(key) is None


def test_cached_blobs_keep_whole_views_for_later_epochs_and_let_go_on_clear(tmp_path):
    with tdb.connect(f"memory://dcv-{os.getpid()}", study="s") as db:
        chunks = [_chunk(i, 4000) for i in range(3)]
        for key, data in chunks:
            db.scope.blobs.put(key, data)
        cache = DiskChunkCache(tmp_path / "c", max_bytes=1 << 20)
        for room, hits in ((12_000, 3), (8_000, 9)):  # all three files kept; two (each epoch maps every one again)
            blobs = DiskCachedBlobs(db.scope.blobs, cache, max_mapped=room)
            list(blobs.get_many([k for k, _ in chunks]))  # the first epoch: misses fetched and cached, then hits
            cache.hits = 0
            for _ in range(3):  # later epochs
                got = [bytes(b) for b in blobs.get_many([(k, 10, 20) for k, _ in chunks])]
                assert got == [d[10:20] for _, d in chunks] and blobs.views.held <= room
            assert cache.hits == hits
        blobs.clear()
        assert list(blobs.get_many([chunks[2][0]])) == [chunks[2][1]] and cache.hits == hits + 1


@pytest.mark.parametrize("kwargs", [{"disk_cache_bytes": 0}, {"disk_cache_bytes": "1G"}, {"disk_cache_bytes": True}])
def test_bad_options_are_typed_errors_and_create_nothing(tmp_path, kwargs):
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(np.zeros((4, 2), np.float32), np.arange(4))
        with pytest.raises(InvalidStreamArgument):
            db.data_generator({}, cache_dir=str(tmp_path / "never"), **kwargs)
    assert not (tmp_path / "never").exists()
    with pytest.raises(DiskCacheError):
        DiskChunkCache(tmp_path / "c", max_bytes=-1)
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(DiskCacheError):
        DiskChunkCache(tmp_path / "file" / "sub")


def test_a_local_stream_through_the_cache_reads_the_same_batches(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.integers(0, 255, size=(64, 4, 4), dtype=np.uint8)
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(X, np.arange(64), chunk_bytes=256)

        def epochs(**kw):
            with db.data_generator({}, batch_size=8, seed=4, epochs=2, **kw) as stream:
                return [(xb.copy(), yb.copy()) for xb, yb in stream]

        plain = epochs()
        for _ in range(2):  # filling the cache (the query's references: local chunks are not copied), then reading it
            cached = epochs(cache_dir=str(tmp_path / "c"), disk_cache_bytes=1 << 20)
            assert len(cached) == len(plain)
            for (a, b), (c, d) in zip(plain, cached):
                np.testing.assert_array_equal(a, c)
                np.testing.assert_array_equal(b, d)
        assert DiskChunkCache(tmp_path / "c").nbytes() > 0
