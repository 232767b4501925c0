"""What TensorLayer's 1.x ``TensorDB`` and 2.x ``TensorHub`` share on the warehouse.

TensorLayer stored every argument dict at the top level of a MongoDB
document and queried it there (``{'acc': ...}``, ``{'epoch': 3}``).  Here the
same dict becomes the warehouse document's user tags (top level, so the old
queries address the same fields), and its numbers are also recorded as
``metrics`` so ``best_parameters``, ``tensordb logs`` and ``tensordb compare``
see them.  The study (``studyID`` / ``project_name``) is the warehouse study;
those keys are taken out of stored fields and queries because the study
scope already applies them.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

import numpy as np

from tensordb_core.errors import InvalidDocument
from tensordb_core.store.scope import StudyScope, decode_datetimes
from tensordb_core.warehouse.handle import TensorDB as Warehouse
from tensordb_core.warehouse.handle import connect, seed_uri

#: Keys TensorLayer put into documents to name the study; the study scope stands for them here.
STUDY_KEYS = ("studyID", "project_name")
#: The tag that tells TensorHub's models and datasets apart from 1.x parameter sets in ``params``.
KIND = "tl_kind"
#: Fields of the warehouse's own bookkeeping that the old API never returned.
_SYSTEM = ("_study", "_seq", "_created", "_blob", "_code_blob", "metrics", "lineage")
_BAD_STUDY_CHARS = re.compile(r"[^A-Za-z0-9._:\-]")


def utcnow() -> datetime:
    """The naive UTC ``datetime`` TensorLayer stamped on documents (``datetime.utcnow()``, without its warning)."""
    return datetime.now(UTC).replace(tzinfo=None)


def open_warehouse(uri: str | None, study: str, *, ip: str, port: int, db_name: str, user_name: str | None,
                   password: str | None, **connect_kwargs: Any) -> Warehouse:
    """The warehouse at ``uri`` (any backend), or MongoDB at ``ip:port/db_name`` as TensorLayer connected."""
    if uri is None:
        uri = seed_uri(ip, port, db_name, user_name, password if user_name else None)
    return connect(uri, study, **connect_kwargs)


def default_project_name() -> str:
    """TensorHub's default project: the running script's name, made a valid study id."""
    name = os.path.basename(sys.argv[0] or "").split(".")[0]
    name = _BAD_STUDY_CHARS.sub("-", name).lstrip("._:-")[:128]
    return name or "default"


def legacy_query(args: Mapping[str, Any] | None) -> dict[str, Any]:
    """An old query dict for the warehouse: study keys dropped, ``f_id`` (the file id TensorLayer returned) is ``_id``."""
    if args is None:
        return {}
    if not isinstance(args, Mapping):
        raise InvalidDocument(f"the query must be a dict of fields, not {type(args).__name__}")
    out = {k: v for k, v in args.items() if k not in STUDY_KEYS}
    if "f_id" in out:
        out["_id"] = str(out.pop("f_id"))
    return out


def is_number(value: Any) -> bool:
    """A finite-or-not real number that is not a bool: what becomes a metric."""
    if isinstance(value, np.generic) and value.ndim == 0:
        value = value.item()
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def split_fields(args: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(tags, metrics)`` of an old argument dict: every field is a tag, the numbers are metrics too."""
    if args is None:
        return {}, {}
    if not isinstance(args, Mapping):
        raise InvalidDocument(f"the fields must be a dict, not {type(args).__name__}")
    tags = {str(k): _plain(v) for k, v in args.items() if k not in STUDY_KEYS and k != "_id"}
    metrics = {k: v for k, v in tags.items() if is_number(v)}
    return tags, metrics


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, so tags and metrics hold the same value."""
    if isinstance(value, np.generic) and value.ndim == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def take_step(tags: dict[str, Any]) -> int | None:
    """``step`` is a system field of parameters and logs; an integer ``step`` among the fields becomes it."""
    step = tags.pop("step", None)
    if step is None:
        return None
    if not is_number(step) or int(step) != step:
        raise InvalidDocument(f"'step' must be an integer (it orders the records), not {step!r}")
    return int(step)


def public(doc: Mapping[str, Any], study_key: str, study: str | None) -> dict[str, Any]:
    """A warehouse document as TensorLayer returned one: its fields, ``_id`` and the study key; datetimes decoded."""
    out = {k: decode_datetimes(v) for k, v in doc.items() if k not in _SYSTEM and k != KIND}
    out[study_key] = study
    return out


def delete(scope: StudyScope, collection: str, query: Mapping[str, Any]) -> int:
    """Delete the matching documents of this study only (the study scope ANDs the study in)."""
    scope.require_writable()
    return scope.index.delete_many(collection, scope.query(query))


def weights_of(network: Any) -> list[np.ndarray] | dict[str, np.ndarray]:
    """The arrays of a network: anything with ``all_weights``/``weights``/``all_params``/``Params``, a list or a dict."""
    if network is None:
        raise InvalidDocument("no network given: pass a model (with all_weights or weights), a list or a dict of arrays")
    if not isinstance(network, (list, tuple, Mapping)):
        for attr in ("all_weights", "weights", "all_params", "Params"):
            if hasattr(network, attr):
                network = getattr(network, attr)
                break
        else:
            if callable(getattr(network, "get_weights", None)):
                network = network.get_weights()
            else:
                raise InvalidDocument(f"{type(network).__name__} has no weights: pass a model with all_weights "
                                      f"or weights, a list or a dict of arrays")
    if isinstance(network, Mapping):
        return {str(k): as_array(v) for k, v in network.items()}
    if isinstance(network, (list, tuple)):
        return [as_array(v) for v in network]
    raise InvalidDocument(f"weights must be a list or a dict of arrays, not {type(network).__name__}")


def as_array(value: Any) -> np.ndarray:
    """A tensor/variable/array-like as a numpy array (``.numpy()`` for TensorFlow and PyTorch tensors)."""
    if hasattr(value, "numpy") and callable(value.numpy):
        value = value.numpy()
    elif hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as exc:  # ragged nesting and the like: numpy raises ValueError or TypeError
        raise InvalidDocument(f"cannot store {type(value).__name__} as an array: {exc}") from exc


@dataclass
class InsertResult:
    """What TensorLayer's log methods returned (PyMongo's ``InsertOneResult``): acknowledged, and the id if known."""

    acknowledged: bool = True
    inserted_id: Any = None


class StoredModel:
    """A model found by ``find_top_model``: its weights, its architecture config and its document's fields.

    TensorLayer rebuilt a TensorFlow network here; this returns the parts, so
    no stored architecture is executed.  Every field of the document is also an
    attribute with a leading underscore, as the original promised
    (``net._accuracy``).
    """

    def __init__(self, weights: list[np.ndarray] | dict[str, np.ndarray], doc: Mapping[str, Any]) -> None:
        self.all_weights = weights
        self.weights = weights
        self.config = doc.get("architecture")
        self.doc = dict(doc)
        for key, value in doc.items():
            if not key.startswith("_"):
                setattr(self, f"_{key}", value)

    def __repr__(self) -> str:
        return f"StoredModel(model_name={self.doc.get('model_name')!r}, arrays={len(self.all_weights)})"


class WarehouseBacked:
    """What both legacy classes are underneath: a warehouse handle ``db`` they close, and a context manager."""

    db: Warehouse

    def close(self) -> None:
        """Write buffered logs and release the connection."""
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
