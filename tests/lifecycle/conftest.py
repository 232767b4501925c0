"""Lifecycle tests run on every backend: memory, a local directory (SQLite + files) and MongoDB (mongoeco + GridFS).

The MongoDB server is the Mongo backend tests' own launcher (a missing server
is an error with the install command, never a skip).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tensordb_core as tdb
from serverkit import every_backend_fixtures

lifecycle_mongo, lifecycle_uri = every_backend_fixtures("lifecycle")


@pytest.fixture
def db(lifecycle_uri: str) -> Iterator[tdb.TensorDB]:
    with tdb.connect(lifecycle_uri, study="s1") as handle:
        yield handle
