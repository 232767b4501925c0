"""No secret is printed on an error path: unknown, misspelt or undeclared options and userinfo in any form.

Redaction is an allow-list (store/uri.py): a value is shown only for options a
backend declared and that do not look secret, or for common driver settings.
Each URI below printed its secret before.
"""

from __future__ import annotations

import traceback

import pytest

import tensordb_core as tdb
from tensordb_core.errors import TensorDBError
from tensordb_core.store.uri import parse_uri, redact

CONN = "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=S3CR3T;BlobEndpoint=http://127.0.0.1:1/a;"


@pytest.mark.parametrize(("uri", "opener"), [
    ("az://c/p?endpoint=http://127.0.0.1:1/devstoreaccount1&sas=S3CR3T", tdb.open_blobs),    # unknown option
    ("s3://b/p?session=S3CR3T&endpoint_url=http://127.0.0.1:1", tdb.open_blobs),          # keyword-only option
    (f"az://Bad_Container/p?connection_string={CONN}", tdb.open_blobs),                     # a connection string
    ("mongodb://user%3AS3CR3T@127.0.0.1:1/db?serverSelectionTimeoutMS=100", tdb.open_index),  # ':' in the user
    ("foo:S3CR3T@x", tdb.open_index),                                                       # no '//'
    ("s3://b/p?bogus=S3CR3T", tdb.open_blobs),                                              # misspelt option
    ("s3://b/p?pasword=S3CR3T", tdb.open_blobs),
])
def test_an_error_never_shows_the_secret(uri, opener) -> None:
    with pytest.raises(TensorDBError) as info:
        opener(uri)
    shown = "".join(traceback.format_exception(info.value))  # the whole chain, as a log would show it
    assert "S3CR3T" not in shown


def test_harmless_values_stay_readable() -> None:
    import tensordb_s3.config  # noqa: F401  (declares the S3 options)

    assert redact("s3://b/p?endpoint_url=http://x:9000&region_name=eu") == "s3://b/p?endpoint_url=http://x:9000&region_name=eu"
    assert redact("mongodb://alice:pw@h:1/db?directConnection=true") == "mongodb://alice:***@h:1/db?directConnection=true"
    assert redact("mongodb://h/db?authMechanismProperties=AWS_SESSION_TOKEN:t0k") == "mongodb://h/db?authMechanismProperties=***"
    assert "hunter2" not in repr(parse_uri("s3://b/p?aws_session_token=hunter2"))


def test_cli_errors_are_printed_as_written(capsys) -> None:
    """The CLI used to run a whole message through redact(), which parsed it as one URI and garbled it."""
    from tensordb_core.cli.main import main

    assert main(["find", "--uri", "s3x://nowhere/db?sas=S3CR3T", "--study", "s"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tensordb: error: ") and "s3x://" in err and "file://" not in err
    assert "%3F" not in err and "S3CR3T" not in err
