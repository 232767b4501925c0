"""The MongoDB index store: one collection per kind, the portable query passed through.

Why MongoDB is a natural index: TensorDB's query language *is* a MongoDB
filter subset, so after :func:`tensordb_core.query.filters.validate_query` has refused
anything outside it (server-side code above all), queries, sorts, projections
and updates go to the server unchanged and use its indexes.

``_seq`` (insertion order, used by ``tail`` and as every sort's tie-breaker)
is allocated in ranges from a counters collection with one atomic
``find_one_and_update({$inc: {seq: n}})`` per write batch, so writers in many
processes never collide.  Caveat for followers: a writer that allocated a
lower range may commit *after* another writer's higher range is visible; see
``docs/backends/mongo.md`` ("Tailing by _seq").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

from tensordb_core.store.protocols import Document, IndexCapabilities, Query, SortSpec
from tensordb_core.store.uri import StoreURI, parse_uri

from . import clients
from .common import (
    COUNTERS,
    check_collection,
    codec_options,
    index_keys,
    insert_plan,
    mongo_query,
    mongo_sort,
    mongo_update,
    open_cursor,
    run,
    tail_cursor,
)
from .config import MongoConfig, parse_config
from .translate import driver_errors, driver_exception_types, raise_translated

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.collection import Collection
    from pymongo.cursor import Cursor as PyCursor


class MongoCursor:
    """A lazy cursor over a query, fetched from the server in batches; driver errors are translated."""

    def __init__(self, cursor: PyCursor, uri: StoreURI, action: str) -> None:
        self._cursor = cursor
        self._uri = uri
        self._action = action

    def __iter__(self) -> MongoCursor:
        return self

    def __next__(self) -> Document:
        try:
            return next(self._cursor)
        except driver_exception_types() as exc:
            raise_translated(exc, self._uri, self._action)

    def close(self) -> None:
        """Kill the server-side cursor now instead of when it is garbage collected (idempotent)."""
        with driver_errors(self._uri, self._action):
            self._cursor.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MongoIndexStore:
    """A :class:`~tensordb_core.store.protocols.IndexStore` on a MongoDB database (standalone, replica set or Atlas).

    Settings (URI options or keyword arguments): ``write_batch_size`` (documents
    per ``insert_many`` call, default 1000), ``read_batch_size`` (documents per
    cursor batch when ``find`` is given none; default: the server's).  Other
    keyword arguments go to ``MongoClient``.
    """

    def __init__(self, uri: StoreURI | str, **options: Any) -> None:
        self.uri: StoreURI = parse_uri(uri)
        self._config: MongoConfig = parse_config(self.uri, options)
        self.database: str = self._config.database
        self.write_batch_size: int = self._config.setting("write_batch_size")
        self.read_batch_size: int | None = self._config.setting("read_batch_size")
        # _seq is allocated before commit here, so followers re-read this many seconds (tensordb_core.stream.follow).
        # insert_many refuses known duplicate _ids before writing and rolls back a lost race, so it is
        # all or nothing for duplicates even without transactions (docs/backends/mongo.md).
        self.capabilities = IndexCapabilities(tail_grace_s=float(self._config.setting("tail_grace_s")),
                                              atomic_insert_many=True, seq_ranges=True)
        self._client: MongoClient | None = clients.acquire(self._config)
        self._db = self._client.get_database(self.database, codec_options=codec_options())
        self._seq_indexed: set[str] = set()

    def __repr__(self) -> str:
        return f"MongoIndexStore({self.uri.redacted()!r})"

    def _coll(self, collection: str) -> Collection:
        if self._client is None:
            raise ValueError(f"{self!r} is closed")
        return self._db[check_collection(collection)]

    # -- writes --------------------------------------------------------------------------------

    def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> list[str]:
        """Insert ``docs`` and return their ``_id`` s; all or nothing for duplicates (see :func:`.common.insert_plan`)."""
        coll = self._coll(collection)
        plan = insert_plan(coll, self._db[COUNTERS], collection, docs, batch_size=self.write_batch_size,
                           seq_indexed=self._seq_indexed)
        with driver_errors(self.uri, f"insert into {collection}"):
            return run(plan)

    def update_many(self, collection: str, query: Query, update: Mapping[str, Any]) -> int:
        coll, flt, upd = self._coll(collection), mongo_query(query), mongo_update(update)
        with driver_errors(self.uri, f"update {collection}"):
            return coll.update_many(flt, upd).matched_count

    def find_one_and_update(
        self, collection: str, query: Query, update: Mapping[str, Any], *, sort: SortSpec | None = None
    ) -> Document | None:
        """Atomically update the first match (by ``sort``, then ``_seq``) and return it after the update."""
        from pymongo import ReturnDocument

        coll, flt, upd, order = self._coll(collection), mongo_query(query), mongo_update(update), mongo_sort(sort)
        with driver_errors(self.uri, f"find_one_and_update in {collection}"):
            return coll.find_one_and_update(flt, upd, sort=order, return_document=ReturnDocument.AFTER)

    def delete_many(self, collection: str, query: Query) -> int:
        coll, flt = self._coll(collection), mongo_query(query)
        with driver_errors(self.uri, f"delete from {collection}"):
            return coll.delete_many(flt).deleted_count

    def create_index(self, collection: str, keys: SortSpec, *, unique: bool = False) -> None:
        """Ensure an index exists; asking again with the same keys and options is a no-op."""
        coll, spec = self._coll(collection), index_keys(keys)
        with driver_errors(self.uri, f"create_index on {collection}"):
            coll.create_index(spec, unique=unique)

    # -- reads ---------------------------------------------------------------------------------

    def find(
        self,
        collection: str,
        query: Query | None = None,
        *,
        sort: SortSpec | None = None,
        limit: int = 0,
        skip: int = 0,
        projection: Mapping[str, int] | None = None,
        batch_size: int | None = None,
    ) -> MongoCursor:
        """A server-side cursor in ``_seq`` order (or ``sort`` then ``_seq``), fetched ``batch_size`` at a time."""
        coll = self._coll(collection)
        with driver_errors(self.uri, f"find in {collection}"):
            cursor = open_cursor(coll, query, sort=sort, limit=limit, skip=skip, projection=projection,
                                 batch_size=batch_size or self.read_batch_size)
        return MongoCursor(cursor, self.uri, f"find in {collection}")

    def count(self, collection: str, query: Query | None = None) -> int:
        coll, flt = self._coll(collection), mongo_query(query)
        with driver_errors(self.uri, f"count in {collection}"):
            return coll.count_documents(flt)

    def tail(self, collection: str, query: Query | None = None, *, after: int = 0, limit: int = 0) -> Iterator[Document]:
        """Matches with ``_seq > after`` in ``_seq`` order (an index range scan on ``_seq``)."""
        coll = self._coll(collection)
        with driver_errors(self.uri, f"tail {collection}"):
            cursor = tail_cursor(coll, query, after, limit)
        return MongoCursor(cursor, self.uri, f"tail {collection}")

    def last_seq(self, collection: str) -> int:
        """The highest ``_seq`` ever allocated in ``collection`` (its counter), 0 if none."""
        check_collection(collection)
        with driver_errors(self.uri, f"last_seq of {collection}"):
            doc = self._db[COUNTERS].find_one({"_id": collection})
        return int(doc["seq"]) if doc else 0

    def ping(self) -> None:
        """Round-trip to the server; raises ``BackendUnavailable`` / ``PermissionDenied`` with the reason."""
        with driver_errors(self.uri, "ping"):
            self._db.command("ping")

    def close(self) -> None:
        """Release this store's share of the MongoDB client (idempotent)."""
        client, self._client = self._client, None
        if client is not None:
            clients.release(self._config, client)
