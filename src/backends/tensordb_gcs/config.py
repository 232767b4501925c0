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
from tensordb_core.store.kit.cloud import normalise_prefix
from tensordb_core.store.kit.options import MiB, Option, OptionSet, flag, seconds, size, whole
from tensordb_core.store.uri import StoreURI

SCHEMES = ("gs", "gcs")
#: GCS requires resumable-upload chunks to be multiples of 256 KiB.
CHUNK_MULTIPLE = 256 * 1024

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._\-]{1,220}[a-z0-9]$")


def _credentials(name: str, value: Any, where: str | None = None) -> Any:
    """A key-file path (``os.PathLike`` too) or a google.auth Credentials object."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _emulator(name: str, value: Any, where: str | None = None) -> str | None:
    """``host:port`` or a URL; the SDK's convention lets STORAGE_EMULATOR_HOST omit the scheme."""
    text = str(value).rstrip("/")
    if not text:
        return None
    return text if "://" in text else "http://" + text


#: Every option this backend understands, with its default (``None``: unset).
OPTIONS = OptionSet(
    "GCS option",
    [
        Option("project", env=("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT")),
        Option("credentials", convert=_credentials),  # a key-file path, or a google.auth Credentials object
        Option("anonymous", False, flag()),  # unauthenticated access to public buckets
        Option("emulator_host", convert=_emulator, env=("STORAGE_EMULATOR_HOST",)),  # implies anonymous
        Option("create_bucket", False, flag()),  # create the bucket when it does not exist (tests, emulators)
        Option("check_bucket", True, flag()),  # ask once at open whether the bucket exists (a 403 is let through)
        Option("max_workers", 16, whole(1)),  # concurrent requests in get_many; the HTTP pool is sized to match
        Option("resumable_threshold", 8 * MiB, size),  # blobs at least this big use a resumable upload
        Option("chunk_size", 16 * MiB, size),  # resumable upload chunk, a multiple of 256 KiB
        Option("read_timeout", 60.0, seconds(0.001)),  # seconds to wait for a response
        Option("connect_timeout", 10.0, seconds(0.001)),  # seconds to wait for a TCP/TLS connection
        Option("retry_timeout", 30.0, seconds(0.0)),  # total seconds of retrying 429/5xx/connection failures; 0: none
        Option("page_size", 1000, whole(1)),  # names per list request
    ],
)
#: The defaults by name.
DEFAULTS: dict[str, Any] = OPTIONS.defaults


@dataclass(frozen=True)
class GCSConfig:
    """Resolved settings for one GCS blob store.  ``repr`` never shows credentials.

    Built by :meth:`from_uri` only: the defaults live in ``OPTIONS``, once.
    """

    bucket: str
    prefix: str  # "" or "some/prefix/" (always ends with "/")
    project: str | None
    credentials: Any = field(repr=False)
    anonymous: bool
    emulator_host: str | None
    create_bucket: bool
    check_bucket: bool
    max_workers: int
    resumable_threshold: int
    chunk_size: int
    read_timeout: float
    connect_timeout: float
    retry_timeout: float
    page_size: int

    @property
    def http_timeout(self) -> tuple[float, float]:
        """``(connect, read)`` as requests expects it."""
        return (self.connect_timeout, self.read_timeout)

    @property
    def single_put_limit(self) -> int:
        """Blobs this large or larger go up as resumable uploads."""
        return self.resumable_threshold

    def secrets(self) -> tuple[str, ...]:
        """Nothing to scrub: credentials live in a file or an object, never in a string we hold."""
        return ()

    @classmethod
    def from_uri(
        cls, uri: StoreURI, options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> GCSConfig:
        """Settings for ``uri`` from keyword ``options`` and ``environ`` (default ``os.environ``)."""
        where = uri.redacted()
        if uri.scheme not in SCHEMES:
            raise InvalidURI(f"{where} is not a GCS URI: write gs://bucket/prefix")
        if uri.username is not None or uri.password is not None or uri.port is not None or len(uri.hosts) != 1:
            raise InvalidURI(f"{where}: a GCS URI is gs://bucket/prefix (no user, password, port or host list)")
        bucket = uri.host or ""
        if not _BUCKET_RE.match(bucket) or ".." in bucket:
            raise InvalidURI(
                f"{where}: {bucket!r} is not a valid GCS bucket name (3-222 characters: lowercase letters, digits, "
                ". _ -)"
            )
        values = OPTIONS.parse(uri, options, environ=environ)
        if values["chunk_size"] % CHUNK_MULTIPLE:
            raise InvalidURI(
                f"chunk_size={values['chunk_size']} must be a multiple of 256 KiB ({CHUNK_MULTIPLE} bytes), for {where}"
            )
        values["project"] = values["project"] or None
        values["credentials"] = values["credentials"] or None
        return cls(bucket=bucket, prefix=normalise_prefix(uri.path, uri), **values)
