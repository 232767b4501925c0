"""The block order: an epoch streamed from index blocks is the epoch a loaded table orders, sample for sample.

A fresh epoch streams from the index block by block (stream/blocks.py; a shard
only the windows of its piece, placed by per-block counts); a resumed epoch,
and every later epoch of a stream, orders the loaded table (order.block_order).
These tests take each path on data with gaps in ``_seq`` (another study's
samples, deleted samples) and a filter, and require the same sequence.
"""

from __future__ import annotations

import threading
import time
from itertools import pairwise

import numpy as np
import pytest

import tensordb_core as tdb
from serverkit import every_backend_fixtures
from tensordb_core.stream import blocks, engine
from tensordb_core.stream.order import (
    BlockLayout,
    StreamState,
    block_layout,
    block_order,
    read_units,
)
from tensordb_core.stream.refs import PROJECTION, RefTable

CHUNK = 2048
blocks_mongo, blocks_uri = every_backend_fixtures("blocks")  # the path test runs on MongoDB too


def _fill(db, other=None) -> None:
    """600 samples over 5 imports with ``other`` study's samples between them, then every 7th deleted."""
    for part in range(5):
        labels = np.arange(part * 120, (part + 1) * 120)
        X = (labels[:, None] * 100 + np.arange(12)).astype(np.float32).reshape(-1, 3, 4)
        db.import_data(X, labels, {"part": part}, chunk_bytes=CHUNK)
        if other is not None:
            other.import_data(np.zeros((37, 3, 4), np.float32), np.zeros(37, np.int64), chunk_bytes=CHUNK)
    db.delete_data({"label": {"$in": list(range(0, 600, 7))}})


def _labels(stream) -> list[int]:
    with stream:
        return [int(v) for _, y in stream for v in y]


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("query", [{}, {"label": {"$gte": 150}, "part": {"$in": [1, 3, 4]}}])
def test_every_path_gives_the_same_epoch(blocks_uri, shuffle, query):
    """Epoch 1 streamed from blocks (a stream started at epoch 1), ordered from the table (the second epoch of
    a stream), and resumed from position 0 (a state saved before the count was known): one sequence."""
    with tdb.connect(blocks_uri, study="s1") as db, tdb.connect(blocks_uri, study="neighbour") as other:
        _fill(db, other)
        _every_path_gives_the_same_epoch(db, shuffle, query)


def _every_path_gives_the_same_epoch(db, shuffle, query):
    kw = {"batch_size": 16, "shuffle": shuffle, "seed": 5, "window_bytes": 3000}
    two_epochs = _labels(db.data_generator(query, epochs=2, **kw))
    half = len(two_epochs) // 2
    fresh = StreamState(query, 5, shuffle, 3000, epoch=1).to_dict()
    streamed = _labels(db.data_generator(query, epochs=2, state=fresh, **kw))
    resumed_state = StreamState(query, 5, shuffle, 3000, epoch=1, remaining=((0, None),)).to_dict()
    resumed = _labels(db.data_generator(query, epochs=2, state=resumed_state, **kw))
    expected = sorted(db.find_data(query).arrays()[1].tolist())
    assert sorted(streamed) == expected and len(expected) > 100
    assert two_epochs[half:] == streamed == resumed
    if shuffle:
        assert two_epochs[:half] != streamed  # another epoch, another order
        assert streamed != expected  # shuffled, not in _seq order
    else:
        assert streamed == expected


def test_the_first_epoch_reads_the_index_once_and_later_epochs_never_again(db, monkeypatch):
    """The first epoch's windows come from index blocks; a later epoch orders the table those windows' rows
    make (BlockReader.whole_table), so no epoch reads the index again, and a one-epoch stream keeps nothing."""
    _fill(db)
    loads, wholes = [], []
    real_load, real_whole = engine.Engine._load, blocks.BlockReader.whole_table

    def counted_load(self, table, q, scanned, seq):
        if scanned < seq:  # a call with nothing new to read returns at once
            loads.append(seq)
        return real_load(self, table, q, scanned, seq)

    def counted_whole(self, table):
        wholes.append(real_whole(self, table))
        return wholes[-1]

    monkeypatch.setattr(engine.Engine, "_load", counted_load)
    monkeypatch.setattr(blocks.BlockReader, "whole_table", counted_whole)
    n = len(db.find_data({}))
    one = _labels(db.data_generator(batch_size=8, seed=2, epochs=1, window_bytes=3000))
    assert sorted(one) == sorted(db.find_data({}).arrays()[1].tolist()) and loads == [] and wholes == []
    three = _labels(db.data_generator(batch_size=8, seed=2, epochs=3, window_bytes=3000))
    assert loads == [] and wholes == [True]
    assert three[:n] == one and sorted(three[n:2 * n]) == sorted(three[2 * n:]) == sorted(one)
    assert three[n:2 * n] != three[2 * n:]  # each later epoch its own order


@pytest.mark.parametrize("query", [{}, {"label": {"$gte": 150}, "part": {"$in": [1, 3, 4]}}])
def test_the_table_made_from_the_windows_is_the_table_a_load_reads(blocks_uri, monkeypatch, query):
    """Row for row (ids, _seq, chunk, segment, format, label) and numbered alike (chunks and formats by first
    appearance, which the epoch order reads), on data with another study's samples and deletions between."""
    made = []
    real_whole = blocks.BlockReader.whole_table

    def kept(self, table):
        ok = real_whole(self, table)
        made.append((ok, table))
        return ok

    monkeypatch.setattr(blocks.BlockReader, "whole_table", kept)
    with tdb.connect(blocks_uri, study="s1") as db, tdb.connect(blocks_uri, study="neighbour") as other:
        _fill(db, other)
        db.import_data(np.zeros((30, 2, 2), np.float64), np.arange(30) + 150, {"part": 4}, chunk_bytes=CHUNK)
        _labels(db.data_generator(query, batch_size=1, seed=1, epochs=2, window_bytes=3000))  # two shapes
        loaded = RefTable()
        loaded.extend(db.index.find(db.scope.data_collection, db.scope.query(query), projection=PROJECTION))
    assert [ok for ok, _ in made] == [True]
    mine, theirs = made[0][1].freeze(), loaded.freeze()
    assert mine.n == theirs.n > 300
    assert mine.ids == theirs.ids and mine.chunk_keys == theirs.chunk_keys and mine.formats == theirs.formats
    for name in ("seq", "chunk", "chunk_sizes", "x_off", "x_len", "x_crc", "x_codec", "x_fmt", "labels"):
        assert np.array_equal(getattr(mine, name), getattr(theirs, name)), name
    assert len(mine.formats) == 2


def test_rows_only_documents_describe_are_read_again_for_a_later_epoch(tmp_path, monkeypatch):
    """A ``_y`` label array or a malformed reference cannot be copied from a window's table: the later epoch's
    table is read from the index as before, and both epochs hold every sample."""
    uri = str(tmp_path / "wh")
    loads = []
    real_load = engine.Engine._load

    def counted_load(self, table, q, scanned, seq):
        if scanned < seq:
            loads.append(seq)
        return real_load(self, table, q, scanned, seq)

    monkeypatch.setattr(engine.Engine, "_load", counted_load)
    with tdb.connect(uri, study="s") as db:
        _fill(db)
        X = np.arange(40 * 12, dtype=np.float32).reshape(40, 3, 4)
        db.import_data(X, np.arange(40 * 2).reshape(40, 2), {"part": 9}, chunk_bytes=CHUNK)  # array labels: _y
        with db.data_generator(batch_size=1, seed=3, epochs=2, window_bytes=1 << 14) as stream:  # two y shapes
            ys = [np.asarray(y) for _, y in stream]
    rows = sum(len(y) for y in ys)
    assert len(loads) == 1 and rows == 2 * (600 - 86 + 40)  # 86 of 600 deleted (every 7th), 40 with _y


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("shuffle", [True, False])
def test_a_shard_streamed_from_blocks_is_its_piece_of_the_epoch(blocks_uri, world, shuffle):
    """Each shard of a fresh epoch (a loader worker, a DDP rank) streams its piece of the global order from
    index blocks, placed by per-block counts: the pieces in rank order are the epoch a whole stream orders,
    and each equals the shard a loaded table gives (a resumed state), with the same saved position."""
    query = {"label": {"$gte": 150}, "part": {"$in": [1, 3, 4]}}
    kw = {"batch_size": 4, "shuffle": shuffle, "seed": 5, "window_bytes": 3000}
    with tdb.connect(blocks_uri, study="s1") as db, tdb.connect(blocks_uri, study="neighbour") as other:
        _fill(db, other)
        whole = _labels(db.data_generator(query, epochs=2, **kw))
        whole = whole[len(whole) // 2:]  # epoch 1, ordered from the loaded table
        fresh = StreamState(query, 5, shuffle, 3000, epoch=1).to_dict()
        from_table = StreamState(query, 5, shuffle, 3000, epoch=1, remaining=((0, None),)).to_dict()
        pieces = []
        for rank in range(world):
            streams = [db.data_generator(query, epochs=2, state=state, shard=(rank, world), **kw)
                       for state in (fresh, from_table)]
            with streams[0] as blocky, streams[1] as loaded:
                heads = [[int(v) for _ in range(2) for v in next(s)[1]] for s in (blocky, loaded)]
                assert heads[0] == heads[1] and blocky.state_dict() == loaded.state_dict()
                rests = [[int(v) for _, y in s for v in y] for s in (blocky, loaded)]
            assert rests[0] == rests[1]
            pieces.append(heads[0] + rests[0])
    assert [v for piece in pieces for v in piece] == whole and len(whole) > 100
    assert max(map(len, pieces)) - min(map(len, pieces)) <= 1


def test_rank_0_yields_its_first_batch_before_counting_the_blocks(db, monkeypatch):
    """Rank 0's piece starts the epoch, so its first window streams before the per-block count (a torch loader's
    first batch comes from worker 0); its saved position, asked before the count, is still exact."""
    _fill(db)
    got_first = threading.Event()
    counted_after_first = []
    real_counts = blocks.BlockReader.block_counts

    def waiting(self, layout):
        counted_after_first.append(got_first.wait(timeout=10))
        return real_counts(self, layout)

    monkeypatch.setattr(blocks.BlockReader, "block_counts", waiting)
    kw = {"batch_size": 4, "seed": 5, "window_bytes": 3000, "epochs": 1}
    with db.data_generator(shard=(0, 2), **kw) as stream:
        head = [int(v) for v in next(stream)[1]]
        got_first.set()
        state = stream.state_dict()
        rest = [int(v) for _, y in stream for v in y]
    assert counted_after_first == [True]
    monkeypatch.setattr(blocks.BlockReader, "block_counts", real_counts)
    assert _labels(db.data_generator(shard=(0, 2), state=state, **kw)) == rest
    n = len(db.find_data({}))
    assert len(head + rest) == (n + 1) // 2


@pytest.mark.parametrize("shard", [None, (0, 2), (1, 2)])
def test_the_fetch_thread_reads_no_further_until_the_streams_first_batch_is_decoded(db, monkeypatch, shard):
    """The first batch waits for the first window only; the index reads of the windows after it wait for that
    batch (engine._hand_on), so they do not take the interpreter lock from it.  Checked as: while the first read
    and the first decode are held up, no second window is submitted; the epoch still holds every sample once."""
    from tensordb_core.stream import decode, reader

    _fill(db)
    submitted, during_first, during_decode = [], [], []
    real_submit, real_fetch, real_decode = reader.WindowReader.submit, reader.fetch_window, decode.Decoder.decode

    def slow_first_decode(self, parts):
        if not during_decode:
            time.sleep(0.1)
            during_decode.append(len(submitted))
        return real_decode(self, parts)

    def counting(self, *args, **kwargs):
        submitted.append(1)
        return real_submit(self, *args, **kwargs)

    def slow_first(*args, **kwargs):
        if not during_first:
            time.sleep(0.1)  # time enough for the fetch thread to submit the next window, were it not waiting
            during_first.append(len(submitted))
        return real_fetch(*args, **kwargs)

    monkeypatch.setattr(reader.WindowReader, "submit", counting)
    monkeypatch.setattr(reader, "fetch_window", slow_first)
    monkeypatch.setattr(decode.Decoder, "decode", slow_first_decode)
    sharded = {"shard": shard} if shard else {}
    labels = _labels(db.data_generator(batch_size=4, seed=5, window_bytes=3000, epochs=1, **sharded))
    assert during_first == [1] and during_decode == [1] and len(submitted) >= 3
    kept = [label for label in range(600) if label % 7]  # what _fill leaves
    if shard is None:
        assert sorted(labels) == kept
    else:
        assert len(set(labels)) == len(labels) == (len(kept) + 1 - shard[0]) // 2 and set(labels) <= set(kept)


@pytest.mark.parametrize("world", [2, 3])
def test_a_first_window_larger_than_rank_0s_piece_ends_at_the_piece(db, world):
    _fill(db)
    query = {"label": {"$lt": 20}}  # 17 samples (0, 7 and 14 deleted): one first window of the default size
    kw = {"batch_size": 4, "seed": 1, "epochs": 1}
    whole = _labels(db.data_generator(query, **kw))
    pieces = [_labels(db.data_generator(query, shard=(rank, world), **kw)) for rank in range(world)]
    assert [v for piece in pieces for v in piece] == whole and len(whole) == 17
    assert max(map(len, pieces)) - min(map(len, pieces)) <= 1


def test_a_shard_reads_the_references_of_its_piece_only(blocks_uri, monkeypatch):
    """A one-epoch shard (a loader worker that is not persistent) counts every block by ``_seq`` alone and
    reads the references of the windows its piece covers, not the whole index; one that runs on to a later
    epoch then reads the rest, once, for the table that epoch orders.  On every backend: MongoDB answers the
    count with ``_seq``-only documents and a window with one ``$or`` of its blocks."""
    read = []
    real_parts = blocks.BlockReader._window_parts

    def counted(self, layout, block_numbers):
        parts = real_parts(self, layout, block_numbers)
        read.append(sum(end - start for _, _, start, end in parts))
        return parts

    monkeypatch.setattr(blocks.BlockReader, "_window_parts", counted)
    with tdb.connect(blocks_uri, study="s1") as db:
        _fill(db)
        n = len(db.find_data({}))
        mine = _labels(db.data_generator(batch_size=4, seed=3, epochs=1, window_bytes=3000, shard=(1, 4)))
        assert len(mine) in (n // 4, n // 4 + 1) and sum(read) < n / 2
        read.clear()
        two = _labels(db.data_generator(batch_size=4, seed=3, epochs=2, window_bytes=3000, shard=(1, 4)))
        assert two[:len(mine)] == mine and sorted(two[len(mine):]) != sorted(mine)
        assert sum(read) == n  # the piece's windows, then the others: each reference once


@pytest.mark.parametrize("world", [2, 3])
def test_a_piece_starting_inside_a_window_yields_its_first_batch_from_the_blocks_that_hold_it(db, monkeypatch, world):
    """A shard's first window is read in two: the blocks its first batch lies in, then the rest (not read
    again); the batches, this epoch's and the next one's (ordered from the windows' kept rows), stay the same."""
    _fill(db)
    kw = {"batch_size": 4, "seed": 2, "epochs": 2}
    heads = []
    real_head = blocks.BlockReader._window_head

    def spied(self, layout, window, counts, rows, parts):
        for refs, at in real_head(self, layout, window, counts, rows, parts):
            heads.append((len(window), len({block for block, *_ in parts}), len(at)))
            yield refs, at

    monkeypatch.setattr(blocks.BlockReader, "_window_head", spied)
    split = [_labels(db.data_generator(shard=(rank, world), **kw)) for rank in range(world)]
    assert len(heads) == world - 1  # every piece but the first, which starts the epoch
    assert all(2 * read <= whole and taken == 4 for whole, read, taken in heads), heads
    monkeypatch.setattr(blocks.BlockReader, "_window_head", lambda *args: iter(()))
    whole = [_labels(db.data_generator(shard=(rank, world), **kw)) for rank in range(world)]
    assert split == whole


def test_a_window_head_whose_blocks_hold_other_than_counted_yields_nothing(db, monkeypatch):
    """Blocks that changed since the count (here: counts one too high) cannot place the head: the window is
    then read whole and gives what it holds, as an unsplit window does."""
    _fill(db)
    real_counts = blocks.BlockReader.block_counts
    monkeypatch.setattr(blocks.BlockReader, "block_counts", lambda self, layout: real_counts(self, layout) + 1)
    heads = []
    real_head = blocks.BlockReader._window_head

    def spied(self, *args):
        for item in real_head(self, *args):
            heads.append(item)
            yield item

    monkeypatch.setattr(blocks.BlockReader, "_window_head", spied)
    got = _labels(db.data_generator(batch_size=4, seed=2, shard=(1, 2)))
    assert heads == [] and got and set(got) <= set(db.find_data({}).arrays()[1].tolist())


def test_a_state_saved_before_the_count_is_known_resumes_exactly(db):
    _fill(db)
    stream = db.data_generator(batch_size=8, seed=2, epochs=2, window_bytes=3000)
    first = [int(v) for _ in range(3) for v in next(stream)[1]]
    state = stream.state_dict()
    assert state["remaining"] == [[24, None]]  # streaming from blocks: the epoch's count is not known yet
    rest = [int(v) for _, y in stream for v in y]
    stream.close()
    resumed = _labels(db.data_generator(batch_size=8, seed=2, epochs=2, window_bytes=3000, state=state))
    assert resumed == rest
    population = db.find_data({}).arrays()[1].tolist()
    assert sorted(first + rest) == sorted(population * 2)


def test_a_snapshot_asked_mid_epoch_counts_the_population(db):
    _fill(db)
    with db.data_generator(batch_size=8, seed=2, epochs=1, window_bytes=3000) as stream:
        next(stream)
        assert stream.snapshot == {"last_seq": db.index.last_seq("data"), "count": len(db.find_data({}))}


def test_a_version_1_state_keeps_the_chunk_order():
    old = {"version": 1, "query": {}, "seed": 1, "shuffle": True, "window_bytes": 10, "epoch": 2,
           "remaining": [[3, 9]]}
    state = StreamState.from_dict(old)
    assert state.order == "chunks" and state.remaining == ((3, 9),)
    again = StreamState.from_dict(state.to_dict())
    assert again.order == "chunks" and state.to_dict()["version"] == 2
    with pytest.raises(tdb.TensorDBError):
        StreamState.from_dict({**state.to_dict(), "order": "spiral"})


def test_a_version_1_state_resumes_every_remaining_sample_once(db):
    _fill(db)
    n = len(db.find_data({}))
    old = {"version": 1, "query": {}, "seed": 4, "shuffle": True, "window_bytes": 3000, "epoch": 0,
           "epoch_seq": db.index.last_seq("data"), "remaining": [[10, n]]}
    rest = _labels(db.data_generator(batch_size=16, seed=4, epochs=1, window_bytes=3000, state=old))
    assert len(rest) == len(set(rest)) == n - 10


def test_block_order_windows_are_contiguous_and_the_first_is_small():
    rng = np.random.default_rng(0)
    seq = np.sort(rng.choice(np.arange(1, 50_000), size=20_000, replace=False))
    layout = block_layout(seq[:256], np.full(256, 100), np.full(256, 4000), bound=int(seq[-1]),
                          window_bytes=100_000)
    assert layout.span == 31 and layout.window_rows == 1000 and layout.first_rows == 125  # span: a quarter
    order = block_order(seq, layout, seed=1, epoch=0, shuffle=True)
    assert sorted(order.order.tolist()) == list(range(len(seq)))
    assert (np.diff(order.window) >= 0).all()
    sizes = np.bincount(order.window)
    limits = np.minimum(layout.window_rows, layout.first_rows * 2 ** np.arange(len(sizes)))
    assert (sizes[:-1] >= limits[:-1]).all() and (sizes < limits + 2 * layout.span).all()  # closed by one block
    assert sizes[0] < 2 * layout.first_rows and sizes[-2] >= layout.window_rows
    blocks_of = (seq[order.order] - layout.origin) // layout.span
    for w in range(len(sizes)):  # a block lies in one window
        in_w = set(blocks_of[order.window == w].tolist())
        assert not in_w & set(blocks_of[order.window != w].tolist())
    again = block_order(seq, layout, seed=1, epoch=0, shuffle=True)
    other = block_order(seq, layout, seed=1, epoch=1, shuffle=True)
    assert (again.order == order.order).all() and not (other.order == order.order).all()
    plain = block_order(seq, layout, seed=1, epoch=0, shuffle=False)
    assert plain.order.tolist() == list(range(len(seq)))


def test_block_layout_is_sized_by_the_median_sample_and_chunk():
    layout = block_layout(np.array([5, 6, 7]), np.array([10, 1000, 1000]), np.array([-1, 64_000, 64_000]),
                          bound=100, window_bytes=1 << 20)
    assert layout == BlockLayout(origin=5, span=32, bound=100, window_rows=1048, first_rows=131)
    assert layout.blocks == 3 and layout.seq_range(2) == (69, 100)
    chunky = block_layout(np.array([5]), np.array([1000]), np.array([16_000]), bound=100, window_bytes=1 << 20)
    assert chunky.span == 16  # a chunk's worth, under a quarter of the first window
    tiny = block_layout(np.array([1]), np.array([4]), np.array([-1]), bound=10**6, window_bytes=32 << 20)
    assert tiny.span == 128 and tiny.window_rows == 65536 and tiny.first_rows == 512
    huge = block_layout(np.array([1]), np.array([50 << 20]), np.array([50 << 20]), bound=10, window_bytes=32 << 20)
    assert huge.span == 1 and huge.window_rows == 1 and huge.first_rows == 1


def test_the_first_batches_mix_imports(db):
    """An import per class makes blocks of one class each; the first window must still hold several imports, or
    a trainer sees one class for a while, then another (the continuous loop's model forgot its first digits)."""
    for label in range(4):
        X = np.full((1024, 3, 4), label, np.float32)
        db.import_data(X, np.full(1024, label), chunk_bytes=1 << 20)
    for seed in range(5):
        with db.data_generator(batch_size=64, seed=seed, epochs=1) as stream:
            first = [int(v) for _ in range(2) for v in next(stream)[1]]
        assert len(set(first)) >= 2, (seed, first)


def _epoch(uri, query, **kw):
    """Labels (flattened), per-batch y shapes and skipped ids of one shuffled epoch on a fresh handle."""
    with tdb.connect(uri, study="s") as db:
        stream = db.data_generator(query, batch_size=16, shuffle=True, seed=3, window_bytes=1 << 14, **kw)
        with stream:
            ys = [y for _, y in stream]
        return [np.asarray(y).tolist() for y in ys], list(stream.stats.skipped_ids)


@pytest.mark.parametrize("query", [{"part": {"$lt": 9}}, {"part": {"$in": [1, 3]}, "label": {"$gte": 250}},
                                   {"part": 9}])
def test_columns_and_documents_give_the_same_epoch(tmp_path, monkeypatch, query):
    """The embedded index reads blocks as columns; rows columns cannot hold (a ``_y`` label array, a malformed
    reference) are read as documents.  Either way the epoch, its labels and its skipped samples are the same."""
    from tensordb_core.embedded.sqlite_index import SQLiteIndexStore
    from tensordb_core.store.protocols import IndexCapabilities

    uri = str(tmp_path / "wh")
    with tdb.connect(uri, study="s") as db:
        _fill(db)
        X = np.arange(40 * 12, dtype=np.float32).reshape(40, 3, 4)
        db.import_data(X, np.arange(40 * 2).reshape(40, 2), {"part": 9}, chunk_bytes=CHUNK)  # array labels: _y
        db.index.insert_many("data", [{"_study": "s", "part": 9, "label": [0, 0], "_x": {"key": "nope", "offset": 0}}])
    pieces = []
    real = blocks.BlockReader._piece

    def recorded(self, low, high):
        pieces.append(real(self, low, high))
        return pieces[-1]

    monkeypatch.setattr(blocks.BlockReader, "_piece", recorded)
    as_columns = _epoch(uri, query, on_error="skip")
    assert pieces and any(p.cols is not None for p in pieces)
    monkeypatch.setattr(SQLiteIndexStore, "capabilities", IndexCapabilities(tail_grace_s=0.0))
    pieces.clear()
    as_documents = _epoch(uri, query, on_error="skip")
    assert pieces and all(p.cols is None for p in pieces)
    assert as_columns == as_documents
    labels, skipped = as_columns
    assert len(labels) > 2 and (len(skipped) == 1) == (query == {"part": 9})


def test_an_index_answering_seq_ranges_reads_each_window_by_one_query(blocks_mongo, monkeypatch):
    """MongoDB declares ``seq_ranges``: a shuffled fresh epoch reads a window's scattered blocks by one ``$or``
    query instead of one query per run of consecutive blocks.  Fewer queries, the same epoch."""
    import uuid

    from tensordb_mongo.index import MongoIndexStore

    uri = blocks_mongo.format(uuid.uuid4().hex[:12])
    with tdb.connect(uri, study="s1") as db, tdb.connect(uri, study="neighbour") as other:
        _fill(db, other)
        assert db.index.capabilities.seq_ranges
        queries = []
        for name in ("find", "tail"):
            real = getattr(MongoIndexStore, name)
            monkeypatch.setattr(MongoIndexStore, name,
                                lambda self, *a, _real=real, _name=name, **kw: queries.append(_name) or _real(self, *a, **kw))
        real_init = blocks.BlockReader.__init__

        def epoch(seq_ranges: bool) -> tuple[list[int], int]:
            def init(self, *a, **kw):
                real_init(self, *a, **kw)
                self.seq_ranges = seq_ranges

            monkeypatch.setattr(blocks.BlockReader, "__init__", init)
            queries.clear()
            labels = _labels(db.data_generator({"label": {"$gte": 30}}, batch_size=16, shuffle=True, seed=4,
                                               window_bytes=3000))
            return labels, len(queries)

        grouped, grouped_queries = epoch(True)
        one_by_one, one_by_one_queries = epoch(False)
    assert grouped == one_by_one and len(grouped) > 400
    assert grouped_queries < one_by_one_queries / 2, (grouped_queries, one_by_one_queries)


def test_the_record_probe_and_the_first_layout_share_one_read_of_the_head(blocks_uri, monkeypatch):
    """A stream asks for its population's first documents once (before, the record probe and the first
    epoch's layout each read past every earlier document: twice ~50 ms for an unindexed late dataset), and
    a bound inside that head (``as_of``) still gives exactly the samples at or below it."""
    from tensordb_core.stream import batches, blocks

    heads, layout_reads = [], []
    real_head, real_read = blocks.head_documents, blocks.BlockReader.read
    monkeypatch.setattr(batches, "head_documents", lambda scope, q: heads.append(q) or real_head(scope, q))
    monkeypatch.setattr(blocks.BlockReader, "read", lambda self, low, high, limit=0: (
        layout_reads.append(low) if low == 1 else None) or real_read(self, low, high, limit))
    with tdb.connect(blocks_uri, study="s1") as db, tdb.connect(blocks_uri, study="neighbour") as other:
        other.import_data(np.zeros((50, 3, 4), np.float32), np.zeros(50, np.int64))  # the head lies behind these
        _fill(db)
        labels = _labels(db.data_generator({"part": {"$gte": 1}}, batch_size=16, seed=3, window_bytes=3000))
        assert sorted(labels) == sorted(db.find_data({"part": {"$gte": 1}}).arrays()[1].tolist())
        assert len(heads) == 1 and layout_reads == []
        docs = list(db.find_data({}))
        bound = sorted(int(d["_seq"]) for d in docs)[20]  # inside the first 64 matches
        below = sorted(int(d["label"]) for d in docs if int(d["_seq"]) <= bound)
        assert sorted(_labels(db.data_generator(batch_size=8, seed=1, as_of=bound))) == below
        assert len(heads) == 2 and layout_reads == []
        first = min(int(d["_seq"]) for d in docs)
        assert _labels(db.data_generator(batch_size=8, seed=1, as_of=first - 1)) == []  # the whole head above it


def test_read_units_merge_consecutive_windows_up_to_the_byte_limit():
    """Later epochs read an epoch's small first windows together: reads never split a window, never exceed the
    limit unless one window does, and a fresh stream's first window stays a read of its own."""
    sizes = [512, 1024, 2048, 4096, 5888]
    cuts = [0, *np.cumsum(sizes).tolist()]
    per_sample = np.full(cuts[-1], 10, dtype=np.int64)
    limit = 10 * 5888
    assert read_units(cuts, per_sample, limit, first_alone=False) == [0, 3584, 7680, 13568]
    assert read_units(cuts, per_sample, limit, first_alone=True) == [0, 512, 3584, 7680, 13568]
    assert read_units(cuts, per_sample, 1, first_alone=False) == cuts  # every window above the limit: one read each
    assert read_units([0, 7], per_sample[:7], limit, first_alone=True) == [0, 7]
    for first_alone in (False, True):
        units = read_units(cuts, per_sample, limit, first_alone=first_alone)
        assert set(units) <= set(cuts) and units[0] == 0 and units[-1] == cuts[-1]
        assert all(per_sample[a:b].sum() <= limit for a, b in pairwise(units))


@pytest.mark.parametrize("seed", range(6))
def test_window_blocks_cut_as_a_window_cutter_fed_block_by_block_cuts(seed: int) -> None:
    """The one cut of an epoch into windows (found by binary search) equals what a fresh stream's WindowCutter
    closes as the blocks arrive, empty blocks included, whatever the counts and window sizes."""
    from tensordb_core.stream.order import BlockLayout, WindowCutter, block_sequence, window_blocks

    rng = np.random.default_rng(seed)
    blocks = int(rng.integers(1, 400))
    counts = rng.integers(0, 40, size=blocks) * (rng.random(blocks) > 0.2)
    layout = BlockLayout(origin=1, span=64, bound=64 * blocks, window_rows=int(rng.integers(1, 900)),
                         first_rows=int(rng.integers(1, 90)))
    for shuffle in (True, False):
        cutter, expected = WindowCutter(layout), [[]]
        for block in block_sequence(layout, seed=seed, epoch=1, shuffle=shuffle).tolist():
            if counts[block] > 0:
                expected[-1].append(block)
                if cutter.add(int(counts[block])):
                    expected.append([])
        expected = expected if expected[-1] else expected[:-1]
        assert window_blocks(layout, counts, seed=seed, epoch=1, shuffle=shuffle) == expected
