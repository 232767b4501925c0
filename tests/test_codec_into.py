"""``segment_into`` decodes a segment straight into its batch row, and accepts and refuses exactly what
``segment_bytes`` does: same bytes out, same typed error, for valid segments and for every damaged one tried."""

from __future__ import annotations

import lz4.frame
import numpy as np
import pytest

from tensordb_core.errors import IntegrityError
from tensordb_core.format import codec
from tensordb_core.format.checksums import crc32

LZ4 = codec.CODEC_IDS["lz4"]


def _image(seed: int = 0, noise: int = 4) -> np.ndarray:
    """147 KiB of image-like bytes (the large samples' path): banded, a sixteenth of the pixels off by up to
    ``noise``, which lz4 shrinks; with ``noise=256``, random bytes, which it cannot."""
    rng = np.random.default_rng(seed)
    if noise >= 256:
        return rng.integers(0, 256, (3, 224, 224), dtype=np.uint8)
    bands = (np.linspace(0, 200, 224)[None, None, :] // 16 * 16 + np.linspace(0, 40, 224)[None, :, None] // 16 * 16)
    speckle = rng.integers(0, noise, (3, 224, 224)) * (rng.random((3, 224, 224)) < 1 / 16)
    return (bands + speckle).astype(np.uint8)


def _in_chunk(segment: bytes) -> tuple[memoryview, int]:
    """The segment between other bytes, as in a chunk: (chunk, start)."""
    return memoryview(b"\x07" * 37 + segment + b"\x09" * 11), 37


def _outcome(decoder: str, chunk: memoryview, start: int, length: int, codec_id: int, nbytes: int,
             crc: int | None) -> tuple[str, bytes | str]:
    try:
        if decoder == "bytes":
            return "ok", bytes(codec.segment_bytes(chunk, start, length, codec_id, nbytes, crc))
        out = np.full(nbytes, 0xAB, np.uint8)
        codec.segment_into(chunk, start, length, codec_id, memoryview(out), crc)
        return "ok", out.tobytes()
    except IntegrityError as exc:
        return "error", str(exc)


@pytest.mark.parametrize("array", [_image(), np.arange(64 << 10, dtype=np.uint16), np.ones(300, np.float32)],
                         ids=["image-147KiB", "ramp-128KiB", "small"])
@pytest.mark.parametrize("mode", ["lz4", "none"])
def test_writes_the_bytes_segment_bytes_returns(array, mode):
    segment, used, raw = codec.encode_segment(array, mode)
    assert used == mode
    chunk, start = _in_chunk(segment)
    out = np.zeros(raw.nbytes, np.uint8)
    codec.segment_into(chunk, start, len(segment), codec.CODEC_IDS[used], memoryview(out), crc32(segment))
    assert out.tobytes() == array.tobytes()


def _frame(kind: str) -> tuple[np.ndarray, bytes]:
    """A sample and a frame of it that a reader meets: one block (what imports write), one block stored as
    is (bytes lz4 cannot shrink), linked 64 KiB blocks (warehouses written before), and one block with block
    and content checksums (another writer's)."""
    array = _image(1, 256 if kind == "stored block" else 4)
    data = array.tobytes()
    if kind in ("one block", "stored block"):
        return array, codec.encode_segment(array, "lz4")[0]
    if kind == "linked 64 KiB blocks":
        return array, lz4.frame.compress(data, compression_level=3, store_size=True)
    return array, lz4.frame.compress(data, compression_level=3, store_size=True, block_checksum=True,
                                     content_checksum=True, block_size=codec.LZ4_BLOCK_SIZE)


@pytest.mark.parametrize("noise", [4, 256], ids=["compressible", "stored as is"])
def test_imports_write_one_block_frames_that_decode_without_the_frame_decoder(monkeypatch, noise):
    array = _image(3, noise)
    segment, _, raw = codec.encode_segment(array, "lz4")
    assert (len(segment) < 0.5 * raw.nbytes) == (noise == 4)
    info = lz4.frame.get_frame_info(segment)
    assert info["block_size"] >= raw.nbytes and info["content_size"] == raw.nbytes

    def no_frame_decoder(*_args):
        raise AssertionError("a one-block frame went through the frame decoder")

    monkeypatch.setattr(codec, "_decompress_into", no_frame_decoder)
    out = np.empty(raw.nbytes, np.uint8)
    codec.segment_into(memoryview(segment), 0, len(segment), LZ4, memoryview(out), crc32(segment))
    assert out.tobytes() == array.tobytes()


@pytest.mark.parametrize("kind", ["one block", "stored block", "linked 64 KiB blocks", "checksummed"])
def test_refuses_what_segment_bytes_refuses_byte_for_byte(kind):
    """Every header byte and 400 payload bytes flipped three ways, checked and unchecked: equal outcomes.

    Without the crc32 some flips still decode (a flipped literal is valid lz4);
    they must decode to the same bytes.  Fails if the one-block path or
    cramjam's frame decoder accepts a frame python-lz4 refuses, or words an
    error differently.
    """
    array, segment = _frame(kind)
    raw = array
    rng = np.random.default_rng(0)
    positions = [*range(24), *rng.integers(24, len(segment), 400).tolist(), *range(len(segment) - 8, len(segment))]
    outcomes = set()
    for at in positions:
        for bits in (0x01, 0x80, 0xFF):
            damaged = bytearray(segment)
            damaged[at] ^= bits
            chunk, start = _in_chunk(bytes(damaged))
            for crc in (None, crc32(segment)):
                args = (chunk, start, len(segment), LZ4, raw.nbytes, crc)
                expected = _outcome("bytes", *args)
                assert _outcome("into", *args) == expected, (at, bits, crc)
                outcomes.add(expected[0])
    # both kinds were met, so the comparison compared something (a content checksum catches every flip)
    assert outcomes == ({"error"} if kind == "checksummed" else {"ok", "error"})
    assert _outcome("into", *_in_chunk(segment), len(segment), LZ4, raw.nbytes, crc32(segment)) == (
        "ok", array.tobytes())


@pytest.mark.parametrize("case", ["truncated", "other size", "not lz4", "raw too short"])
def test_typed_errors_read_as_segment_bytes_words_them(case):
    segment, used, raw = codec.encode_segment(_image(2), "none" if case == "raw too short" else "lz4")
    chunk, start = _in_chunk(segment)
    length, nbytes, codec_id = len(segment), raw.nbytes, codec.CODEC_IDS[used]
    if case == "truncated":
        chunk = chunk[: start + length - 100]
    elif case == "other size":
        nbytes -= 3
    elif case == "not lz4":
        chunk = memoryview(bytes(chunk[:start]) + b"\x00" * 4 + bytes(chunk[start + 4 :]))
    else:
        length -= 1
    args = (chunk, start, length, codec_id, nbytes, None)
    kind, message = _outcome("bytes", *args)
    assert kind == "error"
    assert _outcome("into", *args) == (kind, message)


def _crafted(case: str) -> tuple[bytes, int]:
    """A frame built by hand around one block, and the size the caller expects."""
    array = _image(4)
    frame = codec.encode_segment(array, "lz4")[0]
    header, word = frame[:15], int.from_bytes(frame[15:19], "little")
    block = frame[19 : 19 + (word & 0x7FFFFFFF)]
    end = b"\x00\x00\x00\x00"
    if case == "trailing bytes":
        return frame + b"\x00" * 8, array.nbytes
    if case == "two frames":
        return frame + frame, array.nbytes
    if case == "stored block, short":
        raw = array.tobytes()[:-16]
        return header + (len(raw) | 1 << 31).to_bytes(4, "little") + raw + end, array.nbytes
    if case == "descriptor changed":  # BD says 64 KiB blocks, so the header checksum no longer matches
        bd64 = header[:5] + bytes([0x40]) + header[6:]
        return bd64 + frame[15:], array.nbytes
    if case == "no end mark":
        return header + frame[15:19] + block, array.nbytes
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["trailing bytes", "two frames", "stored block, short",
                                  "descriptor changed", "no end mark"])
def test_crafted_one_block_frames_read_as_the_frame_decoder_reads_them(case):
    segment, nbytes = _crafted(case)
    for crc in (None, crc32(segment)):
        args = (*_in_chunk(segment), len(segment), LZ4, nbytes, crc)
        assert _outcome("into", *args) == _outcome("bytes", *args)
