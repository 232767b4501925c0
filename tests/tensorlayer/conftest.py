"""Fixtures for the TensorLayer compatibility tests: the MongoDB wire server of tests/backends/mongo, reused.

The mongo fixtures are loaded from that folder's conftest (not copied), so
these tests start the same mongoeco server the backend tests do.  ``tl_uri``
runs a test on the embedded store (memory and a directory) and on MongoDB.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from serverkit import mongo_kit

_mongo = mongo_kit()

mongo_server = _mongo.mongo_server
mongo_db_name = _mongo.mongo_db_name
mongo_uri = _mongo.mongo_uri
raw_db = _mongo.raw_db


@pytest.fixture(params=["memory", "dir", "mongo"])
def tl_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh warehouse URI on each backend the compatibility layer must run on."""
    if request.param == "memory":
        return f"memory://tl-{uuid.uuid4().hex}"
    if request.param == "dir":
        return str(tmp_path / "warehouse")
    request.applymarker(pytest.mark.mongo)
    return request.getfixturevalue("mongo_uri")
