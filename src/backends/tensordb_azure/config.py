"""Turn an Azure Blob URI, caller options and the environment into one settings object.

Why a separate, SDK-free module: the URI spellings, the connection-string
format and every precedence rule live here and are tested without
azure-storage-blob or a server.  Nothing here performs I/O.

Spellings (all name a container and an optional prefix inside it)::

    az://container/prefix                                   account from options or environment
    az://container@account.blob.core.windows.net/prefix
    abfs[s]://container@account.dfs.core.windows.net/prefix (MLflow, fsspec/adlfs, Hadoop)
    wasb[s]://container@account.blob.core.windows.net/prefix

Every spelling talks HTTPS to ``https://<account>.blob.<suffix>`` (the Blob API
also serves Data Lake Gen2 accounts); give ``endpoint=`` for anything else,
such as Azurite (``http://127.0.0.1:10000/devstoreaccount1``).

Credential precedence, highest first: keyword options, then URI query options
(``connection_string``, ``account_key``, ``sas_token``, ``credential``,
``anonymous``), then the environment (``AZURE_STORAGE_CONNECTION_STRING``;
else ``AZURE_STORAGE_ACCOUNT`` with ``AZURE_STORAGE_KEY`` or
``AZURE_STORAGE_SAS_TOKEN``), then ``DefaultAzureCredential`` when
azure-identity is installed.  An environment credential is used only when it
names the same account as the URI (or the URI names none).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tensordb_core.errors import InvalidURI
from tensordb_core.store.kit.cloud import normalise_prefix
from tensordb_core.store.kit.options import MiB, Option, OptionSet, anything, flag, seconds, size, whole
from tensordb_core.store.uri import StoreURI

SCHEMES = ("az", "abfs", "abfss", "wasb", "wasbs")
DEFAULT_SUFFIX = "core.windows.net"
#: Azurite's and the Storage Emulator's published development account (not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

_CONTAINER_RE = re.compile(r"^(\$root|[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9])$")
_ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")

#: Every option this backend understands, with its default (``None``: unset).  The environment is
#: consulted for credentials only (see :func:`_pick_credential`).
OPTIONS = OptionSet(
    "Azure option",
    [
        Option("account_name"),
        Option("account_key"),
        Option("sas_token"),
        Option("connection_string", in_uri=False),  # keyword or environment only: never in a URI
        Option("credential", convert=anything, in_uri=False),  # any azure-core credential object
        Option("anonymous", False, flag()),  # unauthenticated reads of a public container
        Option("endpoint"),  # account URL, e.g. http://127.0.0.1:10000/devstoreaccount1 for Azurite
        Option("api_version"),  # pin the service API version (older Azurite or Azure Stack)
        Option("create_container", False, flag()),  # create the container when it does not exist (tests, emulators)
        Option("check_container", True, flag()),  # ask once at open whether the container exists (a 403 passes)
        Option("max_workers", 16, whole(1)),  # concurrent requests in get_many; the HTTP pool is sized to match
        Option("max_concurrency", 4, whole(1)),  # parallel block uploads / range downloads within one large blob
        Option("max_single_put_size", 64 * MiB, size),  # larger blobs are uploaded as blocks
        Option("max_block_size", 8 * MiB, size),  # block size for block uploads
        Option("read_timeout", 60.0, seconds(0.001)),  # seconds to wait for a response
        Option("connect_timeout", 10.0, seconds(0.001)),  # seconds to wait for a TCP/TLS connection
        Option("max_attempts", 4, whole(1)),  # tries per request, retrying 408/429/5xx and connection failures
        Option("page_size", 1000, whole(1)),  # names per list request
    ],
)
#: The defaults by name.
DEFAULTS: dict[str, Any] = OPTIONS.defaults

#: Environment variables this backend reads, in the order they are consulted.
ENV_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"
ENV_ACCOUNT = ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_ACCOUNT_NAME")
ENV_KEY = ("AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCOUNT_KEY")
ENV_SAS = ("AZURE_STORAGE_SAS_TOKEN",)


@dataclass(frozen=True)
class Location:
    """Where a URI points: container, prefix and (when the URI says) the account and endpoint suffix."""

    container: str
    prefix: str
    account: str | None = None
    suffix: str = DEFAULT_SUFFIX


@dataclass(frozen=True)
class AzureConfig:
    """Resolved settings for one Azure blob store.  ``repr`` never shows a key, token or connection string.

    Built by :meth:`from_uri` only: the defaults live in ``OPTIONS``, once.
    """

    container: str
    prefix: str
    account_url: str
    account_name: str | None
    #: How to authenticate: "key", "sas", "credential", "default" (DefaultAzureCredential) or "anonymous".
    auth: str
    account_key: str | None = field(repr=False)
    sas_token: str | None = field(repr=False)
    credential: Any = field(repr=False)
    credential_source: str  # where the credential came from, for messages ("option", "environment", ...)
    api_version: str | None
    create_container: bool
    check_container: bool
    max_workers: int
    max_concurrency: int
    max_single_put_size: int
    max_block_size: int
    read_timeout: float
    connect_timeout: float
    max_attempts: int
    page_size: int

    @classmethod
    def from_uri(
        cls, uri: StoreURI, options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> AzureConfig:
        """Settings for ``uri`` from keyword ``options`` and ``environ`` (default ``os.environ``)."""
        return _resolve(uri, options or {}, environ)

    @property
    def bucket(self) -> str:
        """The container: what the kit's template calls the bucket."""
        return self.container

    @property
    def create_bucket(self) -> bool:
        return self.create_container

    @property
    def check_bucket(self) -> bool:
        return self.check_container

    @property
    def single_put_limit(self) -> int:
        """Blobs larger than ``max_single_put_size`` go up as staged blocks."""
        return self.max_single_put_size + 1

    def secrets(self) -> tuple[str, ...]:
        """Every secret string this config holds (for scrubbing error text); never print the result."""
        found = [s for s in (self.account_key, self.sas_token) if s]
        if self.sas_token:
            found += [v for k, v in _sas_params(self.sas_token) if k == "sig" and v]
        return tuple(found)


def parse_location(uri: StoreURI) -> Location:
    """Container, prefix, account and suffix from any accepted spelling."""
    if uri.scheme not in SCHEMES:
        raise InvalidURI(f"{uri} is not an Azure Blob URI: write az://container/prefix")
    if uri.password is not None or uri.port is not None or len(uri.hosts) != 1:
        raise InvalidURI(
            f"{uri}: write az://container/prefix or {uri.scheme}://container@account.blob.core.windows.net/prefix"
        )
    host = uri.host or ""
    account: str | None = None
    suffix = DEFAULT_SUFFIX
    if uri.username is not None:  # container@account.<service>.<suffix>
        container = uri.username
        labels = host.lower().split(".")  # DNS names are case-insensitive; container names are not
        account = labels[0]
        if len(labels) >= 3 and labels[1] in ("blob", "dfs"):
            suffix = ".".join(labels[2:])
        elif len(labels) != 1:
            raise InvalidURI(
                f"{uri}: expected container@ACCOUNT.blob.core.windows.net or container@ACCOUNT.dfs.core.windows.net"
            )
        if not _ACCOUNT_RE.match(account):
            raise InvalidURI(f"{uri}: {account!r} is not a storage account name (3-24 lowercase letters and digits)")
    elif uri.scheme == "az":
        container = host
    else:
        raise InvalidURI(
            f"{uri}: {uri.scheme}:// names the account in the host: {uri.scheme}://container@ACCOUNT."
            f"{'dfs' if uri.scheme.startswith('abfs') else 'blob'}.core.windows.net/prefix"
        )
    if not _CONTAINER_RE.match(container):
        raise InvalidURI(
            f"{uri}: {container!r} is not a valid container name (3-63 lowercase letters, digits and single hyphens)"
        )
    return Location(container, normalise_prefix(uri.path, uri), account, suffix)


def parse_connection_string(text: str) -> dict[str, str]:
    """``Name=value;Name=value`` into a dict (names as written); values may contain ``=``."""
    out: dict[str, str] = {}
    for part in text.strip().strip(";").split(";"):
        if not part.strip():
            continue
        name, eq, value = part.partition("=")
        if not eq:
            raise InvalidURI("malformed Azure connection string: expected Name=value pairs separated by ';'")
        out[name.strip()] = value.strip()
    return out


def connection_string_settings(text: str) -> tuple[str | None, str | None, str | None, str | None]:
    """``(account_name, account_key, sas_token, blob_endpoint)`` from a connection string."""
    fields = {k.lower(): v for k, v in parse_connection_string(text).items()}
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        return DEV_ACCOUNT, DEV_KEY, None, f"http://127.0.0.1:10000/{DEV_ACCOUNT}"
    account = fields.get("accountname")
    endpoint = fields.get("blobendpoint")
    if not endpoint and account:
        protocol = fields.get("defaultendpointsprotocol", "https")
        endpoint = f"{protocol}://{account}.blob.{fields.get('endpointsuffix', DEFAULT_SUFFIX)}"
    if not endpoint:
        raise InvalidURI("the Azure connection string names neither AccountName nor BlobEndpoint")
    return account, fields.get("accountkey") or None, fields.get("sharedaccesssignature") or None, endpoint


def _sas_params(token: str) -> list[tuple[str, str]]:
    return [(k, v) for k, _, v in (p.partition("=") for p in token.lstrip("?").split("&"))]


def _first_env(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if env.get(name):
            return env[name]
    return None


def _account_from_url(url: str) -> str | None:
    """The account an endpoint URL names: host label (public cloud) or first path segment (Azurite)."""
    match = re.match(r"^[a-z]+://([^/:]+)(?::\d+)?(/[^/?]*)?", url, re.IGNORECASE)
    if not match:
        return None
    host, path = match.group(1).lower(), (match.group(2) or "").strip("/")
    if re.match(r"^\d+\.\d+\.\d+\.\d+$", host) or host == "localhost" or "." not in host:
        return path or None
    return host.split(".")[0]


def _resolve(uri: StoreURI, options: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> AzureConfig:
    env = os.environ if environ is None else environ
    where = uri.redacted()
    location = parse_location(uri)
    merged = OPTIONS.parse(uri, options, environ={})  # the environment is consulted for credentials only

    account = location.account
    if merged["account_name"]:
        named = str(merged["account_name"]).lower()
        if account and named != account:
            raise InvalidURI(f"{where} names account {account!r} but account_name={named!r}")
        account = named
    endpoint: str | None = str(merged["endpoint"]).rstrip("/") if merged["endpoint"] else None
    if endpoint and not re.match(r"^https?://", endpoint):
        raise InvalidURI(f"endpoint={endpoint!r} must start with http:// or https://")
    if endpoint and not account:
        account = _account_from_url(endpoint)

    auth, key, sas, credential, source = _pick_credential(merged, env, account, where)
    if auth == "connection_string":
        cs_account, key, sas, cs_endpoint = connection_string_settings(str(credential))
        if account and cs_account and cs_account.lower() != account:
            raise InvalidURI(f"{where} names account {account!r} but the connection string is for {cs_account!r}")
        account = account or (cs_account.lower() if cs_account else None)
        endpoint = endpoint or (cs_endpoint.rstrip("/") if cs_endpoint else None)
        credential = None
        auth = "key" if key else "sas" if sas else "anonymous"
    if not account and not endpoint:
        account = (_first_env(env, ENV_ACCOUNT) or "").lower() or None
    if not endpoint:
        if not account:
            raise InvalidURI(
                f"{where} names no storage account: write {uri.scheme}://container@ACCOUNT.blob.core.windows.net/..., "
                f"pass account_name=..., or set {ENV_CONNECTION_STRING} or AZURE_STORAGE_ACCOUNT"
            )
        endpoint = f"https://{account}.blob.{location.suffix}"
    if auth == "key" and not account:
        raise InvalidURI(f"{where}: an account key needs the account name too (account_name=...)")
    return AzureConfig(
        container=location.container,
        prefix=location.prefix,
        account_url=endpoint,
        account_name=account,
        auth=auth,
        account_key=key,
        sas_token=sas.lstrip("?") if sas else None,
        credential=credential,
        credential_source=source,
        api_version=merged["api_version"] or None,
        **{name: merged[name] for name in _SETTINGS},
    )


#: Settings taken as the option parser converted them.
_SETTINGS = (
    "create_container", "check_container", "max_workers", "max_concurrency", "max_single_put_size", "max_block_size",
    "read_timeout", "connect_timeout", "max_attempts", "page_size",
)  # fmt: skip


def _pick_credential(
    merged: Mapping[str, Any], env: Mapping[str, str], account: str | None, where: str
) -> tuple[str, str | None, str | None, Any, str]:
    """``(auth, account_key, sas_token, credential_or_connection_string, source)`` by precedence."""
    given = [n for n in ("connection_string", "account_key", "sas_token", "credential") if merged[n]]
    if merged["anonymous"]:
        given.append("anonymous")
    if len(given) > 1:
        raise InvalidURI(f"{where}: give one way to authenticate, not {' and '.join(given)}")
    if given:
        name = given[0]
        if name == "connection_string":
            return "connection_string", None, None, str(merged[name]), "option"
        if name == "account_key":
            return "key", str(merged[name]), None, None, "option"
        if name == "sas_token":
            return "sas", None, str(merged[name]), None, "option"
        if name == "credential":
            return "credential", None, None, merged[name], "option"
        return "anonymous", None, None, None, "option"

    env_cs = env.get(ENV_CONNECTION_STRING)
    if env_cs:
        cs_account = connection_string_settings(env_cs)[0]
        if not account or not cs_account or cs_account.lower() == account:
            return "connection_string", None, None, env_cs, f"environment ({ENV_CONNECTION_STRING})"
    env_account = (_first_env(env, ENV_ACCOUNT) or "").lower() or None
    if env_account and (not account or env_account == account):
        env_key, env_sas = _first_env(env, ENV_KEY), _first_env(env, ENV_SAS)
        if env_key:
            return "key", env_key, None, None, "environment (AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY)"
        if env_sas:
            return "sas", None, env_sas, None, "environment (AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_SAS_TOKEN)"
    return "default", None, None, None, "DefaultAzureCredential"
