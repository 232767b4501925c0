"""URI and option parsing for s3:// stores: forms, aliases, precedence, validation, redaction.

No server needed: :class:`S3Config` is settled before boto3 is touched.
"""

from __future__ import annotations

import pytest

from tensordb_core.errors import InvalidURI
from tensordb_core.store.uri import parse_uri
from tensordb_s3.config import MiB, S3Config

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"


def config(uri: str, **options: object) -> S3Config:
    return S3Config.from_uri(parse_uri(uri), options)


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [
        ("s3://bkt", "bkt", ""),
        ("s3://bkt/", "bkt", ""),
        ("s3://bkt/warehouse", "bkt", "warehouse/"),
        ("s3://bkt/warehouse/", "bkt", "warehouse/"),
        ("s3://my.bucket-1/a/b/c", "my.bucket-1", "a/b/c/"),
    ],
)
def test_bucket_and_prefix(uri: str, bucket: str, prefix: str) -> None:
    cfg = config(uri)
    assert (cfg.bucket, cfg.prefix) == (bucket, prefix)


@pytest.mark.parametrize(
    "uri",
    ["s3://", "s3:///prefix", "s3://bkt:9000/p", "s3://a,b/p", "s3://bkt/a/../b", "s3://bkt/a//b", "s3://b_/x y"],
)
def test_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(InvalidURI):
        config(uri)


def test_credentials_in_the_authority_are_refused_without_echoing_them() -> None:
    with pytest.raises(InvalidURI) as info:
        config(f"s3://{KEY_ID}:{SECRET}@bkt/p")
    assert SECRET not in str(info.value)
    assert "aws_access_key_id" in str(info.value)


def test_defaults_leave_everything_to_boto3() -> None:
    cfg = config("s3://bkt/p")
    assert cfg.endpoint_url is None and cfg.region is None and cfg.profile is None
    assert cfg.access_key_id is None and not cfg.has_explicit_credentials
    assert cfg.addressing_style is None
    assert cfg.effective_addressing_style(environ={}) is None
    assert cfg.retry_mode == "adaptive"
    assert cfg.create_bucket is False and cfg.check_bucket is True and cfg.conditional_writes is True


def test_query_options_and_aliases() -> None:
    cfg = config(
        "s3://bkt/p?endpoint=http://minio:9000&region_name=eu-west-3&profile_name=lab&addressing_style=Virtual"
        "&create_bucket=yes&multipart_threshold=32MiB&multipart_chunksize=6291456&max_workers=4"
        "&max_attempts=2&connect_timeout=0.5&read_timeout=7&verify=false&checksum_calculation=when_required"
    )
    assert cfg.endpoint_url == "http://minio:9000"
    assert cfg.region == "eu-west-3"
    assert cfg.profile == "lab"
    assert cfg.addressing_style == "virtual"
    assert cfg.create_bucket is True
    assert cfg.multipart_threshold == 32 * MiB
    assert cfg.multipart_chunksize == 6 * MiB
    assert (cfg.max_workers, cfg.max_attempts) == (4, 2)
    assert (cfg.connect_timeout, cfg.read_timeout) == (0.5, 7.0)
    assert cfg.verify is False
    assert cfg.checksum_calculation == "when_required"


def test_verify_accepts_a_ca_bundle_path() -> None:
    assert config("s3://bkt?verify=/etc/ssl/ca.pem").verify == "/etc/ssl/ca.pem"
    assert config("s3://bkt", verify=True).verify is True


def test_options_override_the_query() -> None:
    cfg = config(
        "s3://bkt/p?endpoint_url=http://query:1&region=us-west-1&max_workers=3",
        endpoint_url="http://option:2",
        max_workers=9,
    )
    assert cfg.endpoint_url == "http://option:2"
    assert cfg.max_workers == 9
    assert cfg.region == "us-west-1"  # not overridden: the query's value stands


def test_credentials_come_as_one_group_from_the_highest_source() -> None:
    uri = "s3://bkt/p?aws_access_key_id=QUERYKEY&aws_secret_access_key=QUERYSECRET&aws_session_token=QUERYTOKEN"
    from_query = config(uri)
    assert (from_query.access_key_id, from_query.secret_access_key, from_query.session_token) == (
        "QUERYKEY",
        "QUERYSECRET",
        "QUERYTOKEN",
    )
    # Options win as a whole: the query's session token must not be paired with the options' key.
    from_options = config(uri, access_key_id="OPTKEY", secret_access_key="OPTSECRET")
    assert (from_options.access_key_id, from_options.secret_access_key, from_options.session_token) == (
        "OPTKEY",
        "OPTSECRET",
        None,
    )


@pytest.mark.parametrize("given", [{"aws_access_key_id": KEY_ID}, {"aws_secret_access_key": SECRET}])
def test_half_a_key_pair_is_refused_without_echoing_it(given: dict[str, str]) -> None:
    with pytest.raises(InvalidURI) as info:
        config("s3://bkt/p", **given)
    assert SECRET not in str(info.value) and KEY_ID not in str(info.value)


def test_unknown_options_are_named_but_their_values_never_shown() -> None:
    with pytest.raises(InvalidURI) as info:
        config("s3://bkt/p", aws_secret_acess_key=SECRET)  # a typo
    assert "aws_secret_acess_key" in str(info.value)
    assert SECRET not in str(info.value)
    assert "endpoint_url" in str(info.value)  # the message lists what is known
    with pytest.raises(InvalidURI) as info:
        config(f"s3://bkt/p?secret_key={SECRET}")
    assert SECRET not in str(info.value)


def test_two_spellings_of_one_option_must_agree() -> None:
    with pytest.raises(InvalidURI):
        config("s3://bkt/p?region=us-east-1&region_name=eu-west-1")
    assert config("s3://bkt/p?region=us-east-1&region_name=us-east-1").region == "us-east-1"


@pytest.mark.parametrize(
    "bad",
    [
        {"addressing_style": "sideways"},
        {"retry_mode": "hopeful"},
        {"create_bucket": "maybe"},
        {"max_workers": "0"},
        {"max_workers": "many"},
        {"connect_timeout": "-1"},
        {"multipart_threshold": "lots"},
        {"multipart_chunksize": "1MiB"},  # below S3's 5 MiB minimum part
        {"checksum_calculation": "always"},
    ],
)
def test_bad_values_are_refused(bad: dict[str, str]) -> None:
    with pytest.raises(InvalidURI):
        config("s3://bkt/p", **bad)


def test_a_session_object_only_as_an_option_and_not_with_a_profile() -> None:
    with pytest.raises(InvalidURI):
        config("s3://bkt/p?session=x")
    with pytest.raises(InvalidURI):
        config("s3://bkt/p?profile=lab", session=object())
    marker = object()
    assert config("s3://bkt/p", session=marker).session is marker


def test_path_style_by_default_for_custom_endpoints() -> None:
    assert config("s3://bkt?endpoint_url=http://minio:9000").effective_addressing_style(environ={}) == "path"
    assert config("s3://bkt").effective_addressing_style(environ={"AWS_ENDPOINT_URL": "http://ceph:7480"}) == "path"
    assert config("s3://bkt").effective_addressing_style(environ={"AWS_ENDPOINT_URL_S3": "http://r2"}) == "path"
    explicit = config("s3://bkt?endpoint_url=http://minio:9000&addressing_style=virtual")
    assert explicit.effective_addressing_style(environ={}) == "virtual"


def test_repr_of_uri_and_config_hide_secrets() -> None:
    uri = parse_uri(f"s3://bkt/p?aws_access_key_id={KEY_ID}&aws_secret_access_key={SECRET}&aws_session_token=TOK3N")
    cfg = S3Config.from_uri(uri)
    for text in (repr(uri), str(uri), uri.redacted(), repr(cfg), str(cfg)):
        assert SECRET not in text and KEY_ID not in text and "TOK3N" not in text, text
    assert set(cfg.secrets()) == {KEY_ID, SECRET, "TOK3N"}
