"""Translate azure-core / azure-storage-blob failures into TensorDB's typed errors, without leaking secrets.

Why the care: a SAS token travels in every request URL, and transport errors
(``requests``/``urllib3``) quote that URL in their text.  So :func:`translate`
builds its own message from the status and Azure error code, and when the
driver's exception chain contains a secret it is cut off (``from None``)
instead of chained.  :class:`SasLogScrubber` does the same for urllib3's DEBUG
log line, which prints each request's path and query.  azure-core is imported
inside :func:`translate`: this module is also imported by the light package
``__init__`` (for :class:`ContainerNotFound`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from tensordb_core.errors import (
    BackendError,
    BackendUnavailable,
    BlobNotFound,
    InvalidURI,
    PermissionDenied,
    TensorDBError,
    TransientError,
)
from tensordb_core.store.cloudkit import TRANSIENT_STATUS, scrub_secrets, subject

_SIG_RE = re.compile(r"((?:^|[?&;\s])(?:sig|signature|accountkey|sharedaccesssignature)=)[^&;\s\"']+", re.IGNORECASE)


class ContainerNotFound(BackendError, LookupError):
    """The store's container does not exist: create it, or open the store with ``create_container=true``."""


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret and any SAS signature or account key value replaced by ``***``."""
    return _SIG_RE.sub(r"\1***", scrub_secrets(text, secrets))


def chain_leaks(exc: BaseException, secrets: Iterable[str]) -> bool:
    """True when the text of ``exc`` or any exception it wraps contains a secret or a SAS signature."""
    wanted = [s for s in secrets if s]
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        text = f"{node!s} {node!r}"
        if any(s in text for s in wanted) or _SIG_RE.search(text):
            return True
        node = node.__cause__ or node.__context__
    return False


def error_code(exc: BaseException) -> str:
    """Azure's ``x-ms-error-code`` (``BlobNotFound``, ``ContainerNotFound``...) as a plain string."""
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def translate(
    exc: BaseException, *, op: str, key: str | None, where: str, endpoint: str, secrets: Iterable[str] = ()
) -> TensorDBError:
    """The TensorDB error for a failure of ``op`` on ``key`` in the store at ``where`` (a redacted URI).

    Messages are built from the status and Azure's error code; only for
    failures outside the HTTP exchange (a ``ValueError`` from the SDK about its
    settings, say) is the driver's text quoted, scrubbed of ``secrets``.
    """
    from azure.core import exceptions as az

    if isinstance(exc, TensorDBError):
        return exc
    what = subject(op, key, where)
    status, code = status_of(exc), error_code(exc)
    if code == "ContainerNotFound":
        return ContainerNotFound(
            f"the Azure container of {where} does not exist: create it (az storage container create), "
            "open the store with create_container=true, or fix the URI"
        )
    if isinstance(exc, az.ResourceNotFoundError) or status == 404:
        return BlobNotFound(f"no blob {key!r} in {where}")
    if isinstance(exc, az.ClientAuthenticationError) or status in (401, 403):
        return PermissionDenied(
            f"{what}: Azure refused the credentials (HTTP {status} {code}); check the account key, the SAS "
            "token's permissions and expiry, or the identity's role (Storage Blob Data Contributor)"
        )
    if status in TRANSIENT_STATUS:
        return TransientError(f"{what}: Azure answered HTTP {status} {code}; retry later")
    if isinstance(exc, az.ServiceRequestError):  # the request never got through: DNS, refused, TLS, connect timeout
        return BackendUnavailable(
            f"cannot reach Azure Blob Storage at {endpoint} for {where} ({type(exc).__name__}); check the network, "
            "the endpoint, or proxy settings"
        )
    if isinstance(exc, (az.ServiceResponseError, az.IncompleteReadError, ConnectionError, TimeoutError)):
        return TransientError(f"{what}: the connection to Azure failed mid-request ({type(exc).__name__})")
    if status is not None:
        return BackendError(f"{what}: Azure answered HTTP {status} {code}")
    detail = scrub(str(exc), secrets)
    if isinstance(exc, ValueError) and not isinstance(exc, az.AzureError):
        return InvalidURI(f"{what}: azure-storage-blob refused the settings: {detail}")
    return BackendError(f"{what}: unexpected {type(exc).__name__}: {detail}")


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
