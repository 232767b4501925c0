"""Two warehouses every export test reads (module-scoped: built once, never written by a test).

``xy``: 150 (X, y) samples (float32 4x3, an int label, a split tag and a
per-sample ``n`` tag).  ``records``: COCO-like records (a JPEG image of
varying size, a PNG mask, ragged int tokens, opaque bytes, a fixed float32
embedding, JSON fields) from :func:`tensordb_core.testing.warehouse_checks.sample_records`.
``expected`` gives what the warehouse holds, read through its own cursor, to
compare each export with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.testing.warehouse_checks import sample_records


@dataclass
class Stored:
    """A warehouse and what it holds: ids and records (media as stored bytes) in ``_seq`` order."""

    db: Any
    ids: list[str]
    records: list[dict[str, Any]]
    X: np.ndarray | None = None
    y: np.ndarray | None = None


def expected(db: Any, query: dict[str, Any] | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    cursor = db.find_data(query, sort=[("_seq", 1)])
    return [d["_id"] for d in cursor], cursor.records(decode=False)


@pytest.fixture(scope="module")
def xy(tmp_path_factory):
    rng = np.random.default_rng(7)
    X = rng.random((150, 4, 3)).astype(np.float32)
    y = rng.integers(0, 10, 150)
    db = tdb.connect(tmp_path_factory.mktemp("xy") / "w", study="xy")
    db.import_data(X, y, tags=[{"split": "test" if i % 5 == 0 else "train", "n": i} for i in range(150)])
    ids, records = expected(db)
    yield Stored(db, ids, records, X, y)
    db.close()


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    rng = np.random.default_rng(3)
    made = sample_records(40)
    for rec in made:
        rec["emb"] = rng.random(8).astype(np.float32)
    db = tdb.connect(tmp_path_factory.mktemp("records") / "w", study="rec")
    db.import_records(made, tags={"split": "train"}, encode={"mask": "png"})
    ids, stored = expected(db)
    yield Stored(db, ids, stored)
    db.close()
