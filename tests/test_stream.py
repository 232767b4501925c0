"""The training stream's contract: order, shards, resume, follow, cache, errors, transforms, threads.

Datasets here are small but span many chunks (``chunk_bytes`` of a few KiB)
and many shuffle windows (``window_bytes`` of a few KiB), so every code path
that matters at scale (window shuffling, range reads, shard boundaries inside
windows) runs.  Labels are the sample's index, so a batch can be checked
against the array it came from.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import os
import threading
import time
import uuid
import zlib

import lz4.frame
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tensordb_core as tdb
from tensordb_core.stream.batches import InvalidStreamArgument, SampleError
from tensordb_core.stream.cache import ChunkCache
from tensordb_core.stream.decode import auto_decode_workers
from tensordb_core.stream.order import StreamStateError, advance, epoch_order, normalize, shard_positions

N = 300
SMALL = {"window_bytes": 5000}  # about two chunks per shuffle window


def make_data(db, n=N, start=0, codec="auto", chunk_bytes=2048, tags=None):
    """Samples whose content encodes their label: X[i] = i * 100 + arange(12), label i."""
    labels = np.arange(start, start + n)
    X = (labels[:, None] * 100 + np.arange(12)).astype(np.float32).reshape(n, 3, 4)
    db.import_data(X, labels, tags, chunk_bytes=chunk_bytes, codec=codec)
    return X, labels


def expected_x(labels):
    return (np.asarray(labels)[:, None] * 100 + np.arange(12)).astype(np.float32).reshape(-1, 3, 4)


def drain(stream, limit=None):
    """Every label the stream yields (checking each X against its label), then close it."""
    out = []
    with stream:
        for X, y in itertools.islice(stream, limit):
            assert X.shape == (len(y), 3, 4) and X.dtype == np.float32
            np.testing.assert_array_equal(X, expected_x(y))
            out.append(y)
    return np.concatenate(out) if out else np.empty(0, np.int64)


def take(stream, batches):
    """Labels of the next ``batches`` batches (the stream stays open)."""
    return [int(v) for _ in range(batches) for v in next(stream)[1]]


# -- coverage and order -------------------------------------------------------------------------------


@pytest.mark.parametrize("shuffle", [True, False])
def test_every_sample_once_per_epoch(db, shuffle):
    make_data(db, codec="lz4")
    seen = drain(db.data_generator(batch_size=16, shuffle=shuffle, epochs=2, seed=3, **SMALL))
    assert len(seen) == 2 * N
    for epoch in (seen[:N], seen[N:]):
        assert sorted(epoch.tolist()) == list(range(N))
    if shuffle:
        assert seen[:N].tolist() != list(range(N)) and seen[:N].tolist() != seen[N:].tolist()
    else:
        assert seen[:N].tolist() == list(range(N)) == seen[N:].tolist()


def test_batches_do_not_span_epochs_and_drop_last(db):
    make_data(db, n=50)
    sizes = [len(y) for _, y in db.data_generator(batch_size=16, epochs=2, **SMALL)]
    assert sizes == [16, 16, 16, 2] * 2
    stream = db.data_generator(batch_size=16, epochs=2, drop_last=True, **SMALL)
    sizes = [len(y) for _, y in stream]
    assert sizes == [16, 16, 16] * 2 and stream.stats.dropped == 4


def test_same_seed_same_order_on_memory_and_directory_store(tmp_path):
    orders = []
    for uri in (f"memory://order-{uuid.uuid4().hex}", str(tmp_path / "wh")):
        with tdb.connect(uri, study="s") as db:
            make_data(db, codec="lz4")
            make_data(db, n=40, start=N, codec="none")  # a second import: chunks of another codec
            orders.append([drain(db.data_generator(batch_size=7, seed=seed, epochs=2, **SMALL)).tolist()
                           for seed in (11, 12)])
    assert orders[0] == orders[1]
    assert orders[0][0] != orders[0][1]  # the seed matters
    assert sorted(orders[0][0][: N + 40]) == list(range(N + 40))


def test_query_selects_and_sparse_reads_fetch_only_ranges(db):
    make_data(db, tags=[{"fold": i % 10} for i in range(N)])
    assert sorted(drain(db.data_generator({"fold": 3}, batch_size=8, **SMALL)).tolist()) == list(range(3, N, 10))
    # Samples far apart in their chunks are read as byte ranges, not whole chunks.
    big = np.arange(60 * 8192, dtype=np.float32).reshape(60, 8192)
    db.import_data(big, np.arange(60), [{"big": i % 10} for i in range(60)], chunk_bytes=1 << 20, codec="none")
    stream = db.data_generator({"big": 4}, batch_size=4)
    with stream:
        for X, y in stream:
            np.testing.assert_array_equal(X, big[y])
    assert stream.stats.samples == 6 and stream.stats.bytes_read == 6 * big[0].nbytes


def test_array_labels_and_missing_labels(db):
    X = np.random.default_rng(0).random((40, 5)).astype(np.float32)
    Y = np.stack([np.arange(40), -np.arange(40)], axis=1)
    db.import_data(X, Y, {"kind": "arr"}, chunk_bytes=256)
    db.import_data(X[:10], None, {"kind": "none"}, chunk_bytes=256)
    for xb, yb in db.data_generator({"kind": "arr"}, batch_size=6, **SMALL):
        np.testing.assert_array_equal(xb, X[yb[:, 0]])
        np.testing.assert_array_equal(yb[:, 1], -yb[:, 0])
    batches = list(db.data_generator({"kind": "none"}, batch_size=4))
    assert all(yb is None for _, yb in batches) and sum(len(xb) for xb, _ in batches) == 10


def test_transform_runs_on_every_sample(db):
    make_data(db, n=60)
    calls = []

    def crop_and_scale(x):
        calls.append(x.shape)
        assert not x.flags.writeable  # decoded views are read-only
        return x[:2, :2] * 2

    for X, y in db.data_generator(batch_size=8, transform=crop_and_scale, **SMALL):
        assert X.shape == (len(y), 2, 2)
        np.testing.assert_array_equal(X, expected_x(y)[:, :2, :2] * 2)
    assert len(calls) == 60 and set(calls) == {(3, 4)}


# -- shards -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_shards_are_disjoint_and_complete(db, world):
    make_data(db)
    parts = [drain(db.data_generator(batch_size=9, seed=4, shard=(rank, world), **SMALL)).tolist()
             for rank in range(world)]
    assert sorted(itertools.chain(*parts)) == list(range(N))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_shards_read_their_own_chunks(db):
    make_data(db, codec="none")
    sizes = {d["_x"]["key"]: d["_x"]["chunk_size"] for d in db.index.find("data")}
    one_chunk_windows = {"window_bytes": 1}
    total = 0
    for rank in range(3):
        stream = db.data_generator(batch_size=10, shard=(rank, 3), **one_chunk_windows)
        drain(stream)
        total += stream.stats.bytes_read
    # Contiguous pieces: each chunk is read once, plus at most one shared chunk per piece boundary.
    assert total <= sum(sizes.values()) + 2 * max(sizes.values())


# -- resume -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stop_after", [0, 1, 5, 19, 20, 23])
def test_resume_continues_exactly(db, stop_after):
    make_data(db)
    kw = dict(batch_size=16, seed=9, epochs=2, **SMALL)  # 19 batches per epoch (18 full + 12)
    full = drain(db.data_generator(**kw)).tolist()
    first = db.data_generator(**kw)
    head = take(first, stop_after)
    state = json.loads(json.dumps(first.state_dict()))  # checkpoints are JSON
    first.close()
    rest = drain(db.data_generator(state=state, **kw)).tolist()
    assert head + rest == full


def test_resume_with_another_world_size(db):
    make_data(db)
    kw = dict(batch_size=8, seed=2, **SMALL)
    ranks = [db.data_generator(shard=(r, 2), **kw) for r in range(2)]
    consumed = [v for s in ranks for v in take(s, 5)]  # lockstep: 5 batches on each rank
    states = [s.state_dict() for s in ranks]
    for s in ranks:
        s.close()
    assert states[0] == states[1]  # the position is global, not per rank
    resumed = [drain(db.data_generator(shard=(r, 3), state=states[0], **kw)).tolist() for r in range(3)]
    assert sorted(consumed + list(itertools.chain(*resumed))) == list(range(N))
    # and back to one rank from a three-rank state
    threes = [db.data_generator(shard=(r, 3), state=states[0], **kw) for r in range(3)]
    consumed3 = [v for s in threes for v in take(s, 2)]
    state3 = threes[0].state_dict()
    for s in threes:
        s.close()
    last = drain(db.data_generator(state=state3, **kw)).tolist()
    assert sorted(consumed + consumed3 + last) == list(range(N))


def test_a_state_resumes_with_its_own_window_when_none_is_given(db):
    """A checkpoint saved with its own window resumes as saved (or under a default that changed since), not refused."""
    make_data(db)
    kw = {"batch_size": 16, "seed": 9, "epochs": 2}
    full = drain(db.data_generator(window_bytes=3000, **kw)).tolist()
    first = db.data_generator(window_bytes=3000, **kw)
    head = take(first, 7)
    state = json.loads(json.dumps(first.state_dict()))
    first.close()
    assert state["window_bytes"] == 3000
    with db.data_generator(state=state, **kw) as resumed:
        rest = drain(resumed).tolist()
        assert resumed.state_dict()["window_bytes"] == 3000
    assert head + rest == full
    with pytest.raises(StreamStateError, match="window_bytes"):  # one given explicitly must still match
        db.data_generator(state=state, window_bytes=4000, **kw)


def test_state_for_other_settings_is_refused(db):
    make_data(db, n=20)
    stream = db.data_generator(batch_size=4, seed=1)
    next(stream)
    state = stream.state_dict()
    stream.close()
    with pytest.raises(StreamStateError, match="seed"):
        db.data_generator(batch_size=4, seed=2, state=state)
    with pytest.raises(StreamStateError, match="query"):
        db.data_generator({"x": 1}, batch_size=4, seed=1, state=state)
    with pytest.raises(StreamStateError):
        db.data_generator(batch_size=4, seed=1, state={"version": 99})


# -- epochs and follow --------------------------------------------------------------------------------


def test_endless_epochs(db):
    make_data(db, n=30)
    seen = drain(db.data_generator(batch_size=10, epochs=None, seed=1), limit=12)
    assert len(seen) == 120
    assert all(sorted(seen[i : i + 30].tolist()) == list(range(30)) for i in range(0, 120, 30))


@pytest.mark.timeout(60)
def test_follow_yields_samples_inserted_while_streaming(db):
    make_data(db, n=50)
    stream = db.data_generator(batch_size=10, follow=True, poll_s=0.02, seed=5, **SMALL)
    seen = take(stream, 1)  # the stream has taken its snapshot
    writer = threading.Thread(target=lambda: [make_data(db, n=15, start=1000 + 15 * k) for k in range(2)])
    writer.start()
    while len(seen) < 80:
        X, y = next(stream)
        np.testing.assert_array_equal(X, expected_x(y))
        seen += y.tolist()
    writer.join()
    state = stream.state_dict()
    stream.close()
    assert sorted(seen) == list(range(50)) + list(range(1000, 1030))
    assert seen[50:] == list(range(1000, 1030))  # after the epoch: insertion order
    assert state["tail_after"] is not None and state["tail_position"] == 30
    with db.data_generator(batch_size=10, follow=True, poll_s=0.02, seed=5, state=state, **SMALL) as resumed:
        assert resumed.state_dict() == state


@pytest.mark.timeout(60)
def test_follow_with_empty_start_waits_for_data(db):
    stream = db.data_generator(batch_size=4, follow=True, epochs=None, poll_s=0.02)
    writer = threading.Timer(0.05, lambda: make_data(db, n=6))
    writer.start()
    X, y = next(stream)
    stream.close()
    writer.join()
    np.testing.assert_array_equal(X, expected_x(y))


def test_empty_query_ends_at_once(db):
    make_data(db, n=5)
    assert list(db.data_generator({"nope": 1}, epochs=None)) == []


# -- cache --------------------------------------------------------------------------------------------


def test_chunk_cache_is_lru_and_bounded():
    cache = ChunkCache(100)
    rng = np.random.default_rng(0)
    for i in range(500):
        cache.put(i % 37, bytes(int(rng.integers(0, 60))))
        assert cache.nbytes <= 100
        if i % 3 == 0:
            cache.get(int(rng.integers(0, 37)))
    assert not cache.put("big", bytes(101)) and "big" not in cache
    cache = ChunkCache(30)
    cache.put("a", bytes(10)), cache.put("b", bytes(10)), cache.put("c", bytes(10))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", bytes(10))
    assert "b" not in cache and "a" in cache and cache.stats().evictions == 1
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (1, 0)
    with pytest.raises(ValueError):
        ChunkCache(-1)


def test_stream_cache_hits_after_first_epoch_and_stays_bounded(db):
    make_data(db, codec="lz4")
    chunks = len({d["_x"]["key"] for d in db.index.find("data")})
    stream = db.data_generator(batch_size=16, epochs=3, cache_bytes=1 << 20, **SMALL)
    drain(stream)
    s = stream.stats
    # with a cache every chunk is read whole, in the first epoch: a chunk split over windows is a hit the second
    # time, unless both windows were being read at once (two at a time), then it is read twice
    assert s.cache_misses == s.requests and chunks <= s.requests < 2 * chunks and s.cache_hits >= 2 * chunks
    assert 0 < s.cache_bytes <= 1 << 20
    limit = 7000  # about two chunks
    small = db.data_generator(batch_size=16, epochs=2, cache_bytes=limit, **SMALL)
    with small:
        for _ in small:
            assert small.cache.nbytes <= limit
    assert small.stats.cache_misses > 0 and small.cache.stats().evictions > 0


def test_a_cache_can_be_shared_between_streams(db):
    make_data(db, n=100)
    cache = ChunkCache(1 << 20)
    drain(db.data_generator(batch_size=10, cache_bytes=cache))
    second = db.data_generator(batch_size=10, cache_bytes=cache)
    drain(second)
    assert second.stats.requests == 0 and cache.stats().hits > 0


# -- errors -------------------------------------------------------------------------------------------


def _chunk_of(db, label):
    doc = next(iter(db.index.find("data", {"label": label})))
    return doc["_id"], doc["_x"]


def test_missing_chunk_raises_naming_the_document_or_is_skipped(db):
    make_data(db)
    doc_id, x = _chunk_of(db, 123)
    victims = {d["label"] for d in db.index.find("data", {"_x.key": x["key"]})}
    db.blobs.delete(x["key"])
    with pytest.raises(SampleError, match="missing|could not be read") as info:
        drain(db.data_generator(batch_size=8, shuffle=False))
    assert isinstance(info.value, tdb.TensorDBError) and info.value.doc_id in {
        d["_id"] for d in db.index.find("data", {"_x.key": x["key"]})}
    stream = db.data_generator(batch_size=8, on_error="skip", **SMALL)
    seen = drain(stream)
    assert sorted(seen.tolist()) == sorted(set(range(N)) - victims)
    assert stream.stats.skipped == len(victims) and doc_id in stream.stats.skipped_ids


def test_corrupted_file_fails_its_checksum(tmp_path):
    with tdb.connect(str(tmp_path / "wh"), study="s") as db:
        make_data(db, codec="none")
        doc_id, x = _chunk_of(db, 77)
        path = db.blobs.path_of(x["key"])
        with open(path, "r+b") as f:
            f.seek(x["offset"] + 5)
            byte = f.read(1)
            f.seek(x["offset"] + 5)
            f.write(bytes([byte[0] ^ 0xFF]))
        with pytest.raises(SampleError, match="checksum") as info:
            drain(db.data_generator(batch_size=8, **SMALL))
        assert info.value.doc_id == doc_id
        stream = db.data_generator(batch_size=8, on_error="skip", **SMALL)
        seen = drain(stream)
        assert sorted(seen.tolist()) == [i for i in range(N) if i != 77]
        assert stream.stats.skipped_ids == (doc_id,)


def test_bad_arguments_are_typed_errors(db):
    for kwargs in ({"batch_size": 0}, {"shard": (2, 2)}, {"shard": 3}, {"on_error": "ignore"}, {"epochs": 0},
                   {"seed": -1}, {"transform": 5}, {"prefetch": 0}, {"cache_bytes": -5}, {"poll_s": 0},
                   {"read_threads": 0}, {"read_threads": 1.5}, {"decode_workers": 0}, {"batch_memory": 5},
                   {"cpus": 0}, {"cpus": "1"}):
        with pytest.raises(InvalidStreamArgument):
            db.data_generator(**kwargs)
    with pytest.raises(tdb.InvalidQuery):
        db.data_generator({"$where": "1"})


# -- threads ------------------------------------------------------------------------------------------


def _wait_for_threads(before, timeout=10.0):
    """Threads started since ``before`` that are still alive after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.02)


def test_close_and_garbage_collection_stop_every_thread(db):
    make_data(db)
    before = set(threading.enumerate())
    stream = db.data_generator(batch_size=4, epochs=None, prefetch=2)
    next(stream)
    assert len(threading.enumerate()) > len(before)
    stream.close()
    assert _wait_for_threads(before) == []
    with pytest.raises(StopIteration):
        next(stream)
    abandoned = db.data_generator(batch_size=4, epochs=None, prefetch=2)
    next(abandoned)
    del abandoned
    gc.collect()
    assert _wait_for_threads(before) == []


def test_stats_report_throughput_and_time_split(db):
    make_data(db, codec="lz4")
    stream = db.data_generator(batch_size=32, **SMALL)
    drain(stream)
    s = stream.stats
    assert s.samples == N and s.batches == 10 and s.skipped == 0
    assert s.bytes_decoded == N * 48 and s.bytes_read > 0 and s.requests > 0
    assert s.samples_per_s > 0 and s.decode_s > 0 and s.wait_fetch_s <= s.elapsed_s
    assert json.loads(json.dumps(s.as_dict()))["samples"] == N
    # 48-byte lz4 samples, decoded a batch at a time: a thread per CPU, at most 4 (see auto_decode_workers)
    assert s.unpacked_windows > 0 and s.decode_workers == max(1, min(4, os.cpu_count() or 1))
    forced = db.data_generator(batch_size=32, decode_workers=3, **SMALL)
    drain(forced)
    assert forced.stats.decode_workers == 3


def test_one_reading_thread_streams_the_same_batches(db):
    """``read_threads=1`` (a loader worker with one CPU) reads one window at a time: the same batches, in order."""
    make_data(db, codec="lz4")
    both, threads = [], []
    for n in (None, 1):
        with db.data_generator(batch_size=16, epochs=2, read_threads=n, **SMALL) as stream:
            both.append([y.tolist() for _x, y in stream])
            threads.append(stream.stats.read_threads)
    assert both[0] == both[1] and sum(map(len, both[0])) == 2 * N
    assert threads == [2, 1]


@pytest.mark.parametrize(("codec", "decoders"), [("lz4", 2), ("none", 1)])
def test_one_cpu_reads_on_one_thread_and_decodes_small_lz4_batches_on_two(db, codec, decoders):
    """``cpus=1`` (what the torch adapter passes a loader worker with one CPU): one reading thread; two decode
    threads where small lz4 samples are decoded a batch at a time (one overlaps the other's lz4), one for samples
    decoded one by one; the same batches as the machine's defaults."""
    make_data(db, codec=codec)
    both, stats = [], []
    for cpus in (None, 1):
        with db.data_generator(batch_size=16, epochs=2, cpus=cpus, **SMALL) as stream:
            both.append([y.tolist() for _x, y in stream])
            stats.append(stream.stats)
    assert both[0] == both[1] and sum(map(len, both[0])) == 2 * N
    assert stats[1].read_threads == 1 and stats[1].decode_workers == decoders
    assert (stats[1].unpacked_windows > 0) == (codec == "lz4")


def test_decode_threads_follow_the_samples_and_the_cpus():
    small, large = np.full(8, 4 << 10), np.full(8, 64 << 10)
    assert auto_decode_workers(small, cpus=8) == 1  # one by one: the GIL-held Python dominates
    assert auto_decode_workers(small, framed=True, cpus=1) == 2
    assert auto_decode_workers(small, framed=True, cpus=8) == 4
    assert auto_decode_workers(large, cpus=1) == 1 and auto_decode_workers(large, cpus=3) == 3
    assert auto_decode_workers(small, media=True, cpus=2) == 2


def test_batches_decode_into_the_memory_batch_memory_lends(db):
    """``batch_memory`` (a loader worker's shared ring) gets each batch's shape and dtype; the batch is decoded
    into the array it gives (no copy after), None falls back to a fresh array, and the batches are the same."""
    make_data(db, codec="lz4")
    lent: list[np.ndarray] = []
    asked: list[tuple] = []

    def memory(shape, dtype):
        asked.append((shape, np.dtype(dtype)))
        if len(asked) % 3 == 0:
            return None  # no slot free: a fresh array
        lent.append(np.full(shape, -1, dtype=dtype))
        return lent[-1]

    with db.data_generator(batch_size=32, shuffle=False, batch_memory=memory, **SMALL) as stream:
        got = [(X, y) for X, y in stream]
    with db.data_generator(batch_size=32, shuffle=False, **SMALL) as stream:
        want = [(X, y) for X, y in stream]
    assert [y.tolist() for _, y in got] == [y.tolist() for _, y in want]
    for (X, _), (wX, _) in zip(got, want):
        np.testing.assert_array_equal(X, wX)
    assert {dtype for _, dtype in asked} == {np.dtype(np.float32)}
    assert sorted(shape for shape, _ in asked) == sorted(X.shape for X, _ in got)  # every batch, windows spanned too
    placed = [X for X, _ in got if any(np.shares_memory(X, a) for a in lent)]
    assert len(placed) == len(lent) and len(lent) == len(got) - len(got) // 3


def test_batch_memory_of_the_wrong_shape_is_a_typed_error(db):
    make_data(db, codec="lz4")
    with db.data_generator(batch_size=32, batch_memory=lambda shape, dtype: np.empty((1, *shape), dtype),
                           **SMALL) as stream, pytest.raises(tdb.TensorDBError, match="batch_memory"):
        next(stream)


def test_wait_fetch_measures_a_slow_fetch(db, monkeypatch):
    """A fast consumer of a slow store spends most of its time waiting on fetch, and ``wait_fetch_s`` says so."""
    from tensordb_core.stream import fetch

    make_data(db)
    delay, windows = 0.05, []
    real = fetch._fetch

    def slow_fetch(*args, **kwargs):
        windows.append(1)
        time.sleep(delay)
        return real(*args, **kwargs)

    monkeypatch.setattr(fetch, "_fetch", slow_fetch)
    stream = db.data_generator(batch_size=32, **SMALL)
    drain(stream)
    slept = delay * len(windows)
    assert len(windows) >= 2
    # windows are read two at a time (reader.WindowReader): the consumer waits about half of the sleeps
    assert 0.25 * slept <= stream.stats.wait_fetch_s <= stream.stats.elapsed_s


# -- the order and shard arithmetic (pure functions) ------------------------------------------------------

@st.composite
def remaining_ranges(draw):
    n = draw(st.integers(0, 60))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=8)))
    bounds = [0, *cuts, n]
    keep = [draw(st.booleans()) for _ in range(len(bounds) - 1)]
    return n, normalize([(a, b) for (a, b), k in zip(itertools.pairwise(bounds), keep) if k], n)


@settings(max_examples=200, deadline=None)
@given(remaining_ranges(), st.integers(1, 9), st.integers(0, 12))
def test_shards_partition_what_remains_and_advance_removes_each_ranks_prefix(case, world, consumed):
    _n, ranges = case
    remaining = [p for a, b in ranges for p in range(a, b)]
    pieces = [shard_positions(ranges, world, r).tolist() for r in range(world)]
    assert list(itertools.chain(*pieces)) == remaining  # contiguous pieces, in order, no gap, no overlap
    assert max(map(len, pieces)) - min(map(len, pieces)) <= 1
    left = [p for a, b in advance(ranges, world, consumed) for p in range(a, b)]
    assert left == [p for piece in pieces for p in piece[consumed:]]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-1, 6), min_size=0, max_size=80), st.integers(0, 3), st.booleans(),
       st.integers(1, 400))
def test_epoch_order_is_a_deterministic_permutation_in_contiguous_windows(chunks, seed, shuffle, window):
    chunk = np.asarray(sorted(c for c in chunks if c >= 0) + [c for c in chunks if c < 0], dtype=np.int64)
    span = np.full(len(chunk), 50.0)
    a = epoch_order(chunk, span, seed=seed, epoch=1, shuffle=shuffle, window_bytes=window)
    b = epoch_order(chunk, span, seed=seed, epoch=1, shuffle=shuffle, window_bytes=window)
    assert sorted(a.order.tolist()) == list(range(len(chunk)))
    assert a.order.tolist() == b.order.tolist() and a.window.tolist() == b.window.tolist()
    assert all(np.diff(a.window) >= 0)  # a window is one run of positions
    for w in set(a.window.tolist()):  # and holds whole chunks
        rows = a.order[a.window == w]
        others = a.order[a.window != w]
        assert not set(chunk[rows][chunk[rows] >= 0].tolist()) & set(chunk[others].tolist())


def test_reads_chunks_written_by_another_tool_from_the_public_format(db):
    """A chunk laid out by hand per docs/FORMAT.md (mixed codecs, one frame without its size) streams back."""
    arrays = [np.full((2, 3), i, dtype="<i4") for i in range(6)]
    segments = [lz4.frame.compress(a.tobytes(), store_size=(i != 4)) if i % 2 == 0 else a.tobytes()
                for i, a in enumerate(arrays)]
    chunk = b"".join(segments)
    key = hashlib.sha256(chunk).hexdigest()  # a content address, as the format says
    db.blobs.put(key, chunk)
    docs, offset = [], 0
    for i, seg in enumerate(segments):
        x = {"key": key, "chunk_size": len(chunk), "offset": offset, "length": len(seg),
             "codec": "lz4" if i % 2 == 0 else "none", "dtype": "<i4", "shape": [2, 3], "crc32": zlib.crc32(seg)}
        docs.append({"_study": db.study, "_x": x, "label": i, "src": "external"})
        offset += len(seg)
    docs[5]["_x"]["shape"] = [3, 3]  # a document that lies about its sample: an error naming it
    docs.append({"_study": db.study, "_x": {"key": key, "offset": 0}, "label": 6, "src": "external"})  # malformed
    ids = db.index.insert_many("data", docs)
    stream = db.data_generator({"src": "external"}, batch_size=4, shuffle=False, on_error="skip")
    batches = list(stream)
    labels = np.concatenate([y for _, y in batches]).tolist()
    assert labels == [0, 1, 2, 3, 4]
    for X, y in batches:
        np.testing.assert_array_equal(X, np.stack([arrays[i] for i in y]))
    assert stream.stats.skipped_ids == (ids[5], ids[6])
    with pytest.raises(SampleError, match="malformed") as info:
        list(db.data_generator({"src": "external", "label": 6}))
    assert info.value.doc_id == ids[6]


def test_without_verification_the_data_is_the_same(db):
    make_data(db, n=80, codec="lz4")
    stream = db.data_generator(batch_size=16, verify=False, seed=1, **SMALL)
    assert drain(stream).tolist() == drain(db.data_generator(batch_size=16, seed=1, **SMALL)).tolist()
