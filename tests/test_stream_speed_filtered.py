"""Filtered reads on a local store fetch about the bytes they select (issue 16: within 1.5x)."""

from __future__ import annotations

import numpy as np

import tensordb_core as tdb
from tensordb_core.stream.plan import plan_fetch
from tensordb_core.stream.refs import FrozenRefs, RefTable

N = 600


def _warehouse(tmp_path):
    rng = np.random.default_rng(5)
    X = rng.integers(0, 255, size=(N, 3, 24, 24), dtype=np.uint8)  # noise: lz4 cannot shrink it, 1.7 KiB each
    db = tdb.connect(tmp_path / "wh", study="s")
    db.import_data(X, np.arange(N), tags={"part": "all"}, chunk_bytes=256 * 1024)
    return db, X


def test_a_ten_percent_filter_reads_at_most_one_and_a_half_times_its_bytes(tmp_path):
    db, X = _warehouse(tmp_path)
    chosen = list(range(3, N, 10))  # every tenth sample: ~15 KiB gaps, merged by the remote rules
    query = {"label": {"$in": chosen}}
    with db:
        selected = sum(d["_x"]["length"] for d in db.scope.index.find("data", db.scope.query(query)))
        with db.data_generator(query, batch_size=16, shuffle=True, seed=1, epochs=1) as stream:
            got = {int(v): x.copy() for xb, yb in stream for x, v in zip(xb, yb)}
        assert sorted(got) == chosen
        assert all(np.array_equal(got[i], X[i]) for i in chosen)
        assert stream.stats.bytes_read <= 1.5 * selected
        Xs, ys = db.find_data(query).arrays()
        assert ys.tolist() == chosen and np.array_equal(Xs, X[chosen])


def test_remote_rules_still_merge_nearby_ranges(tmp_path):
    """Object stores pay a round trip per request: there, a gap under 64 KiB is read rather than split."""
    db, _ = _warehouse(tmp_path)
    with db:
        table = RefTable()
        table.extend(db.scope.index.find("data", {}, projection={"_id": 1, "_seq": 1, "_x": 1, "_y": 1, "label": 1}))
        refs: FrozenRefs = table.freeze()
        rows = np.arange(3, N, 10, dtype=np.int64)
        remote, local = plan_fetch(refs, rows), plan_fetch(refs, rows, local=True)
        assert len(remote.requests) < len(local.requests)
        assert sum(local.lengths) <= 1.5 * int(refs.x_len[rows].sum() + refs.y_len[rows].sum())
        assert sum(remote.lengths) > 5 * sum(local.lengths)


def test_a_file_store_maps_the_rows_it_reads_of_a_chunk_as_one_view(tmp_path):
    """Mapped ranges cost a mapping each and skipped bytes almost nothing: two samples of every five (gaps
    wider than the file rules merge, as a loader worker's share of a window has) are one view per chunk; a
    10% filter keeps its ranges (FetchPlan.joined)."""
    from tensordb_core.stream.counters import Counters
    from tensordb_core.stream.decode import Decoder
    from tensordb_core.stream.fetch import MAP_FILL, fetch_window

    db, X = _warehouse(tmp_path)
    with db:
        table = RefTable()
        table.extend(db.scope.index.find("data", {}, projection={"_id": 1, "_seq": 1, "_x": 1, "_y": 1, "label": 1}))
        refs: FrozenRefs = table.freeze()
        half = np.flatnonzero(np.arange(N) % 5 < 2)
        plan = plan_fetch(refs, half, local=True)
        joined = plan.joined(MAP_FILL)
        chunks = {refs.chunk_keys[int(c)] for c in refs.chunk[half]}
        assert len(joined.requests) == len(chunks) < len(plan.requests)
        for i, row in enumerate(half.tolist()):  # each row lies inside its request, at its offset from the base
            key, start, end = joined.requests[int(joined.req_of[i])]
            assert key == refs.chunk_keys[int(refs.chunk[row])] and start == joined.base_of[i]
            assert start <= refs.x_off[row] and refs.x_off[row] + refs.x_len[row] <= end
        sparse = plan_fetch(refs, np.arange(3, N, 10, dtype=np.int64), local=True)
        assert sparse.joined(MAP_FILL) is sparse
        window = fetch_window(db.scope.blobs, refs, half, None, Counters(), verify=True)
        assert len(window.bufs) == len(chunks) and window.checked.all()
        got = Decoder(transform=None, on_error="raise", verify=True, stats=Counters()).decode([(window, 0, len(half))])
        assert np.array_equal(got.X, X[half])
        with db.data_generator({}, batch_size=16, shuffle=True, seed=2, shard=(0, 2), window_bytes=1 << 20) as stream:
            got = {int(v): x.copy() for xb, yb in stream for x, v in zip(xb, yb)}
        assert len(got) == N // 2 and all(np.array_equal(x, X[i]) for i, x in got.items())
