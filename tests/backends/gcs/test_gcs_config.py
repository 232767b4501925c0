"""gs:// URI parsing and option/environment precedence (no server, no SDK calls)."""

from __future__ import annotations

import pytest

from tensordb_core.errors import InvalidURI
from tensordb_core.store.uri import parse_uri
from tensordb_gcs.config import DEFAULTS, GCSConfig


def config(uri: str, environ: dict[str, str] | None = None, **options: object) -> GCSConfig:
    return GCSConfig.from_uri(parse_uri(uri), options, environ or {})


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [
        ("gs://bucket", "bucket", ""),
        ("gs://bucket/", "bucket", ""),
        ("gs://bucket/p", "bucket", "p/"),
        ("gs://bucket/a/b/c/", "bucket", "a/b/c/"),
        ("gs://my.dotted_bucket-1/x", "my.dotted_bucket-1", "x/"),
        ("gcs://bucket/p", "bucket", "p/"),
        ("GS://bucket/p", "bucket", "p/"),
    ],
)
def test_bucket_and_prefix(uri: str, bucket: str, prefix: str) -> None:
    cfg = config(uri)
    assert (cfg.bucket, cfg.prefix) == (bucket, prefix)


@pytest.mark.parametrize(
    "uri",
    [
        "gs://",  # no bucket
        "gs://Bucket/p",  # upper case
        "gs://ab/p",  # too short
        "gs://-bucket/p",
        "gs://bu..cket/p",
        "gs://bucket:443/p",  # a port
        "gs://user:pw@bucket/p",  # credentials in the authority
        "gs://b1,b2/p",  # a host list
        "gs://bucket/a//b",  # empty segment
        "gs://bucket/a/../b",
        "gs://bucket/a b",
        "s3://bucket/p",  # not ours
    ],
)
def test_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(InvalidURI):
        config(uri)


def test_a_password_in_a_refused_uri_is_not_echoed() -> None:
    with pytest.raises(InvalidURI) as info:
        config("gs://user:hunter2secret@bucket/p")
    assert "hunter2secret" not in str(info.value)


def test_defaults() -> None:
    cfg = config("gs://bucket/p")
    assert cfg.project is None and cfg.credentials is None and cfg.emulator_host is None
    assert not cfg.anonymous and not cfg.create_bucket and cfg.check_bucket
    assert cfg.max_workers == DEFAULTS["max_workers"]
    assert cfg.resumable_threshold == 8 * 2**20
    assert cfg.chunk_size % (256 * 1024) == 0
    assert cfg.http_timeout == (cfg.connect_timeout, cfg.read_timeout)


def test_uri_options_are_parsed() -> None:
    cfg = config(
        "gs://bucket/p?project=proj&max_workers=5&resumable_threshold=2MiB&chunk_size=512KiB"
        "&read_timeout=3.5&connect_timeout=1&retry_timeout=0&page_size=7&anonymous=true&create_bucket=yes"
        "&check_bucket=0"
    )
    assert cfg.project == "proj"
    assert cfg.max_workers == 5
    assert cfg.resumable_threshold == 2 * 2**20
    assert cfg.chunk_size == 512 * 1024
    assert (cfg.read_timeout, cfg.connect_timeout, cfg.retry_timeout) == (3.5, 1.0, 0.0)
    assert cfg.page_size == 7
    assert cfg.anonymous and cfg.create_bucket and not cfg.check_bucket


def test_keyword_options_beat_uri_options_which_beat_the_environment() -> None:
    env = {"GOOGLE_CLOUD_PROJECT": "env-proj", "STORAGE_EMULATOR_HOST": "http://env-host:1"}
    assert config("gs://b1b/p", env).project == "env-proj"
    assert config("gs://b1b/p", env).emulator_host == "http://env-host:1"
    assert config("gs://b1b/p?project=uri-proj&emulator_host=http://uri-host:2", env).project == "uri-proj"
    assert config("gs://b1b/p?emulator_host=http://uri-host:2", env).emulator_host == "http://uri-host:2"
    cfg = config(
        "gs://b1b/p?project=uri-proj&emulator_host=http://uri-host:2",
        env,
        project="kw-proj",
        emulator_host="http://kw-host:3",
    )
    assert (cfg.project, cfg.emulator_host) == ("kw-proj", "http://kw-host:3")
    assert config("gs://b1b/p?max_workers=3", max_workers=9).max_workers == 9


def test_gcloud_project_is_the_fallback_project_variable() -> None:
    assert config("gs://b1b", {"GCLOUD_PROJECT": "old"}).project == "old"
    assert config("gs://b1b", {"GCLOUD_PROJECT": "old", "GOOGLE_CLOUD_PROJECT": "new"}).project == "new"


@pytest.mark.parametrize(
    ("given", "expected"),
    [("127.0.0.1:4443", "http://127.0.0.1:4443"), ("http://h:1/", "http://h:1"), ("https://h", "https://h")],
)
def test_emulator_host_may_omit_the_scheme(given: str, expected: str) -> None:
    """STORAGE_EMULATOR_HOST is conventionally host:port; the SDK then assumes http."""
    assert config("gs://b1b", {"STORAGE_EMULATOR_HOST": given}).emulator_host == expected
    assert config("gs://b1b", emulator_host=given).emulator_host == expected


def test_credentials_path_is_kept_out_of_repr() -> None:
    cfg = config("gs://b1b/p", credentials="/secret/place/key.json")
    assert "/secret/place" not in repr(cfg)
    assert cfg.credentials == "/secret/place/key.json"
    uri = parse_uri("gs://b1b/p?credentials=/secret/place/key.json")
    assert "/secret/place" not in repr(uri)  # "credentials" is a secret-looking option name
    assert config("gs://b1b/p?credentials=/secret/place/key.json").credentials == "/secret/place/key.json"


@pytest.mark.parametrize(
    "options",
    [
        {"chunk_size": 1000},  # not a multiple of 256 KiB
        {"chunk_size": "lots"},
        {"max_workers": 0},
        {"max_workers": "many"},
        {"read_timeout": "soon"},
        {"retry_timeout": -1},
        {"anonymous": "perhaps"},
        {"resumable_threshold": 0},
        {"no_such_option": 1},
    ],
)
def test_bad_option_values_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(InvalidURI):
        config("gs://b1b/p", **options)


def test_an_unknown_option_is_named_without_its_value() -> None:
    with pytest.raises(InvalidURI) as info:
        config("gs://b1b/p?secret_thing=s3cr3t-value")
    assert "secret_thing" in str(info.value)
    assert "s3cr3t-value" not in str(info.value)
