"""Chunks that an epoch's windows share, read once on stores where a request is a round trip (stream/carry.py)."""

from __future__ import annotations

import json
import threading
import uuid

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.embedded.memory_blobs import MemoryBlobStore
from tensordb_core.errors import BlobNotFound
from tensordb_core.stream import engine
from tensordb_core.stream.carry import ChunkCarry, Claim, _Carried
from tensordb_core.stream.order import block_layout, block_sequence
from tensordb_core.stream.plan import plan_fetch
from tensordb_core.stream.refs import RefTable

N = 600


def images(n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size=(n, 3, 16, 16), dtype=np.uint8)


def warehouse(tmp_path, X: np.ndarray, blobs: str | None = None, chunk_bytes: int = 20_000) -> tdb.TensorDB:
    """Two imports in chunks of ~26 samples (at 20 kB): a shuffled epoch's blocks (8 samples at these window sizes)
    cut most chunks between windows."""
    db = tdb.connect(tmp_path / f"wh-{uuid.uuid4().hex[:6]}", study="s",
                     blobs=blobs if blobs is not None else f"memory://carry-{uuid.uuid4().hex}")
    for lo, hi in ((0, len(X) // 2), (len(X) // 2, len(X))):
        db.import_data(X[lo:hi], np.arange(lo, hi), chunk_bytes=chunk_bytes)
    return db


def epoch(db: tdb.TensorDB, **kwargs) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict]:
    options = {"batch_size": 32, "seed": 5, "epochs": 1, "window_bytes": 200_000, **kwargs}
    with db.data_generator({}, **options) as stream:
        batches = [(x.copy(), y.copy()) for x, y in stream]
        return batches, stream.stats.as_dict()


@pytest.fixture
def no_carry(monkeypatch):
    """Streams made while this is on read each window's ranges themselves, as before the carry."""
    def off() -> None:
        monkeypatch.setattr(engine, "carry_for", lambda *args, **kwargs: None)
    return off


@pytest.fixture
def carries(monkeypatch):
    """Every ChunkCarry made, and after each claim the bytes it held then."""
    made: list[ChunkCarry] = []
    held_after_claims: list[tuple[int, int]] = []
    real_init, real_claim = ChunkCarry.__init__, ChunkCarry.claim

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        made.append(self)

    def claim(self, refs, rows):
        out = real_claim(self, refs, rows)
        held_after_claims.append((self.bytes, self.max_bytes))
        return out

    monkeypatch.setattr(ChunkCarry, "__init__", init)
    monkeypatch.setattr(ChunkCarry, "claim", claim)
    return made, held_after_claims


def test_windows_sharing_chunks_make_fewer_requests_for_no_more_bytes_and_the_same_batches(tmp_path, no_carry,
                                                                                             carries):
    X = images()
    with warehouse(tmp_path, X) as db:
        shared, with_carry = epoch(db)
        assert carries[0], "an unsharded epoch on a store without map or read_into gets a carry"
        no_carry()
        alone, without = epoch(db)
    assert len(shared) == len(alone) and sum(len(y) for _, y in shared) == N
    for (x, y), (x2, y2) in zip(shared, alone):  # the order is the epoch's, not the reads'
        np.testing.assert_array_equal(y, y2)
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(x, X[y])
    assert with_carry["requests"] < 0.9 * without["requests"], (with_carry["requests"], without["requests"])
    assert with_carry["bytes_read"] <= without["bytes_read"]
    assert all(held <= bound for held, bound in carries[1])


@pytest.mark.parametrize("window_bytes", [30_000, 120_000, 2_000_000])
def test_any_window_size_gives_the_same_epochs_with_at_most_the_requests(tmp_path, no_carry, window_bytes):
    X = images(900, seed=1)
    with warehouse(tmp_path, X, chunk_bytes=9_000) as db:
        kwargs = {"batch_size": 50, "seed": 2, "epochs": 2, "window_bytes": window_bytes}
        shared, with_carry = epoch(db, **kwargs)
        no_carry()
        alone, without = epoch(db, **kwargs)
    labels = np.concatenate([y for _x, y in shared])
    assert sorted(labels.tolist()) == sorted(2 * list(range(900)))
    np.testing.assert_array_equal(labels, np.concatenate([y for _x, y in alone]))
    for x, y in shared:
        np.testing.assert_array_equal(x, X[y])
    assert with_carry["requests"] <= without["requests"]
    assert with_carry["bytes_read"] <= without["bytes_read"]


def test_far_apart_neighbours_are_read_in_ranges_and_the_carry_stays_in_its_bound(tmp_path, no_carry, carries):
    """Small windows over many blocks: a chunk's next block is rarely soon; nothing is read for later in vain."""
    X = images(1500, seed=2)
    with warehouse(tmp_path, X, chunk_bytes=6_000) as db:
        shared, with_carry = epoch(db, window_bytes=20_000, batch_size=10)
        no_carry()
        alone, without = epoch(db, window_bytes=20_000, batch_size=10)
    np.testing.assert_array_equal(np.concatenate([y for _x, y in shared]), np.concatenate([y for _x, y in alone]))
    assert with_carry["bytes_read"] <= without["bytes_read"]
    assert with_carry["requests"] <= without["requests"]
    made, held = carries
    assert made and held and all(0 <= h <= bound for h, bound in held)
    assert made[0].max_bytes == 20_000


def test_a_failed_read_fails_only_its_own_windows_samples(tmp_path, monkeypatch, no_carry):
    """The window reading a chunk for a later one fails (once): the later window reads its own and gets it."""
    X = images()
    with warehouse(tmp_path, X) as db:
        victim = first_left_key(db)
        real_get = MemoryBlobStore.get
        failed: list[str] = []

        def flaky(self, key, start=0, end=None):
            if key == victim and not failed:
                failed.append(key)
                raise BlobNotFound(f"no blob {key!r} (this once)")
            return real_get(self, key, start, end)

        monkeypatch.setattr(MemoryBlobStore, "get", flaky)
        shared, with_carry = epoch(db, read_threads=1, on_error="skip")
        failed.clear()
        no_carry()
        alone, without = epoch(db, read_threads=1, on_error="skip")
    assert with_carry["skipped"] == without["skipped"] > 0
    assert sorted(with_carry["skipped_ids"]) == sorted(without["skipped_ids"])
    np.testing.assert_array_equal(np.concatenate([y for _x, y in shared]), np.concatenate([y for _x, y in alone]))


def first_left_key(db: tdb.TensorDB) -> str:
    """The key of a chunk some window of a fresh epoch reads further for a later one."""
    left: list[str] = []
    real = ChunkCarry.claim

    def spy(self, refs, rows):
        claim = real(self, refs, rows)
        if claim is not None:
            left.extend(c.key for c in claim.leave)
        return claim

    ChunkCarry.claim = spy
    try:
        epoch(db, read_threads=1)
    finally:
        ChunkCarry.claim = real
    assert left
    return left[0]


@pytest.mark.parametrize("how", ["files", "sharded", "cache"])
def test_no_carry_where_reads_are_local_sharded_or_cached(tmp_path, carries, how):
    X = images(300)
    blobs = str(tmp_path / "blobs") if how == "files" else None
    with warehouse(tmp_path, X, blobs=blobs) as db:
        if how == "sharded":
            with db.data_generator({}, batch_size=32, seed=5, epochs=1, window_bytes=200_000, shard=(1, 2)) as stream:
                assert len(np.concatenate([y for _x, y in stream])) == 150
        else:
            batches, _ = epoch(db, cache_bytes=1 << 20) if how == "cache" else epoch(db)
            assert sum(len(y) for _x, y in batches) == 300
    assert carries[0] == []


def test_closing_wakes_a_window_waiting_for_a_read_that_never_ran():
    layout = block_layout(np.arange(1, 65), np.full(64, 100), np.full(64, 2_000), bound=64, window_bytes=3_200)
    carry = ChunkCarry(layout, block_sequence(layout, seed=0, epoch=0, shuffle=True), 1 << 20)
    left = _Carried("k" * 64, 0, 2_000, 2_000, until=5)
    carry.held[left.key] = left  # as a claim leaves it; the window that would read it was cancelled
    taker = Claim({0: left}, [])
    got: list[object] = []
    waiting = threading.Thread(target=lambda: got.append(taker.taken(left.request)))
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive() and not got
    carry.close()
    waiting.join(5)
    assert not waiting.is_alive() and got == [None] and carry.bytes == 0 and not carry.held


def test_a_plan_with_taken_and_left_chunks_reads_each_row_from_its_request(tmp_path):
    """Rows taken from what an earlier window read and rows read here land at the right offsets."""
    X = images(200, seed=4)
    with warehouse(tmp_path, X) as db:
        table = RefTable()
        table.extend(list(db.index.find("data", {}, sort=[("_seq", 1)])))
        refs = table.freeze()
        chunks = {key: db.blobs.get(key) for key in refs.chunk_keys}
    rows = np.random.default_rng(0).permutation(refs.n)[:120]
    c0, c1 = int(refs.chunk[rows[0]]), int(refs.chunk[rows[1]])
    in0 = rows[refs.chunk[rows] == c0]
    took = _Carried(refs.chunk_keys[c0], 0, int(np.median(refs.span_end[in0])), int(refs.chunk_sizes[c0]), until=9)
    leaves = [] if c1 == c0 else [_Carried(refs.chunk_keys[c1], 0, int(refs.chunk_sizes[c1]),
                                           int(refs.chunk_sizes[c1]), until=9)]
    plan = Claim({c0: took}, leaves).plan(refs, rows, lambda sub: plan_fetch(refs, sub))
    assert took.request in plan.requests and all(c.request in plan.requests for c in leaves)
    for row, req, base in zip(rows.tolist(), plan.req_of.tolist(), plan.base_of.tolist()):
        key, start, end = plan.requests[req]
        data = chunks[key][start:end]
        lo, hi = int(refs.x_off[row]), int(refs.x_off[row] + refs.x_len[row])
        assert key == refs.chunk_keys[int(refs.chunk[row])] and start == base
        assert data[lo - base:hi - base] == chunks[key][lo:hi]
    taken_rows = rows[[plan.requests[r] == took.request for r in plan.req_of.tolist()]]
    assert len(taken_rows) and (refs.span_end[taken_rows] <= took.end).all()


@pytest.mark.parametrize("stop_after", [1, 7, 25])
def test_a_resumed_stream_continues_exactly(tmp_path, carries, stop_after):
    """Resumed part way through an epoch (the first, or the second), the stream reads what is left of it with a
    carry of its own and delivers exactly what the uninterrupted stream did."""
    X = images()
    kwargs = {"batch_size": 32, "seed": 5, "epochs": 2, "window_bytes": 200_000}
    with warehouse(tmp_path, X) as db:
        with db.data_generator({}, **kwargs) as stream:
            full = [y.tolist() for _x, y in stream]
        first = db.data_generator({}, **kwargs)
        head = [y.tolist() for _x, y in (next(first) for _ in range(stop_after))]
        state = json.loads(json.dumps(first.state_dict()))
        first.close()
        before = len(carries[0])
        with db.data_generator({}, state=state, **kwargs) as resumed:
            rest = [(x, y) for x, y in resumed]
    assert head + [y.tolist() for _x, y in rest] == full
    for x, y in rest:
        np.testing.assert_array_equal(x, X[y])
    assert len(carries[0]) > before  # the resumed epoch read with a carry
