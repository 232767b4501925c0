"""Hugging Face ``datasets``: a dataset saved with ``Dataset.save_to_disk``, read back with ``datasets.load_from_disk``.

What each field becomes (its ``Features``, docs/export.md):

* an encoded image → ``Image()``, stored as the file bytes (the feature's
  ``{"bytes", "path"}`` storage), so it stays encoded on disk and
  ``datasets`` decodes it to a PIL image only when a row is read
  (``ds.cast_column(name, Image(decode=False))`` gives the bytes back);
* a fixed-shape array → ``Value`` (0-d), ``List(Value, length=n)`` (1-d) or
  ``Array2D`` ... ``Array5D``; a ragged array, one missing in some samples or
  one of more than 5 axes → ``List(Value)`` of the flattened values plus
  ``NAME_shape``;
* opaque bytes → ``Value("binary")``;
* a JSON field → ``Value`` int64 / float64 / bool / string, lists, dicts
  and mixed types as JSON text; ``_id`` → ``Value("string")``.

The rows are written page by page with ``datasets``' own ``ArrowWriter`` (the
writer behind ``Dataset.from_generator``) into one Arrow file beside the
output, which ``Dataset.from_file`` memory-maps and ``save_to_disk`` shards
into place: memory holds one page, the disk briefly two copies.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from datasets import (
    Array2D,
    Array3D,
    Array4D,
    Array5D,
    Dataset,
    Features,
    Image,
    List,
    Value,
    are_progress_bars_disabled,
    disable_progress_bars,
    enable_progress_bars,
)
from datasets.arrow_writer import ArrowWriter

from tensordb_core.warehouse.export.source import FieldSpec, Page, Schema, as_text

_ARRAYS = {2: Array2D, 3: Array3D, 4: Array4D, 5: Array5D}
_JSON_VALUES = {"int": "int64", "float": "float64", "bool": "bool", "str": "string", "json": "string"}


def _layout(spec: FieldSpec, n: int) -> str:
    if spec.kind == "array":
        return "dense" if spec.fixed(n) and len(spec.shape or ()) <= 5 else "ragged"
    return {"image": "image", "bytes": "bytes"}.get(spec.kind, "json")


def features(schema: Schema) -> Features:
    """The export's ``Features``: ``_id`` then every field's column(s)."""
    out: dict[str, Any] = {"_id": Value("string")}
    for spec in schema.fields.values():
        layout = _layout(spec, schema.count)
        if layout == "dense":
            value, shape = np.dtype(spec.dtype).name, tuple(spec.shape or ())
            out[spec.name] = (Value(value) if not shape else List(Value(value), length=shape[0]) if len(shape) == 1
                              else _ARRAYS[len(shape)](shape=shape, dtype=value))
        elif layout == "ragged":
            out[spec.name] = List(Value(np.dtype(spec.dtype).name))
            out[f"{spec.name}_shape"] = List(Value("int64"))
        elif layout == "image":
            out[spec.name] = Image()
        elif layout == "bytes":
            out[spec.name] = Value("binary")
        else:
            out[spec.name] = Value(_JSON_VALUES[spec.json_type or "json"])
    return Features(out)


def _columns(schema: Schema, page: Page) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {"_id": list(page.ids)}
    for spec in schema.fields.values():
        values = [rec.get(spec.name) for rec in page.records]
        layout = _layout(spec, schema.count)
        if layout == "dense":
            cols[spec.name] = [np.asarray(v) if np.ndim(v) else np.asarray(v).item() for v in values]
        elif layout == "ragged":
            cols[spec.name] = [None if v is None else np.asarray(v).ravel() for v in values]
            cols[f"{spec.name}_shape"] = [None if v is None else list(np.shape(v)) for v in values]
        elif layout == "image":
            cols[spec.name] = [None if v is None else {"bytes": bytes(v), "path": None} for v in values]
        elif layout == "bytes":
            cols[spec.name] = [None if v is None else bytes(v) for v in values]
        elif spec.json_type == "json":
            cols[spec.name] = [None if v is None else as_text(v) for v in values]
        else:
            cols[spec.name] = values
    return cols


def write(stage: Path, pages: Iterable[Page], schema: Schema, options: dict[str, Any]) -> None:
    """Write ``stage`` (a directory) as a ``save_to_disk`` dataset of the exported samples."""
    scratch = stage.parent / "hf-rows.arrow"
    feats = features(schema)
    writer = ArrowWriter(features=feats, path=str(scratch))
    try:
        for page in pages:
            writer.write_batch(_columns(schema, page))
        writer.finalize()
    finally:
        writer.close()
    dataset = Dataset.from_file(str(scratch))
    quiet = not are_progress_bars_disabled()
    if quiet:  # the caller's progress callback is the one progress report; datasets' own bar would be a second
        disable_progress_bars()
    try:
        dataset.save_to_disk(str(stage))
    finally:
        if quiet:
            enable_progress_bars()
        del dataset
        scratch.unlink(missing_ok=True)
