"""What an export reads: the fields of the matching samples (one index scan) and the samples, page by page.

Why two passes: every target format wants its columns' types before the
first row (a Parquet schema, Hugging Face ``Features``, fixed-width npz
strings), and the index documents already say what each binary field is
(dtype, shape, codec, byte length) without a blob being read.  So
:func:`scan` walks the matching documents once and keeps only a summary per
field (:class:`FieldSpec`); :func:`pages` then reads the samples in pages of
``page_size`` through the warehouse's cursor (``find_data(...).records(decode=False)``:
the planner, fetcher and decoder every reader uses, media kept as their
encoded file bytes).  Pages are keyed on ``_seq`` (``$gt`` the last page's
bound, sorted, limited), never ``skip``, so a page costs the same on the
millionth sample as on the first, and no more than one page of samples is
in memory.  The scan fixes the export's ``_seq`` bound: samples imported
while an export runs are not in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tensordb_core.errors import DocumentNotFound, IntegrityError, InvalidArgument, InvalidDocument
from tensordb_core.format.media import IMAGE_CODECS

if TYPE_CHECKING:
    from tensordb_core.warehouse.data import DataCursor


class Samples(Protocol):
    """What an export reads from: a warehouse handle's ``find_data``.

    A protocol rather than the handle's class: the handle offers
    ``export_data`` and so imports this package; naming it back would close a
    circle, even one drawn by annotations only.
    """

    def find_data(self, query: Mapping[str, Any] | None = None, *, sort: Any = None, limit: int = 0,
                  skip: int = 0, dataset: str | None = None) -> DataCursor: ...

#: Segment codecs that hold a numpy array (the rest are media: jpeg, png, bytes).
ARRAY_CODECS = ("none", "lz4")
#: Columns some formats write beside a ragged or media field NAME (NAME_offsets, NAME_shapes, NAME_shape).
COMPANION_SUFFIXES = ("_offsets", "_shapes", "_shape")
#: How many times a page is re-read when the warehouse changed between its two reads.
PAGE_RETRIES = 3


@dataclass
class FieldSpec:
    """One field of the exported samples, summarised over all of them.

    ``kind`` is ``"array"`` (numpy, ``dtype`` and — when every sample agrees —
    ``shape``), ``"image"`` (encoded JPEG/PNG file bytes, ``codec``),
    ``"bytes"`` (opaque) or ``"json"`` (a tag, a label or a JSON record
    field; ``json_type`` is ``int``, ``float``, ``bool``, ``str`` or ``json``
    for lists, dicts and mixed types).  ``present`` counts the samples that
    have a non-null value; ``text_len`` is the longest value as text (str or
    JSON), for fixed-width columns.
    """

    name: str
    kind: str
    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    ragged: bool = False
    codec: str | None = None
    json_type: str | None = None
    present: int = 0
    text_len: int = 1
    ndim: int = 0

    def complete(self, n: int) -> bool:
        """Every one of the ``n`` samples has a value."""
        return self.present == n

    def fixed(self, n: int) -> bool:
        """An array field with one shape in every sample: a dense ``(n, *shape)`` block."""
        return self.kind == "array" and not self.ragged and self.complete(n)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "array":
            out.update(dtype=self.dtype, shape=None if self.ragged else list(self.shape or ()))
        elif self.kind == "image":
            out["codec"] = self.codec
        elif self.kind == "json":
            out["type"] = self.json_type
        return out


@dataclass
class Schema:
    """The fields of an export (in first-seen order), how many samples it has, and its ``_seq`` bound."""

    fields: dict[str, FieldSpec] = field(default_factory=dict)
    count: int = 0
    seq_bound: int = -1
    id_len: int = 1

    def names(self) -> list[str]:
        return list(self.fields)


@dataclass
class Page:
    """Up to ``page_size`` samples: their ids and their record dicts (media as encoded bytes), in ``_seq`` order."""

    ids: list[str]
    records: list[dict[str, Any]]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "json"


def _merge_json(old: str | None, new: str) -> str:
    if old is None or old == new:
        return new
    if {old, new} == {"int", "float"}:
        return "float"
    return "json"


def as_text(value: Any) -> str:
    """A JSON value as the text a column of JSON text holds (``str`` values as they are)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _binary_segments(doc: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A document's binary fields and their segment descriptions (``_x``/``_y`` read as ``x``/``y``)."""
    fields = doc.get("_fields")
    if isinstance(fields, Mapping):
        return dict(fields)
    out = {}
    for stored, name in (("_x", "x"), ("_y", "y")):
        if isinstance(doc.get(stored), Mapping):
            out[name] = doc[stored]
    return out


def _note_binary(spec: FieldSpec | None, name: str, seg: Mapping[str, Any]) -> FieldSpec:
    codec = str(seg.get("codec"))
    kind = "array" if codec in ARRAY_CODECS else "image" if codec in IMAGE_CODECS else "bytes"
    shape = tuple(int(s) for s in seg.get("shape") or ())
    if spec is None:
        spec = FieldSpec(name, kind, dtype=str(seg.get("dtype")) if kind == "array" else None,
                         shape=shape if kind == "array" else None, codec=codec if kind == "image" else None,
                         ndim=len(shape))
    elif spec.kind != kind or (kind == "image" and spec.codec != codec):
        if {spec.kind, kind} <= {"image", "bytes"}:  # JPEG in some samples, PNG in others: opaque file bytes
            spec.kind, spec.codec = "bytes", None
        else:
            raise InvalidDocument(f"field {name!r} is {spec.kind} in some samples and {kind} in others: "
                                  f"leave it out with fields=[...] or export the two kinds separately by query")
    elif kind == "array":
        if str(seg.get("dtype")) != spec.dtype:
            raise InvalidDocument(f"field {name!r} has dtype {spec.dtype} in some samples and {seg.get('dtype')} "
                                  "in others: export them separately by query")
        if shape != spec.shape:
            spec.ragged = True
            spec.ndim = max(spec.ndim, len(shape))
    spec.present += 1
    return spec


def _note_json(spec: FieldSpec | None, name: str, value: Any) -> FieldSpec:
    if spec is None:
        spec = FieldSpec(name, "json")
    elif spec.kind != "json":
        raise InvalidDocument(f"field {name!r} is {spec.kind} in some samples and a JSON value in others: "
                              "leave it out with fields=[...]")
    if value is None:
        return spec
    spec.json_type = _merge_json(spec.json_type, _json_type(value))
    spec.text_len = max(spec.text_len, len(as_text(value)))
    spec.present += 1
    return spec


def find(db: Samples, query: Mapping[str, Any] | None, dataset: str | None, **window: Any) -> DataCursor:
    """``db.find_data`` over the live samples or a dataset version.

    Read its documents with ``list(iter(cursor))``: ``list(cursor)`` would ask
    ``len(cursor)`` first, a count query over every match, on every page.
    """
    return db.find_data(query, dataset=dataset, **window)


def _within(query: Mapping[str, Any] | None, low: int, high: int | None = None) -> dict[str, Any]:
    bound: dict[str, Any] = {"$gt": low}
    if high is not None:
        bound["$lte"] = high
    return {"$and": [dict(query or {}), {"_seq": bound}]}


def scan(db: Samples, query: Mapping[str, Any] | None, *, dataset: str | None = None,
         fields: Sequence[str] | None = None, page_size: int = 512) -> Schema:
    """Summarise the fields of every matching sample from the index documents (no blob is read).

    Raises :class:`DocumentNotFound` when nothing matches (an export of
    nothing has no schema to write) and :class:`InvalidArgument` when
    ``fields`` names a field no matching sample has.
    """
    schema = Schema()
    specs = schema.fields
    low = -1
    while True:
        docs = list(iter(find(db, _within(query, low), dataset, sort=[("_seq", 1)], limit=page_size)))
        if not docs:
            break
        for doc in docs:
            schema.id_len = max(schema.id_len, len(str(doc["_id"])))
            for name, seg in _binary_segments(doc).items():
                if isinstance(seg, Mapping):
                    specs[name] = _note_binary(specs.get(name), name, seg)
            for name, value in doc.items():
                if not name.startswith("_"):
                    specs[name] = _note_json(specs.get(name), name, value)
        schema.count += len(docs)
        low = schema.seq_bound = int(docs[-1]["_seq"])
    if not schema.count:
        raise DocumentNotFound(f"no sample matches {dict(query or {})!r}"
                               + (f" in dataset {dataset!r}" if dataset else "")
                               + ": nothing to export (check the query with `tensordb find`)")
    for spec in specs.values():
        if spec.kind == "json" and spec.json_type is None:
            spec.json_type = "json"  # null in every sample
    if fields is not None:
        unknown = [f for f in fields if f not in specs]
        if unknown:
            raise InvalidArgument(f"fields {unknown} are in no matching sample; the samples have {sorted(specs)}")
        schema.fields = {name: specs[name] for name in fields}
    _check_companions(schema)
    return schema


def _check_companions(schema: Schema) -> None:
    """Refuse a field named like another's companion column (``tokens_shape`` beside a ragged ``tokens``)."""
    for spec in schema.fields.values():
        if spec.kind in ("image", "bytes") or spec.ragged or not spec.complete(schema.count):
            for suffix in COMPANION_SUFFIXES:
                if f"{spec.name}{suffix}" in schema.fields:
                    raise InvalidDocument(f"field {spec.name}{suffix!s} would collide with the {suffix} column "
                                          f"exported beside {spec.name!r}: leave one out with fields=[...]")


def check_fields(fields: Any) -> list[str] | None:
    """``fields`` as a list of distinct names, or None for every field; :class:`InvalidArgument` otherwise."""
    if fields is None:
        return None
    if isinstance(fields, (str, bytes)) or not isinstance(fields, Sequence) or not fields \
            or not all(isinstance(f, str) and f and not f.startswith("_") for f in fields):
        raise InvalidArgument(f"fields must be a non-empty list of field names (not starting with '_'), "
                              f"e.g. ['image', 'label'], not {fields!r}")
    return list(dict.fromkeys(fields))


def pages(db: Samples, query: Mapping[str, Any] | None, schema: Schema, *, dataset: str | None = None,
          page_size: int = 512) -> Iterator[Page]:
    """The samples the scan saw (``_seq`` up to its bound), ``page_size`` at a time, media still encoded.

    Each page is read twice through the cursor: its documents (for the
    ids) and its records.  Both reads cover the same closed ``_seq`` range,
    so they agree unless a sample was deleted in between; the page is then
    read again, and :class:`IntegrityError` is raised if it keeps changing.
    """
    names = schema.names()
    low = -1
    while low < schema.seq_bound:
        for _ in range(PAGE_RETRIES):
            docs = list(iter(find(db, _within(query, low, schema.seq_bound), dataset, sort=[("_seq", 1)],
                             limit=page_size)))
            if not docs:
                return
            high = int(docs[-1]["_seq"])
            cursor = find(db, _within(query, low, high), dataset, sort=[("_seq", 1)])
            records = cursor.records(fields=names, decode=False)
            if len(records) == len(docs):
                break
        else:
            raise IntegrityError(f"samples between _seq {low} and {high} keep changing while they are exported; "
                                 "export again when the writers are done")
        yield Page([str(d["_id"]) for d in docs], records)
        low = high
