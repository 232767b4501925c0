"""Data and labels: import samples and records into chunk blobs, find them by tags, load them.

Each sample is one index document.  A *record* (``import_records``) keeps its
binary fields as segments of one chunk blob (``_chunk`` names the blob,
``_fields`` maps each field to its segment) and its small JSON fields as
top-level, queryable fields of the document.  ``import_data(X, y)`` is the
two-field case, spelt as it always was: ``_x`` (and ``_y``) locate the input
(and an array label), ``label`` holds a scalar label; readers treat ``_x`` as
field ``x`` and ``_y`` as field ``y`` (docs/FORMAT.md).  A chunk is written
before the documents that reference it, so a crash in between leaves at most
an orphan chunk (``tensordb gc`` removes it), never a document without its
bytes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tensordb_core.errors import InvalidArgument, InvalidDocument
from tensordb_core.format.codec import check_array, pack_segments
from tensordb_core.query.filters import check_window, validate_sort
from tensordb_core.query.values import split_path
from tensordb_core.store.scope import MEMBERS, StudyScope, check_json_value, check_tags
from tensordb_core.stream.batches import read_batch, read_records
from tensordb_core.stream.follow import tail_grace
from tensordb_core.stream.groups import newest_seq
from tensordb_core.stream.records import record_projection
from tensordb_core.stream.refs import COLLECTION, PROJECTION
from tensordb_core.warehouse import commits
from tensordb_core.warehouse.records import DEFAULT_CHUNK_BYTES, import_records

RESERVED = frozenset({"label"})


class DataCursor:
    """A lazy query over samples: ``len()`` counts, iteration yields documents, ``arrays()`` loads."""

    def __init__(self, scope: StudyScope, query: Mapping[str, Any] | None, sort: Any = None,
                 limit: int = 0, skip: int = 0) -> None:
        self._scope = scope
        check_window(limit, skip)
        self._scoped = scope.query(query)  # validates (datetimes encoded): a typed error before any read
        self.query = dict(query or {})
        self._sort, self._limit, self._skip = validate_sort(sort) or None, limit, skip
        if self._sort and scope.version is not None:  # members keep the sample's id in _sample (store/scope.py)
            self._sort = [("_sample" if f == "_id" else f, d) for f, d in self._sort]
        self._collection = scope.data_collection  # a dataset version's view reads its pinned members

    def __len__(self) -> int:
        n = max(0, self._scope.index.count(self._collection, self._scoped) - self._skip)
        return min(n, self._limit) if self._limit else n

    def __iter__(self) -> Iterator[dict[str, Any]]:
        docs = self._scope.index.find(self._collection, self._scoped, sort=self._sort, limit=self._limit,
                                      skip=self._skip)
        return iter(docs) if self._scope.version is None else map(as_sample, docs)

    def ids(self) -> list[str]:
        key = "_id" if self._scope.version is None else "_sample"
        return [d[key] for d in self._scope.index.find(
            self._collection, self._scoped, sort=self._sort, limit=self._limit, skip=self._skip,
            projection={key: 1})]

    def arrays(self, *, on_error: str = "raise") -> tuple[np.ndarray, np.ndarray | None]:
        """Load every matching sample: ``(X, y)`` stacked in result order (y None without labels).

        Read exactly as the stream reads (:func:`tensordb_core.stream.batches.read_batch`):
        an unreadable sample raises :class:`~tensordb_core.stream.batches.SampleError`
        naming its document; ``on_error="skip"`` leaves it out.
        """
        expected = len(self)  # sizes the output array once (read_batch grows it if more samples arrived meanwhile)
        docs = self._scope.index.find(self._collection, self._scoped, sort=self._sort, limit=self._limit,
                                      skip=self._skip, projection=PROJECTION)
        batch = read_batch(self._scope.blobs, docs, on_error=on_error, expected=expected)
        return batch.X, batch.Y

    def records(self, *, fields: Sequence[str] | None = None, decode: bool = True,
                on_error: str = "raise") -> list[dict[str, Any]]:
        """Every matching sample as a dict, in result order: JSON fields from the document, binary fields decoded.

        Read through the stream's planner, fetcher and decoder like
        :meth:`arrays`; ``fields`` reads only those fields (and only their
        bytes); ``decode=False`` returns media fields as their stored file
        bytes.  (X, y) samples read as ``{"x": ..., "label" or "y": ...}``.
        An unreadable or undecodable sample raises
        :class:`~tensordb_core.stream.batches.SampleError` naming it and the
        field; ``on_error="skip"`` leaves it out.
        """
        docs = self._scope.index.find(self._collection, self._scoped, sort=self._sort, limit=self._limit,
                                      skip=self._skip, projection=record_projection(fields))
        return read_records(self._scope.blobs, docs, fields=fields, decode=decode, on_error=on_error)


def as_sample(member: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset member as the sample document it pins: the sample's ``_id``, no version bookkeeping."""
    doc = {k: v for k, v in member.items() if k not in ("_sample", "_dataset")}
    doc["_id"] = member.get("_sample", member.get("_id"))
    return doc


def _per_sample_tags(tags: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None, n: int) -> list[dict[str, Any]]:
    if tags is None or isinstance(tags, Mapping):
        shared = check_tags(tags, RESERVED)
        return [shared] * n
    if not isinstance(tags, Sequence) or isinstance(tags, (str, bytes)):
        raise InvalidDocument(f"tags must be one dict (for every sample) or a list of dicts (one per sample), "
                              f"not {type(tags).__name__}")
    if len(tags) != n:
        raise InvalidDocument(f"got {len(tags)} tag dicts for {n} samples: pass one dict, or one per sample")
    return [check_tags(t, RESERVED) for t in tags]


def _samples(X: Any) -> list[np.ndarray]:
    """Every sample of ``X`` checked storable *before* anything is written (no partial import)."""
    if isinstance(X, np.ndarray) and X.ndim:
        samples: list[Any] = [X[i] for i in range(X.shape[0])]
    elif isinstance(X, (np.ndarray, np.generic, str, bytes, Mapping, set, frozenset)) or not hasattr(X, "__iter__"):
        raise InvalidDocument(f"X must be an array of samples (N, ...) or a sequence of arrays, "
                              f"not {type(X).__name__}{' (0-d)' if np.ndim(X) == 0 else ''}")
    else:
        samples = list(X)
    return [check_array(x) for x in samples]


def _labels(y: Any, n: int) -> tuple[list[Any], list[np.ndarray] | None]:
    """Scalar labels become the ``label`` tag; array labels are stored as segments."""
    if y is None:
        return [None] * n, None
    if isinstance(y, (str, bytes, Mapping, set, frozenset)) or not hasattr(y, "__len__"):
        raise InvalidDocument(f"labels must be one per sample, in order (a sequence or array), not {type(y).__name__}")
    if isinstance(y, np.ndarray) and y.ndim > 1 or (not isinstance(y, np.ndarray) and len(y) and np.ndim(y[0]) > 0):
        ys = [check_array(v) for v in y]
        if len(ys) != n:
            raise InvalidDocument(f"{len(ys)} labels for {n} samples")
        return [None] * n, ys
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise InvalidDocument(f"labels have shape {arr.shape}; expected ({n},) to match the samples")
    return [check_json_value(v, "label") for v in arr.tolist()], None


def import_data(
    scope: StudyScope,
    X: Any,
    y: Any = None,
    tags: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    codec: str = "auto",
    key: str | None = None,
) -> list[str]:
    """Store samples in chunk blobs and index them; returns the new document ids in order.

    All or nothing (warehouse/commits.py): the chunks are written first and
    the documents become visible in one commit, so a killed call leaves no
    sample behind.  ``key`` makes a retry return the first call's ids instead
    of importing again.
    """
    scope.require_writable()
    if type(chunk_bytes) is not int or chunk_bytes <= 0:
        raise InvalidDocument(f"chunk_bytes must be a positive int, not {chunk_bytes!r}")
    iid = commits.import_id(scope, key)
    samples = _samples(X)
    n = len(samples)
    per_tags = _per_sample_tags(tags, n)
    labels, label_arrays = _labels(y, n)
    if (done := commits.resume(scope, iid, key)) is not None:
        return done
    docs: list[dict[str, Any]] = []
    start = 0
    with scope.writing_blobs() as put:  # every chunk's intent is held until the commit
        while start < n:
            end, budget = start, 0
            while end < n and (end == start or budget < chunk_bytes):
                budget += np.asarray(samples[end]).nbytes + (label_arrays[end].nbytes if label_arrays else 0)
                end += 1
            docs += _chunk_docs(scope, put, samples[start:end], labels[start:end],
                                label_arrays[start:end] if label_arrays else None, per_tags[start:end], codec)
            start = end
        return commits.commit(scope, iid, docs)


def _chunk_docs(scope: StudyScope, put: Any, xs: list[Any], labels: list[Any], ys: list[np.ndarray] | None,
                tags: list[dict[str, Any]], codec: str) -> list[dict[str, Any]]:
    """Write one chunk (the chunk exists before any document points at it) and return its documents."""
    arrays = xs + (ys or [])
    body, segments = pack_segments(arrays, codec)
    key = put(body)
    return _sample_docs(scope, key, len(body), segments, labels, ys, tags)


def _sample_docs(scope: StudyScope, key: str, size: int, segments: list[Any], labels: list[Any],
                 ys: list[np.ndarray] | None, tags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    n = len(tags)
    now = time.time()
    docs = []
    for i, x_seg in enumerate(segments[:n]):
        doc = scope.new_doc(_x={"key": key, "chunk_size": size, **x_seg.to_doc()}, **tags[i])
        doc["_created"] = now
        if ys is not None:
            doc["_y"] = {"key": key, "chunk_size": size, **segments[n + i].to_doc()}
        elif labels[i] is not None:
            doc["label"] = labels[i]
        docs.append(doc)
    return docs


#: The longest tag path ``index_tags`` takes (an index's name and expression grow with it).
MAX_TAG_PATH = 512


def index_tags(scope: StudyScope, tags: Sequence[str]) -> list[str]:
    """Index the data tags ``tags`` (dotted paths allowed) in the study's samples and dataset versions.

    Why: the stream's first reads (its record probe and its epoch layout) and
    any ``find_data`` on a tag ask for the first matches in ``_seq`` order.
    Without an index on the tag the store reads every document before them:
    a dataset imported after 20k other samples waited ~50 ms per read on the
    embedded store (~2.5 µs a document, SQLite's JSON), a million-sample
    warehouse seconds.  With one, the store walks the matches in ``_seq``
    order.  Idempotent; an index costs a little on every import, so index the
    tags you stream or select by, not every tag.  Returns the tags indexed.
    """
    if isinstance(tags, str) or not isinstance(tags, Sequence) or not tags:
        raise InvalidArgument(f"index_tags takes one or more tag names, got {tags!r}")
    for tag in tags:
        split_path(tag, "index_tags", InvalidArgument)  # a field path: non-empty parts, no '$' part, no NUL
        if tag.startswith("_") or len(tag) > MAX_TAG_PATH:
            raise InvalidArgument(f"cannot index {tag!r:.80}: a tag does not start with '_' (system fields) and "
                                  f"has at most {MAX_TAG_PATH} characters")
    own = [] if scope.study is None else [("_study", 1)]
    for tag in tags:
        scope.index.create_index(COLLECTION, [*own, (tag, 1)])
        scope.index.create_index(MEMBERS, [("_dataset", 1), (tag, 1)])  # a version's reads (scope.pinned)
    return list(tags)


def data_snapshot(scope: StudyScope, settle_s: float | None = None) -> int:
    """The ``_seq`` bound of the study's data inserted so far: ``data_generator(as_of=...)`` for every rank.

    It is the newest ``_seq`` among the study's own samples (another study's
    imports neither move it nor show through it): :func:`tensordb_core.stream.groups.newest_seq`,
    the bound a stream group proposes too.

    On a store that commits ``_seq`` ranges out of allocation order (MongoDB,
    several importers), a range allocated before this call may still be in
    flight; the call then waits the store's tail grace (or ``settle_s``) so
    that every rank scanning afterwards sees the same documents at or below
    the bound.  Stores that commit in order (SQLite, memory) return at once.
    """
    if settle_s is not None and not (isinstance(settle_s, (int, float)) and 0 <= settle_s < float("inf")):
        raise InvalidDocument(f"settle_s must be a finite number of seconds >= 0, not {settle_s!r}")
    bound = newest_seq(scope)
    wait = tail_grace(scope.index) if settle_s is None else float(settle_s)
    if wait > 0:
        time.sleep(wait)
    return bound


__all__ = ["COLLECTION", "DEFAULT_CHUNK_BYTES", "DataCursor", "data_snapshot", "import_data", "import_records",
           "index_tags"]
