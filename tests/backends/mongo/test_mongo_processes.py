"""Atomic claims across processes: what a job queue on MongoDB relies on."""

from __future__ import annotations

import multiprocessing

import pytest

from tensordb_mongo import MongoIndexStore

pytestmark = pytest.mark.mongo

ITEMS = 40
WORKERS = 4


def claim_until_empty(uri: str, worker: int, start: multiprocessing.synchronize.Event) -> list[str]:
    """One worker process: claim queued items one at a time until none is left."""
    store = MongoIndexStore(uri)
    claimed = []
    try:
        start.wait(30)
        while True:
            doc = store.find_one_and_update(
                "jobs", {"state": "queued"}, {"$set": {"state": "claimed", "worker": worker}, "$inc": {"claims": 1}},
                sort=[("priority", -1)],
            )
            if doc is None:
                return claimed
            assert doc["state"] == "claimed" and doc["worker"] == worker  # the document *after* the update
            claimed.append(doc["_id"])
    finally:
        store.close()


def test_each_item_is_claimed_exactly_once_across_processes(mongo_uri):
    store = MongoIndexStore(mongo_uri)
    try:
        store.insert_many("jobs", [{"_id": f"job{i:02d}", "state": "queued", "priority": i % 3} for i in range(ITEMS)])
        ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no MongoClient inherited over fork
        with ctx.Manager() as manager:
            start = manager.Event()
            with ctx.Pool(WORKERS) as pool:
                pending = [pool.apply_async(claim_until_empty, (mongo_uri, w, start)) for w in range(WORKERS)]
                start.set()
                results = [p.get(timeout=120) for p in pending]
        everything = [job for claimed in results for job in claimed]
        assert sorted(everything) == [f"job{i:02d}" for i in range(ITEMS)]  # each exactly once
        assert store.count("jobs", {"claims": 1, "state": "claimed"}) == ITEMS
        for w, claimed in enumerate(results):
            assert store.count("jobs", {"worker": w}) == len(claimed)
    finally:
        store.close()
