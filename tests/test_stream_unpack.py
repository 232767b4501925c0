"""Windows decompressed whole (stream/unpack.py, issue 16): the same batches as sample by sample, or no unpacking.

Each test streams a warehouse twice, once as shipped and once with
``unpack_window`` refusing every window (the per-sample decoder then reads
everything), and asks for identical batches; the stats say which path ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.stream import engine, reader, unpack
from tensordb_core.stream.decode import SampleError
from tensordb_core.stream.fetch import BufferPool

N = 600


def compressible(n: int, shape: tuple[int, ...] = (8, 40), seed: int = 0, dtype: Any = np.uint8) -> np.ndarray:
    """Samples lz4 halves or better (a low-entropy ramp plus noise), so ``codec="lz4"`` is what a real import picks."""
    rng = np.random.default_rng(seed)
    ramp = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape) // 7
    return ((ramp[None] + rng.integers(0, 3, size=(n, *shape))) % 50).astype(dtype)


def stream(db: tdb.TensorDB, **kwargs: Any) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, Any]]:
    xs, ys = [], []
    with db.data_generator({}, batch_size=kwargs.pop("batch_size", 32), window_bytes=kwargs.pop("window_bytes", 8192),
                           **kwargs) as s:
        for X, y in s:
            xs.append(X.copy())
            ys.append(y.copy())
        return xs, ys, s.stats.as_dict()


def never(*args: Any, **kwargs: Any) -> bool:
    return False


def same_batches(a: tuple[list[np.ndarray], list[np.ndarray], Any], b: tuple[list[np.ndarray], list[np.ndarray], Any]
                 ) -> None:
    assert len(a[0]) == len(b[0])
    for xa, xb, ya, yb in zip(a[0], b[0], a[1], b[1]):
        assert xa.dtype == xb.dtype and xa.shape == xb.shape
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_unpacked_windows_give_the_per_sample_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      shuffle: bool, dtype: Any) -> None:
    X = compressible(N, dtype=dtype)
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(X, np.arange(N), chunk_bytes=4096, codec="lz4")
        whole = stream(db, shuffle=shuffle, seed=3, epochs=2)
        monkeypatch.setattr(reader, "unpack_window", never)
        single = stream(db, shuffle=shuffle, seed=3, epochs=2)
    assert whole[2]["unpacked_windows"] >= 4  # every window but each epoch's first
    assert single[2]["unpacked_windows"] == 0
    same_batches(whole, single)
    labels = np.concatenate(whole[1])
    assert sorted(labels.tolist()) == sorted(list(range(N)) * 2)
    np.testing.assert_array_equal(np.concatenate(whole[0])[: N if not shuffle else 0],
                                  X[: N if not shuffle else 0])  # in order: exactly the imported samples


def test_a_window_decoding_past_the_streams_buffer_budget_is_left_to_the_per_sample_decoder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows are cut by stored bytes: masks lz4 shrinks ~18x unpack to ~18x the window (a stream of such masks held
    gigabytes); past the pool's byte bound ((WINDOWS_AHEAD + 2) * window_bytes) a window is decoded by batch."""
    masks = np.zeros((N, 16, 64), np.uint8)
    for i in range(N):
        masks[i, i % 12:i % 12 + 4, i % 48:i % 48 + 16] = 1
    window = 4096
    calls: list[tuple[int, bool]] = []  # (decoded bytes of the window, unpacked)
    real = reader.unpack_window

    def spy(w: Any, pool: Any, verify: bool) -> bool:
        calls.append((len(w.rows) * masks[0].nbytes, real(w, pool, verify)))
        return calls[-1][1]

    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(masks, np.arange(N), chunk_bytes=1 << 16, codec="lz4")
        assert sum(d["_x"]["length"] for d in db.find_data({})) < masks.nbytes / 10  # lz4 shrinks them >10x
        monkeypatch.setattr(reader, "unpack_window", spy)
        bounded = stream(db, shuffle=True, seed=2, epochs=2, window_bytes=window)
        budget = (engine.WINDOWS_AHEAD + 2) * window
        assert any(size > budget for size, _ in calls)  # windows past the budget were met ...
        assert not any(done for size, done in calls if size > budget)  # ... and none of them was unpacked
        calls.clear()
        with monkeypatch.context() as mp:  # the same stream with an unbounded pool unpacks them: the bound refused
            mp.setattr(engine, "BufferPool", lambda max_bytes, keep: BufferPool(1 << 40, keep))
            unbounded = stream(db, shuffle=True, seed=2, epochs=2, window_bytes=window)
        assert any(done for size, done in calls if size > budget)
        monkeypatch.setattr(reader, "unpack_window", never)
        single = stream(db, shuffle=True, seed=2, epochs=2, window_bytes=window)
    same_batches(bounded, single)
    same_batches(unbounded, single)
    assert sorted(np.concatenate(bounded[1]).tolist()) == sorted(list(range(N)) * 2)


def test_windows_of_two_formats_or_codecs_are_left_to_the_per_sample_decoder(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(compressible(200), np.arange(200), chunk_bytes=4096, codec="lz4")
        db.import_data(compressible(200, seed=1), np.arange(200, 400), chunk_bytes=4096, codec="none")
        db.import_data(compressible(200, shape=(4, 80), seed=2), np.arange(400, 600), chunk_bytes=4096, codec="lz4")
        whole = stream(db, shuffle=True, seed=5, batch_size=1, window_bytes=1 << 20)
        monkeypatch.setattr(reader, "unpack_window", never)
        single = stream(db, shuffle=True, seed=5, batch_size=1, window_bytes=1 << 20)
    assert whole[2]["unpacked_windows"] == 0  # one window of mixed formats and codecs
    same_batches(whole, single)


def test_a_frame_declaring_another_size_is_never_unpacked(tmp_path: Path) -> None:
    """Without crc32 checks, a frame whose header lies about its size goes to the careful path, which skips it."""
    X = compressible(N)
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(X, np.arange(N), chunk_bytes=1 << 20, codec="lz4")
        seg = next(iter(db.find_data({"label": 400})))["_x"]
        chunk = next(p for p in (tmp_path / "wh").rglob("*") if p.is_file() and len(p.name) == 64)
        data = bytearray(chunk.read_bytes())
        data[seg["offset"] + 6] ^= 0x01  # the frame's content size, one byte off
        chunk.chmod(0o644)
        chunk.write_bytes(bytes(data))
        calls: list[bool] = []
        real = unpack.unpack_window

        def spy(window: Any, pool: Any, verify: bool) -> bool:
            calls.append(real(window, pool, verify))
            return calls[-1]

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(reader, "unpack_window", spy)
            xs, ys, stats = stream(db, shuffle=False, verify=False, on_error="skip", window_bytes=4096)
    labels = np.concatenate(ys)
    assert 400 not in labels.tolist() and len(labels) == N - 1
    assert stats["skipped"] == 1
    assert calls.count(False) >= 1 and calls.count(True) >= 1  # the damaged window alone was refused
    kept = np.concatenate(xs)
    np.testing.assert_array_equal(kept, X[labels])


def test_a_damaged_compressed_byte_is_caught_by_crc32_before_any_unpacking(tmp_path: Path) -> None:
    X = compressible(N)
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(X, np.arange(N), chunk_bytes=1 << 20, codec="lz4")
        chunk = next(p for p in (tmp_path / "wh").rglob("*") if p.is_file() and len(p.name) == 64)
        data = bytearray(chunk.read_bytes())
        data[len(data) * 3 // 4] ^= 0x55
        chunk.chmod(0o644)
        chunk.write_bytes(bytes(data))
        with pytest.raises(SampleError), db.data_generator({}, batch_size=16, shuffle=False, window_bytes=4096) as s:
            for _ in s:
                pass


def test_frames_that_shift_their_neighbours_are_refused_before_lz4_runs() -> None:
    """lz4 accepts a frame of ``slot + 1`` bytes beside one of ``slot - 1`` (the total is right), but every sample
    would land one byte off: only the header check sees it."""
    import cramjam
    import lz4.frame

    slot = 100
    honest = [lz4.frame.compress(bytes([i]) * slot, store_size=True) for i in range(2)]
    lying = [lz4.frame.compress(b"a" * (slot + 1), store_size=True), lz4.frame.compress(b"b" * (slot - 1),
                                                                                          store_size=True)]
    for frames, declared in ((honest, True), (lying, False)):
        buf = b"".join(frames)
        starts = np.array([0, len(frames[0])], dtype=np.int64)
        assert unpack._sizes_declared([buf], np.zeros(2, dtype=np.int64), starts, slot) is declared
    assert cramjam.lz4.decompress_into(b"".join(lying), bytearray(2 * slot)) == 2 * slot
