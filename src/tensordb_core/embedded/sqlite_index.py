"""The embedded index store: one SQLite file, safe for many threads and processes.

Why SQLite: a warehouse on a laptop or a shared disk needs no server, and
SQLite's WAL mode lets readers run while one writer commits.  Each collection
is a table ``(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, doc TEXT)``;
``seq`` is the document's ``_seq`` (AUTOINCREMENT never reuses one, even after
deletes), ``id`` its ``_id`` and ``doc`` the JSON of its other fields.

Queries: "SQL narrows, the reference evaluator decides".
:mod:`.sql_filter` turns the portable query into a JSON1 condition that keeps
every possible match, and :func:`tensordb_core.query.filters.matches` decides on each
candidate, so results are exactly MongoDB's.  Sorting is done in SQL (MongoDB's
type brackets, then values, then ``seq``) unless some candidate holds an object
or array in a sort field, in which case the matches are sorted in Python with
:func:`tensordb_core.query.filters.sort_key`.  Skip and limit count exact matches.
One read is the exception: ``read_columns`` (the stream's references) answers a
small language exactly in SQL (:mod:`.sql_exact`), with no document per match.
A cursor is lazy: it runs one statement on a pooled read connection of its
own and fetches ``batch_size`` rows at a time, so it reads one consistent
snapshot (WAL) however long it lives, costs one query plan however many pages
it has, and never stands in the way of the caller's writes while iterating
(those go through the thread's own connection).  An open cursor keeps the WAL
from being checkpointed past its snapshot: close (or exhaust) cursors you stop
reading.

Indexes: ``create_index`` adds an expression index on ``json_extract`` of the
keys and a ``json_type`` index per key path.  With the latter a query learns,
in its own snapshot, that no document holds an array at a path, drops the
array branches of its filter and leaves SQLite a bare comparison it can answer
from the index, in ``seq`` order for an equality.

Concurrency: one connection per thread (per process after a fork), WAL mode
and a busy timeout.  Writes run under ``BEGIN IMMEDIATE``, which takes the
database's write lock before reading, so ``find_one_and_update`` claims a
document atomically across threads and processes, and ``insert_many`` /
``update_many`` are all or nothing.

Errors: a lock held past ``busy_timeout`` is :class:`TransientError`, an
unreadable or corrupt file :class:`IntegrityError`, a missing directory
:class:`BackendUnavailable`, a read-only file :class:`PermissionDenied`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from tensordb_core.embedded import sql_exact
from tensordb_core.embedded import sql_filter as sf
from tensordb_core.embedded.jsondocs import fresh_projection, stored_json
from tensordb_core.embedded.sqlite_columns import SQLiteColumnReads
from tensordb_core.errors import (
    BackendError,
    BackendUnavailable,
    IntegrityError,
    InvalidDocument,
    InvalidQuery,
    PermissionDenied,
    TransientError,
)
from tensordb_core.format import jsontext
from tensordb_core.query.filters import (
    check_collection,
    check_window,
    compile_query,
    compile_update,
    sort_key,
    validate_query,
    validate_sort,
)
from tensordb_core.store.kit.cursors import IteratorCursor
from tensordb_core.store.kit.options import Option, OptionSet, one_of, seconds, whole
from tensordb_core.store.protocols import Document, IndexCapabilities, new_id
from tensordb_core.store.uri import StoreURI

DEFAULT_PAGE = 256


#: The index's options (keywords, else the URI's query): parsed by the kit's one option parser.
OPTIONS = OptionSet(
    "SQLite index option",
    [
        Option("busy_timeout", 30.0, seconds(0.0)),  # seconds a writer waits for another's lock
        Option("synchronous", "NORMAL", one_of("OFF", "NORMAL", "FULL", "EXTRA")),  # PRAGMA synchronous
        Option("page_size", DEFAULT_PAGE, whole(1)),  # rows fetched per cursor page
    ],
)


class _Handle:
    """Holds one thread's connection; when the thread ends, the handle is collected and the connection closed."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        weakref.finalize(self, conn.close)


class SQLiteIndexStore(SQLiteColumnReads):
    """The IndexStore protocol over one SQLite file (see the module docstring for the guarantees)."""

    #: _seq is assigned inside the committing write transaction: followers need no grace.
    capabilities = IndexCapabilities(tail_grace_s=0.0, columns=True)

    def __init__(
        self,
        path: str | os.PathLike[str],
        uri: StoreURI | None = None,
        *,
        busy_timeout: float | str | None = None,
        synchronous: str | None = None,
        page_size: int | str | None = None,
        shared: Iterable[str] = (),
        **options: Any,
    ) -> None:
        """Open (creating if needed) the index in ``path``.

        Options come from the keywords, else ``uri``'s query (see ``OPTIONS``);
        ``shared`` names query options another store reads from the same URI
        (``file://`` also carries the file blob store's), accepted and ignored here.
        """
        self.path = os.fspath(path)
        self.uri = uri or StoreURI("sqlite", path="/" + self.path)
        given = {"busy_timeout": busy_timeout, "synchronous": synchronous, "page_size": page_size, **options}
        settings = OPTIONS.parse(self.uri, given, shared=shared)
        self.busy_timeout: float = settings["busy_timeout"]
        self.synchronous: str = settings["synchronous"]
        self.page_size: int = settings["page_size"]
        self._local = threading.local()
        self._handles: weakref.WeakSet[_Handle] = weakref.WeakSet()
        self._readers: list[sqlite3.Connection] = []  # idle connections for cursors
        self._readers_lock = threading.Lock()
        self._pid = os.getpid()
        self._tables: set[str] = set()
        self._indexed: dict[str, list[str]] = {}  # collection -> SQL of its indexes
        self._index_names: set[str] | None = None  # every index of the file (create_index)
        self._column_statements = sql_exact.ColumnStatements()
        self._closed = False

    def __repr__(self) -> str:
        return f"SQLiteIndexStore({self.uri.redacted()!r})"

    # connections and errors -----------------------------------------------------------------
    def _open(self, *, writer: bool) -> sqlite3.Connection:
        with self._errors("open"):
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
            try:
                if writer:
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
            except BaseException:
                conn.close()
                raise
        return conn

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"{self!r} is closed")
        if os.getpid() != self._pid:  # forked: never share the parent's connections
            self._pid, self._local, self._handles, self._tables = (
                os.getpid(),
                threading.local(),
                weakref.WeakSet(),
                set(),
            )
            self._readers, self._readers_lock, self._indexed = [], threading.Lock(), {}

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection: every write, and reads that finish before returning."""
        self._check_open()
        handle = getattr(self._local, "handle", None)
        if handle is None:
            handle = self._local.handle = _Handle(self._open(writer=True))
            self._handles.add(handle)
        return handle.conn

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A connection of the cursor's own holding one read snapshot, back to the pool afterwards."""
        self._check_open()
        self._conn()  # the first connection of a process switches the file to WAL
        with self._readers_lock:
            conn = self._readers.pop() if self._readers else None
        if conn is None:
            conn = self._open(writer=False)
        healthy = False
        try:
            with self._errors("read"):
                conn.execute("BEGIN")
            yield conn
            healthy = True
        finally:
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                healthy = False
            with self._readers_lock:
                if healthy and not self._closed and len(self._readers) < 8:
                    self._readers.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Translate ``sqlite3`` errors into TensorDB's (the path is not a secret; the URI is redacted)."""
        try:
            yield
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(f"{what} in {self.path}: {exc}") from exc
        except sqlite3.OperationalError as exc:
            msg = str(exc).lower()
            if "locked" in msg or "busy" in msg:
                raise TransientError(
                    f"{what}: {self.path} stayed locked by another writer beyond busy_timeout={self.busy_timeout}s; "
                    "retry, or raise busy_timeout"
                ) from exc
            if "readonly" in msg or "read-only" in msg:
                raise PermissionDenied(f"{what}: {self.path} is read-only: {exc}") from exc
            if "unable to open" in msg or ("disk i/o error" in msg and not os.path.exists(self.path)):
                # the directory or the file is gone (SQLite says either, for a new connection)
                raise BackendUnavailable(f"{what}: cannot open {self.path}: does its directory exist? (was the "
                                         "warehouse deleted or emptied underneath this handle?)") from exc
            raise BackendError(f"{what} in {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            msg = str(exc).lower()
            if "malformed" in msg or "not a database" in msg or "corrupt" in msg:
                raise IntegrityError(f"{what}: {self.path} is not a readable SQLite database: {exc}") from exc
            raise BackendError(f"{what} in {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise BackendError(f"{what} in {self.path}: {exc}") from exc

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: the write lock is taken before anything is read."""
        conn = self._conn()
        with self._errors(what):
            conn.execute("BEGIN IMMEDIATE")
        self._local.created = []  # tables this transaction creates: known to exist once it commits
        try:
            with self._errors(what):
                yield conn
                conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            created, self._local.created = self._local.created, []
        self._tables.update(created)

    def _exists(self, conn: sqlite3.Connection, collection: str) -> bool:
        if collection in self._tables:
            return True
        with self._errors("read"):
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (collection,)).fetchone()
        if found:
            self._tables.add(collection)
        return bool(found)

    def _create(self, conn: sqlite3.Connection, collection: str) -> None:
        """Create ``collection``'s table in the open write transaction.

        It joins :attr:`_tables` (the tables every thread may query without
        looking) only when that transaction commits: before, another thread's
        connection cannot see it yet ("no such table", seen with gc reading
        the index identity while a writer created it).
        """
        if collection not in self._tables:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {sf.ident(collection)} "
                "(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, doc TEXT NOT NULL)"
            )
            self._local.created.append(collection)

    # reading rows ---------------------------------------------------------------------------
    @staticmethod
    def _load(seq: int, doc_id: str, text: str) -> Document:
        return {"_id": doc_id, "_seq": seq, **jsontext.loads(text)}

    @staticmethod
    def _dump(doc: Mapping[str, Any]) -> str:
        body = {k: v for k, v in doc.items() if k not in ("_id", "_seq")}
        return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    def _stream(
        self,
        conn: sqlite3.Connection,
        collection: str,
        query: dict[str, Any],
        *,
        after: int = 0,
        terms: list[tuple[str, int]] | None = None,
        page: int | None = None,
    ) -> Iterator[Document]:
        """Candidates (a superset of the matches) in ``seq`` order or by ``terms``: one statement, fetched in pages."""
        if not self._exists(conn, collection):
            return
        indexes = self._index_sql(conn, collection)
        t = sf.Translator(self._arrays_absent(conn, collection))
        with self._errors("query"):
            cond = sf.where(query, t)
        # An indexed equality (or _id) reads rows already in seq order: let SQLite walk it.
        # An index serving only ranges returns rows out of order: "+seq" tells SQLite to use
        # it and sort, rather than walk the whole table in seq order as it otherwise prefers.
        indexed = sf.indexed_exprs(indexes)
        seq = "+seq" if not (t.id_lookup or t.eq_exprs & indexed) and t.exprs & indexed else "seq"
        order = ", ".join(f"{expr} {'ASC' if d == 1 else 'DESC'}" for expr, d in [*(terms or []), (seq, 1)])
        sql = f"SELECT seq, id, doc FROM {sf.ident(collection)} WHERE seq > {t.bind(after)} AND {cond} ORDER BY {order}"
        with self._errors("query"):
            cursor = conn.execute(sql, t.params)
        try:
            while True:
                with self._errors("query"):
                    rows = cursor.fetchmany(page or self.page_size)
                if not rows:
                    return
                for seq, doc_id, text in rows:
                    yield self._load(seq, doc_id, text)
        finally:
            cursor.close()

    def _arrays_absent(self, conn: sqlite3.Connection, collection: str) -> Callable[[str], bool]:
        """Whether no document holds an array at a path, where a json_type index answers it (in ``conn``'s
        snapshot: the statement that relies on it must read that snapshot too); False elsewhere."""
        typed = sf.type_indexed_paths(self._index_sql(conn, collection))

        def absent(path: str) -> bool:
            sql = f"SELECT 1 FROM {sf.ident(collection)} WHERE json_type(doc, {path}) = 'array' LIMIT 1"
            return path in typed and conn.execute(sql).fetchone() is None

        return absent

    def _index_sql(self, conn: sqlite3.Connection, collection: str) -> list[str]:
        """The ``CREATE INDEX`` statements of ``collection`` (cached; create_index refreshes it)."""
        indexes = self._indexed.get(collection)
        if indexes is None:
            with self._errors("query"):
                rows = conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type='index' AND tbl_name=? AND sql IS NOT NULL", (collection,)
                ).fetchall()
            indexes = self._indexed[collection] = [r[0] for r in rows]
        return indexes

    def _matches(
        self,
        conn: sqlite3.Connection,
        collection: str,
        query: dict[str, Any],
        sort: list[tuple[str, int]],
        *,
        after: int = 0,
        page: int | None = None,
    ) -> Iterator[Document]:
        """Exact matches in the requested order (``seq`` when ``sort`` is empty)."""
        pred = compile_query(query)
        terms = sf.sort_terms(sort) if sort else []
        if sort and terms is not None and self._exists(conn, collection):
            t = sf.Translator()
            probe = f"SELECT 1 FROM {sf.ident(collection)} WHERE {sf.where(query, t)} AND {sf.unsortable(sort)} LIMIT 1"
            with self._errors("query"):
                if conn.execute(probe, t.params).fetchone():
                    terms = None
        if terms is None:  # Python sorts what SQL cannot
            hits = [d for d in self._stream(conn, collection, query, after=after, page=page) if pred(d)]
            hits.sort(key=lambda d: sort_key(d, sort))
            yield from hits
            return
        for doc in self._stream(conn, collection, query, after=after, terms=terms, page=page):
            if pred(doc):
                yield doc

    def _matching_seqs(self, conn: sqlite3.Connection, collection: str, query: dict[str, Any]) -> list[int]:
        """Every match's ``seq``, read to the end before anything is written."""
        return [d["_seq"] for d in self._matches(conn, collection, query, [])]

    # protocol: reads ------------------------------------------------------------------------
    def find(
        self,
        collection: str,
        query: Mapping[str, Any] | None = None,
        *,
        sort: Any = None,
        limit: int = 0,
        skip: int = 0,
        projection: Mapping[str, int] | None = None,
        batch_size: int | None = None,
    ) -> IteratorCursor:
        check_collection(collection)
        checked, spec, project = validate_query(query), validate_sort(sort), fresh_projection(projection)
        check_window(limit, skip, batch_size)

        def rows() -> Iterator[Document]:
            n = 0
            with self._reader() as conn:
                for i, doc in enumerate(self._matches(conn, collection, checked, spec, page=batch_size)):
                    if i < skip:
                        continue
                    yield project(doc)
                    n += 1
                    if limit and n >= limit:
                        return

        return IteratorCursor(rows())  # pages are read from SQLite as iteration reaches them

    def count(self, collection: str, query: Mapping[str, Any] | None = None) -> int:
        check_collection(collection)
        checked = validate_query(query)
        conn = self._conn()
        if not self._exists(conn, collection):
            return 0
        cond = sql_exact.exact_where(checked, t := sf.Translator(), indexed=True)  # SQL alone where exact
        if cond is not None:
            with self._errors("count"):
                return conn.execute(f"SELECT COUNT(*) FROM {sf.ident(collection)} WHERE {cond}", t.params).fetchone()[0]
        return sum(1 for _ in self._matches(conn, collection, checked, []))

    def tail(
        self, collection: str, query: Mapping[str, Any] | None = None, *, after: int = 0, limit: int = 0
    ) -> Iterator[Document]:
        check_collection(collection)
        checked = validate_query(query)
        check_window(limit, 0, None)
        if type(after) is not int or after < 0:
            raise InvalidQuery(f"tail(after=...) takes the last _seq seen (an int >= 0), got {after!r}")

        def rows() -> Iterator[Document]:
            with self._reader() as conn:
                for n, doc in enumerate(self._matches(conn, collection, checked, [], after=after), start=1):
                    yield doc
                    if limit and n >= limit:
                        return

        return rows()

    def last_seq(self, collection: str) -> int:
        check_collection(collection)
        conn = self._conn()
        with self._errors("last_seq"):
            try:
                row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name=?", (collection,)).fetchone()
            except sqlite3.OperationalError as exc:  # no AUTOINCREMENT table written yet
                if "no such table" in str(exc):
                    return 0
                raise
        return int(row[0]) if row else 0

    # protocol: writes -----------------------------------------------------------------------
    def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> list[str]:
        check_collection(collection)
        try:
            stored = [stored_json(d, f"document {i}") for i, d in enumerate(docs)]
        except ValueError as exc:
            if isinstance(exc, InvalidDocument):
                raise
            raise InvalidDocument(str(exc)) from exc  # pragma: no cover - the checks refused non-JSON values
        ids = [doc_id or new_id() for doc_id, _ in stored]
        rows = [(doc_id, body) for doc_id, (_, body) in zip(ids, stored)]
        if not rows:
            return []
        if len(set(ids)) != len(ids):
            dup = next(i for n, i in enumerate(ids) if i in ids[:n])
            raise IntegrityError(f"duplicate _id {dup!r} within one insert_many into {collection!r}")
        table = sf.ident(collection)
        with self._write("insert") as conn:
            self._create(conn, collection)
            for k in range(0, len(ids), 500):  # under the write lock: nobody can insert in between
                chunk = ids[k : k + 500]
                clash = conn.execute(f"SELECT id FROM {table} WHERE id IN ({','.join('?' * len(chunk))})", chunk)
                found = clash.fetchone()
                if found:
                    raise IntegrityError(f"duplicate _id {found[0]!r} in collection {collection!r}")
            try:
                conn.executemany(f"INSERT INTO {table} (id, doc) VALUES (?, ?)", rows)
            except sqlite3.IntegrityError as exc:
                raise IntegrityError(f"insert into {collection!r} violates a unique index: {exc}") from exc
        return ids

    def _rewrite(
        self, conn: sqlite3.Connection, collection: str, seqs: list[int], apply: Callable[[Document], Document]
    ) -> Document | None:
        """Apply ``apply`` to the documents at ``seqs`` (inside the caller's write transaction); return the last."""
        table, last = sf.ident(collection), None
        for k in range(0, len(seqs), 500):
            chunk = seqs[k : k + 500]
            rows = conn.execute(
                f"SELECT seq, id, doc FROM {table} WHERE seq IN ({','.join('?' * len(chunk))}) ORDER BY seq", chunk
            ).fetchall()
            updates = []
            for seq, doc_id, text in rows:
                last = apply(self._load(seq, doc_id, text))
                updates.append((self._dump(last), seq))
            try:
                conn.executemany(f"UPDATE {table} SET doc = ? WHERE seq = ?", updates)
            except sqlite3.IntegrityError as exc:
                raise IntegrityError(f"update in {collection!r} violates a unique index: {exc}") from exc
        return last

    def update_many(self, collection: str, query: Mapping[str, Any], update: Mapping[str, Any]) -> int:
        check_collection(collection)
        checked, apply = validate_query(query), compile_update(update)
        with self._write("update") as conn:
            if not self._exists(conn, collection):
                return 0
            seqs = self._matching_seqs(conn, collection, checked)
            self._rewrite(conn, collection, seqs, apply)
        return len(seqs)

    def find_one_and_update(
        self,
        collection: str,
        query: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        sort: Any = None,
    ) -> Document | None:
        check_collection(collection)
        checked, apply, spec = validate_query(query), compile_update(update), validate_sort(sort)
        with self._write("find_one_and_update") as conn:
            if not self._exists(conn, collection):
                return None
            matches = self._matches(conn, collection, checked, spec, page=32)
            try:
                first = next(matches, None)
            finally:
                matches.close()  # finishes the SELECT before the UPDATE
            if first is None:
                return None
            return self._rewrite(conn, collection, [first["_seq"]], apply)

    def delete_many(self, collection: str, query: Mapping[str, Any]) -> int:
        check_collection(collection)
        checked = validate_query(query)
        with self._write("delete") as conn:
            if not self._exists(conn, collection):
                return 0
            table = sf.ident(collection)
            if not checked:
                return conn.execute(f"DELETE FROM {table}").rowcount
            doomed = self._matching_seqs(conn, collection, checked)
            for k in range(0, len(doomed), 500):
                chunk = doomed[k : k + 500]
                conn.execute(f"DELETE FROM {table} WHERE seq IN ({','.join('?' * len(chunk))})", chunk)
        return len(doomed)

    def create_index(self, collection: str, keys: Sequence[tuple[str, int]], *, unique: bool = False) -> None:
        """An expression index on ``json_extract`` of the keys (idempotent); ``unique`` is enforced."""
        check_collection(collection)
        spec = validate_sort(keys)
        if not spec:
            raise InvalidQuery("create_index: give at least one (field, 1 | -1) key")
        statements = sf.index_statements(collection, spec, unique)
        if statements is None:
            return  # a field name SQL cannot spell: the index is only a hint
        with self._errors("create_index"):  # every connect asks (16 indexes): one read of the names a store
            if self._index_names is None:  # (indexes are never dropped), and no write lock where all exist
                self._index_names = {r[0] for r in self._conn().execute("SELECT name FROM sqlite_master")}
            if {name for name, _ in statements} <= self._index_names:
                return
        with self._write("create_index") as conn:
            self._create(conn, collection)
            try:
                conn.execute(statements[0][1])
            except sqlite3.IntegrityError as exc:
                raise IntegrityError(f"cannot create unique index on {spec} in {collection!r}: duplicates") from exc
            self._indexed.pop(collection, None)
            for _, statement in statements[1:]:
                conn.execute(statement)
            self._index_names = None  # read again once committed

    def close(self) -> None:
        """Close every thread's connection; the store cannot be used afterwards."""
        self._closed = True
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        for handle in list(self._handles):
            handle.conn.close()


