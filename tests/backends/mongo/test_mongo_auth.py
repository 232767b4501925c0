"""Authenticated servers: the seed's ``mongodb://user:pass@ip:port/db_name`` URI, and refused credentials.

The seed API (``TensorDB(ip, port, db_name, user_name, password, studyID)``) is
built on exactly such a URI, so it must work with a password full of
characters a URI has to escape, and a wrong password must come back as
``PermissionDenied`` that never shows it.
"""

from __future__ import annotations

import traceback
from urllib.parse import quote

import pytest

from conftest import AUTH_DB, AUTH_OPTIONS, AUTH_PASSWORD, AUTH_USER
from tensordb_core.errors import PermissionDenied
from tensordb_core.store import registry
from tensordb_mongo import GridFSBlobStore, MongoIndexStore

pytestmark = pytest.mark.mongo


def seed_uri(port: int, password: str) -> str:
    """What the seed-compatibility layer builds from (ip, port, db_name, user_name, password).

    Plus :data:`AUTH_OPTIONS` only for mongoeco's sake (see conftest): on MongoDB the bare URI
    authenticates against ``db_name``, as the seed's ``db.authenticate(user, password)`` did.
    """
    auth = f"{quote(AUTH_USER, safe='')}:{quote(password, safe='')}"
    return f"mongodb://{auth}@127.0.0.1:{port}/{AUTH_DB}?{AUTH_OPTIONS}"


def test_seed_style_uri_logs_in_and_works(mongo_auth_server):
    uri = seed_uri(mongo_auth_server.port, AUTH_PASSWORD)
    index = registry.open_index(uri)
    blobs = registry.open_blobs(registry.default_blobs(uri))
    try:
        assert index.database == AUTH_DB and index.uri.password == AUTH_PASSWORD
        index.insert_many("data", [{"label": i} for i in range(3)])
        assert [d["label"] for d in index.find("data")] == [0, 1, 2]
        blobs.put("sample/0", b"bytes")
        assert blobs.get("sample/0") == b"bytes"
    finally:
        index.close()
        blobs.close()


@pytest.mark.parametrize("password", ["wrong", AUTH_PASSWORD + "x"])
def test_refused_credentials_are_permission_denied_without_the_password(mongo_auth_server, password):
    uri = seed_uri(mongo_auth_server.port, password) + "&serverSelectionTimeoutMS=5000"
    for make, call in ((MongoIndexStore, lambda s: s.count("data")), (GridFSBlobStore, lambda s: s.exists("k"))):
        store = make(uri)
        try:
            with pytest.raises(PermissionDenied) as info:
                call(store)
        finally:
            store.close()
        shown = "".join(traceback.format_exception(info.value))
        assert "authSource" in str(info.value) and f"{AUTH_USER}:***@" in str(info.value)
        assert password not in shown and quote(password, safe="") not in shown


def test_no_credentials_on_an_authenticated_server_is_permission_denied(mongo_auth_server):
    store = MongoIndexStore(f"mongodb://127.0.0.1:{mongo_auth_server.port}/{AUTH_DB}?directConnection=true")
    try:
        with pytest.raises(PermissionDenied):
            store.insert_many("data", [{"a": 1}])
    finally:
        store.close()
