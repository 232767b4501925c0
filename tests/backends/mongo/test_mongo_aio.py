"""The asyncio facade on PyMongo's AsyncMongoClient: same documents and _seq as the sync store."""

from __future__ import annotations

import asyncio

import pytest

from tensordb_core.errors import BackendUnavailable, IntegrityError, InvalidQuery
from tensordb_mongo import MongoIndexStore
from tensordb_mongo.aio import AsyncIndexStore

pytestmark = pytest.mark.mongo


def test_async_round_trip_shares_data_with_the_sync_store(mongo_uri):
    async def scenario() -> None:
        async with AsyncIndexStore(mongo_uri) as store:
            ids = await store.insert_many("jobs", [{"n": i, "state": "queued"} for i in range(250)])
            assert len(set(ids)) == 250
            assert await store.count("jobs", {"n": {"$lt": 10}}) == 10
            got = [d["n"] async for d in store.find("jobs", {"n": {"$gte": 240}}, sort=[("n", -1)], batch_size=3)]
            assert got == list(range(249, 239, -1))
            assert await store.find("jobs", limit=2, projection={"n": 1, "_id": 0}).to_list() == [{"n": 0}, {"n": 1}]
            claimed = await asyncio.gather(*[
                store.find_one_and_update("jobs", {"state": "queued"}, {"$set": {"state": "run"}}) for _ in range(20)
            ])
            assert sorted(d["n"] for d in claimed) == list(range(20))  # concurrent claims never overlap
            assert all(d["state"] == "run" for d in claimed)
            assert await store.update_many("jobs", {"state": "queued"}, {"$inc": {"tries": 1}}) == 230
            assert await store.delete_many("jobs", {"n": {"$gte": 200}}) == 50
            assert [d["n"] async for d in store.tail("jobs", {"n": {"$gte": 190}}, after=195)] == list(range(195, 200))
            assert await store.last_seq("jobs") == 250
            await store.create_index("jobs", [("state", 1)])
            with pytest.raises(IntegrityError):
                await store.insert_many("jobs", [{"_id": ids[0]}])
            with pytest.raises(InvalidQuery):
                await store.count("jobs", {"$where": "true"})
            cursor = store.find("jobs")
            assert (await cursor.__anext__())["n"] == 0
            await cursor.close()

    asyncio.run(scenario())
    sync = MongoIndexStore(mongo_uri)  # what the async store wrote, the sync store reads (same _seq counters)
    try:
        assert sync.count("jobs", {"state": "run"}) == 20
        assert sync.insert_many("jobs", [{"n": 999}]) and sync.last_seq("jobs") == 251
    finally:
        sync.close()


def test_async_dead_server_is_backend_unavailable():
    from serverkit import free_port

    async def scenario() -> None:
        uri = f"mongodb://bob:hunter2@127.0.0.1:{free_port()}/x?directConnection=true&serverSelectionTimeoutMS=300"
        async with AsyncIndexStore(uri) as store:
            with pytest.raises(BackendUnavailable) as info:
                await store.count("c")
            assert "hunter2" not in str(info.value) and "bob:***@" in str(info.value)
            with pytest.raises(BackendUnavailable):
                [d async for d in store.find("c")]

    asyncio.run(scenario())


def test_async_insert_rolls_back_a_duplicate_lost_in_a_race(mongo_uri, raw_db, monkeypatch):
    """The asyncio store runs the same insert plan: a race lost mid-call removes what the call inserted."""
    from pymongo.asynchronous.collection import AsyncCollection

    real_allocate = AsyncCollection.find_one_and_update
    calls = []

    async def allocate_then_race(self, *args, **kwargs):
        if self.name == "tensordb.counters":
            calls.append(kwargs)
            if len(calls) == 2:  # between our first and second batch, "someone else" takes id "x3"
                raw_db["data"].insert_one({"_id": "x3", "_seq": 10_000, "theirs": True})
        return await real_allocate(self, *args, **kwargs)

    monkeypatch.setattr(AsyncCollection, "find_one_and_update", allocate_then_race)  # a spy: the real call runs

    async def scenario() -> None:
        async with AsyncIndexStore(mongo_uri, write_batch_size=2) as store:
            with pytest.raises(IntegrityError, match="x3"):
                await store.insert_many("data", [{"_id": f"x{i}"} for i in range(1, 6)])

    asyncio.run(scenario())
    assert list(raw_db["data"].find()) == [{"_id": "x3", "_seq": 10_000, "theirs": True}]
