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

from tensordb_core.blobkit import check_key
from tensordb_core.errors import InvalidURI
from tensordb_core.uri import StoreURI

SCHEMES = ("gs", "gcs")
MiB = 1024 * 1024
#: GCS requires resumable-upload chunks to be multiples of 256 KiB.
CHUNK_MULTIPLE = 256 * 1024

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._\-]{1,220}[a-z0-9]$")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": MiB,
    "mb": 1000**2,
    "mib": MiB,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}

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
    unknown = sorted(set(uri.query) - set(DEFAULTS) | set(options) - set(DEFAULTS))
    if unknown:  # names only: a mistyped secret option must not echo its value
        raise InvalidURI(
            f"unknown GCS option(s) {', '.join(unknown)} for {where}; known: {', '.join(sorted(DEFAULTS))}"
        )

    merged: dict[str, Any] = dict(DEFAULTS)
    if env.get("STORAGE_EMULATOR_HOST"):
        merged["emulator_host"] = env["STORAGE_EMULATOR_HOST"]
    if env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT"):
        merged["project"] = env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT")
    merged.update(uri.query)
    merged.update(options)

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


def normalise_prefix(path: str, uri: StoreURI) -> str:
    """``/a/b/`` → ``a/b/``; empty stays empty.  The prefix must itself be a valid blob key."""
    stripped = path.strip("/")
    if not stripped:
        return ""
    try:
        check_key(stripped)
    except ValueError:
        raise InvalidURI(f"{uri.redacted()}: the prefix must be [A-Za-z0-9._-] segments joined by '/'") from None
    return stripped + "/"


def to_size(name: str, value: Any) -> int:
    """A byte count: an int, or text such as ``8388608``, ``8MiB``, ``256KiB``, ``1GB``."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = _SIZE_RE.match(str(value))
        if match is None:
            raise InvalidURI(f"option {name}={value!r} must be a byte count such as 8388608 or 8MiB")
        number = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if number < 1:
        raise InvalidURI(f"option {name}={number} must be positive")
    return number


def to_bool(name: str, value: Any) -> bool:
    """Accept real booleans and the usual spellings in URI query strings."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise InvalidURI(f"option {name}={value!r} must be true or false")


def to_int(name: str, value: Any, *, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidURI(f"option {name}={value!r} must be a whole number") from None
    if number < minimum:
        raise InvalidURI(f"option {name}={number} must be at least {minimum}")
    return number


def to_float(name: str, value: Any, *, minimum: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidURI(f"option {name}={value!r} must be a number of seconds") from None
    if number < minimum:
        raise InvalidURI(f"option {name}={number} must be at least {minimum}")
    return number
