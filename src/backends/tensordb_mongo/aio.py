"""An asyncio index store on PyMongo's native ``AsyncMongoClient``.

For services that already run an event loop (an ingestion API, a job
dispatcher) and must not block it.  Same collections, documents, ``_seq``
counters and query subset as :class:`tensordb_mongo.index.MongoIndexStore`,
so sync and async processes can share one database.

Why not Motor: MongoDB deprecated Motor (May 2025) in favour of the async API
built into PyMongo (``pymongo.AsyncMongoClient``, generally available since
PyMongo 4.13, experimental before), which talks to the server directly on the
event loop instead of delegating to a thread pool.

    async with AsyncIndexStore("mongodb://host/lab") as store:
        await store.insert_many("jobs", [{"state": "queued"}])
        async for doc in store.find("jobs", {"state": "queued"}):
            ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

from tensordb_core.errors import MissingDependency
from tensordb_core.store.protocols import Document, Query, SortSpec
from tensordb_core.store.uri import StoreURI, parse_uri

from .clients import check_driver_uri, new_client
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
    run_async,
    tail_cursor,
)
from .config import MongoConfig, parse_config
from .translate import driver_errors, driver_exception_types, raise_translated

if TYPE_CHECKING:
    from pymongo import AsyncMongoClient
    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.cursor import AsyncCursor

__all__ = ["AsyncIndexStore", "AsyncMongoCursor"]


#: The first PyMongo release whose asyncio API is generally available (not experimental).
ASYNC_PYMONGO = (4, 13)


def _require_async_pymongo() -> None:
    try:
        import pymongo
    except ImportError as exc:
        raise MissingDependency("the MongoDB backend needs PyMongo: pip install 'tensordb[mongo]'") from exc
    if tuple(pymongo.version_tuple[:2]) < ASYNC_PYMONGO:
        raise MissingDependency(
            f"tensordb_mongo.aio needs PyMongo >= 4.13 (its asyncio API is experimental before), "
            f"found {pymongo.version}: pip install -U 'pymongo>=4.13'"
        )


class AsyncMongoCursor:
    """An async iterator over query results, fetched from the server in batches."""

    def __init__(self, cursor: AsyncCursor, uri: StoreURI, action: str) -> None:
        self._cursor = cursor
        self._uri = uri
        self._action = action

    def __aiter__(self) -> AsyncMongoCursor:
        return self

    async def __anext__(self) -> Document:
        try:
            return await self._cursor.__anext__()
        except driver_exception_types() as exc:
            raise_translated(exc, self._uri, self._action)

    async def to_list(self) -> list[Document]:
        """Every remaining document (mind the memory on large results)."""
        return [doc async for doc in self]

    async def close(self) -> None:
        """Kill the server-side cursor now (idempotent)."""
        with driver_errors(self._uri, self._action):
            await self._cursor.close()


class AsyncIndexStore:
    """The index-store operations as coroutines; ``find`` and ``tail`` return async iterators.

    Each store owns its ``AsyncMongoClient`` (async clients belong to one event
    loop, so they are not shared across stores like the sync ones).  Settings
    are those of :class:`~tensordb_mongo.index.MongoIndexStore`.
    """

    def __init__(self, uri: StoreURI | str, **options: Any) -> None:
        _require_async_pymongo()
        from pymongo import AsyncMongoClient

        self.uri: StoreURI = parse_uri(uri)
        self._config: MongoConfig = parse_config(self.uri, options)
        self.database: str = self._config.database
        self.write_batch_size: int = self._config.setting("write_batch_size")
        self.read_batch_size: int | None = self._config.setting("read_batch_size")
        check_driver_uri(self._config)
        self._client: AsyncMongoClient | None = new_client(AsyncMongoClient, self._config)
        self._db = self._client.get_database(self.database, codec_options=codec_options())
        self._seq_indexed: set[str] = set()

    def __repr__(self) -> str:
        return f"AsyncIndexStore({self.uri.redacted()!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _coll(self, collection: str) -> AsyncCollection:
        if self._client is None:
            raise ValueError(f"{self!r} is closed")
        return self._db[check_collection(collection)]

    async def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> list[str]:
        """As :meth:`MongoIndexStore.insert_many <tensordb_mongo.index.MongoIndexStore.insert_many>` (one plan)."""
        coll = self._coll(collection)
        plan = insert_plan(coll, self._db[COUNTERS], collection, docs, batch_size=self.write_batch_size,
                           seq_indexed=self._seq_indexed)
        with driver_errors(self.uri, f"insert into {collection}"):
            return await run_async(plan)

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
    ) -> AsyncMongoCursor:
        """An async iterator over matches (``_seq`` order unless ``sort``); nothing is sent until iterated."""
        coll = self._coll(collection)
        with driver_errors(self.uri, f"find in {collection}"):
            cursor = open_cursor(coll, query, sort=sort, limit=limit, skip=skip, projection=projection,
                                 batch_size=batch_size or self.read_batch_size)
        return AsyncMongoCursor(cursor, self.uri, f"find in {collection}")

    async def count(self, collection: str, query: Query | None = None) -> int:
        coll, flt = self._coll(collection), mongo_query(query)
        with driver_errors(self.uri, f"count in {collection}"):
            return await coll.count_documents(flt)

    async def update_many(self, collection: str, query: Query, update: Mapping[str, Any]) -> int:
        coll, flt, upd = self._coll(collection), mongo_query(query), mongo_update(update)
        with driver_errors(self.uri, f"update {collection}"):
            return (await coll.update_many(flt, upd)).matched_count

    async def find_one_and_update(
        self, collection: str, query: Query, update: Mapping[str, Any], *, sort: SortSpec | None = None
    ) -> Document | None:
        """Atomically update the first match (by ``sort``, then ``_seq``) and return it after the update."""
        from pymongo import ReturnDocument

        coll, flt, upd, order = self._coll(collection), mongo_query(query), mongo_update(update), mongo_sort(sort)
        with driver_errors(self.uri, f"find_one_and_update in {collection}"):
            return await coll.find_one_and_update(flt, upd, sort=order, return_document=ReturnDocument.AFTER)

    async def delete_many(self, collection: str, query: Query) -> int:
        coll, flt = self._coll(collection), mongo_query(query)
        with driver_errors(self.uri, f"delete from {collection}"):
            return (await coll.delete_many(flt)).deleted_count

    async def create_index(self, collection: str, keys: SortSpec, *, unique: bool = False) -> None:
        coll, spec = self._coll(collection), index_keys(keys)
        with driver_errors(self.uri, f"create_index on {collection}"):
            await coll.create_index(spec, unique=unique)

    def tail(self, collection: str, query: Query | None = None, *, after: int = 0, limit: int = 0) -> AsyncMongoCursor:
        """Matches with ``_seq > after`` in ``_seq`` order, as an async iterator."""
        return AsyncMongoCursor(tail_cursor(self._coll(collection), query, after, limit), self.uri, f"tail {collection}")

    async def last_seq(self, collection: str) -> int:
        check_collection(collection)
        with driver_errors(self.uri, f"last_seq of {collection}"):
            doc = await self._db[COUNTERS].find_one({"_id": collection})
        return int(doc["seq"]) if doc else 0

    async def close(self) -> None:
        """Close this store's client (idempotent)."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()
