"""Tracking tests run on every backend: memory, a local directory (SQLite + files) and MongoDB (mongoeco + GridFS).

The MongoDB server is the Mongo backend tests' own launcher (a missing server
is an error with the install command, never a skip).
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tensordb_core as tdb

TESTS = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tracking_mongo() -> Iterator[str]:
    kit = _load("mongo_kit_for_tracking", TESTS / "backends" / "mongo" / "conftest.py")
    server = kit.launch("mongoeco-tracking")
    try:
        yield f"mongodb://127.0.0.1:{server.port}/t_{{}}?directConnection=true&write_batch_size={kit.TEST_WRITE_BATCH}"
    finally:
        server.stop()


@pytest.fixture(params=["memory", "dir", "mongo"])
def tracking_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh warehouse on each backend."""
    if request.param == "memory":
        return f"memory://tracking-{uuid.uuid4().hex}"
    if request.param == "dir":
        return str(tmp_path / "warehouse")
    return request.getfixturevalue("tracking_mongo").format(uuid.uuid4().hex[:12])


@pytest.fixture
def tdb_handle(tracking_uri: str) -> Iterator[tdb.TensorDB]:
    with tdb.connect(tracking_uri, study="s1") as handle:
        yield handle
