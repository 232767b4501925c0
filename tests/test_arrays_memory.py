"""``find_data(q).arrays()`` reads in bounded windows: memory is the result plus one window, results unchanged.

Before, one reference table for the whole result held a Python id, label and
document per sample and every chunk's bytes at once: 515 MB for 300k
samples of 4 float32.  The equality tests force many small windows and
compare with a single window (what one table gave), labels' dtypes included.
"""

from __future__ import annotations

import tracemalloc
import uuid

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.errors import TensorDBError
from tensordb_core.stream import batches


@pytest.fixture
def mem():
    with tdb.connect(f"memory://arrays-{uuid.uuid4().hex}", study="s") as db:
        yield db


def _both(db, monkeypatch, query=None, **kwargs):
    """``arrays()`` in windows of 5 samples (aligned with imports of 10), and in one window (the single table)."""
    monkeypatch.setattr(batches, "READ_WINDOW_ROWS", 5)
    small = db.find_data(query or {}).arrays(**kwargs)
    monkeypatch.setattr(batches, "READ_WINDOW_ROWS", 7)  # windows straddling imports
    _same(db.find_data(query or {}).arrays(**kwargs), small)
    monkeypatch.setattr(batches, "READ_WINDOW_ROWS", 10**9)
    whole = db.find_data(query or {}).arrays(**kwargs)
    return small, whole


def _same(a, b) -> None:
    """Equal arrays: dtype, shape, and each value with its Python type (True is not 1 here)."""
    for u, v in zip(a, b, strict=True):
        if u is None or v is None:
            assert u is None and v is None
            continue
        assert u.dtype == v.dtype and u.shape == v.shape
        assert [(type(x), x) for x in u.reshape(-1).tolist()] == [(type(x), x) for x in v.reshape(-1).tolist()]


def _import(db, labels, *, dtype=np.float32, shape=(4,), **kwargs):
    n = len(labels)
    X = (np.arange(n * int(np.prod(shape))) % 251).astype(dtype).reshape(n, *shape)
    db.import_data(X, labels, **kwargs)


INTS, FLOATS = list(range(10)), [i + 0.5 for i in range(10)]
BOOLS, STRS = [True, False] * 5, [f"c{i}" for i in range(10)]
# Labels of each of three imports of 10 samples (an import types its labels as one array: no mix within one).
LABELS = {
    "ints": [INTS, INTS, INTS],
    "ints then floats": [INTS, INTS, FLOATS],
    "none beside ints": [None, INTS, INTS],
    "ints then none": [INTS, INTS, None],
    "bools then ints": [BOOLS, INTS, INTS],
    "strings then ints": [STRS, INTS, INTS],
    "ints then strings": [INTS, STRS, STRS],
    "strings of growing length": [["a"] * 10, ["bb"] * 10, ["ccc"] * 10],
}


@pytest.mark.parametrize("name", list(LABELS))
def test_windows_give_the_single_table_result_for_every_label_mix(mem, monkeypatch, name):
    for i, labels in enumerate(LABELS[name]):  # three imports, so three chunks; windows of 7 straddle them
        mem.import_data((np.arange(40, dtype=np.float32) + i).reshape(10, 4), labels)
    small, whole = _both(mem, monkeypatch)
    _same(small, whole)
    assert len(small[0]) == 30


def test_windows_give_the_single_table_result_without_labels_with_array_labels_and_empty(mem, monkeypatch):
    _same(*_both(mem, monkeypatch))  # nothing stored
    mem.import_data(np.ones((20, 4), np.float32), tags={"k": "none"})
    small, whole = _both(mem, monkeypatch, {"k": "none"})
    _same(small, whole)
    assert small[1] is None
    mem.import_data(np.ones((20, 4), np.float32), np.arange(40, dtype=np.uint8).reshape(20, 2), tags={"k": "arr"})
    small, whole = _both(mem, monkeypatch, {"k": "arr"})
    _same(small, whole)
    assert small[1].shape == (20, 2)


def test_windows_upcast_mixed_dtypes_and_refuse_mixed_shapes_like_one_table(mem, monkeypatch):
    _import(mem, list(range(10)), dtype=np.float32, tags={"k": "mixed"})
    _import(mem, list(range(10)), dtype=np.float64, tags={"k": "mixed"})
    small, whole = _both(mem, monkeypatch, {"k": "mixed"})
    _same(small, whole)
    assert small[0].dtype == np.float64
    _import(mem, list(range(10)), shape=(5,), tags={"k": "mixed"})
    for rows in (7, 10**9):
        monkeypatch.setattr(batches, "READ_WINDOW_ROWS", rows)
        with pytest.raises(TensorDBError, match="different shapes"):
            mem.find_data({"k": "mixed"}).arrays()


def test_windows_skip_missing_chunks_like_one_table(mem, monkeypatch):
    for start in range(0, 40, 10):
        labels = list(range(start, start + 10)) if start != 20 else [float(v) for v in range(start, start + 10)]
        _import(mem, labels, chunk_bytes=64)
    chunks = sorted({d["_x"]["key"] for d in mem.find_data({})})
    mem.blobs.delete(chunks[len(chunks) // 2])
    small, whole = _both(mem, monkeypatch, on_error="skip")
    _same(small, whole)
    assert 0 < len(small[0]) < 40
    monkeypatch.setattr(batches, "READ_WINDOW_ROWS", 7)
    with pytest.raises(batches.SampleError):
        mem.find_data({}).arrays()


def test_arrays_of_many_tiny_samples_hold_about_the_result_not_an_object_per_sample(tmp_path):
    """100k samples of 4 float32 (1.6 MB of X, 0.8 MB of labels): 42.9 MB traced at the peak before, 8.6 MB after."""
    n = 100_000
    with tdb.connect(str(tmp_path / "wh"), study="s") as db:
        X = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
        db.import_data(X, np.arange(n))
        cursor = db.find_data({})
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            got, labels = cursor.arrays()
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        np.testing.assert_array_equal(got, X)
        np.testing.assert_array_equal(labels, np.arange(n))
        assert peak < 16e6, f"arrays() peaked at {peak / 1e6:.1f} MB for {(X.nbytes + labels.nbytes) / 1e6:.1f} MB"
