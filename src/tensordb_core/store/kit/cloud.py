"""The cloud blob-store template: S3, GCS and Azure fill in a handful of SDK calls, the template does the rest.

Why a template: the three stores promise the same things and used to write
them three ways.  Here, once: the open sequence (parse the config, connect,
check or create the bucket, close again if any of that fails), the key rules
(checked keys under the store's prefix; content addresses written as
conditional creates, where "it already exists" is success; a large blob that
is already there is not uploaded again), ranged reads (an empty range still
says whether the blob exists, a range past the end is an empty slice), the
bucket check that tells a missing bucket from a missing object (asked once,
also on the first 404 when the store opened without checking), and error
translation (every SDK failure goes through the backend's
:class:`~tensordb_core.store.kit.errors.ErrorTable`, chained only when its
text holds no secret).  A backend subclass sets ``config_type`` and
``errors`` and implements the ``_connect`` ... ``_names`` primitives, which
call the SDK and let its exceptions out.  Importing this module never imports
boto3, google-cloud or azure.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, NoReturn, Protocol, Self

from tensordb_core.errors import BackendError, BlobNotFound, InvalidQuery, InvalidURI, TensorDBError
from tensordb_core.store.blobkit import check_key, is_content_address, ordered_concurrent_map, split_request
from tensordb_core.store.kit.errors import ErrorTable, Kind, Withheld
from tensordb_core.store.protocols import BlobCapabilities, BlobRequest
from tensordb_core.store.uri import StoreURI, parse_uri

log = logging.getLogger(__name__)

_PREFIX_RE = re.compile(r"^[A-Za-z0-9._/\-]*$")


def as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """``data`` as ``bytes`` (no copy when it already is)."""
    return data if isinstance(data, bytes) else memoryview(data).cast("B").tobytes()


def check_list_prefix(prefix: str) -> str:
    """``prefix`` if it can start blob keys ([A-Za-z0-9._-] segments, no ``..``, no leading ``/``), else raise."""
    if (
        not isinstance(prefix, str)
        or not _PREFIX_RE.match(prefix)
        or prefix.startswith("/")
        or ".." in prefix.split("/")
    ):
        raise InvalidQuery(f"invalid blob key prefix {prefix!r}: use [A-Za-z0-9._-] segments joined by '/'")
    return prefix


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


class CloudConfig(Protocol):
    """What the template reads from a backend's settled configuration."""

    bucket: str  #: the bucket (Azure: the container)
    prefix: str  #: "" or "some/prefix/"
    create_bucket: bool
    check_bucket: bool
    max_workers: int
    single_put_limit: int  #: blobs of this many bytes or more go up in parts

    def secrets(self) -> tuple[str, ...]: ...


class CloudBlobStore:
    """A :class:`~tensordb_core.store.protocols.BlobStore` over one bucket and key prefix of a cloud service.

    Build one as ``Store(uri, **options)``: ``config_type.from_uri(uri, options)``
    settles the options; opening checks the bucket once (``check_bucket=false``
    skips that; ``create_bucket=true`` creates a missing bucket).  ``repr`` and
    ``str`` show only the redacted URI; the store is a context manager that
    closes itself; ``get_many`` runs ``get`` on up to ``max_workers`` threads
    in request order.
    """

    capabilities = BlobCapabilities()
    config_type: ClassVar[Any]  #: has ``from_uri(uri, options) -> CloudConfig``
    errors: ClassVar[ErrorTable]

    def __init__(self, uri: str | StoreURI, **options: Any) -> None:
        self.uri = parse_uri(uri)
        self.config: CloudConfig = self.config_type.from_uri(self.uri, options)
        self.bucket = self.config.bucket
        self.prefix = self.config.prefix
        self._where = self.uri.redacted()
        self._secrets: tuple[str, ...] = self.config.secrets()
        self._endpoint = ""
        self._conditional = True  #: write content addresses as conditional creates
        self._closed = False
        self._connected = False
        self._bucket_checked = False
        self._check_lock = threading.RLock()
        try:
            try:
                self._connect()
            except Exception as exc:  # noqa: BLE001 - the SDK boundary: every failure is translated
                self._fail(exc, "connect")
            self._connected = True
            if self.config.create_bucket:
                self._ensure_bucket()
            elif self.config.check_bucket:
                self._check_bucket()
        except BaseException:
            self.close()
            raise

    # -- what a backend implements: SDK calls that let the SDK's exceptions out --------------------------------------

    def _connect(self) -> None:
        """Build the client; set ``_endpoint`` (and ``_secrets`` if the SDK resolved credentials)."""
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError

    def _bucket_exists(self) -> bool:
        """Ask the service about the bucket (raising its not-found error counts as False)."""
        raise NotImplementedError

    def _make_bucket(self) -> None:
        raise NotImplementedError

    def _put(self, name: str, data: memoryview, conditional: bool) -> None:
        """Write ``data`` as object ``name``; ``conditional``: only if absent (the SDK raises EXISTS otherwise)."""
        raise NotImplementedError

    def _read(self, name: str, start: int, end: int | None) -> bytes:
        raise NotImplementedError

    def _stat(self, name: str) -> int | None:
        """The object's size, or None (or the SDK's not-found error) when it is absent."""
        raise NotImplementedError

    def _delete(self, name: str) -> None:
        raise NotImplementedError

    def _names(self, prefix: str) -> Iterator[str]:
        """Full object names starting with ``prefix``."""
        raise NotImplementedError

    # -- errors and the bucket ---------------------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """The endpoint the client talks to (the service's, or an emulator's)."""
        return self._endpoint

    def _fail(self, exc: BaseException, op: str, key: str | None = None) -> NoReturn:
        """Raise the TensorDB error for ``exc``; call it from the ``except`` block that caught ``exc``.

        A not-found may mean the bucket is gone (some services answer 404 alike
        for both), so the bucket is asked about once first.  A driver error
        whose text still holds a secret is not chained: :class:`Withheld`
        stands in as the cause, so no traceback or log shows it.
        """
        if isinstance(exc, TensorDBError):
            raise exc
        if op not in ("check bucket", "create bucket") and self.errors.classify(exc) is Kind.NOT_FOUND:
            self._check_bucket(cause=exc)
        error = self.errors.translate(
            exc, op=op, key=key, where=self._where, endpoint=self._endpoint, bucket=self.bucket, secrets=self._secrets
        )
        if self.errors.leaks(exc, self._secrets):
            raise error from Withheld()
        raise error from exc

    def _bucket_found(self) -> bool:
        """False only when the service says the bucket is missing.

        Refused credentials count as "may exist": a role allowed to read and
        write objects but not to look at the bucket is a legitimate setup, and
        the first real call reports the precise error.
        """
        try:
            return self._bucket_exists()
        except Exception as exc:  # noqa: BLE001 - the SDK boundary: every failure is translated
            kind = self.errors.classify(exc)
            if kind is Kind.DENIED:
                log.debug("the bucket check of %s was refused; not checking further", self._where)
                return True
            if kind in (Kind.NOT_FOUND, Kind.BUCKET_MISSING):
                return False
            self._fail(exc, "check bucket")

    def _check_bucket(self, cause: BaseException | None = None) -> None:
        """Raise the table's bucket error if the bucket is missing; asked at most once per store."""
        if self._bucket_checked:
            return
        with self._check_lock:
            if self._bucket_checked:
                return
            if not self._bucket_found():
                raise self.errors.missing_bucket(self.bucket, self._where) from cause
            self._bucket_checked = True

    def _ensure_bucket(self) -> None:
        """Create the bucket unless it is there (looking first needs no create permission)."""
        if self._bucket_found():
            self._bucket_checked = True
            return
        try:
            self._make_bucket()
            log.info("created %s %s for %s", self.errors.bucket_noun, self.bucket, self._where)
        except Exception as exc:  # noqa: BLE001 - the SDK boundary: every failure is translated
            if self.errors.classify(exc) is not Kind.EXISTS:
                self._fail(exc, "create bucket")
        self._bucket_checked = True

    # -- the BlobStore protocol --------------------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` under ``key``; a content-addressed key that already exists is left as is.

        Content addresses are conditional creates (the service refuses to
        replace an object, and "already exists" means the same bytes are
        there); other keys are plain overwrites, atomic on every service.
        """
        name = self._name(key)
        view = memoryview(data)
        view = (view if view.c_contiguous else memoryview(view.tobytes())).cast("B")
        conditional = self._conditional and is_content_address(key)
        if conditional and view.nbytes >= self.config.single_put_limit and self.exists(key):
            return  # skip re-uploading a large blob that is already there
        try:
            self._put(name, view, conditional)
        except Exception as exc:  # noqa: BLE001 - the SDK boundary: every failure is translated
            if conditional and self.errors.classify(exc) is Kind.EXISTS:
                return
            self._fail(exc, "put", key)

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)``; a range past the end is cut short like a slice; ``BlobNotFound`` if absent."""
        return self._get_request((key, start, end))

    def _get_request(self, request: BlobRequest) -> bytes:
        key, start, end = split_request(request)
        if end is not None and end <= start:
            self.size(key)  # an empty range of a missing blob is still "not found"
            return b""
        try:
            return self._read(self.prefix + key, start, end)
        except Exception as exc:  # noqa: BLE001 - the SDK boundary: every failure is translated
            if self.errors.classify(exc) is Kind.RANGE:
                return b""  # the range starts at or past the end: the blob exists, the slice is empty
            self._fail(exc, "get", key)

    def get_many(self, requests: Iterable[BlobRequest]) -> Iterator[bytes]:
        """Fetch concurrently on up to ``max_workers`` threads, yielding in request order."""
        return ordered_concurrent_map(self._get_request, requests, self.config.max_workers)

    def _size_or_none(self, key: str) -> int | None:
        try:
            found = self._stat(self._name(key))
        except Exception as exc:  # noqa: BLE001 - the SDK boundary: every failure is translated
            if self.errors.classify(exc) is not Kind.NOT_FOUND:
                self._fail(exc, "stat", key)
            found = None
        if found is None:
            self._check_bucket()
        return found

    def exists(self, key: str) -> bool:
        """Whether ``key`` is stored (one metadata request)."""
        return self._size_or_none(key) is not None

    def size(self, key: str) -> int:
        """Length in bytes (one metadata request); ``BlobNotFound`` if absent."""
        found = self._size_or_none(key)
        if found is None:
            raise BlobNotFound(f"no blob {key!r} in {self._where}")
        return found

    def delete(self, key: str) -> None:
        """Remove a blob; a missing key is not an error (a missing bucket is)."""
        try:
            self._delete(self._name(key))
        except Exception as exc:  # noqa: BLE001 - the SDK boundary: every failure is translated
            if self.errors.classify(exc) is not Kind.NOT_FOUND:
                self._fail(exc, "delete", key)
            self._check_bucket(cause=exc)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix`` (relative to the store's prefix); the prefix is checked at once."""
        return self._list(check_list_prefix(prefix))

    def _list(self, prefix: str) -> Iterator[str]:
        cut = len(self.prefix)
        try:
            for name in self._names(self.prefix + prefix):
                yield name[cut:]
        except Exception as exc:  # noqa: BLE001 - the SDK boundary: every failure is translated
            self._fail(exc, "list", prefix or None)

    # -- lifetime ------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the client and its connection pool (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if not self._connected:
            return
        try:
            self._disconnect()
        except Exception as exc:
            raise BackendError(f"could not close the {self.errors.service} client of {self._where}") from exc

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._where!r})"

    __str__ = __repr__

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
