"""The array codec: round trips for every storable dtype, typed errors for everything else, no pickle."""

from __future__ import annotations

import numpy as np
import pytest

from tensordb_core.errors import CodecError, IntegrityError
from tensordb_core.format import codec

DTYPES = ["u1", "i2", "<i4", ">i8", "f2", "f4", "f8", "c8", "?", "U5", "S3", "M8[s]"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (7,), (2, 3, 4)])
@pytest.mark.parametrize("mode", ["lz4", "none", "auto"])
def test_array_round_trip(dtype, shape, mode):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 100, size=shape).astype(dtype)
    out = codec.decode_array(codec.encode_array(arr, mode))
    assert out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


def test_non_contiguous_input_is_stored_in_c_order():
    arr = np.arange(24, dtype=np.int32).reshape(4, 6)[:, ::2].T
    np.testing.assert_array_equal(codec.decode_array(codec.encode_array(arr)), arr)


def test_auto_keeps_incompressible_data_raw():
    noise = np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8)
    _, used, _ = codec.encode_segment(noise, "auto")
    assert used == "none"
    _, used, _ = codec.encode_segment(np.zeros(10_000, np.uint8), "auto")
    assert used == "lz4"


@pytest.mark.parametrize("bad", [np.array([{"a": 1}], dtype=object), np.zeros(2, dtype=[("a", "i4"), ("b", "f4")])])
def test_unstorable_dtypes_are_refused(bad):
    with pytest.raises(CodecError, match="cannot be stored"):
        codec.encode_array(bad)


def test_archive_round_trip_dict_and_list():
    params = {"w1": np.ones((3, 4), np.float32), "b1": np.zeros(4, np.float32), "scale": np.float64(2.0)}
    out = codec.decode_archive(codec.encode_archive(params))
    assert list(out) == ["w1", "b1", "scale"]
    for k, value in params.items():
        np.testing.assert_array_equal(out[k], value)
    as_list = codec.decode_archive(codec.encode_archive([np.arange(3), np.eye(2)]))
    assert isinstance(as_list, list) and as_list[1].shape == (2, 2)


def test_an_aligned_archive_starts_every_array_on_the_boundary_and_reads_as_any_other():
    arrays = {"odd": np.arange(5, dtype=np.int8), "ints": np.arange(7, dtype=np.int64),
              "text": np.frombuffer(b"abc", np.uint8)}
    plain = codec.encode_archive(arrays, codec="none")
    assert plain == codec.encode_archive(arrays, codec="none", align=1)  # unaligned archives keep their bytes
    aligned = codec.encode_archive(arrays, codec="none", align=64)
    assert len(aligned) > len(plain)
    for blob, boundary in ((plain, 1), (aligned, 64)):
        out = codec.decode_archive(np.frombuffer(blob, np.uint8))  # (a numpy buffer: a known base address)
        base = np.frombuffer(blob, np.uint8).ctypes.data
        for name, value in arrays.items():
            np.testing.assert_array_equal(out[name], value)
            assert (out[name].ctypes.data - base) % boundary == 0


def test_crafted_headers_raise_typed_errors():
    blob = bytearray(codec.encode_array(np.arange(10)))
    with pytest.raises(CodecError, match="magic"):
        codec.decode_array(b"XXXX" + bytes(blob[4:]))
    with pytest.raises(CodecError):
        codec.decode_array(bytes(blob[:6]))
    evil = codec._with_header(codec.ARRAY_MAGIC, {"offset": 0, "length": 0, "codec": "none", "dtype": "|O",
                                                  "shape": [1], "crc32": 0}, b"")
    with pytest.raises(CodecError, match="dtype"):
        codec.decode_array(evil)
    huge = codec._with_header(codec.ARRAY_MAGIC, {"offset": 0, "length": 0, "codec": "none", "dtype": "<f8",
                                                  "shape": [1 << 20, 1 << 20], "crc32": 0}, b"")
    with pytest.raises(CodecError, match="safety limit"):
        codec.decode_array(huge, verify=False)
    with pytest.raises(CodecError, match="JSON"):
        codec.decode_array(codec.ARRAY_MAGIC + b"\x03\x00\x00\x00{{{")


def test_flipped_byte_is_an_integrity_error():
    blob = bytearray(codec.encode_array(np.arange(1000), "lz4"))
    blob[-5] ^= 0xFF
    with pytest.raises(IntegrityError):
        codec.decode_array(bytes(blob))


def test_no_pickle_anywhere_in_the_package():
    import pathlib

    import tensordb_core

    root = pathlib.Path(tensordb_core.__file__).parent
    # The one exception: TensorLayer migration's allow-list unpickler (held to that by tests/test_security_code.py).
    allowed = {root / "tensorlayer" / "pickles.py"}
    for path in root.rglob("*.py"):
        if path in allowed:
            continue
        text = path.read_text()
        assert "import pickle" not in text and "allow_pickle=True" not in text, path


def test_the_fast_crc32_is_zlibs_crc32():
    """checksums.crc32 may be zlib-ng's (extra [fast]); stored checksums must not depend on which."""
    import zlib

    from tensordb_core.format import checksums

    rng = np.random.default_rng(0)
    for size in (0, 1, 7, 64, 4095, 12_288, 1 << 20):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert checksums.crc32(data) == zlib.crc32(data)
        assert checksums.crc32(memoryview(data)[1:]) == zlib.crc32(data[1:])
    assert checksums.IMPLEMENTATION in ("zlib-ng", "zlib")


def test_the_fast_json_parser_reads_documents_as_json_does():
    """jsontext.loads may be orjson's (extra [fast]); what the embedded index returns must not depend on it."""
    import json

    from tensordb_core.format import jsontext
    from tensordb_core.testing import QueryGen

    docs = QueryGen(3).documents(200) + [
        {"i": 2**63 - 1, "j": -(2**63), "f": 1e308, "z": -0.0, "u": "é\u2028\U0001f600", "e": {}, "l": [[]]},
    ]
    for doc in docs:
        text = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        assert jsontext.loads(text) == json.loads(text) == doc
    lone = '{"k":"\\ud800x"}'  # refused by orjson: json's reading wins
    assert jsontext.loads(lone) == json.loads(lone)
