"""numpy arrays ↔ bytes: a tiny public format with lz4 frames and no pickle.

Three layouts, all specified in docs/FORMAT.md so other tools can read them:

* **segment** — one array's payload: an lz4 frame (``codec="lz4"``) or the raw
  C-order bytes (``codec="none"``).  Its dtype/shape/codec/crc32 live in the
  index document, so samples inside a chunk carry no per-sample header.
* **array blob** — ``b"TDBA"`` + u32 header length + JSON header + segment.
* **archive** — ``b"TDBP"`` + u32 header length + JSON header listing named
  segments + the segments: model parameters in one blob.

Why not ``np.save``/pickle: a crafted blob must never execute code, and the
header must be readable from any language.  Only plain numeric, bool and
fixed-width string dtypes are accepted.
"""

from __future__ import annotations

import functools
import json
import re
import struct
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cramjam
import lz4.block
import lz4.frame
import numpy as np

from tensordb_core.errors import CodecError, IntegrityError
from tensordb_core.format.checksums import crc32
from tensordb_core.format.encode_threads import map_in_shares

ARRAY_MAGIC = b"TDBA"
ARCHIVE_MAGIC = b"TDBP"
CODECS = ("lz4", "none")
#: Codec names by the small integer :func:`segment_bytes` takes (and the stream's columns store).
CODEC_IDS = {"none": 0, "lz4": 1}
#: Store raw when lz4 saves less than this fraction (incompressible data decodes faster raw).
AUTO_MIN_SAVING = 0.1
#: The lz4 frames' compression level: LZ4 HC's first.  Why not fast lz4 (level 0): a warehouse is written once
#: and read every epoch, and HC frames decode faster and are smaller (the frame format, hence every reader, is
#: the same).  Measured on the benchmark's images (python-lz4 4.4, one core): 12 KiB ones stored at 0.37 of
#: raw against 0.48, decoded in 3.9 µs against 5.2; 147 KiB ones 0.27 against 0.37, 49.5 µs against 70.9;
#: compressing runs at ~110 MB/s against ~450 (an import spreads it over threads: format/encode_threads.py).
#: Higher levels saved 1-3% more and decoded up to 7% faster, compressing 2-8x slower again.
LZ4_LEVEL = 3
#: Segments under this many bytes are fast lz4 frames.  Why: HC sets up its match finder for every frame, ~4.5 µs
#: a call whatever the size (16 bytes: 5.2 µs against 0.8; 4 KiB: 5.4 against 1.0), which small fields (labels,
#: token ids, boxes) and incompressible tiny arrays (compressed only to be stored raw) would pay for nothing.
#: Larger ones are HC frames only where fast lz4 saves at least :data:`AUTO_MIN_SAVING` of their first this many
#: bytes.  Why the probe: on bytes it cannot shrink HC runs 13x slower than fast lz4 (32 MB of float32 weights:
#: 56 against 725 MB/s) for nothing, and model parameters are mostly such bytes.
LZ4_HC_FROM_BYTES = 4096
#: The lz4 frames' largest block: 4 MiB, so a segment up to that is one block (the frame format lets the
#: compressor pick the smallest block size that holds it).  Why: a one-block frame decodes straight into its
#: destination (:func:`segment_into`: 147 KiB images in 44 µs against 53 for three linked 64 KiB blocks, whose
#: frame decoder copies each block out of a buffer of its own), and python-lz4 reads it as fast or faster.
LZ4_BLOCK_SIZE = lz4.frame.BLOCKSIZE_MAX4MB
#: Refuse to materialise anything declared larger than this (a crafted header must not exhaust memory).
MAX_ARRAY_BYTES = 1 << 36
_DTYPE_RE = re.compile(r"^[<>|=]?(?:[biufc]\d{1,2}|b1|\?|[SU]\d{1,6}|[Mm]8(?:\[[A-Za-z0-9]+\])?)$")
_LEN = struct.Struct("<I")
_LZ4_MAGIC = b"\x04\x22\x4d\x18"
_LZ4_MAGIC_BYTES = np.frombuffer(_LZ4_MAGIC, dtype=np.uint8)
#: An lz4 frame starts with magic (4 bytes), FLG (bit 3: content size present), BD, then the content size (8).
_LZ4_HEADER_BYTES = 14
_lz4_size = struct.Struct("<Q").unpack_from  # the content size at offset 6 (bound once: it runs per sample)
_decompress = lz4.frame.decompress
_decompress_into = cramjam.lz4.decompress_into
_decompress_block_into = cramjam.lz4.decompress_block_into
_frame_info = lz4.frame.get_frame_info
_u32 = struct.Struct("<I").unpack_from
_DecompressionError = cramjam.DecompressionError


@dataclass(frozen=True)
class Segment:
    """Where one encoded array sits and how to decode it (mirrors the index document's ``_blob``)."""

    offset: int
    length: int
    codec: str
    dtype: str
    shape: tuple[int, ...]
    crc32: int

    def to_doc(self) -> dict[str, Any]:
        return {"offset": self.offset, "length": self.length, "codec": self.codec, "dtype": self.dtype,
                "shape": list(self.shape), "crc32": self.crc32}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Segment:
        try:
            return cls(int(doc["offset"]), int(doc["length"]), str(doc["codec"]), str(doc["dtype"]),
                       tuple(int(x) for x in doc["shape"]), int(doc["crc32"]))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise CodecError(f"malformed segment description {doc!r}: {exc}") from exc


def check_array(array: Any) -> np.ndarray:
    """Return ``array`` as an ndarray of a storable dtype and size, or raise :class:`CodecError`."""
    try:
        arr = np.asarray(array)
    except (TypeError, ValueError) as exc:  # ragged nesting, unconvertible objects
        raise CodecError(f"cannot be stored as an array: {exc}") from exc
    if arr.dtype.hasobject or arr.dtype.fields is not None or not _DTYPE_RE.match(arr.dtype.str):
        raise CodecError(
            f"dtype {arr.dtype} cannot be stored: use a numeric, bool or fixed-width string dtype (no objects)"
        )
    if arr.nbytes > MAX_ARRAY_BYTES:  # e.g. a broadcast view declaring terabytes it does not hold
        raise CodecError(f"array of {arr.nbytes} bytes exceeds the {MAX_ARRAY_BYTES}-byte limit of one stored array")
    return arr


def dtype_from_str(text: str) -> np.dtype:
    """Parse a stored dtype string, refusing anything but plain storable dtypes."""
    if not isinstance(text, str) or not _DTYPE_RE.match(text):
        raise CodecError(f"unsupported or malformed dtype {text!r} in stored header")
    try:  # the pattern admits spellings numpy rejects, such as '<i0', '<f3' or '<M8[zz]'
        dtype = np.dtype(text)
    except (TypeError, ValueError) as exc:
        raise CodecError(f"unsupported or malformed dtype {text!r} in stored header: {exc}") from exc
    if dtype.itemsize == 0:  # '|S0' would make every element zero bytes and the shape unverifiable
        raise CodecError(f"dtype {text!r} in stored header has no width")
    return dtype


def expected_nbytes(dtype: np.dtype, shape: Sequence[int]) -> int:
    """Bytes an array of ``dtype``/``shape`` occupies; raises on negative or absurd declarations."""
    n = dtype.itemsize
    for dim in shape:
        if not isinstance(dim, int) or dim < 0:
            raise CodecError(f"invalid shape {list(shape)!r}: dimensions are non-negative integers")
        n *= dim
    if n > MAX_ARRAY_BYTES:
        raise CodecError(f"declared array of {n} bytes exceeds the {MAX_ARRAY_BYTES}-byte safety limit")
    return n


def encode_segment(array: Any, codec: str = "auto") -> tuple[bytes, str, np.ndarray]:
    """Encode one array; returns ``(payload, codec_used, array_as_stored)``.

    ``codec="auto"`` compresses with lz4 and keeps the raw bytes instead when
    compression saves less than :data:`AUTO_MIN_SAVING` (raw decodes faster).
    """
    arr = check_array(array)
    raw = arr if arr.flags.c_contiguous else arr.copy(order="C")  # (ascontiguousarray turns 0-d into 1-d)
    view = memoryview(raw.reshape(-1).view(np.uint8))  # a byte view works for every dtype, 0-d included
    if codec == "none":
        return bytes(view), "none", raw
    if codec not in ("lz4", "auto"):
        raise CodecError(f"unknown codec {codec!r}: choose one of {CODECS + ('auto',)}")
    packed = lz4.frame.compress(view, store_size=True, compression_level=_lz4_level(view), block_size=LZ4_BLOCK_SIZE)
    if codec == "auto" and not _saves_enough(len(packed), raw.nbytes):
        return bytes(view), "none", raw
    return packed, "lz4", raw


def _lz4_level(view: memoryview) -> int:
    """:data:`LZ4_LEVEL` where the bytes are large and fast lz4 shrinks their first :data:`LZ4_HC_FROM_BYTES`, else 0."""
    if len(view) < LZ4_HC_FROM_BYTES:
        return 0
    probe = view[:LZ4_HC_FROM_BYTES]
    return LZ4_LEVEL if _saves_enough(len(lz4.block.compress(probe, store_size=False)), len(probe)) else 0


def _saves_enough(packed: int, raw: int) -> bool:
    """Whether ``packed`` bytes save at least :data:`AUTO_MIN_SAVING` of ``raw``: the one test of whether lz4 pays,
    for ``auto``'s choice of raw bytes and for the choice of HC frames alike."""
    return packed <= (1 - AUTO_MIN_SAVING) * raw


def segment_bytes(chunk: memoryview, start: int, length: int, codec_id: int, nbytes: int,
                  crc: int | None = None) -> bytes | memoryview:
    """The decoded bytes of the segment at ``chunk[start:start + length]``, after its integrity checks.

    The one segment decoder: array and archive blobs, the find cursor and the
    stream all decode through it, so every reader accepts and refuses the same
    bytes.  ``chunk`` is a memoryview (slicing bytes would copy); ``codec_id``
    is ``CODEC_IDS[codec]`` (the stream keeps codecs as small integers in its
    columns); ``nbytes`` is what the segment's dtype/shape occupy
    (:func:`expected_nbytes`); ``crc`` is the recorded CRC-32 to check first
    (None: the caller checked it already, or was asked not to).  An lz4 frame
    that declares another size than ``nbytes`` is refused *before* lz4
    allocates what the frame declares.  Returns a view of ``chunk`` for
    ``codec="none"`` (zero-copy), new bytes for lz4.  Raises
    :class:`IntegrityError` (a short read, a failed check, a broken frame).

    It runs once per sample on the stream's hot path, so a valid segment
    costs a few cheap checks (the frame's magic is left to lz4, and looked at
    only to word the error); :func:`_check_lz4_header` runs only for frames
    that look wrong.
    """
    seg = chunk[start : start + length]
    if len(seg) != length:
        raise IntegrityError(f"segment truncated: expected {length} bytes, the chunk holds {len(seg)}")
    if crc is not None and crc32(seg) != crc:
        raise IntegrityError("segment checksum mismatch (the stored bytes were altered)")
    if codec_id:
        if length < _LZ4_HEADER_BYTES or seg[4] & 0x08 and _lz4_size(seg, 6)[0] != nbytes:
            _check_lz4_header(seg, nbytes)  # a short frame, or one declaring another size: raises unless valid
        try:
            raw: bytes | memoryview = _decompress(seg)
        except RuntimeError as exc:
            reason = "segment is not an lz4 frame" if seg[:4] != _LZ4_MAGIC else f"lz4 frame failed to decode: {exc}"
            raise IntegrityError(reason) from exc
    else:
        raw = seg
    if len(raw) != nbytes:
        raise IntegrityError(f"decoded {len(raw)} bytes, the segment's dtype and shape say {nbytes}")
    return raw


def segment_into(chunk: memoryview, start: int, length: int, codec_id: int, out: memoryview,
                 crc: int | None = None) -> None:
    """:func:`segment_bytes` of the segment, written into ``out`` (exactly its decoded size): the same checks,
    and the same bytes accepted, with no intermediate copy.

    Why: for large samples the batch decoder decompressed each into new bytes
    and copied them into its batch, and that copy (147 KiB images) took half
    as long as lz4 itself; cramjam writes the frame's one block
    (``decompress_block_into``, :func:`_one_block`) or, for other frames, the
    frame (``decompress_into``) straight into the batch's row with the
    interpreter lock released.  Only a frame that declares exactly
    ``len(out)`` bytes is decoded this way (checked before lz4 runs; ``out``
    bounds what it may write; lz4's decoder is safe on any input); a raw
    segment is copied.  The CRC-32 is checked *after*, on
    the stored bytes the decode has just brought into cache.  Why: on bytes
    not yet in cache (a large sample's window is far larger than the caches)
    crc32 ran at memory's pace, and the decode then read them from memory a
    second time.  (zlib-ng's crc32, like zlib's, releases the interpreter
    lock only past 5 KiB: measured here, a thread spinning beside it runs
    during 5,121-byte calls and not during 5,120-byte ones.)  Anything
    that fails goes through :func:`segment_bytes` (``out`` then holds nothing
    of use), so what is refused, and how the error reads, stays one decoder's.
    Raises :class:`IntegrityError`.
    """
    nbytes = len(out)
    seg = chunk[start : start + length]
    if len(seg) == length:
        wrote = -1
        if not codec_id:
            if length == nbytes:
                wrote = _copy_into(out, seg)
        elif length >= _LZ4_HEADER_BYTES and seg[4] & 0x08 and _lz4_size(seg, 6)[0] == nbytes:
            try:
                if (block := _one_block(seg, nbytes)) is None:
                    wrote = _decompress_into(seg, out)
                elif block[1]:  # stored as is: lz4 could not shrink it
                    wrote = _copy_into(out, block[0])
                else:
                    wrote = _decompress_block_into(block[0], out, nbytes)
            except _DecompressionError:
                pass
        if wrote == nbytes and (crc is None or crc32(seg) == crc):
            return
    _copy_into(out, segment_bytes(chunk, start, length, codec_id, nbytes, crc))


def _copy_into(out: memoryview, data: bytes | memoryview) -> int:
    """Copy ``data`` (exactly ``len(out)`` bytes) into ``out`` with numpy, which releases the GIL; its length."""
    np.frombuffer(out, np.uint8)[:] = np.frombuffer(data, np.uint8)
    return len(out)


def _one_block(seg: memoryview, nbytes: int) -> tuple[memoryview, bool] | None:
    """The block of a frame that is exactly one block of ``nbytes`` (what :data:`LZ4_BLOCK_SIZE` writes up to
    4 MiB), without checksums or a dictionary, and whether it is stored as is; None for any other frame,
    which the frame decoder reads (frames of linked 64 KiB blocks, written before).  The caller saw a
    content size of ``nbytes``; the block must fill the frame to its end mark (looked at first: it rules out
    other frames for the cost of two reads), and liblz4 checks the frame's header (``get_frame_info``: its
    header checksum too), so the frames decoded here are the ones the frame decoder accepts.
    """
    at = _LZ4_HEADER_BYTES + 1  # magic, FLG, BD, the content size, the header checksum
    if seg[4] & 0x15 or len(seg) < at + 8:  # flags of a dictionary, block or content checksums; too short
        return None
    word = _u32(seg, at)[0]
    n, stored = word & 0x7FFFFFFF, bool(word >> 31)
    end = at + 4 + n
    if end + 4 != len(seg) or _u32(seg, end)[0] or not n or (stored and n != nbytes):
        return None  # several blocks, bytes past the end mark, or a stored block of another size
    try:
        info = _frame_info(seg)
    except RuntimeError:  # a header liblz4 refuses: the frame decoder words it
        return None
    if n > info["block_size"]:  # (the content size is the one the caller read)
        return None
    return seg[at + 4 : end], stored


def frames_declare(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, nbytes: int) -> bool:
    """True when each segment (``starts``, ``lengths`` in ``data``, ``uint8``) begins an lz4 frame header
    declaring ``nbytes`` decoded bytes: what :func:`frames_into` needs checked first, read for many segments at
    once (numpy, no Python per segment)."""
    if not len(starts):
        return True
    if (lengths < _LZ4_HEADER_BYTES).any():
        return False
    if int(starts.min()) < 0 or int(starts.max()) + _LZ4_HEADER_BYTES > len(data):
        return False
    head = data[starts[:, None] + np.arange(_LZ4_HEADER_BYTES)]
    return bool((head[:, :4] == _LZ4_MAGIC_BYTES).all() and (head[:, 4] & 0x08).all()
                and (np.ascontiguousarray(head[:, 6:14]).view("<u8").ravel() == nbytes).all())


def frames_into(frames: bytes | memoryview, out: memoryview) -> bool:
    """Decode ``frames`` (lz4 frames back to back, each checked by :func:`frames_declare` to declare its share of
    ``out``) into ``out``, filling it exactly, in one call that holds no GIL; False when anything fails (``out``
    then holds nothing of use: the caller decodes those segments one by one, :func:`segment_bytes`).

    Why safe: lz4's decoder is safe on any input and ``out`` bounds what it
    may write; liblz4 refuses a frame whose blocks decode to another size than
    its header declares, so with every header declaring its share, each
    sample lands in its own row or the call fails (tests/test_stream_unpack.py
    builds such frames).
    """
    try:
        return bool(_decompress_into(frames, out) == len(out))
    except _DecompressionError:
        return False


def _check_lz4_header(seg: memoryview, nbytes: int) -> None:
    """Raise unless ``seg`` starts like an lz4 frame whose recorded content size (if any) is ``nbytes``."""
    if seg[:4] != _LZ4_MAGIC or len(seg) < 7:
        raise IntegrityError("segment is not an lz4 frame")
    if seg[4] & 0x08 and len(seg) >= _LZ4_HEADER_BYTES:
        declared = _lz4_size(seg, 6)[0]
        if declared != nbytes:
            raise IntegrityError(f"lz4 frame declares {declared} bytes, the segment's dtype and shape say {nbytes}")


def codec_id(codec: str) -> int:
    """The small integer :func:`segment_bytes` takes for a stored codec name; :class:`CodecError` if unknown."""
    found = CODEC_IDS.get(codec) if isinstance(codec, str) else None
    if found is None:
        raise CodecError(f"unknown codec {codec!r} in stored header: expected one of {CODECS}")
    return found


def decode_segment(payload: bytes | memoryview, dtype: str, shape: Sequence[int], codec: str) -> np.ndarray:
    """Decode one segment into an array (zero-copy for ``codec="none"``: the array is read-only)."""
    dt = dtype_from_str(dtype)
    nbytes = expected_nbytes(dt, shape)
    raw = segment_bytes(memoryview(payload), 0, len(payload), codec_id(codec), nbytes)
    return np.frombuffer(raw, dtype=dt).reshape(tuple(shape))


def checksum(payload: bytes | memoryview) -> int:
    """The per-segment checksum recorded in documents (CRC-32: cheap enough for every read)."""
    return crc32(payload)


def pack_segments(arrays: Sequence[Any], codec: str = "auto", align: int = 1) -> tuple[bytes, list[Segment]]:
    """Concatenate encoded arrays into one chunk; return the bytes and each array's segment (each starting at a
    multiple of ``align``, zero bytes between)."""
    parts: list[bytes] = []
    segments: list[Segment] = []
    offset = 0
    nbytes = sum(int(getattr(array, "nbytes", 0)) for array in arrays)
    for payload, used, raw, crc in map_in_shares(functools.partial(_encoded, codec=codec), arrays, nbytes):
        if pad := -offset % align:
            parts.append(bytes(pad))
            offset += pad
        segments.append(Segment(offset, len(payload), used, raw.dtype.str, tuple(raw.shape), crc))
        parts.append(payload)
        offset += len(payload)
    return b"".join(parts), segments


def _encoded(array: Any, codec: str) -> tuple[bytes, str, np.ndarray, int]:
    """:func:`encode_segment` and the payload's checksum (both release the GIL on large buffers)."""
    payload, used, raw = encode_segment(array, codec)
    return payload, used, raw, checksum(payload)


def unpack_segment(chunk: bytes | memoryview, segment: Segment, *, relative: bool = False, verify: bool = True) -> np.ndarray:
    """Decode ``segment`` out of ``chunk`` (``relative=True``: ``chunk`` holds only that segment's bytes)."""
    dt = dtype_from_str(segment.dtype)
    nbytes = expected_nbytes(dt, segment.shape)
    raw = segment_bytes(memoryview(chunk), 0 if relative else segment.offset, segment.length, codec_id(segment.codec), nbytes,
                        segment.crc32 if verify else None)
    return np.frombuffer(raw, dtype=dt).reshape(segment.shape)


def _with_header(magic: bytes, header: dict[str, Any], body: bytes, align: int = 1) -> bytes:
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    head += b" " * (-(len(magic) + _LEN.size + len(head)) % align)  # JSON may end in blanks: the body aligned
    return magic + _LEN.pack(len(head)) + head + body


def _split_header(blob: bytes | memoryview, magic: bytes) -> tuple[dict[str, Any], memoryview]:
    view = memoryview(blob)
    if len(view) < 8 or bytes(view[:4]) != magic:
        raise CodecError(f"not a TensorDB {magic.decode()} blob (bad magic bytes)")
    (hlen,) = _LEN.unpack(view[4:8])
    if hlen > len(view) - 8:
        raise CodecError("blob header length exceeds the blob: truncated or corrupted")
    try:
        header = json.loads(bytes(view[8 : 8 + hlen]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CodecError(f"blob header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise CodecError("blob header must be a JSON object")
    return header, view[8 + hlen :]


def encode_array(array: Any, codec: str = "auto") -> bytes:
    """One self-describing array blob."""
    (body, [seg]) = pack_segments([array], codec)
    return _with_header(ARRAY_MAGIC, {"version": 1, **seg.to_doc()}, body)


def decode_array(blob: bytes | memoryview, *, verify: bool = True) -> np.ndarray:
    header, body = _split_header(blob, ARRAY_MAGIC)
    return unpack_segment(body, Segment.from_doc(header), verify=verify)


def encode_archive(arrays: Mapping[str, Any] | Sequence[Any], codec: str = "auto", align: int = 1) -> bytes:
    """Named arrays (a dict) or an ordered list of arrays in one blob, in order.

    ``align``: each array's bytes start at a multiple of it within the blob
    (blanks end the header, zero bytes lie between arrays; readers go by the
    header's offsets, so any blob reads the same).  Why: a mapped file's
    stored array is used in place only when aligned for its dtype; numpy
    copies an unaligned one on every ``searchsorted`` (0.18 ms a call on a
    million int64, hundreds of calls before a shard's first batch).
    """
    if isinstance(arrays, Mapping):
        kind, names, values = "dict", [str(k) for k in arrays], list(arrays.values())
        if not all(isinstance(k, str) for k in arrays):
            raise CodecError("parameter names must be strings")
    elif isinstance(arrays, Sequence) and not isinstance(arrays, (str, bytes, np.ndarray)):
        kind, names, values = "list", [str(i) for i in range(len(arrays))], list(arrays)
    else:
        raise CodecError("parameters must be a dict of name -> array or a list of arrays")
    body, segments = pack_segments(values, codec, align)
    entries = [{"name": n, **s.to_doc()} for n, s in zip(names, segments)]
    return _with_header(ARCHIVE_MAGIC, {"version": 1, "kind": kind, "arrays": entries}, body, align)


def decode_archive(blob: bytes | memoryview, *, verify: bool = True, names: Collection[str] | None = None
                   ) -> dict[str, np.ndarray] | list[np.ndarray]:
    """Inverse of :func:`encode_archive` (a dict or a list, as it was saved).

    ``names``: decode (and check) only the arrays of these names, as a dict;
    why: a kept reference table's ``_seq`` column places a shard before the
    rest of the table is needed (stream/snapshots.py).
    """
    header, body = _split_header(blob, ARCHIVE_MAGIC)
    entries = header.get("arrays")
    if not isinstance(entries, list):
        raise CodecError("archive header lacks its 'arrays' list")
    out = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise CodecError(f"malformed archive entry {entry!r}")
        if names is None or entry["name"] in names:
            out[entry["name"]] = unpack_segment(body, Segment.from_doc(entry), verify=verify)
    return list(out.values()) if header.get("kind") == "list" and names is None else out
