"""``segment_into`` decodes a segment straight into its batch row, and accepts and refuses exactly what
``segment_bytes`` does: same bytes out, same typed error, for valid segments and for every damaged one tried."""

from __future__ import annotations

import numpy as np
import pytest

from tensordb_core.errors import IntegrityError
from tensordb_core.format import codec
from tensordb_core.format.checksums import crc32

LZ4 = codec.CODEC_IDS["lz4"]


def _image(seed: int = 0) -> np.ndarray:
    """147 KiB of image-like bytes: HC frames of several linked lz4 blocks (the large samples' path)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, 224)[None, None, :] + np.linspace(0, 40, 224)[None, :, None]
    return (ramp + rng.integers(0, 24, (3, 224, 224))).astype(np.uint8)


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


def test_refuses_what_segment_bytes_refuses_byte_for_byte():
    """Every header byte and 400 payload bytes flipped three ways, checked and unchecked: equal outcomes.

    Without the crc32 some flips still decode (a flipped literal is valid lz4);
    they must decode to the same bytes.  Fails if cramjam's decoder accepts a
    frame python-lz4 refuses, or words an error differently.
    """
    segment, _, raw = codec.encode_segment(_image(1), "lz4")
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
    assert outcomes == {"ok", "error"}  # both kinds were met, so the comparison compared something


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
