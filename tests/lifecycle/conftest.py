"""Lifecycle tests run on every backend: memory, a local directory (SQLite + files) and MongoDB (mongoeco + GridFS).

The MongoDB server is the Mongo backend tests' own launcher (a missing server
is an error with the install command, never a skip).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import tensordb_core as tdb
from serverkit import mongo_kit


@pytest.fixture(scope="session")
def lifecycle_mongo() -> Iterator[str]:
    kit = mongo_kit()
    server = kit.launch("mongoeco-lifecycle")
    try:
        yield f"mongodb://127.0.0.1:{server.port}/l_{{}}?directConnection=true&write_batch_size={kit.TEST_WRITE_BATCH}"
    finally:
        server.stop()


@pytest.fixture(params=["memory", "dir", "mongo"])
def lifecycle_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh warehouse on each backend."""
    if request.param == "memory":
        return f"memory://lifecycle-{uuid.uuid4().hex}"
    if request.param == "dir":
        return str(tmp_path / "warehouse")
    return request.getfixturevalue("lifecycle_mongo").format(uuid.uuid4().hex[:12])


@pytest.fixture
def db(lifecycle_uri: str) -> Iterator[tdb.TensorDB]:
    with tdb.connect(lifecycle_uri, study="s1") as handle:
        yield handle
