"""A TensorDB blob store that keeps every blob as a row of one SQLite file.

Why it exists: it is the worked example of ``docs/writing-a-backend.md`` — a
real store, small enough to read in one sitting.  It suits a laptop: one file
to copy or delete, no server, no client library beyond the standard
library's ``sqlite3``.

Its limits, said plainly:

* **One file, one writer at a time.**  Writers queue on SQLite's write lock
  (threads of one process on a lock, other processes on SQLite's busy
  timeout); readers never wait for writers (WAL mode).  A lock held past
  ``timeout`` seconds surfaces as :class:`~tensordb_core.errors.TransientError`.
* **Local disks only.**  WAL needs shared memory, so the file must not sit on
  NFS or SMB.
* **At most ~1 GB per blob** (SQLite's ``SQLITE_MAX_LENGTH``); TensorDB's
  chunks are a few MiB.

Layout: one table, ``blobs(id INTEGER PRIMARY KEY, key TEXT UNIQUE, data BLOB)``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tensordb_core.errors import (
    BackendError,
    BlobNotFound,
    InvalidURI,
    PermissionDenied,
    TensorDBError,
    TransientError,
)
from tensordb_core.store.blobkit import check_key, ordered_concurrent_map, split_request
from tensordb_core.store.kit.options import Option, OptionSet, seconds, whole
from tensordb_core.store.protocols import BlobCapabilities, BlobRequest
from tensordb_core.store.uri import StoreURI

SCHEME = "sqlite-blobs"
LIST_PAGE = 1000  # keys per query in list(): a long listing never holds one read transaction open
OPTIONS = OptionSet(f"{SCHEME} option", [Option("max_workers", 4, whole(1)), Option("timeout", 30.0, seconds(0))])

_SCHEMA = "CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, data BLOB NOT NULL)"
_UPSERT = "INSERT INTO blobs (key, data) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET data = excluded.data"

#: SQLite's primary result codes -> the TensorDB error to raise and what the user should do next.
_ERRORS: dict[str, tuple[type[TensorDBError], str]] = {
    "SQLITE_BUSY": (TransientError, "another writer held the file's lock past the timeout; retry, or raise ?timeout="),
    "SQLITE_LOCKED": (TransientError, "the file is locked by another connection; retry"),
    "SQLITE_READONLY": (PermissionDenied, "the file (or its directory) is read-only for this user"),
    "SQLITE_PERM": (PermissionDenied, "access to the file was denied"),
    "SQLITE_CANTOPEN": (PermissionDenied, "the file cannot be opened: check the path and its permissions"),
    "SQLITE_FULL": (BackendError, "the disk is full: free space, then retry"),
    "SQLITE_TOOBIG": (BackendError, "SQLite keeps at most ~1 GB per blob: use a file or object store for this"),
    "SQLITE_NOTADB": (BackendError, "the file is not a SQLite database: point the URI at another path"),
    "SQLITE_CORRUPT": (BackendError, "the file is damaged: restore it from a copy"),
}


class SQLiteBlobStore:
    """Blobs as rows of one SQLite file; satisfies :class:`~tensordb_core.store.protocols.BlobStore`.

    Built by TensorDB's registry as ``SQLiteBlobStore(uri, **options)`` for
    ``sqlite-blobs:///absolute/path/blobs.db``.  Options (keyword, else the
    URI's query): ``max_workers`` (threads ``get_many`` reads on, default 4)
    and ``timeout`` (seconds a writer waits for another process's lock,
    default 30).

    Each operation borrows a connection from a small pool and runs in one
    transaction, so a reader sees a blob whole or not at all.  Ranged reads
    use SQLite's incremental blob I/O (``Connection.blobopen``), which reads
    only the pages a range covers; ``substr()`` would load the whole blob.
    """

    #: Nothing beyond the protocol: sqlite3's Blob has no readinto, so ``read_into`` would only copy twice.
    capabilities = BlobCapabilities(read_into=False, key_as_prefix=True, overwrite_replaces=True)
    #: Read ranges with ``blobopen`` (Python >= 3.11); False falls back to ``substr()`` (the tests run both).
    incremental_io: bool = hasattr(sqlite3.Connection, "blobopen")

    def __init__(self, uri: StoreURI, **options: Any) -> None:
        if uri.hosts or not uri.path.strip("/"):
            raise InvalidURI(f"{uri.redacted()}: write {SCHEME}:///absolute/path/blobs.db (three slashes, no host)")
        settings = OPTIONS.parse(uri, options)  # keyword > URI query > default; unknown names are refused
        self.uri = uri
        self.path = os.path.abspath(uri.path)
        self.max_workers: int = settings["max_workers"]
        self.timeout: float = settings["timeout"]
        self._idle: list[sqlite3.Connection] = []  # list.append/pop are atomic: no lock needed
        self._write_lock = threading.Lock()  # this process's writers queue here instead of busy-polling SQLite
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        except OSError as exc:
            raise PermissionDenied(f"cannot create the folder of {uri.redacted()}: {exc.strerror}") from exc
        with self._connection("open", None) as db:
            db.execute("PRAGMA journal_mode=WAL")  # kept in the file: readers keep reading while a writer commits
            db.execute(_SCHEMA)

    # -- connections and transactions ---------------------------------------------------------------

    @contextmanager
    def _connection(self, op: str, key: str | None) -> Iterator[sqlite3.Connection]:
        """A pooled connection; sqlite3 errors leave this block as typed TensorDB errors."""
        db: sqlite3.Connection | None = None
        try:
            # isolation_level=None: we issue BEGIN ourselves; check_same_thread=False: a pooled connection
            # moves between threads, but only ever serves one at a time.
            db = self._idle.pop() if self._idle else sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            yield db
        except sqlite3.Error as exc:
            raise self._translate(exc, op, key) from exc
        finally:
            if db is not None:
                if db.in_transaction:  # a failed COMMIT leaves the transaction open
                    db.rollback()
                self._idle.append(db)

    @contextmanager
    def _transaction(self, op: str, key: str | None, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction: readers see one snapshot; writers take the write lock up front (IMMEDIATE)."""
        with self._connection(op, key) as db:
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            with db:  # commits, or rolls back if the body raised
                yield db

    def _translate(self, exc: sqlite3.Error, op: str, key: str | None) -> TensorDBError:
        """The typed error for a sqlite3 exception (its message names the file, never anything secret)."""
        code = "_".join(getattr(exc, "sqlite_errorname", "").split("_")[:2])  # SQLITE_BUSY_SNAPSHOT -> SQLITE_BUSY
        cls, hint = _ERRORS.get(code, (BackendError, "see the SQLite message"))
        what = f"{op} {key!r}" if key is not None else op
        return cls(f"{what} in {self.uri.redacted()} failed: {hint} (SQLite: {exc})")

    # -- the BlobStore protocol ---------------------------------------------------------------------

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Insert or replace in one transaction: readers see the old blob or the new one, never a part."""
        check_key(key)
        value = data if isinstance(data, bytes) else memoryview(data).tobytes()  # bytes, not elements
        with self._write_lock, self._transaction("put", key, write=True) as db:
            db.execute(_UPSERT, (key, value))

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` clamped like a slice; ``BlobNotFound`` if absent (whatever the range)."""
        key, start, end = split_request((key, start, end))
        with self._transaction("get", key) as db:  # one snapshot: the row cannot change under the read
            row = db.execute("SELECT id, length(data) FROM blobs WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise BlobNotFound(f"no blob {key!r} in {self.uri.redacted()}")
            rowid, size = row
            stop = size if end is None else min(end, size)
            if start >= stop:
                return b""
            if self.incremental_io:
                with db.blobopen("blobs", "data", rowid, readonly=True) as blob:
                    blob.seek(start)
                    return blob.read(stop - start)
            sql = "SELECT substr(data, ?, ?) FROM blobs WHERE id = ?"  # substr counts from 1
            return bytes(db.execute(sql, (start + 1, stop - start, rowid)).fetchone()[0])

    def get_many(self, requests: Iterable[BlobRequest]) -> Iterator[bytes]:
        """Each request's bytes in request order, read on up to ``max_workers`` threads (WAL readers run in parallel)."""
        return ordered_concurrent_map(lambda r: self.get(*split_request(r)), requests, self.max_workers)

    def exists(self, key: str) -> bool:
        check_key(key)
        with self._transaction("exists", key) as db:
            return db.execute("SELECT 1 FROM blobs WHERE key = ?", (key,)).fetchone() is not None

    def size(self, key: str) -> int:
        """The stored length (SQLite reads it from the row header, not the blob)."""
        check_key(key)
        with self._transaction("size", key) as db:
            row = db.execute("SELECT length(data) FROM blobs WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise BlobNotFound(f"no blob {key!r} in {self.uri.redacted()}")
        return int(row[0])

    def delete(self, key: str) -> None:
        check_key(key)
        with self._write_lock, self._transaction("delete", key, write=True) as db:
            db.execute("DELETE FROM blobs WHERE key = ?", (key,))

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (a plain string prefix), a page of ``LIST_PAGE`` per query.

        Every key is ASCII below ``\\x7f``, so the keys starting with ``prefix``
        are exactly those in ``[prefix, prefix + "\\x7f")`` — a range the
        ``UNIQUE`` index on ``key`` answers without a scan.  The next page
        starts at ``last + "\\x00"``, the smallest string after ``last``.
        """
        low, high = prefix, prefix + "\x7f"
        while True:
            with self._transaction("list", None) as db:
                sql = "SELECT key FROM blobs WHERE key >= ? AND key < ? ORDER BY key LIMIT ?"
                page = [k for (k,) in db.execute(sql, (low, high, LIST_PAGE))]
            yield from page
            if len(page) < LIST_PAGE:
                return
            low = page[-1] + "\x00"

    def close(self) -> None:
        """Close the pooled connections (operations after this open new ones)."""
        while self._idle:
            self._idle.pop().close()

    def __repr__(self) -> str:
        return f"SQLiteBlobStore({self.uri.redacted()!r})"
