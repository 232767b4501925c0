"""GridFS blob store: blobs as GridFS files in the same MongoDB database as the index.

Why GridFS: an on-prem lab with one MongoDB server gets blobs with no second
system to run, back up or secure.  The layout is the standard GridFS format
(``<bucket>.files`` / ``<bucket>.chunks``, filename = blob key), so
``mongofiles`` and every driver's GridFS API can read what TensorDB wrote.

Writes go through PyMongo's :class:`gridfs.GridFSBucket` (chunks first, the
files document last, so a reader never sees a partial blob).  Reads query the
chunk documents a byte range needs directly instead of streaming through
``GridOut``: a ranged read then fetches exactly the chunks it overlaps in one
query, where ``GridOut`` would let the server's first batch pull up to 16 MiB
of the rest of the file.

Keys and revisions: ``put`` of a content address (``.../<sha256 of the data>``)
that already exists is skipped.  Any other ``put`` uploads a new revision and
then deletes the older ones; readers always use the newest revision
(``uploadDate``, then ``_id``), so the last writer wins and concurrent
writers of one key converge on a single file.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from tensordb_core.errors import BackendError, BlobNotFound
from tensordb_core.store.blobkit import (
    check_key,
    content_key,
    is_content_address,
    ordered_concurrent_map,
    split_request,
)
from tensordb_core.store.protocols import BlobCapabilities, BlobRequest
from tensordb_core.store.uri import StoreURI

from . import clients
from .config import MongoConfig, parse_config
from .translate import driver_errors

if TYPE_CHECKING:
    from pymongo import MongoClient

_NEWEST = [("uploadDate", -1), ("_id", -1)]
#: How often a read re-resolves the newest revision when a concurrent overwrite deleted the one it found.
_READ_ATTEMPTS = 3
#: Chunk bytes asked for per server reply: far below the 48 MB wire-message limit on any server.
_REPLY_BYTES = 8 * 1024 * 1024
#: Content-addressed blobs whose revision a store remembers (see GridFSBlobStore.get), the oldest dropped first.
_KNOWN_REVISIONS = 4096


class GridFSBlobStore:
    """A :class:`~tensordb_core.store.protocols.BlobStore` on a GridFS bucket (default bucket name ``blobs``).

    Settings (URI options or keyword arguments): ``bucket``, ``chunk_size_bytes``
    (default 1 MiB), ``max_in_flight`` (concurrent reads in ``get_many``, default 8).
    """

    capabilities = BlobCapabilities()

    def __init__(self, uri: StoreURI | str, **options: Any) -> None:
        from gridfs import GridFSBucket

        from tensordb_core.store.uri import parse_uri

        self.uri: StoreURI = parse_uri(uri)
        self._config: MongoConfig = parse_config(self.uri, options)
        self._client: MongoClient | None = clients.acquire(self._config)
        self.bucket_name: str = self._config.setting("bucket")
        self.chunk_size: int = self._config.setting("chunk_size_bytes")
        self.max_in_flight: int = self._config.setting("max_in_flight")
        db = self._client[self._config.database]
        self._files = db[f"{self.bucket_name}.files"]
        self._chunks = db[f"{self.bucket_name}.chunks"]
        self._bucket = GridFSBucket(db, bucket_name=self.bucket_name, chunk_size_bytes=self.chunk_size)
        self._indexed = False
        self._revisions: dict[str, dict[str, Any]] = {}  # content key -> its files document (see get)
        self._revisions_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"GridFSBlobStore({self.uri.redacted()!r}, bucket={self.bucket_name!r})"

    # -- writing -------------------------------------------------------------------------------

    def _ensure_indexes(self) -> None:
        """The GridFS spec's indexes (same names as every driver's), created once per store."""
        if not self._indexed:
            self._files.create_index([("filename", 1), ("uploadDate", 1)])
            self._chunks.create_index([("files_id", 1), ("n", 1)], unique=True)
            self._indexed = True

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` under ``key``; a content address that already exists is not rewritten."""
        check_key(key)
        payload = data if type(data) is bytes else memoryview(data).tobytes()
        with driver_errors(self.uri, f"put {key}"):
            digest = key.rsplit("/", 1)[-1]
            if is_content_address(key) and self._newest(key) is not None and content_key(payload) == digest:
                return
            self._ensure_indexes()
            self._drop_older_revisions(key, self._upload(key, payload))

    def _upload(self, key: str, payload: bytes) -> Any:
        """Write one new revision; on failure remove its chunks (best effort) so none are orphaned."""
        grid_in = self._bucket.open_upload_stream(key)
        try:
            grid_in.write(payload)
            grid_in.close()  # inserts the file document: the revision becomes visible
        except BaseException:
            with contextlib.suppress(Exception):
                grid_in.abort()
            raise
        return grid_in._id

    def _drop_older_revisions(self, key: str, file_id: Any) -> None:
        mine = self._files.find_one({"_id": file_id}, projection={"uploadDate": 1})
        if mine is None:  # a concurrent delete() removed it already
            return
        older = {
            "filename": key,
            "$or": [
                {"uploadDate": {"$lt": mine["uploadDate"]}},
                {"uploadDate": mine["uploadDate"], "_id": {"$lt": file_id}},
            ],
        }
        for doc in self._files.find(older, projection={"_id": 1}):
            self._delete_file(doc["_id"])

    def _delete_file(self, file_id: Any) -> None:
        """Remove one revision: its files document first (readers stop finding it), then its chunks."""
        from gridfs.errors import NoFile

        try:
            self._bucket.delete(file_id)
        except NoFile:  # another writer or deleter got there first; make sure no chunks linger
            self._chunks.delete_many({"files_id": file_id})

    def delete(self, key: str) -> None:
        """Remove every revision of ``key``; a missing key is not an error."""
        check_key(key)
        self._forget(key)
        with driver_errors(self.uri, f"delete {key}"):
            for doc in self._files.find({"filename": key}, projection={"_id": 1}):
                self._delete_file(doc["_id"])

    # -- reading -------------------------------------------------------------------------------

    def _newest(self, key: str) -> dict[str, Any] | None:
        return self._files.find_one({"filename": key}, projection={"length": 1, "chunkSize": 1}, sort=_NEWEST)

    def exists(self, key: str) -> bool:
        check_key(key)
        with driver_errors(self.uri, f"exists {key}"):
            return self._newest(key) is not None

    def size(self, key: str) -> int:
        """Length in bytes of the newest revision; ``BlobNotFound`` if absent."""
        check_key(key)
        with driver_errors(self.uri, f"size {key}"):
            doc = self._newest(key)
        if doc is None:
            raise BlobNotFound(f"no blob {key!r} in GridFS bucket {self.bucket_name!r} at {self.uri.redacted()}")
        return int(doc["length"])

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of the blob, clamped to its size (Python slicing).

        A content-addressed key's revision is remembered, so its next range
        read is one query (its chunks) instead of two: a stream reads a chunk
        blob by many ranges.  Safe because every revision of such a key holds
        the same bytes, and a revision an overwrite or delete removed is
        noticed (its chunks are gone, ``_read_range`` answers None) and looked
        up again.
        """
        key, start, end = split_request((key, start, end))
        with driver_errors(self.uri, f"get {key}"):
            with self._revisions_lock:
                doc = self._revisions.get(key)
            for _ in range(_READ_ATTEMPTS):
                if doc is None:
                    doc = self._newest(key)
                    if doc is None:
                        break
                    self._remember(key, doc)
                data = self._read_range(doc, start, end)
                if data is not None:
                    return data
                self._forget(key)
                doc = None
            else:
                raise BackendError(f"blob {key!r} in {self.uri.redacted()} keeps changing under the reader; retry")
        raise BlobNotFound(f"no blob {key!r} in GridFS bucket {self.bucket_name!r} at {self.uri.redacted()}")

    def _remember(self, key: str, doc: dict[str, Any]) -> None:
        if not is_content_address(key):
            return  # any other key may be overwritten with other bytes: always ask for the newest
        with self._revisions_lock:
            if len(self._revisions) >= _KNOWN_REVISIONS:
                del self._revisions[next(iter(self._revisions))]
            self._revisions[key] = doc

    def _forget(self, key: str) -> None:
        with self._revisions_lock:
            self._revisions.pop(key, None)

    def _read_range(self, doc: dict[str, Any], start: int, end: int | None) -> bytes | None:
        """The range from one revision, or None if its chunks vanished (deleted by a newer put)."""
        length, chunk = int(doc["length"]), int(doc["chunkSize"])
        stop = length if end is None else min(end, length)
        if start >= stop:
            return b""
        first, last = start // chunk, (stop - 1) // chunk
        query = {"files_id": doc["_id"], "n": {"$gte": first, "$lte": last}}
        cursor = self._chunks.find(query, projection={"_id": 0, "n": 1, "data": 1}, sort=[("n", 1)])
        cursor.batch_size(max(1, _REPLY_BYTES // chunk))  # bound each reply (and its memory) explicitly
        parts = []
        for expected, part in enumerate(cursor, start=first):
            if part["n"] != expected:
                break
            parts.append(part["data"])
        if len(parts) != last - first + 1:
            if self._files.find_one({"_id": doc["_id"]}, projection={"_id": 1}) is None:
                return None
            raise BackendError(
                f"GridFS file {doc['_id']} in {self.uri.redacted()} is missing chunks {first}..{last}: "
                "the bucket is corrupt (an interrupted write by another tool?)"
            )
        offset = first * chunk
        return b"".join(parts)[start - offset : stop - offset]

    def get_many(self, requests: Iterable[BlobRequest]) -> Iterator[bytes]:
        """Many blobs or ranges on ``max_in_flight`` threads, yielded in request order."""

        def fetch(request: BlobRequest) -> bytes:
            key, start, end = split_request(request)
            return self.get(key, start, end)

        return ordered_concurrent_map(fetch, requests, self.max_in_flight)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix`` (an anchored, escaped regex: the filename index serves it)."""
        query: dict[str, Any] = {"filename": {"$regex": "^" + re.escape(prefix)}} if prefix else {}
        with driver_errors(self.uri, f"list {prefix}"):
            cursor = self._files.find(query, projection={"_id": 0, "filename": 1}, sort=[("filename", 1)])
            previous = None
            for doc in cursor:
                name = doc.get("filename")
                if isinstance(name, str) and name != previous:
                    previous = name
                    yield name

    def close(self) -> None:
        """Release this store's share of the MongoDB client (idempotent)."""
        client, self._client = self._client, None
        if client is not None:
            clients.release(self._config, client)
