"""Table-driven error translation: a backend says what its SDK's failures mean, the kit says it to the user.

Why a table: the cloud stores fail in the same few ways (the object or the
bucket is missing, the credentials are refused or absent, the service is
unreachable or throttling, a conditional create met an existing object), but
each SDK spells them differently — error codes, HTTP statuses, exception
classes.  A backend gives an :class:`ErrorTable` from its spellings to a
:class:`Kind`; :meth:`ErrorTable.translate` turns any failure into the same
typed :class:`~tensordb_core.errors.TensorDBError` with a message that names
the operation and the redacted URI, says what to do next, and never carries a
secret.  The stores also ask :meth:`ErrorTable.classify` directly where a
kind is not a failure (a 412 on a conditional create is success; a 416 is an
empty slice).  Importing this module imports no SDK: exception classes are
named by a function the table calls on first use.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from tensordb_core.errors import (
    BackendError,
    BackendUnavailable,
    BlobNotFound,
    InvalidURI,
    PermissionDenied,
    TensorDBError,
    TransientError,
)
from tensordb_core.store.uri import REDACTED

#: HTTP statuses worth retrying with backoff (throttling, timeouts, server trouble).
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class BucketNotFound(BackendError, LookupError):
    """The store's bucket does not exist: create it, or open the store with ``create_bucket=true``."""


class Kind(enum.Enum):
    """What a driver failure means, whatever the SDK calls it."""

    NOT_FOUND = "the object is not there"  # -> BlobNotFound
    BUCKET_MISSING = "the bucket or container is not there"  # -> the table's bucket error
    EXISTS = "a create met an existing object or bucket"  # success for conditional creates
    RANGE = "the range starts at or past the end"  # an empty slice
    DENIED = "the credentials were refused"  # -> PermissionDenied
    NO_CREDENTIALS = "no usable credentials were found"  # -> PermissionDenied
    TRANSIENT = "worth retrying"  # -> TransientError
    UNAVAILABLE = "the service cannot be reached"  # -> BackendUnavailable
    INVALID = "the SDK refused the settings"  # -> InvalidURI
    OTHER = "anything else"  # -> BackendError


@dataclass(frozen=True)
class Rule:
    """A kind with its own advice: ``hint`` replaces the table's for this entry; ``service`` names who failed."""

    kind: Kind
    hint: str = ""
    service: str | None = None


Entry = Kind | Rule


def scrub_secrets(text: str, secrets: Iterable[str], *, min_length: int = 1) -> str:
    """``text`` with every secret of at least ``min_length`` characters replaced by ``***``.

    Longest first: a secret may contain another, and replacing the short one
    first would leave the rest of the long one behind.
    """
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and len(secret) >= min_length:
            text = text.replace(secret, REDACTED)
    return text


def subject(op: str, key: str | None, where: str) -> str:
    """``"get 'k' in s3://b/p"``, or ``"list in s3://b/p"`` without a key: the start of an error message."""
    return f"{op} {key!r} in {where}" if key is not None else f"{op} in {where}"


def _no_code(exc: BaseException) -> str:
    return ""


def _no_status(exc: BaseException) -> int | None:
    return None


def _itself(exc: BaseException) -> BaseException:
    return exc


def _nothing() -> Sequence[tuple[Any, Entry]]:
    return ()


@dataclass(frozen=True)
class ErrorTable:
    """One backend's failures: codes, then statuses, then exception classes, each mapped to a :class:`Kind`.

    ``codes`` and ``statuses`` are plain data; ``types`` is a function returning
    ``(exception class or tuple, entry)`` pairs, called once on first use so the
    SDK is imported only by then.  ``hints`` say what to do next per kind.
    ``scrub`` makes a driver exception safe to chain (it travels on as
    ``__cause__``); ``scrub_text`` removes secrets from text we quote.
    """

    service: str  #: how messages name the service: "S3", "GCS", "Azure"
    codes: Mapping[str, Entry] = field(default_factory=dict)
    statuses: Mapping[int, Entry] = field(default_factory=dict)
    types: Callable[[], Sequence[tuple[Any, Entry]]] = _nothing
    code_of: Callable[[BaseException], str] = _no_code
    status_of: Callable[[BaseException], int | None] = _no_status
    unwrap: Callable[[BaseException], BaseException] = _itself  #: the real failure inside a retry wrapper
    hints: Mapping[Kind, str] = field(default_factory=dict)
    bucket_error: type[BackendError] = BucketNotFound
    bucket_noun: str = "bucket"  #: also names the options: create_<noun>, check_<noun>
    scrub: Callable[[BaseException, tuple[str, ...]], None] | None = None
    scrub_text: Callable[[str, Iterable[str]], str] = scrub_secrets

    @cached_property
    def _types(self) -> tuple[tuple[Any, Entry], ...]:
        return tuple(self.types())

    def entry(self, exc: BaseException) -> Entry:
        """The table's entry for ``exc``: by error code, else HTTP status, else exception class, else OTHER."""
        inner = self.unwrap(exc)
        code = self.code_of(inner)
        if code and code in self.codes:
            return self.codes[code]
        status = self.status_of(inner)
        if status is not None and status in self.statuses:
            return self.statuses[status]
        for types, found in self._types:
            if isinstance(inner, types):
                return found
        return Kind.OTHER

    def classify(self, exc: BaseException) -> Kind:
        """What ``exc`` means."""
        found = self.entry(exc)
        return found.kind if isinstance(found, Rule) else found

    def leaks(self, exc: BaseException, secrets: Iterable[str]) -> bool:
        """True when the text of ``exc`` or anything chained to it still holds a secret."""
        wanted = tuple(secrets)
        seen: set[int] = set()
        node: BaseException | None = exc
        while node is not None and id(node) not in seen:
            seen.add(id(node))
            shown = f"{node!s} {node!r}"
            if self.scrub_text(shown, wanted) != shown:
                return True
            node = node.__cause__ or node.__context__
        return False

    def translate(
        self,
        exc: BaseException,
        *,
        op: str,
        key: str | None = None,
        where: str,
        endpoint: str = "",
        bucket: str = "",
        secrets: Iterable[str] = (),
    ) -> TensorDBError:
        """The TensorDB error for a failure of ``op`` on ``key`` in the store at ``where`` (a redacted URI).

        The caller raises it ``from exc`` (see ``CloudBlobStore._fail``, which
        withholds a chain that still holds a secret).
        """
        hidden = tuple(secrets)
        if self.scrub is not None:
            self.scrub(exc, hidden)
        inner = self.unwrap(exc)
        if isinstance(inner, TensorDBError):
            return inner
        found = self.entry(inner)
        rule = found if isinstance(found, Rule) else Rule(found)
        hint = rule.hint or self.hints.get(rule.kind, "")
        tail = f"; {hint}" if hint else ""
        what = subject(op, key, where)
        status, code = self.status_of(inner), self.code_of(inner)
        answer = " ".join(str(p) for p in (f"HTTP {status}" if status else "", code) if p) or type(inner).__name__
        detail = self.scrub_text(str(inner), hidden)
        service = rule.service or self.service
        kind = rule.kind
        if kind is Kind.NOT_FOUND:
            return BlobNotFound(f"no blob {key!r} in {where}" if key is not None else f"{what}: not found ({answer})")
        if kind is Kind.BUCKET_MISSING:
            return self.missing_bucket(bucket, where)
        if kind is Kind.DENIED:
            return PermissionDenied(f"{what}: {service} refused the credentials ({answer}){tail}")
        if kind is Kind.NO_CREDENTIALS:
            return PermissionDenied(f"{what}: no usable {service} credentials ({detail}){tail}")
        if kind is Kind.UNAVAILABLE:
            at = f" at {endpoint}" if endpoint and rule.service is None else ""
            return BackendUnavailable(f"{what}: cannot reach {service}{at} ({type(inner).__name__}){tail}")
        if kind is Kind.TRANSIENT:
            if status is None:
                return TransientError(f"{what}: the connection to {service} failed mid-request ({answer}); retry")
            return TransientError(f"{what}: {service} answered {answer}; retry later")
        if kind is Kind.INVALID:
            return InvalidURI(f"{what}: the {service} client refused the settings: {detail}")
        if status is not None:
            return BackendError(f"{what}: {service} answered {answer}{tail}")
        return BackendError(f"{what}: unexpected {type(inner).__name__}: {detail}")

    def missing_bucket(self, bucket: str, where: str) -> BackendError:
        """The error for a store whose bucket (or container) does not exist, saying how to fix it."""
        noun = self.bucket_noun
        how = self.hints.get(Kind.BUCKET_MISSING, "create it")
        return self.bucket_error(
            f"the {self.service} {noun} {bucket!r} of {where} does not exist: {how}, open the store with "
            f"create_{noun}=true (an option, or ?create_{noun}=true in the URI), or fix the URI"
        )


class Withheld(Exception):
    """Stands in as ``__cause__`` for a driver error whose text held a credential (so no traceback shows it)."""

    def __init__(self) -> None:
        super().__init__("the driver's own error was withheld because its text contained a credential")
