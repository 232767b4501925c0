"""Mapped reads (``BlobCapabilities.map``): the stream decodes the embedded file store's chunks from mmap views.

Why these tests: mapping changes where a sample's bytes come from, not what
they are; a short chunk file must still be a typed error naming its samples
(a mapping past a file's end would be a SIGBUS, killing the process), and a
stream with a chunk cache must keep reading immutable bytes.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.embedded.file_blobs import FileBlobStore
from tensordb_core.stream.batches import SampleError

N = 300


def make_data(db, codec):
    labels = np.arange(N)
    X = (labels[:, None] * 100 + np.arange(12)).astype(np.float32).reshape(N, 3, 4)
    db.import_data(X, labels, chunk_bytes=2048, codec=codec)
    return X


def drain(stream):
    """(X, y) of every batch, concatenated; each X checked against its label."""
    xs, ys = [], []
    with stream:
        for X, y in stream:
            np.testing.assert_array_equal(X, (y[:, None] * 100 + np.arange(12)).astype(np.float32).reshape(-1, 3, 4))
            xs.append(X)
            ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture
def spy(monkeypatch):
    """Counts the real store's map / read_into calls (the real methods still run)."""
    calls = {"map": 0, "read_into": 0}
    for name in calls:
        real = getattr(FileBlobStore, name)

        def counted(self, *args, _real=real, _name=name):
            calls[_name] += 1
            return _real(self, *args)

        monkeypatch.setattr(FileBlobStore, name, counted)
    return calls


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_the_stream_reads_mapped_views_and_yields_what_reading_into_buffers_yields(tmp_path, spy, codec):
    with tdb.connect(str(tmp_path / "wh"), study="s") as db:
        make_data(db, codec)
        assert db.blobs.capabilities.map
        mapped = drain(db.data_generator(batch_size=16, shuffle=True, seed=3, window_bytes=5000))
        assert spy["map"] > 0 and spy["read_into"] == 0
        db.blobs.capabilities = dataclasses.replace(db.blobs.capabilities, map=False)  # the pooled read_into path
        read = drain(db.data_generator(batch_size=16, shuffle=True, seed=3, window_bytes=5000))
        assert spy["read_into"] > 0
    for a, b in zip(mapped, read):
        np.testing.assert_array_equal(a, b)
    assert sorted(mapped[1].tolist()) == list(range(N))
    assert mapped[0].flags.writeable, "batches are the caller's arrays, not views of a mapping"


def test_a_chunk_cache_reads_bytes_not_mapped_views(tmp_path, spy):
    with tdb.connect(str(tmp_path / "wh"), study="s") as db:
        make_data(db, "none")
        drain(db.data_generator(batch_size=16, shuffle=False, cache_bytes=1 << 20))
    assert spy["map"] == 0


def test_a_short_chunk_file_is_a_typed_error_naming_its_samples_never_a_crash(tmp_path):
    with tdb.connect(str(tmp_path / "wh"), study="s") as db:
        make_data(db, "none")
        doc = next(iter(db.index.find("data", {"label": 150})))
        x = doc["_x"]
        path = db.blobs.path_of(x["key"])
        with open(path, "r+b") as f:  # cut the chunk in the middle of sample 150
            f.truncate(x["offset"] + x["length"] // 2)
        short = {d["label"] for d in db.index.find("data", {"_x.key": x["key"]})
                 if d["_x"]["offset"] + d["_x"]["length"] > x["offset"] + x["length"] // 2}
        with pytest.raises(SampleError) as info:
            drain(db.data_generator(batch_size=8, shuffle=False))
        assert isinstance(info.value, tdb.TensorDBError)
        assert info.value.doc_id in {d["_id"] for d in db.index.find("data", {"label": {"$in": sorted(short)}})}
        stream = db.data_generator(batch_size=8, shuffle=False, on_error="skip")
        _, seen = drain(stream)
        assert sorted(seen.tolist()) == sorted(set(range(N)) - short)
        assert stream.stats.skipped == len(short)


def test_a_mapped_view_is_clamped_to_the_file_it_maps(tmp_path):
    store = FileBlobStore(tmp_path / "blobs", fsync=False)
    data = bytes(itertools.islice(itertools.cycle(range(251)), 300_000))
    key = "chunks/" + "ab" * 32
    store.put(key, data)
    with open(store.path_of(key), "r+b") as f:
        f.truncate(100_000)  # a damaged store: shorter than its references say
    view = store.map(key, 65_536, 200_000)
    assert bytes(view) == data[65_536:100_000]  # short, as get() is; touching every byte does not fault


def test_a_stream_maps_each_dense_chunk_once_and_later_epochs_slice_those_mappings(tmp_path, spy):
    """stream/mapped.py: a chunk most of a window needs is mapped whole, once per stream; later epochs read
    it without a new mapping (each was a page-table entry per 4 KiB, every epoch), and read the same samples."""
    with tdb.connect(str(tmp_path / "wh"), study="s") as db:
        make_data(db, "lz4")
        chunks = len({d["_x"]["key"] for d in db.index.find("data", {})})
        maps_at_epoch_end, labels, n = [], [], 0
        with db.data_generator(batch_size=20, shuffle=True, seed=3, window_bytes=5000, epochs=3) as stream:
            for X, y in stream:
                np.testing.assert_array_equal(X, (y[:, None] * 100 + np.arange(12)).astype(np.float32).reshape(-1, 3, 4))
                labels += y.tolist()
                n += len(y)
                if n % N == 0:
                    maps_at_epoch_end.append(spy["map"])
    assert maps_at_epoch_end[0] >= chunks
    assert maps_at_epoch_end[1:] == [maps_at_epoch_end[0]] * 2  # no mapping after the first epoch
    assert [sorted(labels[i:i + N]) for i in (0, N, 2 * N)] == [list(range(N))] * 3


def test_mapped_chunks_keep_dense_files_whole_map_sparse_ranges_as_asked_and_stay_bounded(tmp_path):
    from tensordb_core.stream.mapped import MappedChunks

    store = FileBlobStore(tmp_path / "blobs", fsync=False)
    data = {f"chunks/{c * 64}": bytes([i % 251 for i in range(1000 * (k + 1))]) for k, c in enumerate("abc")}
    for key, blob in data.items():
        store.put(key, blob)
    calls = []
    real = store.map
    store.map = lambda key, start=0, end=None: calls.append((key, start, end)) or real(key, start, end)
    maps = MappedChunks(store, max_bytes=4500)
    a, b, c = data
    assert bytes(maps.map(a, 0, 100)) == data[a][:100]  # 10% of the file: mapped as asked, not kept
    assert bytes(maps.map(a, 100, 900)) == data[a][100:900]  # 80%: the whole file, kept
    assert bytes(maps.map(a, 950, 5000)) == data[a][950:] and bytes(maps.map(a, 5000)) == b""  # slices, clamped
    assert calls == [(a, 0, 100), (a, 0, None)]
    assert bytes(maps.map(b, 0, None)) == data[b] and bytes(maps.map(c, 0, 3000)) == data[c]  # 1 + 2 + 3 KB > 4.5
    assert bytes(maps.map(a, 100, 900)) == data[a][100:900]  # the least recently used (a) was dropped: mapped again
    assert calls[-1] == (a, 0, None) and len(calls) == 5
    with pytest.raises(tdb.TensorDBError):
        maps.map("chunks/" + "d" * 64, 0, 10)
    maps.clear()  # a closed stream lets go of every file it kept mapped
    assert bytes(maps.map(c, 0, 3000)) == data[c] and calls[-1] == (c, 0, None) and len(calls) == 6
