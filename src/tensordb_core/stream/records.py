"""Records in the stream: their references as columns (plan), their decoding into dicts and dict batches.

A record is one document with binary fields (segments of one chunk: ``_chunk``
and ``_fields``) and JSON fields (top-level); an ``(X, y)`` sample is the
two-field case (``_x`` read as field ``x``, ``_y`` as ``y``, ``label`` a JSON
field).  :class:`RecordTable` plays :class:`~tensordb_core.stream.refs.RefTable`'s
part for the engine: the same chunk/``_seq`` columns (so order, shards,
resume and the fetch plan are the very same code), plus one column set per
*selected* binary field.  The span a row needs covers only its selected
fields, so a projection (``fields=[...]``) pushes down to the fetch plan: the
planner asks for those bytes and no others.

:class:`RecordDecoder` runs on the decode threads: array segments through the
one segment decoder (``format.codec.segment_bytes``), JPEG/PNG through
``format.media`` (libjpeg-turbo / Pillow, which release the GIL), then
``transform`` on the dict, then :func:`collate` into one batch dict.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from tensordb_core.errors import CodecError, IntegrityError, TensorDBError
from tensordb_core.format.checksums import crc32
from tensordb_core.format.codec import CODEC_IDS, segment_bytes
from tensordb_core.format.media import MEDIA_IDS, decode_image
from tensordb_core.stream.decode import SampleError
from tensordb_core.stream.fetch import Window
from tensordb_core.stream.refs import RefTable, _arrays, _Columns

_CODEC_NAMES = {v: k for k, v in {**CODEC_IDS, **MEDIA_IDS}.items()}
_BYTES = MEDIA_IDS["bytes"]


def record_projection(fields: Sequence[str] | None) -> dict[str, int] | None:
    """What to ask the index for: the whole document, or the system fields plus the selected ones."""
    if fields is None:
        return None
    return {"_id": 1, "_seq": 1, "_chunk": 1, "_fields": 1, "_x": 1, "_y": 1, **{f: 1 for f in fields}}


def check_fields(fields: Any) -> list[str] | None:
    if fields is None:
        return None
    if isinstance(fields, str) or not all(isinstance(f, str) and f for f in fields):
        raise TensorDBError(f"fields must be a list of field names, not {fields!r}")
    return list(dict.fromkeys(fields))


def _segments(doc: Mapping[str, Any]) -> tuple[dict[str, Mapping[str, Any]], str | None, int]:
    """A document's binary fields, chunk key and chunk size (``(X, y)`` documents included)."""
    fields = doc.get("_fields")
    if fields is not None:
        chunk = doc.get("_chunk")
        if not isinstance(fields, Mapping) or not isinstance(chunk, Mapping):
            raise CodecError("its _fields/_chunk are malformed")
        size = chunk.get("size")
        return dict(fields), str(chunk["key"]), int(size) if size is not None else -1
    x, y = doc.get("_x"), doc.get("_y")
    if x is None:
        return {}, None, -1  # a record of JSON fields only
    if not isinstance(x, Mapping) or (y and (not isinstance(y, Mapping) or y.get("key") != x.get("key"))):
        raise CodecError("its _x/_y references are malformed or in two blobs")
    size = x.get("chunk_size")
    return ({"x": x, "y": y} if y else {"x": x}), str(x["key"]), int(size) if size is not None else -1


class RecordTable(RefTable):
    """A :class:`RefTable` whose rows are records: per selected binary field a column set, per row its JSON fields."""

    codec_ids: ClassVar[dict[str, int]] = {**CODEC_IDS, **MEDIA_IDS}
    reads_columns: ClassVar[bool] = False  # a record's fields are whole documents

    def __init__(self, fields: Sequence[str] | None = None) -> None:
        super().__init__()
        self.select = None if fields is None else list(fields)
        self.fields: dict[str, _Columns] = {}
        self.values: list[dict[str, Any]] = []

    @classmethod
    def of_records(cls, docs: Iterable[Mapping[str, Any]], fields: Sequence[str] | None) -> RecordTable:
        table = cls(fields)
        for doc in docs:
            seq = doc.get("_seq")
            table._append(doc, seq if isinstance(seq, int) else 0)
        return table

    def _column(self, name: str, row: int) -> _Columns:
        cols = self.fields.get(name)
        if cols is None:
            cols = self.fields[name] = _Columns()
            for _ in range(row):
                self._add_segment(cols, None)
        return cols

    def _append(self, doc: Mapping[str, Any], seq: int) -> None:
        row = len(self.ids)
        self.ids.append(str(doc.get("_id")))
        self.seq.append(seq)
        select = self.select
        try:
            segs, key, size = _segments(doc)
            if select is not None:
                segs = {name: segs[name] for name in select if name in segs}
            chunk = -1
            if segs and key is not None:
                chunk = self._chunk_index.get(key, -1)
                if chunk < 0:
                    chunk = self._chunk_index[key] = len(self.chunk_keys)
                    self.chunk_keys.append(key)
                    self.chunk_sizes.append(size)
            for name, seg in segs.items():
                if not isinstance(seg, Mapping):
                    raise CodecError(f"field {name!r} has a malformed segment")
                self._add_segment(self._column(name, row), seg)
            for name, cols in self.fields.items():
                if name not in segs:
                    self._add_segment(cols, None)
            values = {k: v for k, v in doc.items() if not k.startswith("_") and (select is None or k in select)}
        except (KeyError, TypeError, ValueError, OverflowError, CodecError) as exc:
            self.bad[row] = f"malformed record reference: {exc}"
            for cols in self.fields.values():
                cols.truncate(row)
                self._add_segment(cols, None)
            chunk, values = -1, {}
        self.chunk.append(chunk)
        self.values.append(values)

    def freeze(self) -> FrozenRecords:  # type: ignore[override]
        if self._frozen is None:
            self._frozen = FrozenRecords(self)  # type: ignore[assignment]
        return self._frozen  # type: ignore[return-value]


class FrozenRecords:
    """An immutable numpy snapshot of a :class:`RecordTable` (what the fetch and decode threads read)."""

    records = True
    any_y = False

    def __init__(self, table: RecordTable) -> None:
        n = self.n = len(table)
        self.ids = list(table.ids)
        self.seq = np.array(table.seq, dtype=np.int64)
        self.chunk = np.array(table.chunk, dtype=np.int64)
        self.chunk_keys = list(table.chunk_keys)
        self.chunk_sizes = np.array(table.chunk_sizes, dtype=np.int64)
        self.formats = list(table.formats)
        self.bad = dict(table.bad)
        self.values = list(table.values)
        self.fields = {name: _arrays(cols) for name, cols in table.fields.items()}
        start = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        end = np.zeros(n, dtype=np.int64)
        for off, length, _crc, _codec, fmt in self.fields.values():
            has = fmt >= 0
            start = np.where(has, np.minimum(start, off), start)
            end = np.where(has, np.maximum(end, off + length), end)
        self.span_start = np.where(end > 0, start, 0)
        self.span_end = end
        #: Some selected field is a JPEG/PNG image (decoding dominates: the engine sizes its decode pool on it).
        self.media = any(bool(np.isin(codec, (MEDIA_IDS["jpeg"], MEDIA_IDS["png"])).any())
                         for _o, _l, _c, codec, _f in self.fields.values())

    def span_bytes(self, rows: np.ndarray) -> np.ndarray:
        return self.span_end[rows] - self.span_start[rows]


@dataclass
class RecordBatch:
    """A decoded batch: ``records`` (one dict each) and, for the stream, ``columns`` (collated on the decode thread)."""

    records: list[dict[str, Any]]
    skipped: int
    errors: list[SampleError]
    columns: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def value(self) -> Any:
        """What the stream yields: the batch dict (the records themselves when not collated)."""
        return self.records if self.columns is None else self.columns


class RecordDecoder:
    """Decodes parts of windows of records (shared by the decode threads; holds no mutable state)."""

    def __init__(self, *, transform: Callable[[dict[str, Any]], Any] | None, on_error: str, verify: bool,
                 stats: Any, decode: bool = True, pad: Mapping[str, Any] | None = None, collated: bool = True) -> None:
        self.transform, self.skip, self.verify, self.stats = transform, on_error == "skip", verify, stats
        self.decode_media, self.pad, self.collated = decode, pad, collated

    def decode(self, parts: Sequence[tuple[Window, int, int]]) -> RecordBatch:
        try:
            began = time.perf_counter()
            out: list[dict[str, Any]] = []
            errors: list[SampleError] = []
            decoded = 0
            for window, lo, hi in parts:
                refs = window.refs
                views = window.views
                for j in range(lo, hi):
                    row = int(window.rows[j])
                    try:
                        record, nbytes = self._record(window, refs, views, j, row)
                        if self.transform is not None:
                            record = self.transform(record)
                    except SampleError as err:
                        if not self.skip:
                            raise err from err.cause
                        errors.append(err)
                        continue
                    decoded += nbytes
                    out.append(record)
            dicts = self.collated and all(isinstance(r, Mapping) for r in out)  # a transform may return anything
            batch = RecordBatch(out, len(errors), errors, collate(out, self.pad) if dicts else None)
            self.stats.add(decode_s=time.perf_counter() - began, bytes_decoded=decoded, skipped=len(errors))
            return batch
        finally:
            for window, _, _ in parts:
                window.drop()

    def _record(self, window: Window, refs: FrozenRecords, views: list[Any], j: int, row: int) -> tuple[dict, int]:
        doc_id = refs.ids[row]
        if row in refs.bad:
            raise SampleError(doc_id, refs.bad[row])
        record = dict(refs.values[row])
        r = int(window.req_of[j])
        base = int(window.base_of[j])
        nbytes = 0
        for name, (off, length, crc, codec, fmt) in refs.fields.items():
            f = int(fmt[row])
            if f < 0:
                continue
            view = views[r] if r >= 0 else None
            if view is None or isinstance(view, BaseException):
                cause = view if isinstance(view, BaseException) else None
                raise SampleError(doc_id, f"chunk {refs.chunk_keys[refs.chunk[row]]} could not be read: {view}", cause)
            fm = refs.formats[f]
            try:
                record[name] = self._field(view, int(off[row]) - base, int(length[row]), int(codec[row]),
                                           int(crc[row]), fm.dtype, fm.shape, fm.nbytes, window.pool is not None)
            except TensorDBError as exc:
                raise SampleError(doc_id, f"field {name!r}: {exc}", exc) from exc
            except Exception as exc:  # a decoder library's own error on corrupt data
                raise SampleError(doc_id, f"field {name!r}: {type(exc).__name__}: {exc}", exc) from exc
            nbytes += fm.nbytes
        return record, nbytes

    def _field(self, view: memoryview, start: int, length: int, codec: int, crc: int, dtype: np.dtype,
               shape: tuple[int, ...], nbytes: int, pooled: bool) -> Any:
        if codec <= 1:
            raw = segment_bytes(view, start, length, codec, nbytes, crc if self.verify else None)
            if pooled and not isinstance(raw, bytes):
                raw = bytes(raw)  # a pooled buffer is reused: what we return must own its bytes
            return np.frombuffer(raw, dtype=dtype).reshape(shape)
        seg = view[start : start + length]
        if len(seg) != length:
            raise IntegrityError(f"segment truncated: expected {length} bytes, the chunk holds {len(seg)}")
        if self.verify and crc32(seg) != crc:
            raise IntegrityError("segment checksum mismatch (the stored bytes were altered)")
        if codec == _BYTES or not self.decode_media:
            return bytes(seg)
        return decode_image(seg, _CODEC_NAMES[codec], dtype, shape)


def collate(records: Sequence[Mapping[str, Any]], pad: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Records -> one dict of columns.

    Arrays of one shape and dtype are stacked; ragged arrays are a list, or
    (for a field in ``pad``) one array padded with ``pad[field]`` to the
    largest shape plus ``<field>_length`` (each sample's first dimension);
    numbers and bools become arrays; anything else (strings, bytes, lists,
    dicts, a field some records lack) a list.
    """
    names: dict[str, None] = {}
    for rec in records:
        names.update(dict.fromkeys(rec))
    out: dict[str, Any] = {}
    for name in names:
        values = [rec.get(name) for rec in records]
        out.update(_column(name, values, pad))
    return out


def _column(name: str, values: list[Any], pad: Mapping[str, Any] | None) -> dict[str, Any]:
    if values and all(isinstance(v, np.ndarray) for v in values):
        if pad is not None and name in pad:  # padded even when this batch's shapes agree: always the same keys
            return _padded(name, values, pad[name])
        first = values[0]
        if all(v.shape == first.shape and v.dtype == first.dtype for v in values):
            return {name: np.stack(values)}
        return {name: values}
    if values and all(isinstance(v, bool) for v in values):
        return {name: np.array(values, dtype=bool)}
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return {name: np.array(values)}
    return {name: values}


def _padded(name: str, values: list[np.ndarray], fill: Any) -> dict[str, Any]:
    ndim = {v.ndim for v in values}
    if len(ndim) != 1 or 0 in ndim:
        raise TensorDBError(f"field {name!r} cannot be padded: its samples have {sorted(ndim)} dimensions")
    shape = tuple(max(v.shape[d] for v in values) for d in range(values[0].ndim))
    dtype = np.result_type(*[v.dtype for v in values])
    out = np.full((len(values), *shape), fill, dtype=dtype)
    for i, v in enumerate(values):
        out[(i, *(slice(0, s) for s in v.shape))] = v
    return {name: out, f"{name}_length": np.array([v.shape[0] for v in values], dtype=np.int64)}


__all__ = ["FrozenRecords", "RecordBatch", "RecordDecoder", "RecordTable", "check_fields", "collate",
           "record_projection"]
