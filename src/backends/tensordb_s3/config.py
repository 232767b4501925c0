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
mixed across sources.  Options are parsed by the kit's
:class:`~tensordb_core.store.kit.options.OptionSet`; boto3's own spellings
(``region_name``, ``aws_access_key_id``...) are accepted as aliases so a
botocore user's settings carry over unchanged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tensordb_core.errors import InvalidURI
from tensordb_core.store.kit.cloud import normalise_prefix
from tensordb_core.store.kit.options import (
    FALSE_WORDS,
    TRUE_WORDS,
    MiB,
    Option,
    OptionSet,
    anything,
    flag,
    one_of,
    seconds,
    size,
    to_bool,
    whole,
)
from tensordb_core.store.uri import StoreURI

__all__ = ["MAX_PARTS", "MIN_PART_SIZE", "OPTIONS", "MiB", "S3Config"]

SCHEME = "s3"
#: S3's smallest allowed multipart part (all but the last).
MIN_PART_SIZE = 5 * MiB
#: S3's largest part count per multipart upload.
MAX_PARTS = 10_000

_CREDENTIAL_FIELDS = ("access_key_id", "secret_access_key", "session_token")
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{1,254}$")


def _verify(name: str, value: Any, where: str | None = None) -> bool | str:
    """``verify``: true/false, or the path of a CA bundle."""
    if isinstance(value, bool) or str(value).strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return to_bool(name, value, where=where)
    return str(value)


_STRICT_FLAG = flag(blank_is_false=False)

OPTIONS = OptionSet(
    "s3 option",
    [
        Option("endpoint_url", aliases=("endpoint",)),
        Option("region", aliases=("region_name",)),
        Option("profile", aliases=("profile_name",)),
        Option("addressing_style", convert=one_of("auto", "path", "virtual")),
        Option("access_key_id", aliases=("aws_access_key_id",)),
        Option("secret_access_key", aliases=("aws_secret_access_key",)),
        Option("session_token", aliases=("aws_session_token",)),
        Option("create_bucket", False, _STRICT_FLAG),
        Option("check_bucket", True, _STRICT_FLAG),
        Option("conditional_writes", True, _STRICT_FLAG),
        Option("multipart_threshold", 16 * MiB, size),
        Option("multipart_chunksize", 8 * MiB, size),
        Option("max_workers", 16, whole(1)),
        Option("max_attempts", 6, whole(1)),
        Option("retry_mode", "adaptive", one_of("adaptive", "standard", "legacy")),
        Option("connect_timeout", 10.0, seconds(0, exclusive=True)),
        Option("read_timeout", 60.0, seconds(0, exclusive=True)),
        Option("verify", convert=_verify),
        Option("checksum_calculation", convert=one_of("when_supported", "when_required")),
        Option("session", convert=anything, in_uri=False),  # a boto3 Session object
    ],
)


@dataclass(frozen=True)
class S3Config:
    """Everything an :class:`~tensordb_s3.store.S3BlobStore` needs, settled once at open.

    Secret fields are excluded from ``repr``; :meth:`secrets` lists their values
    so error messages can be scrubbed of them.
    Built by :meth:`from_uri` only: the defaults live in ``OPTIONS``, once.
    """

    bucket: str
    prefix: str
    endpoint_url: str | None
    region: str | None
    profile: str | None
    addressing_style: str | None
    access_key_id: str | None = field(repr=False)
    secret_access_key: str | None = field(repr=False)
    session_token: str | None = field(repr=False)
    create_bucket: bool
    check_bucket: bool
    conditional_writes: bool
    multipart_threshold: int
    multipart_chunksize: int
    max_workers: int
    max_attempts: int
    retry_mode: str
    connect_timeout: float
    read_timeout: float
    verify: bool | str | None
    checksum_calculation: str | None
    session: Any = field(repr=False, compare=False)

    def secrets(self) -> tuple[str, ...]:
        """The credential values given explicitly (to scrub from any text we emit)."""
        return tuple(v for v in (self.access_key_id, self.secret_access_key, self.session_token) if v)

    @property
    def has_explicit_credentials(self) -> bool:
        return self.access_key_id is not None

    @property
    def single_put_limit(self) -> int:
        """Blobs this large or larger go up as multipart uploads."""
        return self.multipart_threshold

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
    def from_uri(
        cls, uri: StoreURI, options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> S3Config:
        """Parse ``uri`` and merge ``options`` over its query (see the module docstring for precedence).

        ``environ`` is accepted for symmetry with the other backends; the
        environment is left to boto3's own chain.
        """
        if uri.scheme != SCHEME:
            raise InvalidURI(f"not an s3:// URI: {uri.redacted()}")
        where = uri.redacted()
        bucket, prefix = _bucket_and_prefix(uri)
        _, query, given = OPTIONS.layers(uri, options, environ={})
        merged = {k: v for k, v in {**query, **given}.items() if k not in _CREDENTIAL_FIELDS}
        merged.update(_credentials(query, given, where))
        values = OPTIONS.convert(merged, where=where)
        if values["multipart_chunksize"] < MIN_PART_SIZE:
            raise InvalidURI(f"multipart_chunksize must be at least 5 MiB (S3's smallest part) for {where}")
        if values["session"] is not None and values["profile"] is not None:
            raise InvalidURI(f"pass either a boto3 session or a profile, not both, for {where}")
        return cls(bucket=bucket, prefix=prefix, **values)


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


def _credentials(query: dict[str, Any], given: dict[str, Any], where: str) -> dict[str, Any]:
    """Take the credential group from one source: options first, then the URI query."""
    for source, name in ((given, "options"), (query, "URI query")):
        group = {k: source[k] for k in _CREDENTIAL_FIELDS if source.get(k) not in (None, "")}
        if not group:
            continue
        if "access_key_id" not in group or "secret_access_key" not in group:
            raise InvalidURI(
                f"the {name} of {where} give only part of a key pair: "
                "pass both aws_access_key_id and aws_secret_access_key (and aws_session_token if any)"
            )
        return group
    return {}
