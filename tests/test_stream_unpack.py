"""Small lz4 samples decoded a batch at a time (stream/unpack.py, issue 16): the same batches as sample by sample.

Each test streams a warehouse twice, once as shipped and once with
``check_frames`` refusing every window (the per-sample decoder then reads
everything), and asks for identical batches; the stats say which path ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.format import codec
from tensordb_core.stream import decode, reader, unpack
from tensordb_core.stream.decode import SampleError

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


def never(*args: Any, **kwargs: Any) -> int:
    return 0


def same_batches(a: tuple[list[np.ndarray], list[np.ndarray], Any], b: tuple[list[np.ndarray], list[np.ndarray], Any]
                 ) -> None:
    assert len(a[0]) == len(b[0])
    for xa, xb, ya, yb in zip(a[0], b[0], a[1], b[1]):
        assert xa.dtype == xb.dtype and xa.shape == xb.shape
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_batches_decoded_a_batch_at_a_time_are_the_per_sample_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     shuffle: bool, dtype: Any) -> None:
    X = compressible(N, dtype=dtype)
    calls: list[int] = []  # rows decoded per decode_frames call
    real = decode.decode_frames

    def spy(window: Any, lo: int, hi: int, out: memoryview) -> bool:
        calls.append(hi - lo)
        return real(window, lo, hi, out)

    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(X, np.arange(N), chunk_bytes=4096, codec="lz4")
        with monkeypatch.context() as mp:
            mp.setattr(decode, "decode_frames", spy)
            framed = stream(db, shuffle=shuffle, seed=3, epochs=2)
        monkeypatch.setattr(reader, "check_frames", never)
        single = stream(db, shuffle=shuffle, seed=3, epochs=2)
    assert framed[2]["unpacked_windows"] >= 4 and single[2]["unpacked_windows"] == 0
    assert sum(calls) == 2 * N and max(calls) > 1  # every sample, in parts of many rows a call
    same_batches(framed, single)
    labels = np.concatenate(framed[1])
    assert sorted(labels.tolist()) == sorted(list(range(N)) * 2)
    np.testing.assert_array_equal(np.concatenate(framed[0])[: N if not shuffle else 0],
                                  X[: N if not shuffle else 0])  # in order: exactly the imported samples


def test_samples_lz4_shrinks_many_times_over_are_decoded_a_batch_at_a_time(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Masks lz4 shrinks >10x: windows cut by stored bytes hold many of them; decoded a batch at a time, the stream
    holds no window-sized decoded buffer (decoded whole, such windows had held gigabytes), and the batches are the
    per-sample decoder's."""
    masks = np.zeros((N, 16, 64), np.uint8)
    for i in range(N):
        masks[i, i % 12:i % 12 + 4, i % 48:i % 48 + 16] = 1
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(masks, np.arange(N), chunk_bytes=1 << 16, codec="lz4")
        assert sum(d["_x"]["length"] for d in db.find_data({})) < masks.nbytes / 10  # lz4 shrinks them >10x
        framed = stream(db, shuffle=True, seed=2, epochs=2, window_bytes=4096)
        monkeypatch.setattr(reader, "check_frames", never)
        single = stream(db, shuffle=True, seed=2, epochs=2, window_bytes=4096)
    assert framed[2]["unpacked_windows"] >= 1
    same_batches(framed, single)
    assert sorted(np.concatenate(framed[1]).tolist()) == sorted(list(range(N)) * 2)


def test_windows_of_two_formats_or_codecs_are_left_to_the_per_sample_decoder(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with tdb.connect(tmp_path / "wh", study="s") as db:
        db.import_data(compressible(200), np.arange(200), chunk_bytes=4096, codec="lz4")
        db.import_data(compressible(200, seed=1), np.arange(200, 400), chunk_bytes=4096, codec="none")
        db.import_data(compressible(200, shape=(4, 80), seed=2), np.arange(400, 600), chunk_bytes=4096, codec="lz4")
        whole = stream(db, shuffle=True, seed=5, batch_size=1, window_bytes=1 << 20)
        monkeypatch.setattr(reader, "check_frames", never)
        single = stream(db, shuffle=True, seed=5, batch_size=1, window_bytes=1 << 20)
    assert whole[2]["unpacked_windows"] == 0  # one window of mixed formats and codecs
    same_batches(whole, single)


def test_a_frame_declaring_another_size_is_never_decoded_a_batch_at_a_time(tmp_path: Path) -> None:
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
        real = unpack.decode_frames

        def spy(window: Any, lo: int, hi: int, out: memoryview) -> bool:
            calls.append(real(window, lo, hi, out))
            return calls[-1]

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(decode, "decode_frames", spy)
            xs, ys, stats = stream(db, shuffle=False, verify=False, on_error="skip", window_bytes=4096)
    labels = np.concatenate(ys)
    assert 400 not in labels.tolist() and len(labels) == N - 1
    assert stats["skipped"] == 1
    assert calls.count(False) == 1 and calls.count(True) >= 1  # the damaged frame's part alone was refused
    kept = np.concatenate(xs)
    np.testing.assert_array_equal(kept, X[labels])


def test_a_damaged_compressed_byte_is_caught_by_crc32_before_any_batch_decoding(tmp_path: Path) -> None:
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
        lengths = np.array([len(f) for f in frames], dtype=np.int64)
        assert codec.frames_declare(np.frombuffer(buf, np.uint8), starts, lengths, slot) is declared
    assert cramjam.lz4.decompress_into(b"".join(lying), bytearray(2 * slot)) == 2 * slot


def _xxh32(data: bytes) -> int:
    """XXH32 with seed 0, for inputs under 16 bytes (an lz4 frame descriptor): its header checksum's hash."""
    mask, p1, p2, p3, p4, p5 = 0xFFFFFFFF, 2654435761, 2246822519, 3266489917, 668265263, 374761393

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & mask

    h, i = (p5 + len(data)) & mask, 0
    while i + 4 <= len(data):
        h = rotl((h + int.from_bytes(data[i:i + 4], "little") * p3) & mask, 17) * p4 & mask
        i += 4
    for byte in data[i:]:
        h = rotl((h + byte * p5) & mask, 11) * p1 & mask
    h ^= h >> 15
    h = h * p2 & mask
    h ^= h >> 13
    h = h * p3 & mask
    return h ^ (h >> 16)


def _declaring(frame: bytes, size: int) -> bytes:
    """``frame`` with its header's content size set to ``size`` and the header checksum made right again."""
    descriptor = frame[4:6] + size.to_bytes(8, "little")
    return frame[:4] + descriptor + bytes([(_xxh32(descriptor) >> 8) & 0xFF]) + frame[15:]


def test_frames_declaring_the_size_but_holding_another_are_refused_by_lz4() -> None:
    """What decode_frames relies on past the header check: a frame whose header declares ``slot`` bytes but whose
    blocks hold ``slot + 1`` (beside one of ``slot - 1``: the total is right) fails in liblz4, so the part goes to
    the per-sample decoder."""
    import cramjam
    import lz4.frame

    slot = 100
    honest = lz4.frame.compress(b"h" * slot, store_size=True)
    assert _declaring(honest, slot) == honest  # the rebuilt checksum is liblz4's
    lying = [_declaring(lz4.frame.compress(b"a" * (slot + 1), store_size=True), slot),
             _declaring(lz4.frame.compress(b"b" * (slot - 1), store_size=True), slot)]
    starts, lengths = np.array([0, len(lying[0])], dtype=np.int64), np.array([len(f) for f in lying], dtype=np.int64)
    assert codec.frames_declare(np.frombuffer(b"".join(lying), np.uint8), starts, lengths, slot)
    with pytest.raises(cramjam.DecompressionError):
        cramjam.lz4.decompress_into(b"".join(lying), bytearray(2 * slot))
    assert cramjam.lz4.decompress_into(honest + honest, bytearray(2 * slot)) == 2 * slot
