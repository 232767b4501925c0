"""Fixtures for the MongoDB backend: a mongoeco wire-protocol server on a free loopback port.

No real ``mongod`` can be installed on our CI machines (see BACKENDS.md), so the
tests talk over TCP to mongoeco, a MongoDB wire-protocol server, exactly as
they would to mongod.  It runs in its own Python 3.13 venv
(``.mongoeco-venv``; ``TENSORDB_MONGOECO_PYTHON`` overrides the interpreter).
A missing server is an error with the install command, never a skip.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for serverkit

from serverkit import REPO, Server, free_port, require_executable, start_server

LAUNCHER = Path(__file__).with_name("mongoeco_server.py")
INSTALL = "python3.13 -m venv .mongoeco-venv && .mongoeco-venv/bin/pip install 'mongoeco[wire]'"
#: mongoeco slows sharply above ~100 documents per insert_many call; real MongoDB uses the 1000 default.
TEST_WRITE_BATCH = 100
#: The authenticated server's user: a seed-style ``mongodb://user:pass@ip:port/db_name`` URI logs in as it.
#: Two mongoeco gaps shape the test URIs (mongod needs neither): it only authenticates users defined in
#: ``admin`` (its saslStart ignores ``$db``), so tests add ``authSource=admin``; and it does not announce
#: ``saslSupportedMechs``, so PyMongo would fall back to SCRAM-SHA-1, which mongoeco implements without
#: MongoDB's MD5 password pre-hash, so tests name ``authMechanism=SCRAM-SHA-256`` (mongod's default).
AUTH_OPTIONS = "authSource=admin&authMechanism=SCRAM-SHA-256"
AUTH_USER = "seed_user"
AUTH_SOURCE = "admin"
AUTH_DB = "seed_lab"
AUTH_PASSWORD = "p@ss:w/rd%20?&=x"  # every character a URI must escape


def mongoeco_python() -> str:
    """The interpreter that has ``mongoeco[wire]``; fails with the install command when absent."""
    path = os.environ.get("TENSORDB_MONGOECO_PYTHON") or str(REPO / ".mongoeco-venv" / "bin" / "python")
    return require_executable(path, INSTALL)


def launch(name: str, *extra: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    argv = [mongoeco_python(), str(LAUNCHER), "--port", str(port), *extra]
    return start_server(name, argv, port, env=env, cwd=str(REPO))


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[Server]:
    """One mongoeco server (in memory, no auth) for the whole test session."""
    server = launch("mongoeco")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mongo_auth_server() -> Iterator[Server]:
    """A second mongoeco server that requires SCRAM authentication (user :data:`AUTH_USER` in :data:`AUTH_SOURCE`)."""
    server = launch("mongoeco-auth", "--user", AUTH_USER, "--auth-db", AUTH_SOURCE, env={"MONGOECO_PASSWORD": AUTH_PASSWORD})
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mongo_base_uri(mongo_server: Server) -> str:
    """The server URI without a database, as a user would write it."""
    return f"mongodb://127.0.0.1:{mongo_server.port}/?directConnection=true"


@pytest.fixture
def mongo_db_name() -> Iterator[str]:
    """A fresh database name per test, so tests never see each other's collections."""
    yield f"t_{uuid.uuid4().hex[:16]}"


@pytest.fixture
def mongo_uri(mongo_server: Server, mongo_db_name: str) -> Iterator[str]:
    """A store URI on a fresh database (dropped after the test to keep the in-memory server small)."""
    uri = f"mongodb://127.0.0.1:{mongo_server.port}/{mongo_db_name}?directConnection=true&write_batch_size={TEST_WRITE_BATCH}"
    yield uri
    import pymongo

    with pymongo.MongoClient(f"mongodb://127.0.0.1:{mongo_server.port}/?directConnection=true") as client:
        client.drop_database(mongo_db_name)


@pytest.fixture
def raw_db(mongo_server: Server, mongo_db_name: str) -> Iterator[object]:
    """A plain PyMongo handle on the test's database, to seed and peek without the store under test."""
    import pymongo

    with pymongo.MongoClient(f"mongodb://127.0.0.1:{mongo_server.port}/?directConnection=true") as client:
        yield client[mongo_db_name]
