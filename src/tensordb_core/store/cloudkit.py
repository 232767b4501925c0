"""Pieces the cloud blob stores (S3, GCS, Azure) share, free of any cloud SDK.

Why here: the three backends were written side by side and agree on how an
option is spelled and parsed (``8MiB``, ``true``/``off``), on precedence
(keyword option > URI query > environment > default), on never echoing an
unknown option's value, on which keys are content addresses, on scrubbing
secrets from text, and on the shape of a store object (``repr`` shows only
the redacted URI, ``get_many`` is the bounded ordered map of ``get``).  Writing
those once keeps the backends identical where they should be; what really
differs (credential chains, conditional-write mechanics, error codes) stays
in each backend.  Importing this module never imports boto3, google-cloud or
azure: it is core, and the plugins import it on discovery.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Self

from tensordb_core.errors import BackendError, InvalidQuery, InvalidURI, MissingDependency
from tensordb_core.store.blobkit import check_key, ordered_concurrent_map, split_request
from tensordb_core.store.protocols import BlobCapabilities, BlobRequest
from tensordb_core.store.uri import REDACTED, StoreURI

MiB = 1024 * 1024

# -- option values -----------------------------------------------------------------------------------------------

#: Spellings of true and false accepted in URI queries and options (case-insensitive).
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

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


def _for(where: str | None) -> str:
    return f", for {where}" if where else ""


def to_size(name: str, value: Any, *, where: str | None = None) -> int:
    """A positive byte count: an int, or text such as ``8388608``, ``8MiB``, ``256KiB``, ``1GB``."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = _SIZE_RE.match(str(value))
        if match is None:
            raise InvalidURI(f"option {name}={value!r} must be a byte count such as 8388608 or 8MiB{_for(where)}")
        number = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if number < 1:
        raise InvalidURI(f"option {name}={number} must be positive{_for(where)}")
    return number


def to_bool(name: str, value: Any, *, where: str | None = None, blank_is_false: bool = True) -> bool:
    """Real booleans and the usual spellings in URI query strings (``?flag=`` is false unless ``blank_is_false=False``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS or (blank_is_false and text == ""):
        return False
    raise InvalidURI(f"option {name}={value!r} must be true or false{_for(where)}")


def to_int(name: str, value: Any, *, minimum: int, where: str | None = None) -> int:
    """A whole number of at least ``minimum``."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidURI(f"option {name}={value!r} must be a whole number{_for(where)}") from None
    if number < minimum:
        raise InvalidURI(f"option {name}={number} must be at least {minimum}{_for(where)}")
    return number


def to_float(name: str, value: Any, *, minimum: float, exclusive: bool = False, where: str | None = None) -> float:
    """A number of seconds of at least ``minimum`` (more than ``minimum`` when ``exclusive``, which also refuses NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidURI(f"option {name}={value!r} must be a number of seconds{_for(where)}") from None
    if exclusive and not number > minimum:
        raise InvalidURI(f"option {name}={number} must be more than {minimum}{_for(where)}")
    if not exclusive and number < minimum:
        raise InvalidURI(f"option {name}={number} must be at least {minimum}{_for(where)}")
    return number


# -- options as a whole ------------------------------------------------------------------------------------------


def reject_unknown(unknown: Iterable[str], known: Iterable[str], *, what: str, where: str) -> None:
    """Raise :class:`InvalidURI` naming ``unknown`` options and listing ``known`` ones; nothing when none.

    Names only, never values: a mistyped secret option must not echo its value.
    """
    names = sorted(unknown)
    if names:
        raise InvalidURI(f"unknown {what} {', '.join(names)} for {where}; known: {', '.join(sorted(set(known)))}")


def unknown_options(uri: StoreURI, options: Mapping[str, Any], known: Iterable[str]) -> list[str]:
    """The option names in ``uri``'s query or in ``options`` that are not in ``known``, sorted."""
    allowed = set(known)
    return sorted((set(uri.query) - allowed) | (set(options) - allowed))


def layered(
    defaults: Mapping[str, Any],
    environment: Mapping[str, Any] | None = None,
    query: Mapping[str, Any] | None = None,
    keyword: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One settings dict by precedence: ``keyword`` > URI ``query`` > ``environment`` > ``defaults``."""
    return {**defaults, **(environment or {}), **(query or {}), **(keyword or {})}


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


# -- secrets -----------------------------------------------------------------------------------------------------


def scrub_secrets(text: str, secrets: Iterable[str], *, min_length: int = 1) -> str:
    """``text`` with every secret of at least ``min_length`` characters replaced by ``***``.

    Longest first: a secret may contain another, and replacing the short one
    first would leave the rest of the long one behind.
    """
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and len(secret) >= min_length:
            text = text.replace(secret, REDACTED)
    return text


# -- errors ------------------------------------------------------------------------------------------------------


class BucketNotFound(BackendError, LookupError):
    """The store's bucket does not exist: create it, or open the store with ``create_bucket=true``."""


#: HTTP statuses worth retrying with backoff (throttling, timeouts, server trouble).
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def subject(op: str, key: str | None, where: str) -> str:
    """``"get 'k' in s3://b/p"``, or ``"list in s3://b/p"`` without a key: the start of an error message."""
    return f"{op} {key!r} in {where}" if key is not None else f"{op} in {where}"


# -- store shape -------------------------------------------------------------------------------------------------

_CONTENT_ADDRESS = re.compile(r"^[0-9a-f]{64}$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9._/\-]*$")


def is_content_address(key: str) -> bool:
    """True when the key's last segment is a sha256 hex digest (its bytes are fixed by its name)."""
    return bool(_CONTENT_ADDRESS.match(key.rsplit("/", 1)[-1]))


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


class CloudBlobStore:
    """What the cloud stores have in common; a subclass sets ``_where`` and ``config`` and implements the rest.

    ``repr``/``str`` show only the redacted URI; the store is a context
    manager that closes itself; ``get_many`` runs ``get`` on up to
    ``config.max_workers`` threads in request order; ``list`` checks the
    prefix at once (not on first iteration) and then iterates ``_list``.
    """

    capabilities = BlobCapabilities()
    _where: str
    config: Any

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._where!r})"

    __str__ = __repr__

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - every store overrides it
        raise NotImplementedError

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError

    def _get_request(self, request: BlobRequest) -> bytes:
        return self.get(*split_request(request))

    def get_many(self, requests: Iterable[BlobRequest]) -> Iterator[bytes]:
        """Fetch concurrently on up to ``max_workers`` threads, yielding in request order."""
        return ordered_concurrent_map(self._get_request, requests, self.config.max_workers)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix`` (relative to the store's prefix)."""
        return self._list(check_list_prefix(prefix))

    def _list(self, prefix: str) -> Iterator[str]:  # pragma: no cover - overridden
        raise NotImplementedError


# -- packaging ---------------------------------------------------------------------------------------------------


def require_modules(modules: Iterable[str], *, scheme: str, package: str, extra: str) -> None:
    """Import each of ``modules`` or raise :class:`MissingDependency` naming the pip extra that installs them."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingDependency(
                f"the {scheme}:// blob store needs {package} ({module} is missing): pip install 'tensordb[{extra}]'"
            ) from exc


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` (a submodule of ``package``) on first access.

    Why: a backend package is imported on plugin discovery, and its SDK must
    load only when a store is really opened.
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
