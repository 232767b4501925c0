"""Fuzzed URIs, arrays, stored headers and sample documents: a typed error or a correct result.

* URIs: any text either parses or raises ``InvalidURI``; a parsed URI never
  shows its password; unknown schemes are ``UnknownScheme`` (no plugin, no I/O).
* Arrays: object/structured dtypes, 0-d, empty, non-contiguous, absurdly
  large declared sizes — stored and read back exactly, or refused before
  anything is written (no partial import).
* Stored bytes: random blobs, valid blobs with a byte changed, cut or added,
  and headers declaring hostile shapes, dtypes, codecs and ranges decode or
  fail with ``CodecError``/``IntegrityError`` — never a ``MemoryError`` or a
  raw ``ValueError`` from numpy or lz4.
* Sample documents written by another tool with malformed ``_x`` fields
  fail typed on every read path.
"""

from __future__ import annotations

import json
import struct
import traceback
import uuid
import zlib
from typing import Any
from urllib.parse import quote, quote_plus

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tensordb_core as tdb
from tensordb_core.errors import CodecError, InvalidURI, TensorDBError, UnknownScheme
from tensordb_core.format.codec import (
    ARCHIVE_MAGIC,
    ARRAY_MAGIC,
    MAX_ARRAY_BYTES,
    decode_archive,
    decode_array,
    encode_archive,
    encode_array,
)
from tensordb_core.store.registry import list_schemes
from tensordb_core.store.uri import parse_uri, redact, redact_text

CASES = {"tried": 0, "rejected": 0}
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def attempt(fn: Any) -> Any:
    """``fn()``; None for a typed rejection (with a message); anything untyped fails the test."""
    CASES["tried"] += 1
    try:
        return fn()
    except TensorDBError as exc:
        assert str(exc)
        CASES["rejected"] += 1
        return None


# -- URIs ------------------------------------------------------------------------------------------

KNOWN = sorted({s.scheme for s in list_schemes()})
uri_parts_strategies = (
    st.one_of(st.sampled_from([*KNOWN, "mongodb+srv", "x", "", "1a", "a b"]), st.text(max_size=5)),
    st.sampled_from(["", "user@", "u%40x@", "@", ":@"]),
    st.sampled_from(["", ":pw@", ":p%3Aw@", ":@", ":pa:ss@"]),
    st.one_of(st.sampled_from(["h", "h:1", "h:0", "h:65536", "h:x", "[::1]:5", "[::1", "h1,h2:3", ",", "h,", ""]),
              st.text(max_size=8)),
    st.one_of(st.sampled_from(["", "/", "/db", "/a/b", "/%zz", "/..", "//x"]), st.text(max_size=8)),
    st.one_of(st.sampled_from(["", "?", "?a=1", "?a", "?secret=s&key=k", "?=x", "?a=1&&b=2", "#frag", "?a=%"]),
              st.text(max_size=8)),
)
uri_parts = st.builds(lambda *parts: "{}://{}{}{}{}{}".format(*parts), *uri_parts_strategies)


@FUZZ
@given(text=st.one_of(st.text(max_size=40), uri_parts))
def test_fuzzed_uris_parse_or_raise_invalid_uri(text: str) -> None:
    parsed = attempt(lambda: parse_uri(text))
    if parsed is None:
        return
    again = parse_uri(parsed.reveal())
    assert again.scheme == parsed.scheme and again.password == parsed.password


# Distinctive secrets whose percent-encoded form differs from the raw one (':', '/', '@', '%', '&', '=', ' ').
SECRETS = ["Zq9:pass/word", "Zq9%pw@x", "Zq9 s&k=v", "Zq9secret"]


def secret_forms(secret: str) -> set[str]:
    """Every spelling a leaked secret could take in a message: raw, percent-encoded (both ways), form-encoded."""
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}


def shown_on_failure(fn: Any) -> tuple[Any, str]:
    """``(result, "")`` or ``(None, the whole formatted exception chain)`` for a typed rejection."""
    CASES["tried"] += 1
    try:
        return fn(), ""
    except TensorDBError as exc:
        CASES["rejected"] += 1
        return None, "".join(traceback.format_exception(exc))


@FUZZ
@given(scheme=st.one_of(st.sampled_from([*KNOWN, "mongodb+srv", "x", ""]), st.from_regex(r"\A[a-z][a-z0-9+.\-]{0,5}\Z")),
       parts=st.tuples(*uri_parts_strategies[1:]), secret=st.sampled_from(SECRETS),
       where=st.sampled_from(["password", "option", "both"]))
def test_a_secret_in_a_fuzzed_uri_is_never_shown_in_any_form(
    scheme: str, parts: tuple[str, ...], secret: str, where: str
) -> None:
    """Text that does not start like a URI is a directory path (shown as given), so the scheme is a URI scheme."""
    user, _pw, hosts, path, query = parts
    encoded = quote(secret, safe="")
    userinfo = f"{user.rstrip('@') or 'u'}:{encoded}@" if where != "option" else user
    if where != "password":
        query = f"{query}{'&' if '?' in query else '?'}sas={encoded}"
    text = f"{scheme}://{userinfo}{hosts}{path}{query}"
    parsed, failure = shown_on_failure(lambda: parse_uri(text))
    shown = [failure] if parsed is None else [parsed.redacted(), repr(parsed), str(parsed), redact(text)]
    shown.append(redact_text(text))
    for form in secret_forms(secret):
        for message in shown:
            assert form not in message, f"{form!r} shown in {message!r} (parsing {text!r})"


@FUZZ
@given(scheme=st.from_regex(r"\A[a-z][a-z0-9+.\-]{0,8}\Z"), rest=st.text(max_size=10))
def test_unknown_schemes_are_unknown_scheme_without_any_io(scheme: str, rest: str) -> None:
    assume(scheme not in KNOWN)
    CASES["tried"] += 1
    with pytest.raises((UnknownScheme, InvalidURI)):
        tdb.connect(f"{scheme}://{rest}", study="s")
    CASES["rejected"] += 1


# -- arrays ----------------------------------------------------------------------------------------


def huge_view(nbytes: int) -> np.ndarray:
    """An array declaring ``nbytes`` without owning them (a zero-stride view)."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=(2, nbytes // 2), strides=(0, 0))


BAD_SAMPLES = {
    "object dtype": np.array([object(), 1], dtype=object),
    "structured dtype": np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]),
    "void dtype": np.zeros(3, dtype="V4"),
    "declared 2**40 bytes": huge_view(2**40),
    "declared past the limit": huge_view(MAX_ARRAY_BYTES + 2),
}


@pytest.fixture
def db():
    with tdb.connect(f"memory://fuzz-codec-{uuid.uuid4().hex}", study="s") as handle:
        yield handle


def written(db: tdb.TensorDB) -> tuple[int, int, int]:
    return db.index.count("data"), db.index.count("params"), len(list(db.blobs.list()))


@pytest.mark.parametrize("name", list(BAD_SAMPLES))
def test_an_unstorable_sample_anywhere_in_an_import_writes_nothing(db, name: str) -> None:
    good = [np.ones((4,), np.float32) * i for i in range(5)]
    for X in ([BAD_SAMPLES[name]], [*good, BAD_SAMPLES[name]]):
        assert attempt(lambda X=X: db.import_data(X, chunk_bytes=1)) is None
        assert written(db) == (0, 0, 0), f"{name}: a partial import was left behind"
    assert attempt(lambda: db.save_parameters({"w": good[0], "bad": BAD_SAMPLES[name]})) is None
    assert written(db) == (0, 0, 0)


def test_odd_but_storable_arrays_round_trip(db) -> None:
    base = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    cases = {
        "non-contiguous": base[:, ::2, 1:],
        "fortran order": np.asfortranarray(base),
        "negative strides": base[::-1, :, ::-1],
        "empty samples": np.zeros((2, 0, 5), np.float32),
        "0-d samples": np.arange(3, dtype=np.float64),  # X of shape (3,): each sample is a 0-d array
        "bool": base % 2 == 0,
        "unicode": np.array([["ab", "c"], ["", "ddd"]]),
        "bytes": np.array([[b"x", b"yz"], [b"", b"q"]]),
        "complex": base.astype(np.complex64) * 1j,
        "big-endian": base.astype(">f8"),
    }
    for name, X in cases.items():
        ids = db.import_data(X, tags={"case": name}, chunk_bytes=7)
        got, _ = db.find_data({"case": name}).arrays()
        assert len(ids) == len(X) and got.shape == X.shape and np.array_equal(got, X), name
        params = db.load_parameters(db.find_parameter_docs({"_id": db.save_parameters({"p": X})})[0])
        assert np.array_equal(params["p"], X), name
    assert db.import_data(np.zeros((0, 3))) == []  # no samples: nothing to do, nothing written
    assert attempt(lambda: db.import_data(np.float32(3.0))) is None  # a 0-d X has no samples axis
    assert attempt(lambda: db.import_data(np.zeros((3, 2)), y=[1, 2])) is None  # labels must match
    assert attempt(lambda: db.import_data(np.zeros((2, 2)), y=[float("nan"), 1.0])) is None


@FUZZ
@given(shape=st.lists(st.integers(0, 5), max_size=4),
       dtype=st.sampled_from(["u1", "i2", "<i4", ">i8", "f2", "f4", ">f8", "c8", "?", "U3", "S2", "M8[s]"]),
       order=st.sampled_from(["C", "F"]), step=st.integers(1, 2))
def test_fuzzed_arrays_round_trip_through_the_codec(shape: list[int], dtype: str, order: str, step: int) -> None:
    arr = np.zeros(shape, dtype=dtype, order=order)
    if arr.ndim:
        arr = arr[tuple(slice(None, None, step) for _ in shape)]
    got = attempt(lambda: decode_array(encode_array(arr)))
    assert got is not None and got.dtype == arr.dtype and np.array_equal(got, arr)


# -- stored bytes ----------------------------------------------------------------------------------

VALID_ARRAY = encode_array(np.arange(300, dtype=np.float32).reshape(10, 30))
VALID_ARCHIVE = encode_archive({"w": np.ones((20, 5), np.float32), "b": np.arange(5)})


def decode_any(blob: bytes) -> Any:
    return decode_array(blob) if blob[:4] == ARRAY_MAGIC else decode_archive(blob)


@FUZZ
@given(blob=st.one_of(st.binary(max_size=200), st.binary(max_size=40).map(lambda b: ARRAY_MAGIC + b),
                      st.binary(max_size=40).map(lambda b: ARCHIVE_MAGIC + b)))
def test_random_bytes_are_refused_typed(blob: bytes) -> None:
    for decode in (decode_array, decode_archive):
        attempt(lambda decode=decode: decode(blob))


@FUZZ
@given(which=st.sampled_from([VALID_ARRAY, VALID_ARCHIVE]), at=st.integers(0, 10**6),
       value=st.integers(0, 255), mode=st.sampled_from(["flip", "cut", "add"]))
def test_a_damaged_blob_decodes_right_or_fails_typed(which: bytes, at: int, value: int, mode: str) -> None:
    at %= len(which)
    if mode == "flip":
        blob = which[:at] + bytes([value]) + which[at + 1 :]
    elif mode == "cut":
        blob = which[:at]
    else:
        blob = which[:at] + bytes([value]) + which[at:]
    got = attempt(lambda: decode_any(blob))
    body_starts = 8 + struct.unpack("<I", which[4:8])[0]
    # The JSON header carries no checksum of its own (the warehouse verifies whole blobs by content
    # address); the segments carry CRC-32s, so a changed body byte must never go unnoticed.
    if got is not None and blob != which and mode == "flip" and at >= body_starts:
        want = decode_any(which)
        if isinstance(want, dict):
            assert set(got) == set(want) and all(np.array_equal(got[k], want[k]) for k in want)
        else:
            assert np.array_equal(got, want)


@pytest.mark.parametrize("which", [VALID_ARRAY, VALID_ARCHIVE], ids=["array", "archive"])
def test_every_single_byte_change_decodes_right_or_fails_typed(which: bytes) -> None:
    """All 256 values at every position, not a sample: a stored blob that rots one byte must
    never surface as a raw numpy/lz4 error (CI once drew a header flip to dtype '<i0')."""
    body_starts = 8 + struct.unpack("<I", which[4:8])[0]
    for at in range(len(which)):
        for value in range(256):
            if value == which[at]:
                continue
            got = attempt(lambda at=at, value=value: decode_any(which[:at] + bytes([value]) + which[at + 1 :]))
            if got is not None and at >= body_starts:  # segment CRC-32s cover every body byte
                pytest.fail(f"a changed body byte at {at} decoded without an error")


header_values = st.one_of(
    st.integers(-(2**70), 2**70), st.sampled_from([0, 1, 8, 2**31, 2**40, -1]), st.text(max_size=6),
    st.sampled_from(["<f4", "O", "|O", "V8", "<U999999999", "object", "M8[xs]", "f4,i4", "lz4", "none", "zstd"]),
    st.lists(st.integers(-2, 2**40), max_size=4), st.none(), st.floats(), st.dictionaries(st.text(max_size=3),
                                                                                          st.integers(), max_size=2),
)
segment_docs = st.fixed_dictionaries(
    {}, optional={k: header_values for k in ("offset", "length", "codec", "dtype", "shape", "crc32", "version")})


def with_header(magic: bytes, header: Any, body: bytes) -> bytes:
    head = json.dumps(header).encode()
    return magic + struct.pack("<I", len(head)) + head + body


@FUZZ
@given(seg=segment_docs, body=st.binary(max_size=64), name=st.one_of(st.text(max_size=3), st.integers()),
       kind=st.sampled_from(["dict", "list", "other", None]))
def test_hostile_headers_are_refused_typed(seg: dict[str, Any], body: bytes, name: Any, kind: Any) -> None:
    attempt(lambda: decode_array(with_header(ARRAY_MAGIC, seg, body)))
    attempt(lambda: decode_archive(with_header(ARCHIVE_MAGIC, {"kind": kind, "arrays": [{"name": name, **seg}]}, body)))
    attempt(lambda: decode_archive(with_header(ARCHIVE_MAGIC, {"arrays": seg}, body)))


def test_a_header_declaring_a_huge_array_is_refused_before_allocating() -> None:
    seg = {"offset": 0, "length": 4, "codec": "none", "dtype": "<f8", "shape": [2**30, 2**30],
           "crc32": zlib.crc32(b"\0" * 4)}
    with pytest.raises(CodecError, match="limit"):
        decode_array(with_header(ARRAY_MAGIC, seg, b"\0" * 4))
    lz4_lie = {**seg, "codec": "lz4", "shape": [2**20]}
    assert attempt(lambda: decode_array(with_header(ARRAY_MAGIC, lz4_lie, b"\x04\x22\x4d\x18" + b"\xff" * 20))) is None


# -- sample documents written by another tool ------------------------------------------------------


@settings(FUZZ, max_examples=100)
@given(x=st.one_of(segment_docs.map(lambda d: {"key": "0" * 64, **d}), st.dictionaries(st.text(max_size=4),
                                                                                      header_values, max_size=3),
                   header_values))
def test_malformed_sample_documents_fail_typed_on_every_read_path(x: Any) -> None:
    with tdb.connect(f"memory://fuzz-docs-{uuid.uuid4().hex}", study="s") as db:
        db.import_data(np.ones((2, 3), np.float32))
        good = next(iter(db.find_data()))
        hostile = [{"_study": "s", "_x": x}, {"_study": "s", "_x": {**good["_x"], **(x if isinstance(x, dict) else {})}}]
        if attempt(lambda: db.index.insert_many("data", hostile)) is None:
            return  # not even a document the index accepts
        attempt(lambda: db.find_data().arrays())
        attempt(lambda: [b for b in db.data_generator({}, batch_size=2, shuffle=False, epochs=1)])


def test_fuzz_case_count_is_reported() -> None:
    """The counter counts (checked on cases of its own, so the test passes alone or in any order), then is printed."""
    before = dict(CASES)
    assert attempt(lambda: parse_uri("s3://bucket/p")) is not None
    assert attempt(lambda: parse_uri("mongodb://h:0/db")) is None
    assert CASES == {"tried": before["tried"] + 2, "rejected": before["rejected"] + 1}
    print(f"\n[fuzz] URIs/arrays/headers/documents: {CASES['tried']} cases tried, {CASES['rejected']} refused "
          "with a typed TensorDBError, 0 untyped errors")
