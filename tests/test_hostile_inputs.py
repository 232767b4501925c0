"""Bad arguments to the public API: a typed TensorDBError every time, and the warehouse unchanged (issue 20, item 7).

Each case below raised a raw ValueError/TypeError/KeyError/OSError, or was
silently accepted (``study=""`` became "default", ``import_data({"a": 1})``
stored the string "a", ``chunk_bytes=0``, ``lease_s <= 0``, ``skip=-5``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.errors import InvalidArgument, InvalidDocument, InvalidQuery, InvalidURI, TensorDBError

X = np.zeros((3, 2), np.float32)

CASES = {
    "y as a dict": (lambda db: db.import_data(X, {"a": 1}), InvalidDocument),
    "y as a set": (lambda db: db.import_data(X, {1, 2, 3}), InvalidDocument),
    "X as a dict": (lambda db: db.import_data({"a": 1}), InvalidDocument),
    "chunk_bytes as text": (lambda db: db.import_data(X, [1, 2, 3], chunk_bytes="x"), InvalidDocument),
    "chunk_bytes zero": (lambda db: db.import_data(X, [1, 2, 3], chunk_bytes=0), InvalidDocument),
    "unknown import_data argument": (lambda db: db.import_data(X, [1, 2, 3], bogus=1), InvalidArgument),
    "unknown data_generator argument": (lambda db: db.data_generator({}, bogus=1), InvalidArgument),
    "query as a string": (lambda db: db.find_data("str"), InvalidQuery),
    "negative skip": (lambda db: len(db.find_data(skip=-5)), InvalidQuery),
    "max_attempts as text": (lambda db: db.push_job({"a": 1}, max_attempts="x"), InvalidDocument),
    "priority NaN": (lambda db: db.push_job({"a": 1}, priority=math.nan), InvalidDocument),
    "lease of 0 s": (lambda db: db.pop_job(lease_s=0), InvalidArgument),
    "negative lease": (lambda db: db.pop_job(lease_s=-1), InvalidArgument),
    "step as text": (lambda db: db.train_log({"loss": 1.0}, step="x"), InvalidArgument),
    "alias time as text": (lambda db: db.get_alias("a", at="x"), InvalidQuery),
}


def snapshot(db: tdb.TensorDB) -> dict[str, int]:
    db.flush()
    return {c: db.index.count(c, {}) for c in ("data", "jobs", "logs", "aliases", "params")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_arguments_are_typed_and_change_nothing(db, case) -> None:
    call, error = CASES[case]
    before = snapshot(db)
    with pytest.raises(error) as info:
        call(db)
    assert isinstance(info.value, TensorDBError)
    assert snapshot(db) == before


@pytest.mark.parametrize("uri", ["\x00", "/tmp/" + "x" * 5000, "file:///dev/null"])
def test_unusable_warehouse_paths_are_invalid_uris(uri) -> None:
    with pytest.raises(InvalidURI):
        tdb.connect(uri)


def test_an_empty_study_is_refused_not_renamed(tmp_path) -> None:
    with pytest.raises(InvalidDocument):
        tdb.connect(tmp_path / "w", study="")
