"""What azure-core / azure-storage-blob failures mean: the Azure row of the kit's error table, and no leaks.

Why the care: a SAS token travels in every request URL, and transport errors
(``requests``/``urllib3``) quote that URL in their text.  So the table's
messages are built from the status and Azure's error code, :func:`scrub`
(the table's ``scrub_text``) also catches SAS signatures, and when the
driver's exception chain holds a secret the store template withholds it
instead of chaining it.  :class:`SasLogScrubber` does the same for urllib3's
DEBUG log line, which prints each request's path and query.  azure-core is
imported only when the table is first used: this module is also imported by
the light package ``__init__`` (for :class:`ContainerNotFound`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from tensordb_core.errors import BackendError
from tensordb_core.store.kit.errors import TRANSIENT_STATUS, ErrorTable, Kind, scrub_secrets

__all__ = ["ERRORS", "ContainerNotFound", "SasLogScrubber", "error_code", "install_log_scrubber", "scrub",
           "status_of", "translate"]

_SIG_RE = re.compile(r"((?:^|[?&;\s])(?:sig|signature|accountkey|sharedaccesssignature)=)[^&;\s\"']+", re.IGNORECASE)


class ContainerNotFound(BackendError, LookupError):
    """The store's container does not exist: create it, or open the store with ``create_container=true``."""


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret and any SAS signature or account key value replaced by ``***``."""
    return _SIG_RE.sub(r"\1***", scrub_secrets(text, secrets))


def error_code(exc: BaseException) -> str:
    """Azure's ``x-ms-error-code`` (``BlobNotFound``, ``ContainerNotFound``...) as a plain string."""
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def unwrap(exc: BaseException) -> BaseException:
    """The failure inside a statusless ``HttpResponseError`` wrapper.

    The SDK's download retries a broken body (``IncompleteReadError``,
    ``ServiceResponseError``) itself and, when that runs out, raises
    ``HttpResponseError(error, error=error)``: no status, no code, the real
    failure as ``inner_exception``.  Unwrapped, a download cut short is
    TRANSIENT like the first cut was, not an unexpected error.
    """
    from azure.core import exceptions as az

    while (
        type(exc) is az.HttpResponseError
        and status_of(exc) is None
        and isinstance(getattr(exc, "inner_exception", None), BaseException)
    ):
        exc = exc.inner_exception
    return exc


def _types() -> Sequence[tuple[Any, Kind]]:
    from azure.core import exceptions as az

    return (
        (az.ResourceNotFoundError, Kind.NOT_FOUND),
        (az.ClientAuthenticationError, Kind.DENIED),
        (az.ServiceRequestError, Kind.UNAVAILABLE),  # the request never got through: DNS, refused, TLS, connect
        ((az.ServiceResponseError, az.IncompleteReadError, ConnectionError, TimeoutError), Kind.TRANSIENT),
        (az.AzureError, Kind.OTHER),
        (ValueError, Kind.INVALID),  # the SDK refusing its settings (a token credential over http, say)
    )


ERRORS = ErrorTable(
    service="Azure",
    codes={
        "ContainerNotFound": Kind.BUCKET_MISSING,
        "BlobAlreadyExists": Kind.EXISTS,
        "ContainerAlreadyExists": Kind.EXISTS,
        "InvalidRange": Kind.RANGE,
    },
    statuses={
        404: Kind.NOT_FOUND, 401: Kind.DENIED, 403: Kind.DENIED, 416: Kind.RANGE,
        **dict.fromkeys(TRANSIENT_STATUS, Kind.TRANSIENT),
    },
    types=_types,
    code_of=error_code,
    status_of=status_of,
    unwrap=unwrap,
    hints={
        Kind.DENIED: "check the account key, the SAS token's permissions and expiry, or the identity's role "
        "(Storage Blob Data Contributor)",
        Kind.UNAVAILABLE: "check the network, the endpoint, or proxy settings",
        Kind.BUCKET_MISSING: "create it (az storage container create)",
    },
    bucket_error=ContainerNotFound,
    bucket_noun="container",
    scrub_text=scrub,
)

#: ``translate(exc, *, op, key, where, endpoint, bucket, secrets)``: the TensorDB error for an Azure failure.
translate = ERRORS.translate


class SasLogScrubber(logging.Filter):
    """Rewrites log records that carry a SAS signature so the signature reads ``***``.

    Installed once on urllib3's connection-pool logger, whose DEBUG line shows
    each request's path with its query string (where a SAS token lives).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to fix
            return True
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_scrubber = SasLogScrubber()


def install_log_scrubber() -> None:
    """Attach :class:`SasLogScrubber` to the loggers that print request URLs (idempotent)."""
    for name in ("urllib3.connectionpool", "azure.core.pipeline.policies.http_logging_policy"):
        logger = logging.getLogger(name)
        if _scrubber not in logger.filters:
            logger.addFilter(_scrubber)
