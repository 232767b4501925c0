"""Damaged media never escapes as anything but CodecError: flipped, cut and random bytes in JPEG/PNG headers and data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tensordb_core.errors import CodecError
from tensordb_core.format.media import decode_image, encode_image, probe_image

_IMAGE = np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8)
FILES = {"jpeg": encode_image(_IMAGE, "jpeg", 90), "png": encode_image(_IMAGE, "png")}


@pytest.mark.parametrize("codec", ["jpeg", "png"])
@given(data=st.data())
def test_damaged_files_decode_or_raise_codec_error(codec, data):
    blob = bytearray(FILES[codec])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    blob = blob[: data.draw(st.integers(0, len(blob)))]
    try:
        dtype, shape = probe_image(bytes(blob), codec)
    except CodecError:
        dtype, shape = "|u1", (12, 16, 3)
    try:
        out = decode_image(bytes(blob), codec, np.dtype(dtype), tuple(shape))
    except CodecError:
        return
    assert out.shape == tuple(shape)


@given(st.binary(max_size=200))
def test_random_bytes_are_codec_errors(blob):
    for codec in ("jpeg", "png"):
        with pytest.raises(CodecError):
            decode_image(blob, codec, np.dtype("|u1"), (12, 16, 3))


def test_a_decompression_bomb_header_is_refused_at_import():
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0))
            + chunk(b"IEND", b""))
    with pytest.raises(CodecError, match="decompression bomb"):
        probe_image(bomb, "png")
