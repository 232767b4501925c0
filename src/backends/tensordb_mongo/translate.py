"""Turn PyMongo exceptions into TensorDB's typed errors, without leaking credentials.

Every public method of the Mongo stores runs its driver calls inside
:func:`driver_errors`, so callers only ever see :mod:`tensordb_core.errors`
classes.  Messages name the server by its redacted URI; if a driver message
ever contained the password, the original exception is not chained (its text
would print in the traceback) and the password is scrubbed from ours.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from tensordb_core.errors import (
    BackendError,
    BackendUnavailable,
    IntegrityError,
    InvalidDocument,
    InvalidQuery,
    InvalidURI,
    PermissionDenied,
    TensorDBError,
    TransientError,
)
from tensordb_core.store.uri import REDACTED, StoreURI

#: Server codes meaning "who you are or what you may do": Unauthorized,
#: AuthenticationFailed, Atlas's "bad auth" (8000), UserNotFound.
_AUTH_CODES = frozenset({13, 18, 8000, 11})
_AUTH_WORDS = ("authentication failed", "not authorized", "unauthorized", "bad auth", "authentication required")
#: Codes worth a retry with backoff: primary stepping down, shutdown, throttling (Cosmos 16500), ...
_TRANSIENT_CODES = frozenset({6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 16500})
_DUPLICATE_KEY = 11000
#: The caller's input cannot apply: BadValue, FailedToParse, TypeMismatch, PathNotViable,
#: DollarPrefixedFieldName, EmptyFieldName, DottedFieldName, ImmutableField, ConflictingUpdateOperators.
_BAD_INPUT_CODES = frozenset({2, 9, 14, 28, 52, 56, 57, 66, 40})


def scrub(text: str, uri: StoreURI) -> str:
    """``text`` with the URI's password (raw and percent-encoded) replaced by ``***``."""
    if uri.password:
        from urllib.parse import quote

        for secret in {uri.password, quote(uri.password, safe="")}:
            text = text.replace(secret, REDACTED)
    return text


def _leaks(exc: BaseException, uri: StoreURI) -> bool:
    return bool(uri.password) and scrub(str(exc), uri) != str(exc)


def _error_code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    if code is None:
        details = getattr(exc, "details", None) or {}
        errors = details.get("writeErrors") if isinstance(details, dict) else None
        if errors:
            code = errors[0].get("code")
    return code if isinstance(code, int) else None


def translate(exc: BaseException, uri: StoreURI, action: str) -> TensorDBError:
    """The TensorDB error for a driver exception raised while doing ``action`` against ``uri``."""
    import bson.errors
    from pymongo import errors as pe

    where = uri.redacted()
    detail = scrub(str(exc), uri)
    code = _error_code(exc)
    if isinstance(exc, pe.DuplicateKeyError) or (isinstance(exc, pe.BulkWriteError) and code == _DUPLICATE_KEY):
        return IntegrityError(f"{action}: duplicate key in {where}: {detail[:500]}")
    if isinstance(exc, pe.ConfigurationError | pe.InvalidURI):
        return InvalidURI(f"{where}: {detail}")
    if isinstance(exc, bson.errors.InvalidDocument | OverflowError):
        return InvalidDocument(f"{action}: document cannot be stored in MongoDB: {detail}")
    if isinstance(exc, pe.OperationFailure):
        lowered = detail.lower()
        if code in _AUTH_CODES or any(word in lowered for word in _AUTH_WORDS):
            return PermissionDenied(
                f"{action}: MongoDB at {where} refused the credentials or the operation ({detail[:300]}); "
                "check the user, password and authSource"
            )
        if code in _TRANSIENT_CODES or exc.has_error_label("RetryableWriteError") or exc.has_error_label(
            "TransientTransactionError"
        ):
            return TransientError(f"{action}: MongoDB at {where} failed transiently: {detail[:500]}")
        if code in _BAD_INPUT_CODES:  # e.g. $inc on a string, $push onto a number, $set through a scalar
            return InvalidQuery(f"{action}: MongoDB cannot apply this to the document(s): {detail[:500]}")
        return BackendError(f"{action}: MongoDB at {where} failed: {detail[:500]}")
    if isinstance(exc, pe.ConnectionFailure):  # AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError...
        return BackendUnavailable(
            f"{action}: MongoDB at {where} is unreachable ({type(exc).__name__}: {detail[:300]}); "
            "is the server running and the URI right?"
        )
    return BackendError(f"{action}: MongoDB at {where} failed: {type(exc).__name__}: {detail[:500]}")


def raise_translated(exc: BaseException, uri: StoreURI, action: str) -> NoReturn:
    """Raise :func:`translate`'s error, chained to ``exc`` unless ``exc`` would leak the password."""
    error = translate(exc, uri, action)
    if _leaks(exc, uri):
        raise error from None
    raise error from exc


def driver_exception_types() -> tuple[type[BaseException], ...]:
    """The exception classes :func:`translate` handles (PyMongo's and BSON's), imported lazily."""
    import bson.errors
    from pymongo.errors import PyMongoError

    return (PyMongoError, bson.errors.BSONError, OverflowError)


@contextmanager
def driver_errors(uri: StoreURI, action: str) -> Iterator[None]:
    """Run a block of driver calls, re-raising any driver error as a TensorDB error."""
    try:
        yield
    except TensorDBError:
        raise
    except driver_exception_types() as exc:
        raise_translated(exc, uri, action)
