"""Fault-suite fixtures: the ``--long`` profile, child processes, and the servers the faults hit.

Profiles: the default run is short (CI); ``pytest tests/faults --long`` (or
``TENSORDB_FAULTS_LONG=1``) runs the full trial counts the issue asks for.
Every server is a real one on 127.0.0.1, started through ``tests/serverkit.py``
(the MongoDB wire server through the Mongo tests' own launcher).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
for path in (HERE, TESTS, TESTS / "backends" / "s3"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from serverkit import Server

LONG_ENV = "TENSORDB_FAULTS_LONG"


def _long(config: pytest.Config) -> bool:
    # --long is registered in tests/conftest.py so `pytest --long` works from the repository root too.
    return bool(config.getoption("--long")) or os.environ.get(LONG_ENV, "") not in ("", "0")


@pytest.fixture(scope="session")
def long_run(pytestconfig: pytest.Config) -> bool:
    """True for the long profile."""
    return _long(pytestconfig)


@pytest.fixture(scope="session")
def trials(long_run: bool):
    """``trials(short, long)``: how many times to repeat a fault in this profile."""
    return lambda short, long: long if long_run else short


@pytest.fixture(scope="session")
def procs() -> Any:
    """A multiprocessing context whose children start fast and clean (a forkserver with our modules preloaded)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["numpy", "tensordb_core.warehouse.handle", "tensordb_core.embedded.sqlite_index",
                                "tensordb_core.embedded.file_blobs", "faultkit"])
    return ctx


# -- MongoDB: the Mongo backend tests' own launcher ------------------------------------------------


def _mongo_kit() -> Any:
    from serverkit import mongo_kit

    return mongo_kit()


@pytest.fixture(scope="session")
def mongo_kit() -> Any:
    return _mongo_kit()


@pytest.fixture(scope="session")
def fault_mongo(mongo_kit: Any) -> Iterator[Server]:
    """A mongoeco server for the fault tests (in memory, no auth)."""
    server = mongo_kit.launch("mongoeco-faults")
    yield server
    server.stop()


@pytest.fixture
def mongo_warehouse(fault_mongo: Server, mongo_kit: Any) -> Iterator[str]:
    """A fresh MongoDB+GridFS warehouse URI (its database is dropped afterwards)."""
    name = f"f_{uuid.uuid4().hex[:16]}"
    yield (f"mongodb://127.0.0.1:{fault_mongo.port}/{name}?directConnection=true"
           f"&write_batch_size={mongo_kit.TEST_WRITE_BATCH}&serverSelectionTimeoutMS=5000")
    import pymongo

    with pymongo.MongoClient(f"mongodb://127.0.0.1:{fault_mongo.port}/?directConnection=true") as client:
        client.drop_database(name)


@pytest.fixture(scope="session")
def fault_moto() -> Iterator[int]:
    """A moto S3 server with the S3 tests' bucket; yields its port."""
    from s3kit import BUCKET, admin_client, start_moto

    server = start_moto("moto-faults")
    try:
        admin_client(f"http://127.0.0.1:{server.port}").create_bucket(Bucket=BUCKET)
        yield server.port
    finally:
        server.stop()


@pytest.fixture(params=["embedded", "mongo"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh warehouse on the embedded store (SQLite + files) and on MongoDB + GridFS."""
    if request.param == "embedded":
        return str(tmp_path / "warehouse")
    return request.getfixturevalue("mongo_warehouse")
