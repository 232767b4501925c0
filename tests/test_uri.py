"""URI parsing and redaction: secrets never show, malformed input gets a typed error saying what to fix."""

from __future__ import annotations

import os

import pytest

from tensordb_core.errors import InvalidURI
from tensordb_core.store.uri import StoreURI, parse_uri, redact


def test_plain_paths_mean_the_embedded_store(tmp_path):
    assert parse_uri("./w").scheme == "file" and parse_uri("./w").path == os.path.abspath("w")
    assert parse_uri(tmp_path).path == str(tmp_path)
    assert parse_uri(f"file://{tmp_path}").path == str(tmp_path)


def test_multi_host_and_srv_are_kept_whole():
    u = parse_uri("mongodb+srv://user:pw@h1:27017,h2,[::1]:27019/lab?replicaSet=rs0&authSource=admin")
    assert u.scheme == "mongodb+srv"
    assert u.hosts == (("h1", 27017), ("h2", None), ("[::1]", 27019))
    assert u.path == "/lab" and u.query["replicaSet"] == "rs0"
    assert u.reveal().startswith("mongodb+srv://user:pw@h1:27017,h2,[::1]:27019/lab")


@pytest.mark.parametrize("text,secret", [
    ("mongodb://alice:hunter2@db:27017/lab", "hunter2"),
    ("s3://bucket/p?aws_secret_access_key=SECRETKEY&region=eu", "SECRETKEY"),
    ("az://c/p?account_key=AKEY123&account_name=acc", "AKEY123"),
    ("az://c/p?sas_token=sv%3D2020%26sig%3DSIGVALUE", "SIGVALUE"),
    ("gs://b/p?token=GTOKEN", "GTOKEN"),
])
def test_secrets_never_appear(text, secret):
    u = parse_uri(text)
    for shown in (repr(u), str(u), u.redacted(), redact(text), f"{u}", f"{u!r}"):
        assert secret not in shown
    assert secret in u.reveal() or secret in u.reveal().replace("%3D", "=")


@pytest.mark.parametrize("text,match", [
    ("", "empty"),
    ("://host/db", "empty scheme"),
    ("mongodb://h:99999/db", "port"),
    ("mongodb://h:abc/db", "port"),
    ("mongodb://h1,,h2/db", "stray comma"),
    ("file://otherhost/x", "no host"),
    ("s3://b/p#frag", "fragment"),
    ("mongodb:/oops", "without '//'"),
])
def test_malformed_uris_are_typed(text, match):
    with pytest.raises(InvalidURI, match=match):
        parse_uri(text)


def test_errors_for_malformed_uris_do_not_leak_passwords():
    with pytest.raises(InvalidURI) as err:
        parse_uri("mongodb://u:topsecret@h:99999/db")
    assert "topsecret" not in str(err.value)


def test_non_string_is_typed():
    with pytest.raises(InvalidURI):
        parse_uri(42)  # type: ignore[arg-type]


def test_with_options_is_a_copy():
    u = parse_uri("s3://b/p?region=x")
    v = u.with_options(region=None, endpoint_url="http://127.0.0.1:9")
    assert u.query == {"region": "x"} and v.query == {"endpoint_url": "http://127.0.0.1:9"}
    assert isinstance(v, StoreURI)
