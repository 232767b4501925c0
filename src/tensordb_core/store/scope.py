"""A study's view of one index store and one blob store.

Every warehouse collection goes through a :class:`StudyScope`, which is the
single place that (1) ANDs ``{"_study": study}`` into every query and
document — study isolation cannot be forgotten by a collection — (2) checks
user tags before they reach a backend, and (3) writes blobs by content
address *before* the document that names them, so an index entry never
points at nothing.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tensordb_core.errors import InvalidDocument, TensorDBError
from tensordb_core.query.filters import validate_query
from tensordb_core.store.blobkit import content_key, verify_content
from tensordb_core.store.owners import register_index
from tensordb_core.store.protocols import BlobStore, IndexStore, new_id

_STUDY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
MAX_TAG_DEPTH = 16
#: The samples' collection, and the dataset versions' pinned copies of them (warehouse/datasets.py).
DATA = "data"
MEMBERS = "dataset_members"
#: Collection of blob write intents (see :meth:`StudyScope.writing_blobs`).
INTENTS = "blob_intents"
#: Collection of gc's deletion markers (see :func:`tensordb_core.warehouse.maintenance.gc`).
DELETIONS = "blob_deletions"
#: A deletion marker older than this belongs to a crashed gc and holds no writer back.
DELETION_STALE_S = 300.0
#: How often a writer looks again while gc is deleting a key it is writing.
DELETION_POLL_S = 0.02


def check_study(study: str) -> str:
    if not isinstance(study, str) or not _STUDY_RE.match(study):
        raise InvalidDocument(
            f"invalid study id {study!r}: 1-128 characters of letters, digits, '.', '_', ':' or '-', starting alphanumeric"
        )
    return study


#: A stored datetime: UTC, microseconds, fixed width, so string order is time order (docs/FORMAT.md).
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(\+00:00)?$")
_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


def encode_datetime(value: datetime) -> str:
    """A ``datetime`` as the string the warehouse stores: ISO 8601 in UTC, always with microseconds.

    Why a string: it is JSON on every backend, reads in ``tensordb find``, and
    (fixed width, UTC) sorts and compares in time order, so ``$gt``/``$lt`` and
    ``sort`` on it work.  A naive datetime is taken as UTC (as PyMongo does) and
    stored without an offset; an aware one is converted to UTC and stored with
    ``+00:00``, so :func:`decode_datetimes` gives back the same kind.
    """
    if value.tzinfo is None:
        return value.strftime(_DATETIME_FORMAT).rjust(26, "0")
    utc = value.astimezone(UTC)
    return utc.replace(tzinfo=None).strftime(_DATETIME_FORMAT).rjust(26, "0") + "+00:00"


def decode_datetimes(value: Any) -> Any:
    """``value`` with every stored datetime string (see :func:`encode_datetime`) turned back into a ``datetime``."""
    if isinstance(value, str) and _DATETIME_RE.match(value):
        naive = datetime.strptime(value[:26], _DATETIME_FORMAT)
        return naive if len(value) == 26 else naive.replace(tzinfo=UTC)
    if isinstance(value, list):
        return [decode_datetimes(v) for v in value]
    if isinstance(value, Mapping):
        return {k: decode_datetimes(v) for k, v in value.items()}
    return value


def encode_query_datetimes(query: Any) -> Any:
    """A query with its ``datetime`` operands stored-encoded, so ``{"time": {"$gt": dt}}`` compares as stored."""
    if isinstance(query, datetime):
        return encode_datetime(query)
    if isinstance(query, (list, tuple)):
        return [encode_query_datetimes(v) for v in query]
    if isinstance(query, Mapping):
        return {k: encode_query_datetimes(v) for k, v in query.items()}
    return query


def check_json_value(value: Any, where: str, depth: int = 0) -> Any:
    """Return ``value`` if it is JSON-like (finite floats, str keys without ``$``/``.``), else raise.

    A ``datetime`` is accepted and returned in its stored form (:func:`encode_datetime`).
    """
    if depth > MAX_TAG_DEPTH:
        raise InvalidDocument(f"{where}: nested deeper than {MAX_TAG_DEPTH} levels")
    if isinstance(value, datetime):
        return encode_datetime(value)
    if value is None or isinstance(value, (bool, int, str)):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            raise InvalidDocument(f"{where}: integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidDocument(f"{where}: {value} is not a finite number (JSON cannot store it)")
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalar
        return check_json_value(value.item(), where, depth)
    if isinstance(value, (list, tuple)):
        return [check_json_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {check_key(k, where): check_json_value(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
    raise InvalidDocument(
        f"{where}: {type(value).__name__} is not JSON-like (use str, number, bool, None, datetime, list, dict)")


def check_key(key: Any, where: str) -> str:
    if not isinstance(key, str) or not key or key.startswith("$") or "." in key or "\x00" in key:
        raise InvalidDocument(f"{where}: key {key!r} must be a non-empty string without '$' prefix, '.' or NUL")
    return key


def check_tags(tags: Mapping[str, Any] | None, reserved: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Validate user tags: JSON-like, no ``_`` prefix (system fields) and none of ``reserved``."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidDocument(f"tags must be a dict, not {type(tags).__name__}")
    out = check_json_value(dict(tags), "tags")
    for key in out:
        if key.startswith("_") or key in reserved:
            raise InvalidDocument(f"tag {key!r} is reserved here: tags may not start with '_' or be one of {sorted(reserved)}")
    return out


def _sample_ids(query: dict[str, Any]) -> dict[str, Any]:
    """A query on samples' ``_id`` as a query on dataset members, which keep the sample's id in ``_sample``.

    Why: a member's own ``_id`` is ``<version>:<sample id>`` (one collection
    holds every version), yet a version's reader asks for samples by their ids.
    """
    out: dict[str, Any] = {}
    for key, value in query.items():
        if key in ("$and", "$or", "$nor"):
            out[key] = [_sample_ids(clause) for clause in value]
        else:
            out["_sample" if key == "_id" else key] = value
    return out


@dataclass
class StudyScope:
    """Index + blobs + study id: what every collection needs, with isolation built in.

    ``study=None`` is the explicit cross-study, read-only view.
    """

    index: IndexStore
    blobs: BlobStore
    study: str | None
    #: Where this view's samples live: the data collection, or (a dataset version's view, :meth:`pinned`) the
    #: members collection, whose documents are the samples as they were when the version was saved.
    data_collection: str = DATA
    #: The dataset version this view reads (its id), None for the live data.
    version: str | None = None
    #: Whether this scope's index is registered with its blob store yet (store/owners.py).
    _registered: bool = field(default=False, repr=False, compare=False)

    def query(self, query: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``query`` validated and restricted to this study (and, in a version's view, to that version)."""
        q = validate_query(encode_query_datetimes(query) if query else query)
        if self.study is None:
            return q
        own: dict[str, Any] = {"_study": self.study}
        if self.version is not None:
            own = {"$and": [own, {"_dataset": self.version}]}
            q = _sample_ids(q)
        return {"$and": [own, q]} if q else own

    def pinned(self, version: str) -> StudyScope:
        """A read-only view of dataset version ``version``: samples, tags and labels as the version pinned them.

        Why a scope: the stream and the cursor already read "the samples of
        ``scope``" through :attr:`data_collection` and :meth:`query`, so a
        version reads through the same planner, fetcher and decoder, in the
        ``_seq`` order its members were pinned in (the data's order).
        """
        return StudyScope(self.index, self.blobs, self.study, data_collection=MEMBERS, version=version)

    def require_writable(self) -> str:
        if self.study is None:
            raise TensorDBError("this is the read-only cross-study view: open a study to write (db.study('name'))")
        if self.version is not None:
            raise TensorDBError("a dataset version is read-only: write through the study's handle")
        return self.study

    def new_doc(self, **fields: Any) -> dict[str, Any]:
        """A document stamped with an id, this study and a creation time.

        The id is chosen here, not by the store, so an insert interrupted by an
        outage can be retried without duplicating documents (retrying.py).
        """
        return {"_id": new_id(), "_study": self.require_writable(), "_created": time.time(), **fields}

    @contextmanager
    def writing_blobs(self) -> Iterator[Callable[[bytes | bytearray | memoryview], str]]:
        """Write blobs whose documents follow: ``with scope.writing_blobs() as put: key = put(data); insert(...)``.

        Each blob is announced by a write-intent document *before* its bytes
        are stored, and the intents are removed only after the block (the
        document inserts) finished, so ``tensordb gc`` never deletes a blob a
        running writer is about to reference.  A crashed writer leaves its
        intents behind; gc ignores intents older than its grace period.

        Content addresses dedupe, so ``put`` of bytes already stored (an orphan
        gc condemned a moment ago) changes nothing; hence :meth:`_settle`.
        """
        intents: list[str] = []

        def put(data: bytes | bytearray | memoryview) -> str:
            if not self._registered:  # before this index's first blob can land where another index's gc reads
                register_index(self.index, self.blobs)
                self._registered = True
            key = content_key(data)
            intents.extend(self.index.insert_many(INTENTS, [{"key": key, "at": time.time()}]))
            self.blobs.put(key, data)
            self._settle(key, data)
            return key

        try:
            yield put
        finally:
            if intents:
                self.index.delete_many(INTENTS, {"_id": {"$in": intents}})

    def _settle(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Make sure a gc running beside us has not deleted, and will not delete, ``key``.

        gc marks a key in :data:`DELETIONS` *before* its last look at intents and
        documents and unmarks it after deleting.  Our intent exists already, so
        once no fresh marker for ``key`` is left, either gc's last look saw our
        intent (and kept the blob) or its delete is over; storing the bytes
        again if they are gone then leaves the blob in place for good.
        """
        fresh = {"key": key, "at": {"$gte": time.time() - DELETION_STALE_S}}
        deadline = time.monotonic() + DELETION_STALE_S
        while self.index.count(DELETIONS, fresh) and time.monotonic() < deadline:
            time.sleep(DELETION_POLL_S)
        if not self.blobs.exists(key):
            self.blobs.put(key, data)

    def get_blob(self, key: str, *, verify: bool = True) -> bytes:
        """A whole blob, checked against its content address."""
        data = self.blobs.get(key)
        if verify:
            verify_content(key, data)
        return data
