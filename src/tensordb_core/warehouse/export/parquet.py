"""Parquet: one file, one column per field, written row group by row group with pyarrow.

What each field becomes (docs/export.md):

* a fixed-shape array → Arrow's canonical fixed-shape tensor extension
  (``arrow.fixed_shape_tensor``, storage a FixedSizeList), so pyarrow reads it
  back as a tensor column (``column.combine_chunks().to_numpy_ndarray()``);
  a 0-d array → a plain numeric column;
* a ragged array, or one missing in some samples → ``list<dtype>`` of the
  flattened values plus ``NAME_shape`` (``list<int64>``), null where absent;
* an encoded image or bytes field → ``binary``, the file bytes as stored;
* a JSON field → ``int64`` / ``double`` / ``bool`` / ``string``, lists,
  dicts and mixed types as JSON text (``string``); null where absent;
* ``_id`` → the sample id (``string``).

Each column's field metadata ``tensordb`` holds the field's description
(kind, dtype, shape, codec) as JSON, so a reader knows a ``binary`` column
holds JPEG files.  Rows are buffered to ``row_group_size`` rows or
:data:`ROW_GROUP_BYTES`, whichever comes first: memory holds one row group.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tensordb_core.warehouse.export.source import FieldSpec, Page, Schema, as_text

#: A row group is written once its buffered payload passes this many bytes, even short of row_group_size rows.
ROW_GROUP_BYTES = 64 << 20
_JSON_TYPES = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string(), "json": pa.string()}


def _layout(spec: FieldSpec, n: int) -> str:
    if spec.kind == "array":
        if not spec.fixed(n):
            return "ragged"
        return "scalar" if not spec.shape else "tensor"
    return "binary" if spec.kind in ("image", "bytes") else "json"


def arrow_fields(spec: FieldSpec, n: int) -> list[pa.Field]:
    """The Arrow field(s) one export field becomes (a ragged array also gets its ``NAME_shape``)."""
    meta = {"tensordb": json.dumps(spec.describe())}
    layout = _layout(spec, n)
    if layout in ("scalar", "tensor", "ragged"):
        value = pa.from_numpy_dtype(np.dtype(spec.dtype))
        if layout == "scalar":
            return [pa.field(spec.name, value, nullable=False, metadata=meta)]
        if layout == "tensor":
            return [pa.field(spec.name, pa.fixed_shape_tensor(value, list(spec.shape or ())), nullable=False,
                             metadata=meta)]
        return [pa.field(spec.name, pa.list_(value), metadata=meta),
                pa.field(f"{spec.name}_shape", pa.list_(pa.int64()))]
    if layout == "binary":
        return [pa.field(spec.name, pa.binary(), metadata=meta)]
    return [pa.field(spec.name, _JSON_TYPES[spec.json_type or "json"], metadata=meta)]


def arrow_columns(spec: FieldSpec, n: int, values: list[Any]) -> list[pa.Array]:
    """One page's values of a field as the Arrow array(s) :func:`arrow_fields` declares."""
    layout = _layout(spec, n)
    if layout == "scalar":
        return [pa.array(np.asarray([np.asarray(v).item() for v in values], dtype=np.dtype(spec.dtype)))]
    if layout == "tensor":
        block = np.ascontiguousarray(np.stack([np.asarray(v) for v in values]))
        return [pa.FixedShapeTensorArray.from_numpy_ndarray(block)]
    if layout == "ragged":
        value = pa.from_numpy_dtype(np.dtype(spec.dtype))
        flat = [None if v is None else np.asarray(v).ravel() for v in values]
        return [pa.array(flat, type=pa.list_(value)),
                pa.array([None if v is None else list(np.shape(v)) for v in values], type=pa.list_(pa.int64()))]
    if layout == "binary":
        return [pa.array([None if v is None else bytes(v) for v in values], type=pa.binary())]
    if spec.json_type == "json":
        return [pa.array([None if v is None else as_text(v) for v in values], type=pa.string())]
    return [pa.array(values, type=_JSON_TYPES[spec.json_type or "json"])]


def arrow_schema(schema: Schema) -> pa.Schema:
    """The export's Arrow schema: ``_id`` then every field's column(s)."""
    fields = [pa.field("_id", pa.string(), nullable=False)]
    for spec in schema.fields.values():
        fields += arrow_fields(spec, schema.count)
    return pa.schema(fields, metadata={"tensordb": json.dumps({"samples": schema.count})})


def record_batch(schema: Schema, arrow: pa.Schema, page: Page) -> pa.RecordBatch:
    """One page as a record batch of ``arrow``."""
    columns = [pa.array(page.ids, type=pa.string())]
    for spec in schema.fields.values():
        columns += arrow_columns(spec, schema.count, [rec.get(spec.name) for rec in page.records])
    return pa.RecordBatch.from_arrays(columns, schema=arrow)


def write(stage: Path, pages: Iterable[Page], schema: Schema, options: dict[str, Any]) -> None:
    """Write ``stage`` as one Parquet file of row groups of ``options["row_group_size"]`` rows (or fewer)."""
    arrow = arrow_schema(schema)
    rows_per_group = options["row_group_size"]
    buffered: list[pa.RecordBatch] = []
    rows = nbytes = 0
    with pq.ParquetWriter(stage, arrow, compression=options["compression"]) as writer:
        for page in pages:
            batch = record_batch(schema, arrow, page)
            buffered.append(batch)
            rows += batch.num_rows
            nbytes += batch.nbytes
            while rows >= rows_per_group or nbytes >= ROW_GROUP_BYTES:
                table = pa.Table.from_batches(buffered, schema=arrow)
                size = min(rows_per_group, rows)
                writer.write_table(table.slice(0, size), row_group_size=size)
                rest = table.slice(size)
                buffered, rows = rest.to_batches(), rest.num_rows
                nbytes = rest.nbytes if rows else 0
        if rows:
            writer.write_table(pa.Table.from_batches(buffered, schema=arrow), row_group_size=rows)
