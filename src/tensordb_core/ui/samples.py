"""The data browser's pages: samples matching a query, with tags, labels, array summaries and thumbnail links.

A page reads its documents once (tags, labels, where each binary field is)
and its fields through the same record reader training uses
(``find_data(...).records(decode=False)``), so what the browser shows is what
a data loader gets.  Image bytes never go into the JSON: each image field
(a stored JPEG/PNG, or an image-shaped array) gets a thumbnail URL instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import numpy as np

from tensordb_core.errors import DocumentNotFound, InvalidQuery, TensorDBError
from tensordb_core.format.media import IMAGE_CODECS
from tensordb_core.ui.api import clean
from tensordb_core.ui.thumbnails import array_to_png, encoded_to_png, looks_like_image, summarise
from tensordb_core.warehouse.handle import TensorDB

#: Samples per page at most.
MAX_PAGE = 200
_ORDER = [("_seq", 1)]


def _binary_fields(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Field name → its stored description (codec, dtype, shape) for a record or an (X, y) sample."""
    fields = dict(doc.get("_fields") or {})
    if isinstance(doc.get("_x"), Mapping):
        fields["x"] = doc["_x"]
    if isinstance(doc.get("_y"), Mapping):
        fields["y"] = doc["_y"]
    return fields


def _find(db: TensorDB, query: Mapping[str, Any] | None, dataset: str | None, **window: Any) -> Any:
    """``db.find_data`` over the live samples, or over dataset version ``dataset`` (its pinned tags and labels)."""
    return db.find_data(query, **window) if dataset is None else db.find_data(query, dataset=dataset, **window)


def _read_arrays(cursor: Any, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The page's array fields decoded (for their min/max), one dict per document.

    Only arrays are read: an image's codec, shape and dtype are in its
    document and its pixels come through the thumbnail endpoint, so a page
    of 24 multi-megabyte JPEGs reads no image bytes at all.
    """
    wanted = sorted({name for doc in docs for name, desc in _binary_fields(doc).items()
                     if desc.get("codec") not in (*IMAGE_CODECS, "bytes")})
    if not wanted:
        return [{} for _ in docs]
    try:
        return cursor.records(fields=wanted, decode=False)
    except TensorDBError:  # samples of the page hold different fields: read each one's own
        return cursor.records(decode=False)


def sample_page(db: TensorDB, query: Mapping[str, Any] | None, page: int, per_page: int,
                dataset: str | None = None) -> dict[str, Any]:
    """One page of samples: ``{total, page, per_page, dataset, samples: [{id, tags, label, fields}]}``."""
    if page < 1 or not 1 <= per_page <= MAX_PAGE:
        raise InvalidQuery(f"page starts at 1 and per_page is 1..{MAX_PAGE}, not page={page}, per_page={per_page}")
    cursor = _find(db, query, dataset, sort=_ORDER, limit=per_page, skip=(page - 1) * per_page)
    total = len(_find(db, query, dataset))
    docs = list(cursor)
    records = _read_arrays(cursor, docs)
    base = f"/api/studies/{quote(db.study or '', safe='')}/data/"
    samples = []
    for doc, record in zip(docs, records, strict=True):
        fields: dict[str, Any] = {}
        for name, desc in _binary_fields(doc).items():
            # Payload fields never change after import (a dataset version pins tags and labels, sharing the
            # chunks), so a version's sample shows the live sample's image.
            thumb = f"{base}{quote(doc['_id'], safe='')}/thumbnail/{quote(name, safe='')}"
            value = record.get(name)
            if desc.get("codec") in IMAGE_CODECS:
                fields[name] = {"type": "image", "codec": desc.get("codec"), "shape": desc.get("shape"),
                                "dtype": desc.get("dtype"), "thumbnail": thumb}
            elif desc.get("codec") == "bytes":
                fields[name] = {"type": "bytes", "size": desc.get("length")}
            elif isinstance(value, np.ndarray):
                fields[name] = {"type": "array", **summarise(value)}
                if looks_like_image(value.shape):
                    fields[name]["thumbnail"] = thumb
            else:
                fields[name] = {"type": "array", "shape": desc.get("shape"), "dtype": desc.get("dtype")}
        tags = {k: v for k, v in doc.items() if not k.startswith("_") and k not in fields and k != "label"}
        samples.append(clean({"id": doc["_id"], "created": doc.get("_created"), "label": doc.get("label"),
                              "tags": tags, "fields": fields}))
    return {"total": total, "page": page, "per_page": per_page, "dataset": dataset, "samples": samples}


def thumbnail(db: TensorDB, sample_id: str, field: str) -> bytes:
    """The PNG thumbnail of one image field of one sample, or DocumentNotFound / CodecError saying why not."""
    cursor = db.find_data({"_id": sample_id}, limit=1)
    docs = list(cursor)
    if not docs:
        raise DocumentNotFound(f"no sample {sample_id!r} in study {db.study!r}")
    stored = _binary_fields(docs[0])
    if field not in stored:
        raise DocumentNotFound(f"sample {sample_id!r} has no binary field {field!r} (it has {sorted(stored)})")
    value = cursor.records(fields=[field], decode=False)[0][field]
    if stored[field].get("codec") in IMAGE_CODECS:
        return encoded_to_png(bytes(value))
    return array_to_png(value)
