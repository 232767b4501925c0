"""``tensordb copy``: move a study (or a whole warehouse) between any two backends.

Guarantees
----------
* **Idempotent and resumable.**  Documents keep their ``_id``; a document
  already at the destination is skipped, and so is a blob already there
  (keys are content addresses).  Rerunning an interrupted copy finishes it;
  rerunning a finished one copies nothing.
* **Verified.**  Every blob read from the source is checked against its
  content address before it is written, and (``verify=True``, the default)
  read back from the destination and checked again — blobs that were already
  there included.
* **Nothing seems alive that is not.**  A copy is a snapshot, and the
  source's workers do not follow it: a ``workers`` record still running in
  the source arrives ``stopped`` (its last heartbeat kept), and a job running
  there arrives ``queued`` with its lease cleared and its attempt given back
  (as ``Job.release`` does), so a worker at the destination can take it.
  The report counts both.
* **Every referenced blob accounted for.**  A rerun checks (and with
  ``verify``, re-reads) the blobs of documents already at the destination too,
  so it reports them as already present and restores any that went missing.
* **Never a dangling reference.**  A page's blobs are written (announced by
  write intents, so a concurrent ``tensordb gc`` leaves them alone) before the
  page's documents.
* **Same answers on both sides.**  The destination assigns its own ``_seq``
  (the protocol reserves it), so documents are copied in source ``_seq``
  order: relative order — hence default result order, sort tie-breaks and
  ``tail`` order — is preserved, and every query returns the same documents
  in the same order (``_seq`` values, and the running jobs and workers above,
  aside).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tensordb_core.errors import BlobNotFound, IntegrityError
from tensordb_core.store.blobkit import verify_content
from tensordb_core.store.protocols import BlobStore, IndexStore
from tensordb_core.store.scope import INTENTS, check_study
from tensordb_core.warehouse.maintenance import BLOB_FIELDS, keys_at
from tensordb_core.warehouse.names import STUDY_COLLECTIONS

#: What a study consists of, in copy order (see warehouse/names.py).
COLLECTIONS = STUDY_COLLECTIONS
DEFAULT_PAGE = 200


@dataclass
class CopyReport:
    """What one copy did: per collection, documents copied and skipped; blobs copied and already present."""

    copied: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    blobs_copied: int = 0
    blobs_present: int = 0
    bytes_copied: int = 0
    seconds: float = 0.0
    #: Jobs running in the source, copied as queued with their lease cleared.
    jobs_requeued: int = 0
    #: Worker records running in the source, copied as stopped.
    workers_stopped: int = 0

    @property
    def documents_copied(self) -> int:
        return sum(self.copied.values())

    def summary(self) -> str:
        parts = [f"{c}: {self.copied.get(c, 0)} copied, {self.skipped.get(c, 0)} present"
                 for c in sorted(set(self.copied) | set(self.skipped))]
        lines = ["; ".join(parts), (f"blobs: {self.blobs_copied} copied ({self.bytes_copied} bytes), "
                 f"{self.blobs_present} already present; {self.seconds:.1f}s")]
        if self.jobs_requeued:
            lines.append(f"{self.jobs_requeued} job(s) running in the source copied as queued (lease cleared)")
        if self.workers_stopped:
            lines.append(f"{self.workers_stopped} worker record(s) running in the source copied as stopped")
        return "\n".join(lines)


def _pages(docs: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    page: list[dict[str, Any]] = []
    for doc in docs:
        page.append(doc)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


def blob_keys(collection: str, doc: Mapping[str, Any]) -> list[str]:
    """The blob keys a document references (see :data:`maintenance.BLOB_FIELDS`)."""
    return [key for path in BLOB_FIELDS.get(collection, ()) for key in keys_at(doc, path)]


@contextmanager
def _announced(index: IndexStore, keys: Sequence[str]) -> Iterator[None]:
    """Write intents for ``keys`` while the block runs, so gc never deletes blobs whose documents are coming."""
    ids = index.insert_many(INTENTS, [{"key": k, "at": time.time()} for k in keys]) if keys else []
    try:
        yield
    finally:
        if ids:
            index.delete_many(INTENTS, {"_id": {"$in": ids}})


def _check(key: str, data: bytes, expected: bytes | None, where: str) -> None:
    try:
        verify_content(key, data)
    except IntegrityError as exc:
        raise IntegrityError(f"{where}: {exc}") from exc
    if expected is not None and data != expected:
        raise IntegrityError(f"{where}: blob {key} differs from the source copy")


class StudyCopier:
    """Copies documents and blobs from one pair of stores to another (see the module docs).

    ``progress(n)`` is told after each page how many more documents were handled (copied or
    found already present), for a progress bar; ``log`` gets one line per page (``--verbose``).
    """

    def __init__(self, src_index: IndexStore, src_blobs: BlobStore, dst_index: IndexStore, dst_blobs: BlobStore, *,
                 study: str | None = None, collections: Sequence[str] = COLLECTIONS, page: int = DEFAULT_PAGE,
                 verify: bool = True, progress: Callable[[int], None] | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.src_index, self.src_blobs, self.dst_index, self.dst_blobs = src_index, src_blobs, dst_index, dst_blobs
        self.query = {"_study": check_study(study)} if study is not None else {}
        self.collections, self.page, self.verify = tuple(collections), max(1, int(page)), verify
        self.progress, self.log = progress, log
        self._done: set[str] = set()  # blobs known good at the destination in this run
        self.report = CopyReport()

    def run(self) -> CopyReport:
        started = time.perf_counter()
        for collection in self.collections:
            self.copy_collection(collection)
        self.report.seconds = time.perf_counter() - started
        return self.report

    def copy_collection(self, collection: str) -> None:
        copied = skipped = 0
        cursor = self.src_index.find(collection, self.query, sort=[("_seq", 1)], batch_size=self.page)
        for page in _pages(cursor, self.page):
            ids = [d["_id"] for d in page]
            present = {d["_id"] for d in self.dst_index.find(collection, {"_id": {"$in": ids}}, projection={"_id": 1})}
            todo = [self._arriving(collection, {k: v for k, v in d.items() if k != "_seq"})
                    for d in page if d["_id"] not in present]
            skipped += len(page) - len(todo)
            keys = list(dict.fromkeys(k for d in page for k in blob_keys(collection, d) if k not in self._done))
            with _announced(self.dst_index, keys if todo else []):
                self._copy_blobs(keys, collection)
                if todo:
                    self.dst_index.insert_many(collection, todo)
            copied += len(todo)
            if self.progress:
                self.progress(len(page))
            if self.log:
                self.log(f"{collection}: {copied} copied, {skipped} present")
        self.report.copied[collection] = self.report.copied.get(collection, 0) + copied
        self.report.skipped[collection] = self.report.skipped.get(collection, 0) + skipped

    def _arriving(self, collection: str, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc`` as the destination stores it: no worker or lease of the source seems alive there."""
        if collection == "jobs" and doc.get("status") == "running":
            self.report.jobs_requeued += 1
            attempts_left = doc.get("attempts_left")
            return {**doc, "status": "queued", "lease_until": None,
                    **({"attempts_left": attempts_left + 1} if isinstance(attempts_left, int) else {})}
        if collection == "workers" and doc.get("state") == "running":
            self.report.workers_stopped += 1
            return {**doc, "state": "stopped", "job": None}
        return doc

    def _copy_blobs(self, keys: Sequence[str], collection: str) -> None:
        missing = []
        for key in keys:
            if self.dst_blobs.exists(key):
                if self.verify:
                    _check(key, self.dst_blobs.get(key), None, f"destination {collection}")
                self.report.blobs_present += 1
                self._done.add(key)
            else:
                missing.append(key)
        try:
            fetched = zip(missing, self.src_blobs.get_many(missing))
            for key, data in fetched:
                _check(key, data, None, f"source {collection}")
                self.dst_blobs.put(key, data)
                if self.verify:
                    _check(key, self.dst_blobs.get(key), data, f"destination {collection}")
                self.report.blobs_copied += 1
                self.report.bytes_copied += len(data)
                self._done.add(key)
        except BlobNotFound as exc:
            raise BlobNotFound(f"source {collection}: a document references a missing blob ({exc}); "
                               "run `tensordb check` on the source") from exc


def copy_stores(src_index: IndexStore, src_blobs: BlobStore, dst_index: IndexStore, dst_blobs: BlobStore,
                **options: Any) -> CopyReport:
    """Copy between already-open stores; options as :class:`StudyCopier`."""
    return StudyCopier(src_index, src_blobs, dst_index, dst_blobs, **options).run()


def copy_warehouse(src: str, dst: str, *, study: str | None = None, src_blobs: str | None = None,
                   dst_blobs: str | None = None, src_options: Mapping[str, Any] | None = None,
                   dst_options: Mapping[str, Any] | None = None, **options: Any) -> CopyReport:
    """Copy ``study`` (every study when None) from the warehouse at ``src`` to the one at ``dst``.

    ``src_options``/``dst_options`` are ``{"index": {...}, "blobs": {...}}``
    store options (e.g. per-store credentials); the destination gets the
    warehouse's indexes.  A source that holds no warehouse is an error
    (:class:`~tensordb_core.errors.NotFound`), never created empty.
    """
    from tensordb_core.warehouse.handle import DEFAULT_STUDY, connect

    if study is not None:
        check_study(study)  # before the destination is created
    so, do = dict(src_options or {}), dict(dst_options or {})
    with connect(src, study or DEFAULT_STUDY, blobs=src_blobs, index_options=so.get("index"),
                 blob_options=so.get("blobs"), create=False) as source, \
            connect(dst, study or DEFAULT_STUDY, blobs=dst_blobs, index_options=do.get("index"),
                    blob_options=do.get("blobs")) as target:
        return copy_stores(source.index, source.blobs, target.index, target.blobs, study=study, **options)
