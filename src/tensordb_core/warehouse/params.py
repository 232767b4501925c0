"""Model parameters per step/epoch, with metrics and lineage, so "the best model so far" is one query.

The arrays go into one archive blob (:func:`codec.encode_archive`, no pickle);
the document keeps ``metrics``, user tags and ``lineage`` (run, job,
architecture, data query and the data snapshot it read).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tensordb_core.errors import DocumentNotFound, InvalidDocument, InvalidQuery
from tensordb_core.format.codec import decode_archive, encode_archive
from tensordb_core.store.scope import StudyScope, check_json_value, check_key, check_tags
from tensordb_core.warehouse.arguments import check_name, query_dict

COLLECTION = "params"
RESERVED = frozenset({"metrics", "lineage", "step", "scoring"})  # scoring: evaluator claims
NEWEST_FIRST = [("_seq", -1)]


def clean_metrics(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """Metrics as JSON numbers; NaN/inf (a diverged loss) are kept as the strings "nan"/"inf"/"-inf".

    Checked whole when called (names too), so a buffered log record can never fail later, at flush.
    """
    if metrics is not None and not isinstance(metrics, Mapping):
        raise InvalidDocument(f"metrics must be a dict of name -> number, not {type(metrics).__name__}")
    out: dict[str, Any] = {}
    for name, value in (metrics or {}).items():
        check_key(name, "metrics")
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        out[name] = check_json_value(value, f"metrics.{name}")
    return out


def save_parameters(scope: StudyScope, params: Mapping[str, Any] | Sequence[np.ndarray], *,
                    metrics: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None,
                    step: int | None = None, lineage: Mapping[str, Any] | None = None) -> str:
    """Store a parameter set; returns its id."""
    scope.require_writable()
    if step is not None and (type(step) is not int or not 0 <= step < 2**63):
        raise InvalidDocument(f"step must be an int from 0 to 2**63-1 (or None), not {step!r}")
    fields = check_tags(tags, RESERVED)
    cleaned, traced = clean_metrics(metrics), check_json_value(dict(lineage or {}), "lineage")
    blob = encode_archive(params)
    with scope.writing_blobs() as put:
        doc = scope.new_doc(_blob={"key": put(blob), "size": len(blob)}, metrics=cleaned, lineage=traced, **fields)
        if step is not None:
            doc["step"] = int(step)
        return scope.index.insert_many(COLLECTION, [doc])[0]


def load(scope: StudyScope, doc: Mapping[str, Any] | str) -> dict[str, np.ndarray] | list[np.ndarray]:
    """The arrays of a parameter set of this study (a document or its id), verified against their content address.

    The document is looked up again by ``_id`` *within the study*: a document
    taken from another study (or edited by the caller) cannot make this handle
    read a blob its study does not reference.
    """
    doc_id = doc.get("_id") if isinstance(doc, Mapping) else doc
    if not isinstance(doc_id, str):
        raise InvalidDocument("load_parameters takes a parameter document (with its _id) or its id")
    for own in scope.index.find(COLLECTION, scope.query({"_id": doc_id}), limit=1):
        return _decode(scope, own)
    raise DocumentNotFound(f"no parameter set {doc_id!r} in study {scope.study!r}")


def _decode(scope: StudyScope, doc: Mapping[str, Any]) -> dict[str, np.ndarray] | list[np.ndarray]:
    return decode_archive(scope.get_blob(doc["_blob"]["key"]))


def find_parameters(scope: StudyScope, query: Mapping[str, Any] | None = None, *, sort: Any = None):
    """``(params, doc)`` of the first match (newest first unless ``sort``), or ``(None, None)``."""
    for doc in scope.index.find(COLLECTION, scope.query(query), sort=sort or NEWEST_FIRST, limit=1):
        return _decode(scope, doc), doc
    return None, None


def numeric(field: str) -> dict[str, Any]:
    """A portable filter matching documents where ``field`` holds a number (not a string/bool/missing)."""
    return {"$or": [{field: {"$gte": 0}}, {field: {"$lt": 0}}]}


def best_parameters(scope: StudyScope, metric: str, mode: str = "max", query: Mapping[str, Any] | None = None):
    """``(params, doc)`` with the best numeric ``metrics.<metric>``, ties to the oldest; ``(None, None)`` if none."""
    if mode not in ("max", "min"):
        raise InvalidQuery(f"mode must be 'max' or 'min', not {mode!r}")
    field = f"metrics.{check_key(check_name(metric, 'metric'), 'metric')}"
    q = {"$and": [numeric(field), query_dict(query)]} if query else numeric(field)
    return find_parameters(scope, q, sort=[(field, -1 if mode == "max" else 1)])


def record_metrics(scope: StudyScope, param_id: str, metrics: Mapping[str, Any]) -> None:
    """Add metrics to a saved parameter set (an evaluator's scores)."""
    scope.require_writable()
    cleaned = clean_metrics(metrics)
    if not cleaned:
        raise InvalidDocument("no metrics given")
    n = scope.index.update_many(COLLECTION, scope.query({"_id": param_id}),
                                {"$set": {f"metrics.{k}": v for k, v in cleaned.items()}})
    if n != 1:
        raise DocumentNotFound(f"no parameter set {param_id!r} in study {scope.study!r}")
