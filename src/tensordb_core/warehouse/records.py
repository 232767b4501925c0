"""Import records: dicts of arrays, bytes, encoded media and small JSON values, streamed into chunk blobs.

Why a record is one document plus segments of one chunk: the stream reads a
sample with one request per chunk (never one per field), and the JSON fields
sit in the document where every index can filter on them exactly like tags.
The input is consumed in chunks of about ``chunk_bytes`` of stored data: a
generator of more records than fit in memory streams through.  Each chunk's
records are validated and encoded *before* its blob is written, so a bad
record stops the import with nothing of its chunk written (chunks before it
are complete and stay imported; the error says how many records that is).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tensordb_core.errors import CodecError, InvalidDocument, TensorDBError
from tensordb_core.format.codec import checksum, encode_segment
from tensordb_core.format.media import Encoded, encode_image, parse_encode_spec, probe_image
from tensordb_core.store.scope import StudyScope, check_json_value, check_tags
from tensordb_core.warehouse import commits

DEFAULT_CHUNK_BYTES = 4 << 20


@dataclass
class _Packed:
    """One record ready to write: its document fields and its binary fields' payloads."""

    doc: dict[str, Any]
    segments: list[tuple[str, bytes, str, str, list[int]]]  # (field, payload, codec, dtype, shape)
    nbytes: int


def check_encode(encode: Mapping[str, Any] | None) -> dict[str, tuple[str, int | None]]:
    """``{"image": "jpeg:90"}`` parsed to ``{"image": ("jpeg", 90)}``; :class:`CodecError` on a bad spec."""
    if encode is None:
        return {}
    if not isinstance(encode, Mapping):
        raise InvalidDocument(f"encode must be a dict of field -> codec ('jpeg', 'jpeg:90', 'png'), not {encode!r}")
    out = {}
    for name, spec in encode.items():
        try:
            out[str(name)] = parse_encode_spec(spec)
        except CodecError as exc:
            raise CodecError(f"encode[{name!r}]: {exc}") from exc
    return out


def pack_record(record: Any, number: int, shared: Mapping[str, Any],
                encode: Mapping[str, tuple[str, int | None]]) -> _Packed:
    """Validate and encode one record; errors name the record (its position in the input) and the field."""
    if not isinstance(record, Mapping):
        raise InvalidDocument(f"record {number}: a record is a dict of field -> value, not {type(record).__name__}")
    doc: dict[str, Any] = dict(shared)
    segments: list[tuple[str, bytes, str, str, list[int]]] = []
    nbytes = 0
    for name, value in record.items():
        try:
            if not isinstance(name, str) or not name or name.startswith(("_", "$")) or "." in name:
                raise InvalidDocument("field names are non-empty strings that do not start with '_' or '$' "
                                      "and contain no '.'")
            if name in shared:
                raise InvalidDocument("the field is also a shared tag: rename one of them")
            seg = _segment(value, encode.get(name))
            if seg is None:
                doc[name] = check_json_value(value.item() if isinstance(value, np.generic) else value, name)
            else:
                segments.append((name, *seg))
                nbytes += len(seg[0])
        except TensorDBError as exc:
            raise type(exc)(f"record {number}, field {name!r}: {exc}") from exc
    return _Packed(doc, segments, nbytes)


def _segment(value: Any, spec: tuple[str, int | None] | None) -> tuple[bytes, str, str, list[int]] | None:
    """``(payload, codec, dtype, shape)`` of a binary value, None for a JSON value."""
    if isinstance(value, Encoded):
        dtype, shape = probe_image(value.data, value.codec)
        return value.data, value.codec, dtype, list(shape)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return data, "bytes", "|u1", [len(data)]
    if isinstance(value, np.ndarray):
        if spec is not None:
            codec, quality = spec
            return encode_image(value, codec, quality), codec, value.dtype.str, list(value.shape)
        payload, used, raw = encode_segment(value, "auto")
        return payload, used, raw.dtype.str, list(raw.shape)
    if spec is not None:
        raise CodecError(f"encode asks for {spec[0]} but the value is a {type(value).__name__}, not an image array")
    if value is None or isinstance(value, (str, bool, int, float, list, dict, tuple, np.generic)):
        return None
    raise InvalidDocument(f"unsupported value type {type(value).__name__}: use a numpy array, bytes, "
                          "tdb.Encoded(data, codec) or a JSON value (str, number, bool, None, list, dict)")


def import_records(scope: StudyScope, records: Iterable[Mapping[str, Any]], tags: Mapping[str, Any] | None = None,
                   *, encode: Mapping[str, str] | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                   key: str | None = None) -> list[str]:
    """Store records (any iterable of dicts, generators included); returns the new ids in input order.

    All or nothing (warehouse/commits.py): chunks are written as the input
    streams, the documents (small) are kept and committed at the end, so a
    bad record or a killed call leaves none of the call's records visible.
    ``key`` makes a retry return the first call's ids.
    See :meth:`tensordb_core.warehouse.handle.TensorDB.import_records`.
    """
    scope.require_writable()
    shared = check_tags(tags)
    specs = check_encode(encode)
    if not isinstance(chunk_bytes, int) or isinstance(chunk_bytes, bool) or chunk_bytes < 1:
        raise InvalidDocument(f"chunk_bytes must be a positive integer, not {chunk_bytes!r}")
    if isinstance(records, (Mapping, str, bytes)) or not hasattr(records, "__iter__"):
        raise InvalidDocument(f"records must be an iterable of dicts (a list, a generator), not {type(records).__name__}")
    iid = commits.import_id(scope, key)
    if (done := commits.resume(scope, iid, key)) is not None:
        return done
    docs: list[dict[str, Any]] = []
    pending: list[_Packed] = []
    budget = 0
    with scope.writing_blobs() as put:  # every chunk's intent is held until the commit
        for number, record in enumerate(records):
            packed = pack_record(record, number, shared, specs)
            pending.append(packed)
            budget += packed.nbytes
            if budget >= chunk_bytes:
                docs += _chunk_docs(scope, put, pending)
                pending, budget = [], 0
        if pending:
            docs += _chunk_docs(scope, put, pending)
        return commits.commit(scope, iid, docs)


def _chunk_docs(scope: StudyScope, put: Any, packed: list[_Packed]) -> list[dict[str, Any]]:
    """One chunk blob (written first, under the import's write intents) and the records' documents."""
    parts: list[bytes] = []
    offset = 0
    now = time.time()
    docs = []
    for rec in packed:
        fields = {}
        for name, payload, codec, dtype, shape in rec.segments:
            fields[name] = {"offset": offset, "length": len(payload), "codec": codec, "dtype": dtype,
                            "shape": shape, "crc32": checksum(payload)}
            parts.append(payload)
            offset += len(payload)
        doc = scope.new_doc(**rec.doc)
        doc["_created"] = now
        if fields:
            doc["_fields"] = fields
        docs.append(doc)
    if parts:
        body = b"".join(parts)
        key = put(body)  # the chunk exists before any document points at it
        for doc in docs:
            if "_fields" in doc:
                doc["_chunk"] = {"key": key, "size": len(body)}
    return docs
