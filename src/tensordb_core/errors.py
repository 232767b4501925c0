"""The typed error hierarchy every TensorDB layer raises.

Why one root: callers catch ``TensorDBError`` once and know every failure
from any backend, driver or codec arrives as one of these, never as a raw
``pymongo``/``botocore``/``sqlite3`` exception.  Each class also subclasses the
built-in it resembles (``ValueError``, ``FileNotFoundError``, ...) so code that
already catches built-ins keeps working.  Backends translate driver errors at
their boundary with ``raise ... from exc``.
"""

from __future__ import annotations


class TensorDBError(Exception):
    """Root of every error TensorDB raises on purpose."""


class InvalidURI(TensorDBError, ValueError):
    """A store URI could not be parsed or names no installed backend."""


class UnknownScheme(InvalidURI):
    """No installed plugin serves this URI scheme; the message lists known ones."""


class MissingDependency(TensorDBError, ImportError):
    """A backend's client library is not installed; the message says which extra to install."""


class InvalidQuery(TensorDBError, ValueError):
    """A query, sort, projection or update is outside the portable subset."""


class InvalidArgument(TensorDBError, TypeError):
    """A call got an argument it does not take, or one of the wrong kind (``step="x"``, ``lease_s=-1``)."""


class InvalidDocument(TensorDBError, ValueError):
    """Tags or metrics are not JSON-like, or use a reserved key."""


class CodecError(TensorDBError, ValueError):
    """An array cannot be encoded (object dtype, ...) or a blob's header is malformed."""


class NotFound(TensorDBError, LookupError):
    """Something asked for by key or id does not exist."""


class BlobNotFound(NotFound, FileNotFoundError):
    """A blob key is absent from its blob store."""


class DocumentNotFound(NotFound):
    """No index document matched where one was required."""


class IntegrityError(TensorDBError):
    """Stored bytes do not match their recorded checksum or content address."""


class BackendError(TensorDBError):
    """A backend failed in a way that is not the caller's input."""


class TransientError(BackendError):
    """A failure worth retrying with backoff (throttling, 5xx, a dropped connection)."""


class BackendUnavailable(BackendError, ConnectionError):
    """A backend could not be reached after bounded retries; the message names it (redacted)."""


class PermissionDenied(BackendError, PermissionError):
    """The backend refused the credentials or the operation."""


class LeaseLost(TensorDBError):
    """A worker's job lease was taken over (its fencing token is stale)."""


class UnsafeOperation(TensorDBError):
    """Executing stored code or unpickling was asked without an explicit trusted opt-in."""


class OutputExists(TensorDBError, FileExistsError):
    """An export's output path already holds something and overwrite was not asked; nothing was written."""


class OutputNotWritable(TensorDBError, PermissionError):
    """An export's output path cannot be written (missing or read-only directory); nothing was written."""
