"""Resolve an ``s3://bucket/prefix`` URI plus per-store options into one settled configuration.

Why a module of its own: precedence is the part users get wrong and the part
that must never leak a secret, so it is written once, without boto3, and tested
on its own.  Precedence, per setting:

1. the ``options`` mapping given when the store is opened
   (``open_blobs(uri, aws_access_key_id=...)``, the hook's ``options`` dict);
2. the URI's query (``s3://bucket/prefix?endpoint_url=...&region=...``);
3. boto3's own chain: ``AWS_ENDPOINT_URL(_S3)``, ``AWS_REGION``/``AWS_DEFAULT_REGION``,
   ``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``..., the shared config/credentials files,
   SSO, container and instance roles.  A setting left ``None`` here is left to boto3.

Credentials are one group: the access key id, secret and session token are
taken together from the highest source that names an access key id, never
mixed across sources.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from tensordb_core.errors import InvalidURI
from tensordb_core.store.cloudkit import (
    FALSE_WORDS,
    TRUE_WORDS,
    MiB,
    normalise_prefix,
    reject_unknown,
    to_bool,
    to_float,
    to_int,
    to_size,
)
from tensordb_core.store.uri import StoreURI

#: S3's smallest allowed multipart part (all but the last).
MIN_PART_SIZE = 5 * MiB
#: S3's largest part count per multipart upload.
MAX_PARTS = 10_000

# Accepted spellings -> field name.  boto3's own names are accepted so a
# botocore user's settings carry over unchanged.
_ALIASES: dict[str, str] = {
    "endpoint_url": "endpoint_url",
    "endpoint": "endpoint_url",
    "region": "region",
    "region_name": "region",
    "profile": "profile",
    "profile_name": "profile",
    "addressing_style": "addressing_style",
    "aws_access_key_id": "access_key_id",
    "access_key_id": "access_key_id",
    "aws_secret_access_key": "secret_access_key",
    "secret_access_key": "secret_access_key",
    "aws_session_token": "session_token",
    "session_token": "session_token",
    "create_bucket": "create_bucket",
    "check_bucket": "check_bucket",
    "conditional_writes": "conditional_writes",
    "multipart_threshold": "multipart_threshold",
    "multipart_chunksize": "multipart_chunksize",
    "max_workers": "max_workers",
    "max_attempts": "max_attempts",
    "retry_mode": "retry_mode",
    "connect_timeout": "connect_timeout",
    "read_timeout": "read_timeout",
    "verify": "verify",
    "checksum_calculation": "checksum_calculation",
    "session": "session",
}
_CREDENTIAL_FIELDS = ("access_key_id", "secret_access_key", "session_token")
_ADDRESSING = ("auto", "path", "virtual")
_RETRY_MODES = ("adaptive", "standard", "legacy")
_CHECKSUM_MODES = ("when_supported", "when_required")
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{1,254}$")


@dataclass(frozen=True)
class S3Config:
    """Everything an :class:`~tensordb_s3.store.S3BlobStore` needs, settled once at open.

    Secret fields are excluded from ``repr``; :meth:`secrets` lists their values
    so error messages can be scrubbed of them.
    """

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    addressing_style: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    create_bucket: bool = False
    check_bucket: bool = True
    conditional_writes: bool = True
    multipart_threshold: int = 16 * MiB
    multipart_chunksize: int = 8 * MiB
    max_workers: int = 16
    max_attempts: int = 6
    retry_mode: str = "adaptive"
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    verify: bool | str | None = None
    checksum_calculation: str | None = None
    session: Any = field(default=None, repr=False, compare=False)

    def secrets(self) -> tuple[str, ...]:
        """The credential values given explicitly (to scrub from any text we emit)."""
        return tuple(v for v in (self.access_key_id, self.secret_access_key, self.session_token) if v)

    @property
    def has_explicit_credentials(self) -> bool:
        return self.access_key_id is not None

    def effective_addressing_style(self, environ: Mapping[str, str] | None = None) -> str | None:
        """Path style for custom endpoints (MinIO, Ceph, moto want it) unless told otherwise.

        ``None`` leaves the choice to boto3 (virtual-hosted on AWS, or the
        ``s3.addressing_style`` of the shared config file).
        """
        if self.addressing_style is not None:
            return self.addressing_style
        env = os.environ if environ is None else environ
        if self.endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"):
            return "path"
        return None

    @classmethod
    def from_uri(cls, uri: StoreURI, options: Mapping[str, Any] | None = None) -> S3Config:
        """Parse ``uri`` and merge ``options`` over its query (see the module docstring for precedence)."""
        if uri.scheme != "s3":
            raise InvalidURI(f"not an s3:// URI: {uri.redacted()}")
        bucket, prefix = _bucket_and_prefix(uri)
        query = _normalise(dict(uri.options), uri, source="query")
        if "session" in query:
            raise InvalidURI(f"'session' can only be passed as an option object, not in the URI: {uri.redacted()}")
        given = _normalise(dict(options or {}), uri, source="options")
        merged: dict[str, Any] = {}
        for source in (query, given):  # later sources override earlier ones
            merged.update({k: v for k, v in source.items() if k not in _CREDENTIAL_FIELDS})
        merged.update(_credentials(query, given, uri))
        return cls(bucket=bucket, prefix=prefix, **_convert(merged, uri))


def _bucket_and_prefix(uri: StoreURI) -> tuple[str, str]:
    if uri.username is not None or uri.password is not None:
        raise InvalidURI(
            f"{uri.redacted()}: do not put credentials before the bucket; pass aws_access_key_id/"
            "aws_secret_access_key as options, use a profile, or rely on the AWS credential chain"
        )
    if len(uri.hosts) != 1 or uri.port is not None or not uri.host:
        raise InvalidURI(f"{uri.redacted()}: write s3://bucket/optional/prefix (one bucket, no port)")
    bucket = uri.host
    if not _BUCKET_RE.match(bucket):
        raise InvalidURI(f"{uri.redacted()}: {bucket!r} is not a valid bucket name")
    return bucket, normalise_prefix(uri.path, uri)


def _normalise(raw: dict[str, Any], uri: StoreURI, *, source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    unknown = [name for name in raw if name.lower() not in _ALIASES]
    reject_unknown(unknown, _ALIASES, what=f"s3 {source}", where=uri.redacted())
    for name, value in raw.items():
        target = _ALIASES[name.lower()]
        if target in out and out[target] != value:
            raise InvalidURI(f"s3 {source} set {target!r} twice (under two spellings) for {uri.redacted()}")
        out[target] = value
    return out


def _credentials(query: dict[str, Any], given: dict[str, Any], uri: StoreURI) -> dict[str, Any]:
    """Take the credential group from one source: options first, then the URI query."""
    for source, name in ((given, "options"), (query, "URI query")):
        group = {k: source[k] for k in _CREDENTIAL_FIELDS if source.get(k) not in (None, "")}
        if not group:
            continue
        if "access_key_id" not in group or "secret_access_key" not in group:
            raise InvalidURI(
                f"the {name} of {uri.redacted()} give only part of a key pair: "
                "pass both aws_access_key_id and aws_secret_access_key (and aws_session_token if any)"
            )
        return group
    return {}


def _convert(merged: dict[str, Any], uri: StoreURI) -> dict[str, Any]:
    out: dict[str, Any] = {}
    where = uri.redacted()
    for f in fields(S3Config):
        if f.name not in merged or merged[f.name] is None:
            continue
        value = merged[f.name]
        if f.name in ("create_bucket", "check_bucket", "conditional_writes"):
            value = to_bool(f.name, value, where=where, blank_is_false=False)
        elif f.name in ("multipart_threshold", "multipart_chunksize"):
            value = to_size(f.name, value, where=where)
        elif f.name in ("max_workers", "max_attempts"):
            value = to_int(f.name, value, minimum=1, where=where)
        elif f.name in ("connect_timeout", "read_timeout"):
            value = to_float(f.name, value, minimum=0, exclusive=True, where=where)
        elif f.name == "verify":
            value = (
                value
                if isinstance(value, bool)
                else (
                    to_bool(f.name, value, where=where)
                    if str(value).lower() in TRUE_WORDS + FALSE_WORDS
                    else str(value)
                )
            )
        elif f.name == "addressing_style":
            value = _choice(f.name, value, _ADDRESSING, where)
        elif f.name == "retry_mode":
            value = _choice(f.name, value, _RETRY_MODES, where)
        elif f.name == "checksum_calculation":
            value = _choice(f.name, value, _CHECKSUM_MODES, where)
        elif f.name != "session":
            value = str(value)
        out[f.name] = value
    if out.get("multipart_chunksize", MIN_PART_SIZE) < MIN_PART_SIZE:
        raise InvalidURI(f"multipart_chunksize must be at least 5 MiB (S3's smallest part) for {where}")
    if out.get("session") is not None and out.get("profile") is not None:
        raise InvalidURI(f"pass either a boto3 session or a profile, not both, for {where}")
    return out


def _choice(name: str, value: Any, allowed: tuple[str, ...], where: str) -> str:
    text = str(value).strip().lower()
    if text not in allowed:
        raise InvalidURI(f"{name} must be one of {', '.join(allowed)}, not {value!r}, for {where}")
    return text
