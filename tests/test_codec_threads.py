"""A chunk's arrays encoded on threads (format/encode_threads.py) and stored as LZ4 HC frames (codec.LZ4_LEVEL)."""

from __future__ import annotations

import multiprocessing
import sys

import lz4.frame
import numpy as np
import pytest

from tensordb_core.errors import CodecError
from tensordb_core.format import codec, encode_threads


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    """Compressible image-like samples: smooth gradients plus sparse noise, 12 KiB each."""
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(64), np.arange(64)).astype(np.int16)
    out = []
    for _ in range(n):
        noise = (rng.random((3, 64, 64)) < 0.1) * rng.integers(-8, 8, (3, 64, 64))
        out.append(np.clip(ramp[None] * rng.uniform(0.5, 2) + noise, 0, 255).astype(np.uint8))
    return out


@pytest.fixture
def two_threads(monkeypatch):
    """Two encode threads even on a one-core runner, so the shared path runs wherever the tests do."""
    monkeypatch.setattr(encode_threads, "encode_threads", lambda: 2)


def test_a_chunk_encoded_on_threads_is_byte_for_byte_the_one_encoded_on_one(two_threads, monkeypatch):
    arrays = _images(300)
    assert sum(a.nbytes for a in arrays) >= encode_threads.SHARED_FROM_BYTES  # the shared path is taken
    shared = codec.pack_segments(arrays, "auto", align=8)
    monkeypatch.setattr(encode_threads, "SHARED_FROM_BYTES", 1 << 62)
    alone = codec.pack_segments(arrays, "auto", align=8)
    assert shared == alone
    body, segments = shared
    for array, segment in zip(arrays, segments):
        np.testing.assert_array_equal(codec.unpack_segment(body, segment), array)


def test_the_results_keep_the_items_order_across_shares(two_threads):
    items = list(range(1001))
    assert encode_threads.map_in_shares(lambda x: x * x, items, 1 << 30) == [x * x for x in items]


def test_an_unstorable_array_in_a_later_share_is_the_same_typed_error(two_threads):
    arrays: list[object] = _images(200)
    arrays[150] = np.zeros(2, dtype=[("a", "i4"), ("b", "f4")])  # in the second thread's share
    with pytest.raises(CodecError, match="cannot be stored"):
        codec.pack_segments(arrays, "auto")


def test_samples_are_stored_as_lz4_hc_frames_smaller_than_fast_lz4():
    """Why the level: a warehouse is read every epoch; HC frames are smaller and decode faster (codec.LZ4_LEVEL)."""
    sample = _images(1)[0]
    payload, used, _ = codec.encode_segment(sample, "lz4")
    fast = lz4.frame.compress(sample.tobytes(), store_size=True)
    assert used == "lz4" and codec.LZ4_LEVEL >= 3
    assert len(payload) < 0.95 * len(fast)
    np.testing.assert_array_equal(np.frombuffer(lz4.frame.decompress(payload), np.uint8).reshape(sample.shape), sample)


def test_small_segments_are_fast_lz4_frames_and_larger_ones_hc():
    """HC's set-up per frame costs more than it saves on small fields (codec.LZ4_HC_FROM_BYTES)."""
    small = np.arange(codec.LZ4_HC_FROM_BYTES // 8 - 1, dtype=np.int64) % 50
    large = np.arange(codec.LZ4_HC_FROM_BYTES // 8, dtype=np.int64) % 50
    for array, level in ((small, 0), (large, codec.LZ4_LEVEL)):
        payload, used, _ = codec.encode_segment(array, "lz4")
        assert used == "lz4"
        assert payload == lz4.frame.compress(array.tobytes(), store_size=True, compression_level=level,
                                             block_size=codec.LZ4_BLOCK_SIZE)
    assert codec.encode_segment(large, "lz4")[0] != lz4.frame.compress(large.tobytes(), store_size=True)


def test_bytes_fast_lz4_cannot_shrink_are_never_hc_compressed():
    """HC runs ~13x slower than fast lz4 on incompressible bytes (model weights), for nothing."""
    weights = (np.random.default_rng(0).standard_normal(50_000) * 0.02).astype(np.float32)
    payload, used, _ = codec.encode_segment(weights, "lz4")
    assert used == "lz4" and payload == lz4.frame.compress(weights.tobytes(), store_size=True,
                                                           block_size=codec.LZ4_BLOCK_SIZE)
    assert codec.encode_segment(weights, "auto")[1] == "none"


def _pack_in_child(queue) -> None:
    encode_threads.encode_threads = lambda: 2  # the shared path, in the forked child
    body, _ = codec.pack_segments(_images(300), "auto")
    queue.put(body)


@pytest.mark.skipif(sys.platform != "linux", reason="fork is the start method this checks (torch loader workers)")
def test_a_forked_child_encodes_on_threads_of_its_own(two_threads):
    codec.pack_segments(_images(300), "auto")  # the parent's pool exists before the fork
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_pack_in_child, args=(queue,))
    child.start()
    try:
        body = queue.get(timeout=60)  # a child waiting on the parent's threads, which it has not, never puts
    finally:
        child.join(timeout=60)
        if child.is_alive():
            child.kill()
            child.join()
    assert child.exitcode == 0
    assert body == codec.pack_segments(_images(300), "auto")[0]
