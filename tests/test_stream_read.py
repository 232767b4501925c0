"""One read path: ``find_data(...).arrays()`` and the stream plan, fetch and decode samples with the same code.

The cursor reads through :func:`tensordb_core.stream.batches.read_batch`, which
runs the stream's planner, fetcher and decoder once; segments are decoded
only by :func:`tensordb_core.format.codec.segment_bytes` (large samples by
:func:`~tensordb_core.format.codec.segment_into`, straight into their batch
row, which hands anything unusual to ``segment_bytes``).  So a sample reads
the same, and fails with the same typed :class:`SampleError`, whoever asks.
"""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

import tensordb_core
import tensordb_core as tdb
from tensordb_core.format import codec
from tensordb_core.stream import decode, unpack
from tensordb_core.stream.batches import InvalidStreamArgument, SampleError, read_batch
from test_stream import N, expected_x, make_data

PACKAGE = pathlib.Path(tensordb_core.__file__).parent


def _count_calls(monkeypatch, module, name: str) -> dict[str, int]:
    """Count calls of ``module.name`` (the count under ``"n"``) for the rest of the test."""
    calls = {"n": 0}
    real = getattr(module, name)

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


@pytest.mark.parametrize("codec_name", ["lz4", "none"])
def test_the_cursor_and_the_stream_decode_through_the_one_segment_decoder(db, monkeypatch, codec_name):
    """format/codec.py decodes every sample: one by one (``segment_bytes``), or small lz4 samples a batch at a time
    (``frames_into``, stream/unpack.py)."""
    X, labels = make_data(db, codec=codec_name)
    calls = _count_calls(monkeypatch, decode, "segment_bytes")
    framed = {"rows": 0}
    real = unpack.frames_into

    def counting(frames, out):
        framed["rows"] += len(out) // X[0].nbytes
        return real(frames, out)

    monkeypatch.setattr(unpack, "frames_into", counting)
    Xs, ys = db.find_data().arrays()
    assert calls["n"] == N and framed["rows"] == 0
    np.testing.assert_array_equal(Xs, X)
    np.testing.assert_array_equal(ys, labels)
    calls["n"] = 0
    batches = list(db.data_generator(batch_size=32, shuffle=False))
    assert calls["n"] + framed["rows"] == N
    assert framed["rows"] == (N if codec_name == "lz4" else 0)
    np.testing.assert_array_equal(np.concatenate([b for b, _ in batches]), Xs)


def test_segments_are_decoded_in_the_codec_alone():
    """No module but format/codec.py calls lz4 or defines a segment decoder (one place to audit and speed up)."""
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if path.name == "codec.py" and path.parent.name == "format":
            assert "lz4.frame.decompress" in text
            continue
        assert "lz4.frame.decompress" not in text and "import lz4" not in text and "import cramjam" not in text, path
    assert decode.segment_bytes is codec.segment_bytes and unpack.frames_into is codec.frames_into


def test_the_stream_never_imports_the_warehouse():
    """stream/ sits below warehouse/: the warehouse imports the stream, never the other way round."""
    for path in (PACKAGE / "stream").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("tensordb_core.warehouse"), (path.name, node.module)
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("tensordb_core.warehouse") for a in node.names), path.name
        assert len(path.read_text().splitlines()) <= 600, f"{path.name}: one stage per module, at most 600 lines"


def test_arrays_keep_the_cursors_order_skip_and_limit(db):
    _, labels = make_data(db)
    Xs, ys = db.find_data(sort=[("label", -1)], skip=5, limit=40).arrays()
    want = labels[::-1][5:45]
    np.testing.assert_array_equal(ys, want)
    np.testing.assert_array_equal(Xs, expected_x(want))
    Xs, ys = db.find_data({"label": {"$in": [250, 3, 120]}}, sort=[("label", 1)]).arrays()
    assert ys.tolist() == [3, 120, 250] and Xs.shape == (3, 3, 4)


def test_a_missing_chunk_is_the_same_sample_error_for_the_cursor_and_the_stream(db):
    make_data(db)
    doc = next(iter(db.index.find("data", {"label": 123})))
    victims = {d["_id"]: d["label"] for d in db.index.find("data", {"_x.key": doc["_x"]["key"]})}
    db.blobs.delete(doc["_x"]["key"])
    with pytest.raises(SampleError, match="could not be read") as from_cursor:
        db.find_data(sort=[("label", 1)]).arrays()
    with pytest.raises(SampleError, match="could not be read") as from_stream:
        list(db.data_generator(batch_size=N, shuffle=False))
    assert from_cursor.value.doc_id == from_stream.value.doc_id in victims  # the first unreadable, in read order
    assert str(from_cursor.value) == str(from_stream.value)
    Xs, ys = db.find_data().arrays(on_error="skip")
    assert sorted(ys.tolist()) == sorted(set(range(N)) - set(victims.values()))
    np.testing.assert_array_equal(Xs, expected_x(ys))


def _flip_a_stored_byte(db, label: int) -> dict:
    """Flip one byte in the middle of the stored segment of the sample labelled ``label``; return its document."""
    doc = next(iter(db.index.find("data", {"label": label})))
    x = doc["_x"]
    with open(db.blobs.path_of(x["key"]), "r+b") as f:
        f.seek(x["offset"] + x["length"] // 2)
        byte = f.read(1)
        f.seek(x["offset"] + x["length"] // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    return doc


def test_a_corrupted_segment_is_the_same_sample_error_for_the_cursor_and_the_stream(tmp_path):
    with tensordb_core.connect(str(tmp_path / "wh"), study="s") as db:
        make_data(db, codec="lz4")
        doc = _flip_a_stored_byte(db, 77)
        with pytest.raises(SampleError, match="checksum") as from_cursor:
            db.find_data().arrays()
        with pytest.raises(SampleError, match="checksum") as from_stream:
            list(db.data_generator(batch_size=16, shuffle=False))
        assert from_cursor.value.doc_id == from_stream.value.doc_id == doc["_id"]
        assert str(from_cursor.value) == str(from_stream.value)
        Xs, ys = db.find_data().arrays(on_error="skip")
        assert ys.tolist() == [i for i in range(N) if i != 77]
        np.testing.assert_array_equal(Xs, expected_x(ys))


def test_a_malformed_document_is_a_sample_error_for_the_cursor_too(db):
    make_data(db, n=10)
    [bad] = db.index.insert_many("data", [{"_study": db.study, "_x": {"key": "k", "offset": 0}, "label": 99}])
    with pytest.raises(SampleError, match="malformed") as info:
        db.find_data().arrays()
    assert info.value.doc_id == bad
    _, ys = db.find_data().arrays(on_error="skip")
    assert ys.tolist() == list(range(10))


def test_read_batch_reports_what_it_skipped_and_refuses_bad_arguments(db):
    make_data(db, n=20)
    docs = list(db.index.find("data", {}))
    docs[4] = {**docs[4], "_x": {**docs[4]["_x"], "crc32": docs[4]["_x"]["crc32"] ^ 1}}
    batch = read_batch(db.blobs, docs, on_error="skip")
    assert batch.skipped == 1 and [e.doc_id for e in batch.errors] == [docs[4]["_id"]]
    assert len(batch.X) == 19
    empty = read_batch(db.blobs, [])
    assert empty.X.shape == (0,) and empty.Y is None
    with pytest.raises(InvalidStreamArgument, match="on_error"):
        db.find_data().arrays(on_error="ignore")


@pytest.mark.parametrize("position", [0, 1, 2, 3])
def test_arrays_skip_a_missing_chunk_wherever_it_is(tmp_path, position):
    """Issue 20, item 1: arrays(on_error="skip") raised RuntimeError (a StopIteration in a generator) for 3 of 4
    positions of the missing chunk; every position now skips exactly that chunk's samples."""
    with tdb.connect(tmp_path / "w", study="s") as db:
        X = np.arange(40 * 6, dtype=np.float32).reshape(40, 6)
        for part in range(4):
            db.import_data(X[part * 10:(part + 1) * 10], list(range(part * 10, (part + 1) * 10)))
        keys = sorted({d["_x"]["key"] for d in db.index.find("data", {})},
                      key=lambda k: min(d["label"] for d in db.index.find("data", {"_x.key": k})))
        assert len(keys) == 4
        db.blobs.delete(keys[position])
        Xs, ys = db.find_data().arrays(on_error="skip")
        kept = [i for i in range(40) if i // 10 != position]
        assert ys.tolist() == kept
        np.testing.assert_array_equal(Xs, X[kept])


@pytest.mark.parametrize("codec_name", ["lz4", "none"])
def test_samples_decoded_straight_into_their_batch_decode_the_same_and_fail_the_same(tmp_path, monkeypatch,
                                                                                     codec_name):
    """Samples of ``INTO_BATCH_BYTES`` or more are decoded by ``segment_into``, straight into their batch row:
    same values, same errors."""
    side = 1 + int((decode.INTO_BATCH_BYTES // 3) ** 0.5)
    rng = np.random.default_rng(5)
    X = rng.integers(0, 8, size=(24, 3, side, side), dtype=np.uint8)  # few values: lz4 really compresses
    assert X[0].nbytes >= decode.INTO_BATCH_BYTES
    calls = _count_calls(monkeypatch, decode, "segment_into")
    with tensordb_core.connect(str(tmp_path / "wh"), study="s") as db:
        db.import_data(X, np.arange(24), {"part": "big"}, codec=codec_name)
        got = np.concatenate([b for b, _ in db.data_generator(batch_size=5, shuffle=False)])
        np.testing.assert_array_equal(got, X)
        assert calls["n"] == 24
        shuffled = list(db.data_generator(batch_size=7, shuffle=True, seed=3))
        Xs, ys = np.concatenate([b for b, _ in shuffled]), np.concatenate([y for _, y in shuffled])
        np.testing.assert_array_equal(Xs, X[ys])
        doc = _flip_a_stored_byte(db, 9)
    with tensordb_core.connect(str(tmp_path / "wh"), study="s") as db:  # a new process's view: nothing verified yet
        with pytest.raises(SampleError, match="checksum") as info:
            list(db.data_generator(batch_size=5, shuffle=False))
        assert info.value.doc_id == doc["_id"]
        stream = db.data_generator(batch_size=5, shuffle=False, on_error="skip")
        kept = [(b, y) for b, y in stream]
        ys = np.concatenate([y for _, y in kept])
        assert ys.tolist() == [i for i in range(24) if i != 9]
        np.testing.assert_array_equal(np.concatenate([b for b, _ in kept]), X[ys])
