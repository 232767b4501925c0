"""The backend kit's SDK-free pieces (tensordb_core.store.kit: options, errors, the cloud template's helpers)."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from tensordb_core.errors import InvalidQuery, InvalidURI
from tensordb_core.store.kit import lazy_exports
from tensordb_core.store.kit.cloud import as_bytes, check_list_prefix, is_content_address, normalise_prefix
from tensordb_core.store.kit.errors import ErrorTable, Kind, Rule, scrub_secrets, subject
from tensordb_core.store.kit.options import (
    Option,
    OptionSet,
    flag,
    layered,
    one_of,
    reject_unknown,
    to_bool,
    to_float,
    to_int,
    to_size,
    unknown_options,
    whole,
)
from tensordb_core.store.uri import parse_uri

SHA = "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8388608", 8388608),
        ("8MiB", 8 * 1024**2),
        (" 8 mb ", 8_000_000),
        ("256KiB", 256 * 1024),
        ("1G", 1024**3),
        (7, 7),
    ],
)
def test_sizes_accept_counts_and_units(text: object, expected: int) -> None:
    assert to_size("chunk", text) == expected


@pytest.mark.parametrize("bad", ["8 MiBs", "-1", "0", 0, True, "1.5MiB", ""])
def test_sizes_refuse_anything_else(bad: object) -> None:
    with pytest.raises(InvalidURI) as info:
        to_size("chunk", bad, where="s3://b/p")
    assert "chunk" in str(info.value) and "s3://b/p" in str(info.value)


def test_booleans_and_the_blank_value() -> None:
    assert [to_bool("f", v) for v in (True, "1", "Yes", " on ", False, "0", "NO", "off", "")] == [True] * 4 + [
        False
    ] * 5
    with pytest.raises(InvalidURI):
        to_bool("f", "", blank_is_false=False)
    with pytest.raises(InvalidURI):
        to_bool("f", "maybe")


def test_whole_numbers_and_seconds_have_minimums() -> None:
    assert to_int("n", "3", minimum=1) == 3
    for bad in ("0", "x", None, "1.5"):
        with pytest.raises(InvalidURI):
            to_int("n", bad, minimum=1)
    assert to_float("t", "0", minimum=0.0) == 0.0
    assert to_float("t", "0.5", minimum=0, exclusive=True) == 0.5
    for bad in ("0", "-1", "nan", "x"):
        with pytest.raises(InvalidURI):
            to_float("t", bad, minimum=0, exclusive=True)
    with pytest.raises(InvalidURI):
        to_float("t", "0.0001", minimum=0.001)


def test_precedence_is_keyword_then_query_then_environment_then_default() -> None:
    defaults = {"a": 1, "b": 1, "c": 1, "d": 1}
    merged = layered(defaults, environment={"b": 2, "c": 2, "d": 2}, query={"c": 3, "d": 3}, keyword={"d": 4})
    assert merged == {"a": 1, "b": 2, "c": 3, "d": 4}
    assert defaults == {"a": 1, "b": 1, "c": 1, "d": 1}  # inputs are not modified


def test_unknown_options_are_named_without_their_values() -> None:
    uri = parse_uri("gs://bucket/p?project=x&typo=1")
    unknown = unknown_options(uri, {"secret_thing": "s3cr3t-value", "project": "y"}, {"project"})
    assert unknown == ["secret_thing", "typo"]
    with pytest.raises(InvalidURI) as info:
        reject_unknown(unknown, {"project"}, what="GCS option(s)", where=uri.redacted())
    text = str(info.value)
    assert "secret_thing" in text and "typo" in text and "known: project" in text
    assert "s3cr3t-value" not in text
    reject_unknown([], {"project"}, what="x", where="y")  # nothing unknown: no error


def test_prefixes_are_normalised_and_checked() -> None:
    uri = parse_uri("gs://bucket/x")
    assert normalise_prefix("/a/b/", uri) == "a/b/"
    assert normalise_prefix("/", uri) == ""
    with pytest.raises(InvalidURI):
        normalise_prefix("a/../b", uri)
    assert check_list_prefix("a/b") == "a/b"
    for bad in ("/a", "a/../b", "a b", 3):
        with pytest.raises(InvalidQuery):
            check_list_prefix(bad)  # type: ignore[arg-type]


def test_secrets_are_scrubbed_longest_first_above_a_minimum_length() -> None:
    text = "key=abcdefgh-long and abcdefgh and tok"
    assert scrub_secrets(text, ["abcdefgh", "abcdefgh-long", "tok"], min_length=8) == "key=*** and *** and tok"
    assert scrub_secrets("tok token", ["tok"]) == "*** ***en"


def test_content_addresses_payloads_and_subjects() -> None:
    assert is_content_address(SHA) and is_content_address(f"chunks/{SHA}")
    assert not is_content_address(SHA.upper()) and not is_content_address(SHA[:-1]) and not is_content_address("x")
    assert as_bytes(bytearray(b"ab")) == b"ab" and as_bytes(memoryview(b"abc")[1:]) == b"bc"
    data = b"same"
    assert as_bytes(data) is data
    assert subject("get", "k", "s3://b") == "get 'k' in s3://b"
    assert subject("list", None, "s3://b") == "list in s3://b"


def test_lazy_exports_import_on_first_access(monkeypatch: pytest.MonkeyPatch) -> None:
    package = types.ModuleType("fakepkg")
    package.__path__ = []  # type: ignore[attr-defined]
    sub = types.ModuleType("fakepkg.impl")
    sub.Thing = object()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fakepkg", package)
    monkeypatch.setitem(sys.modules, "fakepkg.impl", sub)
    getter = lazy_exports("fakepkg", {"Thing": "impl"})
    assert getter("Thing") is sub.Thing  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="fakepkg"):
        getter("Other")


def test_core_imports_no_cloud_sdk() -> None:
    code = (
        "import sys, tensordb_core.store.kit.cloud, tensordb_core.store.kit.errors, tensordb_core.store.kit.options; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'boto3', 'botocore', 'google', 'azure'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


# -- the one option parser -----------------------------------------------------------------------------------------

OPTIONS = OptionSet(
    "toy option",
    [
        Option("workers", 4, whole(1, 64), aliases=("max_workers",)),
        Option("mode", "fast", one_of("fast", "safe")),
        Option("sync", True, flag()),
        Option("region", env=("TOY_REGION", "TOY_DEFAULT_REGION")),
        Option("token", in_uri=False),
    ],
)


def test_option_precedence_aliases_and_defaults() -> None:
    uri = parse_uri("toy://h/p?max_workers=8&mode=SAFE&sync=off")
    env = {"TOY_DEFAULT_REGION": "r2"}
    assert OPTIONS.parse(uri, {"workers": 16}, environ=env) == {
        "workers": 16, "mode": "safe", "sync": False, "region": "r2", "token": None,
    }
    assert OPTIONS.parse(parse_uri("toy://h/p?region=r1"), {"region": None}, environ=env)["region"] == "r1"
    assert OPTIONS.parse(parse_uri("toy://h/p"), environ={}) == OPTIONS.defaults
    assert "max_workers" in OPTIONS and "MAX_WORKERS" in OPTIONS and "nope" not in OPTIONS


def test_option_errors_name_the_option_never_a_value() -> None:
    for uri, keyword, needle in (
        ("toy://h/p?wrkers=3", {}, "wrkers"),
        ("toy://h/p", {"tokn": "s3cr3t-value"}, "tokn"),
        ("toy://h/p?workers=0", {}, "workers"),
        ("toy://h/p?workers=65", {}, "workers"),
        ("toy://h/p?mode=maybe", {}, "mode"),
        ("toy://h/p?sync=perhaps", {}, "sync"),
        ("toy://h/p?token=s3cr3t-value", {}, "token"),  # keyword only: a URI would show and log it
        ("toy://h/p?workers=2&max_workers=3", {}, "workers"),  # two spellings that disagree
    ):
        with pytest.raises(InvalidURI) as info:
            OPTIONS.parse(parse_uri(uri), keyword, environ={})
        assert needle in str(info.value) and "s3cr3t-value" not in str(info.value)
    with pytest.raises(InvalidURI) as info:
        OPTIONS.parse(parse_uri("toy://h/p?bogus=1"), environ={})
    assert "known: max_workers, mode, region, sync, token, workers" in str(info.value)


def test_options_another_reader_owns_are_left_to_it() -> None:
    uri = parse_uri("toy://h/p?fsync=0&workers=2")
    assert OPTIONS.parse(uri, shared=["fsync"], environ={})["workers"] == 2
    with pytest.raises(InvalidURI):
        OPTIONS.parse(parse_uri("toy://h/p"), {"fsync": 0}, shared=["fsync"], environ={})  # keywords stay strict
    ours, rest = OPTIONS.split({"workers": 1, "appname": "x"})
    assert (ours, rest) == ({"workers": 1}, {"appname": "x"})


# -- table-driven error translation ------------------------------------------------------------------------------


class _SDKError(Exception):
    def __init__(self, message: str, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status, self.code = status, code


TABLE = ErrorTable(
    service="Toy",
    codes={"NoBucket": Kind.BUCKET_MISSING, "Slow": Kind.TRANSIENT},
    statuses={404: Kind.NOT_FOUND, 403: Kind.DENIED, 503: Kind.TRANSIENT},
    types=lambda: ((ConnectionRefusedError, Rule(Kind.UNAVAILABLE, "start the toy server")),
                   (ValueError, Kind.INVALID)),
    code_of=lambda exc: getattr(exc, "code", ""),
    status_of=lambda exc: getattr(exc, "status", None),
    hints={Kind.DENIED: "check the toy key"},
)


def test_codes_win_over_statuses_and_statuses_over_classes() -> None:
    assert TABLE.classify(_SDKError("x", 404, "NoBucket")) is Kind.BUCKET_MISSING
    assert TABLE.classify(_SDKError("x", 400, "Slow")) is Kind.TRANSIENT
    assert TABLE.classify(_SDKError("x", 404)) is Kind.NOT_FOUND
    assert TABLE.classify(ConnectionRefusedError()) is Kind.UNAVAILABLE
    assert TABLE.classify(_SDKError("x", 400)) is Kind.OTHER


def test_each_kind_becomes_one_typed_error_with_advice() -> None:
    from tensordb_core.errors import BackendError, BackendUnavailable, BlobNotFound, PermissionDenied, TransientError
    from tensordb_core.store.kit.errors import BucketNotFound

    def translate(exc: BaseException) -> Exception:
        return TABLE.translate(exc, op="get", key="k", where="toy://b/p", endpoint="http://e", bucket="b",
                               secrets=["s3cr3t-value"])

    assert isinstance(translate(_SDKError("x", 404)), BlobNotFound)
    missing = translate(_SDKError("x", 404, "NoBucket"))
    assert isinstance(missing, BucketNotFound) and "'b'" in str(missing) and "create_bucket=true" in str(missing)
    denied = translate(_SDKError("x", 403))
    assert isinstance(denied, PermissionDenied) and "check the toy key" in str(denied) and "toy://b/p" in str(denied)
    assert isinstance(translate(_SDKError("x", 503)), TransientError)
    down = translate(ConnectionRefusedError())
    assert isinstance(down, BackendUnavailable) and "start the toy server" in str(down) and "http://e" in str(down)
    invalid = translate(ValueError("bad setting s3cr3t-value"))
    assert isinstance(invalid, InvalidURI) and "s3cr3t-value" not in str(invalid) and "***" in str(invalid)
    assert type(translate(_SDKError("x", 400))) is BackendError
    assert TABLE.leaks(ValueError("s3cr3t-value"), ["s3cr3t-value"])
    assert not TABLE.leaks(ValueError("fine"), ["s3cr3t-value"])


# -- http: the pooled session GCS and Azure read through -----------------------------------------------------------


def test_a_pooled_session_reads_the_environments_proxies_and_ca_bundle_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    from tensordb_core.store.kit.http import pooled_session

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "bypassed.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corp.pem")
    session = pooled_session("https://acct.blob.core.windows.net", 20)
    assert session.trust_env is False and session.verify == "/etc/ssl/corp.pem"
    assert session.proxies.get("https") == "http://proxy.example:3128"
    assert session.get_adapter("https://acct.blob.core.windows.net")._pool_maxsize == 20
    # what requests would have sent (it read the environment per request): the same proxy and bundle
    settings = requests.Session().merge_environment_settings("https://acct.blob.core.windows.net/c/k", {}, False,
                                                             None, None)
    assert settings["proxies"].get("https") == session.proxies["https"] and settings["verify"] == session.verify
    monkeypatch.setenv("HTTPS_PROXY", "http://other.example:1")  # read once: a later change is not seen
    assert session.proxies["https"] == "http://proxy.example:3128"
    bypassed = pooled_session("https://bypassed.example", 4, requests.Session())
    assert "https" not in bypassed.proxies and bypassed.trust_env is False
