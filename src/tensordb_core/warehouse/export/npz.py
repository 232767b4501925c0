"""npz: one numpy array per field in one ``.npz`` file, written in bounded memory, read with ``np.load``.

Why no pickled object arrays: ``np.load`` refuses them unless
the reader opts in to unpickling, and a file that needs that is a file a careful user
will not open.  So every field becomes plain arrays (docs/export.md):

* a fixed-shape array field → ``NAME`` of shape ``(N, *shape)``;
* a ragged array field, or one missing in some samples → ``NAME`` (every
  sample's values, flattened and concatenated), ``NAME_offsets`` (``N + 1``
  int64: sample ``i`` is ``NAME[off[i]:off[i+1]]``) and ``NAME_shapes``
  (``(N, ndim)`` int64, -1 where a sample lacks an axis or the field);
* an encoded image or bytes field → ``NAME`` (uint8, every file's bytes
  concatenated, byte for byte as stored) and ``NAME_offsets``;
* a JSON field with a number or bool in every sample → ``NAME`` int64 /
  float64 / bool; strings → fixed-width unicode ``<U``; anything else
  (lists, dicts, nulls, mixed) → ``<U`` JSON text;
* ``_id`` → the sample ids, ``_schema.json`` → what each field became.

Each array is appended to its own scratch file as pages arrive, then copied
into the zip (uncompressed members, like ``np.savez``) with its ``.npy``
header: memory holds one page, never the whole export.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from tensordb_core.warehouse.export.source import FieldSpec, Page, Schema, as_text

COPY_BLOCK = 1 << 20
_JSON_DTYPES = {"int": np.int64, "float": np.float64, "bool": np.bool_}


class _Column:
    """One ``.npy`` member being written: its dtype, its trailing shape, and rows appended to a scratch file."""

    def __init__(self, scratch: Path, name: str, dtype: np.dtype, tail: tuple[int, ...] = ()) -> None:
        self.name, self.dtype, self.tail = name, np.dtype(dtype), tail
        self.path = scratch / f"{len(list(scratch.iterdir()))}.raw"
        self.file: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed in finish()
        self.rows = 0

    def append(self, values: np.ndarray) -> None:
        arr = np.ascontiguousarray(values, dtype=self.dtype)
        self.file.write(arr.tobytes())
        self.rows += arr.shape[0] if arr.ndim else 1

    def finish(self, archive: zipfile.ZipFile) -> None:
        self.file.close()
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (self.rows, *self.tail)}
        with archive.open(f"{self.name}.npy", "w", force_zip64=True) as member, open(self.path, "rb") as raw:
            np.lib.format.write_array_header_2_0(member, header)
            shutil.copyfileobj(raw, member, COPY_BLOCK)


class _Field:
    """How one field's values become columns (see the module docstring)."""

    def __init__(self, spec: FieldSpec, n: int, scratch: Path) -> None:
        self.spec = spec
        self.columns: list[_Column] = []
        if spec.fixed(n):
            self.layout = "dense"
            self.columns.append(_Column(scratch, spec.name, np.dtype(spec.dtype), tuple(spec.shape or ())))
        elif spec.kind == "array":
            self.layout = "ragged"
            self.columns += [_Column(scratch, spec.name, np.dtype(spec.dtype)),
                             _Column(scratch, f"{spec.name}_shapes", np.dtype(np.int64), (max(spec.ndim, 1),))]
        elif spec.kind in ("image", "bytes"):
            self.layout = "bytes"
            self.columns.append(_Column(scratch, spec.name, np.dtype(np.uint8)))
        elif spec.json_type in _JSON_DTYPES and spec.complete(n):
            self.layout = "scalar"
            self.columns.append(_Column(scratch, spec.name, np.dtype(_JSON_DTYPES[spec.json_type])))
        else:
            self.layout = "text" if spec.json_type == "str" and spec.complete(n) else "json"
            self.columns.append(_Column(scratch, spec.name, np.dtype(f"<U{spec.text_len}")))
        if self.layout in ("ragged", "bytes"):
            self.offsets = _Column(scratch, f"{spec.name}_offsets", np.dtype(np.int64))
            self.offsets.append(np.zeros(1, dtype=np.int64))
            self.end = 0
            self.columns.append(self.offsets)

    def add(self, values: list[Any]) -> None:
        col = self.columns[0]
        if self.layout in ("dense", "scalar"):
            col.append(np.stack([np.asarray(v) for v in values]) if self.layout == "dense" else np.asarray(values))
        elif self.layout in ("text", "json"):
            col.append(np.asarray(["null" if v is None and self.layout == "json" else as_text(v) if v is not None
                                   else "" for v in values], dtype=col.dtype))
        else:
            flat = [np.frombuffer(v, np.uint8) if isinstance(v, (bytes, bytearray, memoryview))
                    else np.asarray(v).ravel() for v in values if v is not None]
            if self.layout == "ragged":
                width = self.columns[1].tail[0]
                shapes = np.full((len(values), width), -1, dtype=np.int64)
                for i, v in enumerate(values):
                    if v is not None:
                        shape = np.shape(v)
                        shapes[i, :len(shape)] = shape
                self.columns[1].append(shapes)
            if flat:
                col.append(np.concatenate(flat))
            lengths = np.array([0 if v is None else (len(v) if isinstance(v, (bytes, bytearray, memoryview))
                                                       else np.size(v)) for v in values], dtype=np.int64)
            ends = self.end + np.cumsum(lengths)
            self.offsets.append(ends)
            self.end = int(ends[-1]) if len(ends) else self.end

    def describe(self) -> dict[str, Any]:
        return {**self.spec.describe(), "layout": self.layout, "arrays": [c.name for c in self.columns]}


def write(stage: Path, pages: Iterable[Page], schema: Schema, options: dict[str, Any]) -> None:
    """Write ``stage`` (a file path) as an ``.npz`` holding every field's arrays and ``_id``."""
    scratch = stage.parent / "npz-scratch"
    scratch.mkdir()
    columns: list[_Column] = []
    try:
        ids = _Column(scratch, "_id", np.dtype(f"<U{schema.id_len}"))
        fields = [_Field(spec, schema.count, scratch) for spec in schema.fields.values()]
        columns = [ids, *(col for f in fields for col in f.columns)]
        for page in pages:
            ids.append(np.asarray(page.ids, dtype=ids.dtype))
            for f in fields:
                f.add([rec.get(f.spec.name) for rec in page.records])
        with zipfile.ZipFile(stage, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for col in columns:
                col.finish(archive)
            layout = {"samples": ids.rows, "fields": {f.spec.name: f.describe() for f in fields}}
            archive.writestr("_schema.json", json.dumps(layout, indent=1))
    finally:
        for col in columns:
            col.file.close()
        shutil.rmtree(scratch, ignore_errors=True)
