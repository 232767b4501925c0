"""Turn a ``gs://bucket/prefix`` URI, caller options and the environment into one settings object.

Why a separate, SDK-free module: every precedence rule (keyword option over
URI query option over environment over default) lives here and can be tested
without google-cloud-storage or a server.  Nothing here performs I/O.

Precedence, highest first:

1. keyword options passed to ``open_blobs(uri, **options)``;
2. query options in the URI (``gs://b/p?project=p1&emulator_host=...``);
3. the Google SDKs' standard environment: ``STORAGE_EMULATOR_HOST``,
   ``GOOGLE_CLOUD_PROJECT`` (or ``GCLOUD_PROJECT``); ``GOOGLE_APPLICATION_CREDENTIALS``
   is honoured by Application Default Credentials itself;
4. the defaults below.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tensordb_core.errors import InvalidURI
from tensordb_core.store.cloudkit import (
    MiB,
    layered,
    normalise_prefix,
    reject_unknown,
    to_bool,
    to_float,
    to_int,
    to_size,
    unknown_options,
)
from tensordb_core.store.uri import StoreURI

SCHEMES = ("gs", "gcs")
#: GCS requires resumable-upload chunks to be multiples of 256 KiB.
CHUNK_MULTIPLE = 256 * 1024

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._\-]{1,220}[a-z0-9]$")

#: Every option this backend understands, with its default (``None``: unset).
DEFAULTS: dict[str, Any] = {
    "project": None,
    "credentials": None,  # path to a JSON key file, or a google.auth Credentials object (keyword only)
    "anonymous": False,  # unauthenticated access to public buckets
    "emulator_host": None,  # e.g. http://127.0.0.1:4443; implies anonymous credentials
    "create_bucket": False,  # create the bucket when it does not exist (tests, emulators)
    "check_bucket": True,  # ask once at open whether the bucket exists (a 403 is let through)
    "max_workers": 16,  # concurrent requests in get_many; the HTTP pool is sized to match
    "resumable_threshold": 8 * MiB,  # blobs at least this big use a resumable upload
    "chunk_size": 16 * MiB,  # resumable upload chunk, a multiple of 256 KiB
    "read_timeout": 60.0,  # seconds to wait for a response
    "connect_timeout": 10.0,  # seconds to wait for a TCP/TLS connection
    "retry_timeout": 30.0,  # total seconds of retrying 429/5xx/connection failures; 0 disables retries
    "page_size": 1000,  # names per list request
}


@dataclass(frozen=True)
class GCSConfig:
    """Resolved settings for one GCS blob store.  ``repr`` never shows credentials."""

    bucket: str
    prefix: str  # "" or "some/prefix/" (always ends with "/")
    project: str | None = None
    credentials: Any = field(default=None, repr=False)
    anonymous: bool = False
    emulator_host: str | None = None
    create_bucket: bool = False
    check_bucket: bool = True
    max_workers: int = 16
    resumable_threshold: int = 8 * MiB
    chunk_size: int = 16 * MiB
    read_timeout: float = 60.0
    connect_timeout: float = 10.0
    retry_timeout: float = 30.0
    page_size: int = 1000

    @property
    def http_timeout(self) -> tuple[float, float]:
        """``(connect, read)`` as requests expects it."""
        return (self.connect_timeout, self.read_timeout)

    @classmethod
    def from_uri(
        cls, uri: StoreURI, options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> GCSConfig:
        """Settings for ``uri`` from keyword ``options`` and ``environ`` (default ``os.environ``)."""
        return resolve(uri, options or {}, environ)


def resolve(uri: StoreURI, options: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> GCSConfig:
    """Build the settings for ``uri`` from keyword ``options`` and ``environ`` (default ``os.environ``)."""
    where = uri.redacted()
    env = os.environ if environ is None else environ
    if uri.scheme not in SCHEMES:
        raise InvalidURI(f"{where} is not a GCS URI: write gs://bucket/prefix")
    if uri.username is not None or uri.password is not None or uri.port is not None or len(uri.hosts) != 1:
        raise InvalidURI(f"{where}: a GCS URI is gs://bucket/prefix (no user, password, port or host list)")
    bucket = uri.host or ""
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise InvalidURI(
            f"{where}: {bucket!r} is not a valid GCS bucket name (3-222 characters: lowercase letters, digits, . _ -)"
        )
    reject_unknown(unknown_options(uri, options, DEFAULTS), DEFAULTS, what="GCS option(s)", where=where)
    from_env: dict[str, Any] = {}
    if env.get("STORAGE_EMULATOR_HOST"):
        from_env["emulator_host"] = env["STORAGE_EMULATOR_HOST"]
    if env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT"):
        from_env["project"] = env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT")
    merged = layered(DEFAULTS, from_env, uri.query, options)

    emulator = merged["emulator_host"] or None
    if emulator is not None:
        emulator = str(emulator).rstrip("/")
        if "://" not in emulator:
            emulator = "http://" + emulator  # the SDK's convention: STORAGE_EMULATOR_HOST may omit the scheme
    chunk_size = to_size("chunk_size", merged["chunk_size"])
    if chunk_size % CHUNK_MULTIPLE:
        raise InvalidURI(f"chunk_size={chunk_size} must be a multiple of 256 KiB ({CHUNK_MULTIPLE} bytes), for {where}")
    credentials = merged["credentials"]
    if isinstance(credentials, os.PathLike):
        credentials = os.fspath(credentials)
    return GCSConfig(
        bucket=bucket,
        prefix=normalise_prefix(uri.path, uri),
        project=str(merged["project"]) if merged["project"] else None,
        credentials=credentials or None,
        anonymous=to_bool("anonymous", merged["anonymous"]),
        emulator_host=emulator,
        create_bucket=to_bool("create_bucket", merged["create_bucket"]),
        check_bucket=to_bool("check_bucket", merged["check_bucket"]),
        max_workers=to_int("max_workers", merged["max_workers"], minimum=1),
        resumable_threshold=to_size("resumable_threshold", merged["resumable_threshold"]),
        chunk_size=chunk_size,
        read_timeout=to_float("read_timeout", merged["read_timeout"], minimum=0.001),
        connect_timeout=to_float("connect_timeout", merged["connect_timeout"], minimum=0.001),
        retry_timeout=to_float("retry_timeout", merged["retry_timeout"], minimum=0.0),
        page_size=to_int("page_size", merged["page_size"], minimum=1),
    )
