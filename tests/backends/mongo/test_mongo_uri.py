"""MongoDB URIs: the database, TensorDB-only options, plugin wiring, and passwords that never show."""

from __future__ import annotations

import traceback

import pytest

from serverkit import free_port
from tensordb_core.errors import BackendUnavailable, InvalidURI
from tensordb_core.store import registry
from tensordb_core.store.uri import parse_uri
from tensordb_mongo import GridFSBlobStore, MongoIndexStore, clients
from tensordb_mongo.aio import AsyncIndexStore
from tensordb_mongo.config import DEFAULT_CHUNK_SIZE, DEFAULT_DATABASE, DEFAULT_WRITE_BATCH, parse_config

pytestmark = pytest.mark.mongo

SECRET = "Sup3r$ecret:/@pw"


def config(text: str, **options):
    return parse_config(parse_uri(text), options)


def test_database_is_the_path_with_a_documented_default():
    assert config("mongodb://h/lab").database == "lab"
    assert config("mongodb://h:27017,h2:27018/lab?replicaSet=rs0").database == "lab"
    assert config("mongodb://h").database == DEFAULT_DATABASE
    assert config("mongodb://h/?tls=true").database == DEFAULT_DATABASE
    assert config("mongodb+srv://cluster0.example.net/lab").database == "lab"


@pytest.mark.parametrize(
    "bad",
    ["mongodb://h/a.b", "mongodb://h/a b", "mongodb://h/a$b", "mongodb:///lab", "mongodb://h/" + "x" * 64,
     "mongodb+srv://a.example.net:27017/lab", "mongodb+srv://a.example.net,b.example.net/lab", "s3://bucket/x"],
)
def test_invalid_uris(bad):
    with pytest.raises(InvalidURI):
        config(bad)


def test_tensordb_options_are_read_and_stripped_before_pymongo():
    cfg = config(
        "mongodb://u:pw@h/lab?authSource=admin&write_batch_size=50&bucket=files&chunk_size_bytes=2097152&tls=true"
    )
    assert cfg.settings["write_batch_size"] == 50
    assert cfg.settings["bucket"] == "files"
    assert cfg.settings["chunk_size_bytes"] == 2 * 1024 * 1024
    assert cfg.driver_uri.query == {"authSource": "admin", "tls": "true"}  # every driver option passes through
    assert cfg.driver_uri.reveal() == "mongodb://u:pw@h/lab?authSource=admin&tls=true"


def test_keyword_options_win_and_the_rest_go_to_the_client():
    cfg = config("mongodb://h/lab?write_batch_size=50", write_batch_size=7, serverSelectionTimeoutMS=250)
    assert cfg.settings["write_batch_size"] == 7
    assert cfg.client_kwargs == {"serverSelectionTimeoutMS": 250}
    defaults = config("mongodb://h/lab").settings
    assert (defaults["write_batch_size"], defaults["chunk_size_bytes"]) == (DEFAULT_WRITE_BATCH, DEFAULT_CHUNK_SIZE)


@pytest.mark.parametrize("option", ["write_batch_size=0", "write_batch_size=ten", "chunk_size_bytes=99999999999",
                                    "max_in_flight=-1", "bucket=a$b"])
def test_bad_tensordb_options(option):
    with pytest.raises(InvalidURI, match=option.split("=")[0]):
        config(f"mongodb://u:{SECRET.replace('/', '%2F').replace('@', '%40')}@h/lab?{option}")


def test_plugin_serves_both_schemes_as_index_and_blobs():
    found = {s.scheme: s for s in registry.list_schemes() if s.source == "mongo"}
    assert set(found) == {"mongodb", "mongodb+srv"}
    assert all(s.index and s.blobs and s.extra == "mongo" for s in found.values())


def test_default_blobs_are_gridfs_in_the_same_database():
    uri = parse_uri("mongodb://u:pw@h1:1,h2:2/lab?replicaSet=rs&authSource=admin")
    assert registry.default_blobs(uri) == uri


def test_index_and_blobs_on_one_uri_share_one_client(mongo_uri):
    before = clients.shared_count()
    index = registry.open_index(mongo_uri)
    blobs = registry.open_blobs(registry.default_blobs(mongo_uri))
    try:
        assert isinstance(index, MongoIndexStore) and isinstance(blobs, GridFSBlobStore)
        assert index._client is blobs._client
        assert clients.shared_count() == before + 1
        index.insert_many("things", [{"a": 1}])
        blobs.put("k", b"v")
        assert index.count("things") == 1 and blobs.get("k") == b"v"
    finally:
        index.close()
        assert blobs.get("k") == b"v"  # the other store's share keeps the client open
        blobs.close()
        index.close()  # idempotent
    assert clients.shared_count() == before


def test_password_never_shows(mongo_server):
    port = free_port()  # nobody listens here
    escaped = SECRET.replace("%", "%25").replace("$", "%24").replace(":", "%3A").replace("/", "%2F").replace("@", "%40")
    text = f"mongodb://alice:{escaped}@127.0.0.1:{port}/lab?directConnection=true&serverSelectionTimeoutMS=300"
    index, blobs = MongoIndexStore(text), GridFSBlobStore(text)
    try:
        assert index.uri.password == SECRET
        for shown in (repr(index), str(index), repr(index.uri), str(index.uri), repr(blobs), repr(index._config)):
            assert SECRET not in shown and escaped not in shown
        assert "alice:***@" in repr(index) and "alice:***@" in repr(blobs)
        failures = []
        for call in (lambda: index.count("c"), lambda: list(index.find("c")), lambda: blobs.get("k"),
                     lambda: blobs.put("k", b"x")):
            with pytest.raises(BackendUnavailable) as info:
                call()
            failures.append(info.value)
        for exc in failures:
            text_shown = "".join(traceback.format_exception(exc))
            assert "127.0.0.1" in str(exc) and "***" in str(exc)
            assert SECRET not in text_shown and escaped not in text_shown
    finally:
        index.close()
        blobs.close()


def test_aws_session_token_in_auth_mechanism_properties_is_redacted():
    text = ("mongodb://AKIAEXAMPLE:awssecret@cluster0.example.net/lab?authMechanism=MONGODB-AWS"
            "&authMechanismProperties=AWS_SESSION_TOKEN:sessiontoken123&tlsCertificateKeyFilePassword=pem-pw")
    cfg = config(text)
    for shown in (repr(cfg.uri), str(cfg.driver_uri), repr(cfg)):
        assert "sessiontoken123" not in shown and "awssecret" not in shown and "pem-pw" not in shown
    assert "AWS_SESSION_TOKEN:sessiontoken123" in cfg.driver_uri.reveal()  # the driver still gets it


@pytest.mark.parametrize("query", ["tls=maybe", "journal=notabool", "tlsCAFlie=/etc/ca.pem", "replicaSet=rs&ssl=yes"])
def test_driver_options_pymongo_would_ignore_are_invalid_uris(query):
    """MongoClient only warns about these and connects without them; the stores refuse them."""
    for make in (MongoIndexStore, GridFSBlobStore, AsyncIndexStore):
        with pytest.raises(InvalidURI) as info:
            make(f"mongodb://bob:{SECRET.replace('/', '%2F').replace('@', '%40')}@127.0.0.1/lab?{query}")
        assert SECRET not in str(info.value) and "bob:***@" in str(info.value)
    with pytest.raises(InvalidURI):
        MongoIndexStore(f"mongodb+srv://cluster0.example.net/lab?{query}")  # checked without a DNS lookup


def test_valid_srv_options_pass_the_check():
    from tensordb_mongo.clients import check_driver_uri

    check_driver_uri(config("mongodb+srv://u:p@cluster0.example.net/lab?srvMaxHosts=2&srvServiceName=mongodb&w=majority"))
    check_driver_uri(config("mongodb://u:p@h1,h2/lab?replicaSet=rs0&readPreference=secondaryPreferred&tls=true"))


@pytest.mark.parametrize("options", [{"event_listeners": 5}, {"maxPoolSize": "abc"}, {"connectTimeoutMS": -1}])
def test_bad_client_keyword_options_are_invalid_uris(options):
    """The driver checks keyword options with bare TypeError/ValueError; the stores name the URI instead."""
    for make in (MongoIndexStore, GridFSBlobStore, AsyncIndexStore):
        with pytest.raises(InvalidURI, match="invalid client option") as info:
            make(f"mongodb://bob:{SECRET.replace('/', '%2F').replace('@', '%40')}@127.0.0.1:1/lab", **options)
        assert SECRET not in str(info.value) and "bob:***@" in str(info.value)
