"""Azure URI spellings, connection strings and option/environment precedence (no server, no SDK calls)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tensordb_azure.config import DEV_KEY, AzureConfig, connection_string_settings, parse_connection_string
from tensordb_core.errors import InvalidURI
from tensordb_core.store.uri import parse_uri

KEY = "c2VjcmV0LWtleS12YWx1ZS0xMjM0NTY3ODkw" + "=="
OTHER_KEY = "b3RoZXIta2V5LXZhbHVlLTk4NzY1NDMyMTA=" + "="
SAS = "sv=2025-01-05&sr=c&sp=rl&se=2030-01-01T00%3A00%3A00Z&sig=AbCdEfSasSignature%2Fxyz%3D"


def config(uri: str, environ: dict[str, str] | None = None, **options: object) -> AzureConfig:
    return AzureConfig.from_uri(parse_uri(uri), options, environ or {})


@pytest.mark.parametrize(
    ("uri", "container", "prefix", "account_url"),
    [
        ("az://data/p?account_name=acct1", "data", "p/", "https://acct1.blob.core.windows.net"),
        ("az://data?account_name=acct1", "data", "", "https://acct1.blob.core.windows.net"),
        ("az://data@acct1.blob.core.windows.net/a/b", "data", "a/b/", "https://acct1.blob.core.windows.net"),
        ("abfs://data@acct1.dfs.core.windows.net/a/b/", "data", "a/b/", "https://acct1.blob.core.windows.net"),
        ("abfss://data@acct1.dfs.core.windows.net/a", "data", "a/", "https://acct1.blob.core.windows.net"),
        ("wasb://data@acct1.blob.core.windows.net/a", "data", "a/", "https://acct1.blob.core.windows.net"),
        ("wasbs://data@acct1.blob.core.windows.net/a", "data", "a/", "https://acct1.blob.core.windows.net"),
        ("abfss://data@acct1.dfs.core.chinacloudapi.cn/a", "data", "a/", "https://acct1.blob.core.chinacloudapi.cn"),
        ("abfss://data@acct1/a", "data", "a/", "https://acct1.blob.core.windows.net"),
        ("ABFSS://data@ACCT1.DFS.CORE.WINDOWS.NET/a", "data", "a/", "https://acct1.blob.core.windows.net"),
        (
            "az://data-set-1/p?endpoint=http://127.0.0.1:10000/devstoreaccount1",
            "data-set-1",
            "p/",
            "http://127.0.0.1:10000/devstoreaccount1",
        ),
    ],
)
def test_spellings(uri: str, container: str, prefix: str, account_url: str) -> None:
    cfg = config(uri, account_key=KEY)
    assert (cfg.container, cfg.prefix, cfg.account_url) == (container, prefix, account_url)


def test_the_account_comes_from_the_host_or_the_endpoint() -> None:
    assert config("abfss://data@acct1.dfs.core.windows.net/a", account_key=KEY).account_name == "acct1"
    assert config("az://data?endpoint=http://127.0.0.1:1/devstoreaccount1", account_key=KEY).account_name == (
        "devstoreaccount1"
    )
    assert config("az://data?endpoint=https://acct2.blob.core.windows.net", account_key=KEY).account_name == "acct2"


@pytest.mark.parametrize(
    "uri",
    [
        "abfss://data/p",  # abfs/wasb name the account in the host
        "wasbs://data/p",
        "az://Data/p?account_name=acct1",  # upper case container
        "az://da/p?account_name=acct1",  # too short
        "az://da--ta/p?account_name=acct1",  # double hyphen
        "az://-data/p?account_name=acct1",
        "abfss://data@acct1.queue.core.windows.net/p",  # not the blob or dfs service
        "abfss://data@ac/p",  # account too short
        "abfss://data@acct_1.dfs.core.windows.net/p",
        "az://data:443/p?account_name=acct1",  # a port
        "abfss://data:pw@acct1.dfs.core.windows.net/p",  # a password
        "az://data/a//b?account_name=acct1",
        "az://data/../b?account_name=acct1",
        "gs://data/p",  # not ours
        "az://data/p",  # no account anywhere
        "az://data/p?endpoint=ftp://host/acct",
        "abfss://data@acct1.dfs.core.windows.net/p?account_name=acct2",  # two accounts
    ],
)
def test_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(InvalidURI):
        config(uri, account_key=KEY)


def test_connection_strings_are_never_accepted_in_a_uri() -> None:
    with pytest.raises(InvalidURI) as info:
        config(f"az://data/p?connection_string=AccountName%3Dacct1%3BAccountKey%3D{KEY}")
    assert KEY not in str(info.value) and "keyword" in str(info.value)


def test_secrets_in_the_uri_are_redacted_and_used() -> None:
    uri = parse_uri(f"az://data/p?account_name=acct1&account_key={KEY}")
    assert KEY not in repr(uri) and KEY not in str(uri)
    cfg = AzureConfig.from_uri(uri, {}, {})
    assert (cfg.auth, cfg.account_key) == ("key", KEY)
    assert KEY not in repr(cfg)
    sas = AzureConfig.from_uri(parse_uri("az://data/p?account_name=acct1&sas_token=" + quote(SAS, safe="")), {}, {})
    assert (sas.auth, sas.sas_token) == ("sas", SAS)
    assert "AbCdEfSasSignature" not in repr(sas)
    assert "AbCdEfSasSignature%2Fxyz%3D" in sas.secrets()


def test_a_leading_question_mark_on_a_sas_token_is_dropped() -> None:
    assert config("az://data/p?account_name=acct1", sas_token="?" + SAS).sas_token == SAS


def test_options_beat_the_uri() -> None:
    cfg = config(
        f"az://data/p?account_name=acct1&account_key={KEY}&max_workers=3", account_key=OTHER_KEY, max_workers=9
    )
    assert (cfg.account_key, cfg.max_workers) == (OTHER_KEY, 9)


def test_two_ways_to_authenticate_are_refused() -> None:
    with pytest.raises(InvalidURI) as info:
        config("az://data/p?account_name=acct1", account_key=KEY, sas_token=SAS)
    assert KEY not in str(info.value) and "AbCdEf" not in str(info.value)
    with pytest.raises(InvalidURI):
        config(f"az://data/p?account_name=acct1&account_key={KEY}", anonymous=True)


def test_connection_string_option() -> None:
    cs = f"DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey={KEY};EndpointSuffix=core.windows.net"
    cfg = config("az://data/p", connection_string=cs)
    assert (cfg.auth, cfg.account_name, cfg.account_key) == ("key", "acct1", KEY)
    assert cfg.account_url == "https://acct1.blob.core.windows.net"
    assert KEY not in repr(cfg)


def test_connection_string_with_a_sas_and_a_blob_endpoint() -> None:
    cs = f"BlobEndpoint=https://acct1.blob.core.windows.net/;SharedAccessSignature={SAS}"
    cfg = config("az://data/p", connection_string=cs)
    assert (cfg.auth, cfg.sas_token, cfg.account_url) == ("sas", SAS, "https://acct1.blob.core.windows.net")


def test_an_explicit_endpoint_beats_the_connection_strings() -> None:
    cs = f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint=http://a:1/devstoreaccount1"
    assert config("az://data/p?endpoint=http://b:2/devstoreaccount1", connection_string=cs).account_url == (
        "http://b:2/devstoreaccount1"
    )


def test_use_development_storage() -> None:
    cfg = config("az://data/p", connection_string="UseDevelopmentStorage=true")
    assert cfg.account_url == "http://127.0.0.1:10000/devstoreaccount1"
    assert (cfg.account_name, cfg.account_key) == ("devstoreaccount1", DEV_KEY)


def test_the_environment_connection_string_is_the_fallback() -> None:
    env = {"AZURE_STORAGE_CONNECTION_STRING": f"AccountName=acct1;AccountKey={KEY}"}
    cfg = config("az://data/p", env)
    assert (cfg.auth, cfg.account_name, cfg.account_key) == ("key", "acct1", KEY)
    assert "environment" in cfg.credential_source
    assert config("az://data@acct1.blob.core.windows.net/p", env).account_key == KEY  # same account: used
    explicit = config("az://data/p", env, account_key=OTHER_KEY, account_name="acct1")
    assert explicit.account_key == OTHER_KEY  # an explicit credential beats the environment


def test_an_environment_credential_for_another_account_is_not_used() -> None:
    env = {
        "AZURE_STORAGE_CONNECTION_STRING": f"AccountName=other;AccountKey={KEY}",
        "AZURE_STORAGE_ACCOUNT": "other",
        "AZURE_STORAGE_KEY": KEY,
    }
    cfg = config("abfss://data@acct1.dfs.core.windows.net/p", env)
    assert cfg.auth == "default" and cfg.account_key is None
    assert cfg.account_url == "https://acct1.blob.core.windows.net"


def test_account_and_key_from_the_environment() -> None:
    for names in (
        ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY"),
        ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY"),
    ):
        cfg = config("az://data/p", {names[0]: "acct1", names[1]: KEY})
        assert (cfg.auth, cfg.account_name, cfg.account_key) == ("key", "acct1", KEY)
        assert cfg.account_url == "https://acct1.blob.core.windows.net"
    sas = config("az://data/p", {"AZURE_STORAGE_ACCOUNT": "acct1", "AZURE_STORAGE_SAS_TOKEN": SAS})
    assert (sas.auth, sas.sas_token) == ("sas", SAS)


def test_connection_string_env_beats_account_and_key_env() -> None:
    env = {
        "AZURE_STORAGE_CONNECTION_STRING": f"AccountName=acct1;AccountKey={KEY}",
        "AZURE_STORAGE_ACCOUNT": "acct1",
        "AZURE_STORAGE_KEY": OTHER_KEY,
    }
    assert config("az://data/p", env).account_key == KEY


def test_default_azure_credential_when_nothing_else_is_given() -> None:
    cfg = config("az://data/p", {"AZURE_STORAGE_ACCOUNT": "acct1"})
    assert (cfg.auth, cfg.account_name) == ("default", "acct1")
    assert config("abfss://data@acct1.dfs.core.windows.net/p").auth == "default"
    assert config("abfss://data@acct1.dfs.core.windows.net/p", anonymous="true").auth == "anonymous"


def test_parse_connection_string_keeps_equals_signs_in_values() -> None:
    fields = parse_connection_string(f" AccountName=acct1 ;AccountKey={KEY};;")
    assert fields == {"AccountName": "acct1", "AccountKey": KEY}
    with pytest.raises(InvalidURI):
        parse_connection_string("just-a-key")
    with pytest.raises(InvalidURI):
        connection_string_settings("AccountKey=abc")  # names no account or endpoint


@pytest.mark.parametrize(
    "options",
    [
        {"max_workers": 0},
        {"max_concurrency": "x"},
        {"max_single_put_size": "big"},
        {"read_timeout": "soon"},
        {"max_attempts": 0},
        {"create_container": "perhaps"},
        {"no_such_option": 1},
    ],
)
def test_bad_option_values_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(InvalidURI):
        config("az://data/p?account_name=acct1", account_key=KEY, **options)


def test_sizes_accept_units() -> None:
    cfg = config("az://data/p?account_name=acct1&max_single_put_size=4MiB&max_block_size=256KiB", account_key=KEY)
    assert (cfg.max_single_put_size, cfg.max_block_size) == (4 * 2**20, 256 * 1024)
