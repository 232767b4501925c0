"""Tracking tests run on every backend: memory, a local directory (SQLite + files) and MongoDB (mongoeco + GridFS).

The MongoDB server is the Mongo backend tests' own launcher (a missing server
is an error with the install command, never a skip).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tensordb_core as tdb
from serverkit import every_backend_fixtures

TESTS = Path(__file__).resolve().parents[1]


tracking_mongo, tracking_uri = every_backend_fixtures("tracking")


@pytest.fixture
def tdb_handle(tracking_uri: str) -> Iterator[tdb.TensorDB]:
    with tdb.connect(tracking_uri, study="s1") as handle:
        yield handle
