"""What a stream's first epoch pays beyond later ones (issue 16): fresh read buffers, reused once warm."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.stream.fetch import BufferPool


def test_a_released_buffer_is_lent_again_best_fit_first():
    pool = BufferPool(max_bytes=1 << 20)
    small, large, exact = pool.acquire(1000), pool.acquire(3000), pool.acquire(1500)
    assert small.dtype == np.uint8 and small.shape == (1000,)
    pool.release([small, large, exact])
    # Several free buffers fit 1400 bytes: the smallest that does comes back (the same object, not a copy).
    assert pool.acquire(1400) is exact
    assert pool.acquire(1400) is large
    assert pool.acquire(1400) is not small  # too small: a new buffer


def test_the_pool_keeps_at_most_its_bound():
    pool = BufferPool(max_bytes=2500)
    a, b = pool.acquire(2000), pool.acquire(2000)
    pool.release([a, b])  # both would exceed 2,500 bytes kept: one is dropped
    kept = pool.acquire(2000)
    assert kept is a or kept is b
    assert pool.acquire(2000) is not a and pool.acquire(2000) is not b


def test_over_its_bound_the_pool_lets_the_smallest_buffers_go_first():
    """A stream's first windows grow, and their buffers serve no later window."""
    pool = BufferPool(max_bytes=7600)
    first, second, big = pool.acquire(500), pool.acquire(1500), pool.acquire(6000)
    pool.release([big, first, second])  # 8,000 bytes: the 500 goes, 7,500 stay
    assert pool.acquire(6000) is big
    assert pool.acquire(1500) is second
    assert pool.acquire(500) is not first


def test_epochs_over_reused_buffers_of_many_sizes_read_every_sample_exactly(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.integers(0, 255, size=(600, 3, 16, 16), dtype=np.uint8)
    with tdb.connect(tmp_path / "wh", study="s") as db:
        for lo, hi in ((0, 100), (100, 350), (350, 600)):  # chunks (and so windows) of different sizes
            db.import_data(X[lo:hi], np.arange(lo, hi), chunk_bytes=20_000)
        with db.data_generator({}, batch_size=32, seed=5, epochs=3, window_bytes=60_000) as stream:
            seen = [(x, int(label)) for xb, yb in stream for x, label in zip(xb, yb)]
    assert len(seen) == 3 * len(X)
    for x, label in seen:
        np.testing.assert_array_equal(x, X[label])


def test_the_first_epoch_check_flags_the_damaged_sample_itself(tmp_path):
    """Raw (incompressible) samples: only the crc32 pre-check can see a flipped byte, and it must name its row."""
    rng = np.random.default_rng(4)
    X = rng.integers(0, 255, size=(300, 256), dtype=np.uint8)  # lz4 saves nothing: stored raw
    with tdb.connect(tmp_path / "wh", study="s") as db:
        ids = db.import_data(X, np.arange(300), chunk_bytes=16_384)
        [doc] = db.index.find(db.scope.data_collection, {"_id": ids[123]})
        assert doc["_x"]["codec"] == "none"
        chunk = db.blobs.path_of(doc["_x"]["key"])
        data = bytearray(Path(chunk).read_bytes())
        data[doc["_x"]["offset"] + 7] ^= 0x55
        os.chmod(chunk, 0o644)
        Path(chunk).write_bytes(bytes(data))
        with db.data_generator({}, batch_size=16, seed=2, epochs=2, on_error="skip") as stream:
            labels = [int(v) for _, y in stream for v in y]
            skipped = stream.stats.skipped_ids
    assert sorted(labels) == sorted([i for i in range(300) if i != 123] * 2)
    assert set(skipped) == {ids[123]}


def _doc(seq: int, y: dict | None = None, **x_changes) -> dict:
    x = {"key": "k1", "chunk_size": 4096, "offset": 64 * seq, "length": 40, "codec": "lz4", "dtype": "|u1",
         "shape": [8, 8], "crc32": seq, **x_changes}
    doc = {"_id": f"d{seq}", "_seq": seq, "_x": x, "label": seq}
    if y is not None:
        doc["_y"] = y
    return doc


def test_label_segments_keep_their_rows_when_most_samples_have_none():
    """The reference table stores ``_y`` columns only up to the last row that has one; every row still reads right."""
    from tensordb_core.stream.refs import RefTable

    y = {"key": "k1", "offset": 9000, "length": 16, "codec": "none", "dtype": "<i8", "shape": [2], "crc32": 5}
    table = RefTable()
    table.extend([_doc(1), _doc(2), _doc(3), _doc(4, y), _doc(5, {**y, "codec": "zstd"}), _doc(6, offset=-1),
                  _doc(7)])
    refs = table.freeze()
    assert refs.has_y.tolist() == [False, False, False, True, False, False, False]
    assert refs.y_off.tolist() == [0, 0, 0, 9000, 0, 0, 0]
    assert refs.y_fmt[3] >= 0 and (np.delete(refs.y_fmt, 3) == -1).all()
    assert sorted(refs.bad) == [4, 5]  # the unknown codec and the negative offset, by row
    assert refs.chunk.tolist() == [0, 0, 0, 0, -1, -1, 0]
    assert refs.x_off.tolist() == [64, 128, 192, 256, 0, 0, 448]
    table.extend([_doc(8), _doc(9, {**y, "offset": 9100})])
    refs = table.freeze()
    assert refs.has_y.tolist() == [False] * 3 + [True] + [False] * 4 + [True]
    assert refs.y_off.tolist() == [0] * 3 + [9000] + [0] * 4 + [9100]
    assert len(refs.y_len) == len(refs.y_crc) == len(refs.y_codec) == refs.n == 9


def _ref_doc(seq: int, **x_changes) -> dict:
    x = {"key": f"chunk{seq // 3}", "chunk_size": 900, "offset": 30 * (seq % 3), "length": 30, "codec": "lz4",
         "dtype": "<f4" if seq % 4 else "|u1", "shape": [2, 3] if seq % 4 else [6], "crc32": 7 * seq}
    x.update(x_changes)
    return {"_id": f"id{seq}", "_seq": seq, "label": seq % 5, "_x": x}


def _as_columns(docs: list[dict]) -> dict:
    from tensordb_core.stream.refs import REF_PATHS

    def at(doc, path):
        for part in path.split("."):
            doc = doc.get(part) if isinstance(doc, dict) else None
        return doc

    return {"_seq": [d["_seq"] for d in docs], "_id": [d["_id"] for d in docs],
            **{p: [at(d, p) for d in docs] for p in REF_PATHS}}


@pytest.mark.parametrize("change", [{}, {"offset": True}, {"offset": 3.0}, {"length": None}, {"offset": -1},
                                    {"crc32": "7"}, {"key": 5}, {"chunk_size": True}, {"chunk_size": None},
                                    {"codec": "nope"}, {"shape": [2, "3"]}, {"shape": [[2], 3]}, {"dtype": 4},
                                    {"shape": 6}, {"offset": 2**70}])
def test_references_read_as_columns_are_those_documents_give_or_refused(change):
    """extend_columns (the embedded index's fast path) checks and converts by C loops: whatever it takes must
    freeze to exactly what the per-document path makes of the same rows, and what it refuses leaves the table
    untouched (the caller then reads documents, which mark a malformed row ``bad``)."""
    from tensordb_core.stream.refs import RefTable

    docs = [_ref_doc(seq) for seq in range(2, 14)]
    docs[7] = _ref_doc(9, **change)  # one odd row, its chunk's first, among ordinary ones (chunks, two formats)
    before = _ref_doc(1)
    by_columns, by_documents = RefTable(), RefTable()
    by_columns.extend([before])
    by_documents.extend([before])
    taken = by_columns.extend_columns(_as_columns(docs))
    if not taken:
        assert len(by_columns) == 1 and by_columns.chunk_keys == ["chunk0"] and len(by_columns.formats) == 1
        by_columns.extend(docs)
    by_documents.extend(docs)
    a, b = by_columns.freeze(), by_documents.freeze()
    assert a.ids == b.ids and a.chunk_keys == b.chunk_keys and a.formats == b.formats and a.bad == b.bad
    for name in ("seq", "chunk", "chunk_sizes", "x_off", "x_len", "x_crc", "x_codec", "x_fmt", "labels"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert taken if not change else not (taken and b.bad)  # a malformed row is only ever read as a document
    assert bool(b.bad) == (change in ({"length": None}, {"offset": -1}, {"codec": "nope"}, {"shape": [[2], 3]},
                                      {"dtype": 4}, {"shape": 6}, {"offset": 2**70}))  # meant to be malformed
