"""Jobs are a real queue: atomic claims, leases, fencing, retries, dead letters — across processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

import tensordb_core as tdb
from tensordb_core.errors import LeaseLost


def test_push_pop_complete(db):
    jid = db.push_job({"epochs": 5}, tags={"type": "train"})
    assert db.pop_job({"type": "evaluate"}) is None
    job = db.pop_job({"type": "train"}, lease_s=30, worker="w1")
    assert job.id == jid and job.spec == {"epochs": 5} and job.tags == {"type": "train"}
    assert db.pop_job({"type": "train"}) is None  # claimed: nobody else gets it
    job.heartbeat()
    job.complete({"acc": 0.93})
    doc = db.find_jobs({"_id": jid})[0]
    assert (doc["status"], doc["result"], doc["worker"], doc["attempts"]) == ("done", {"acc": 0.93}, "w1", 1)
    assert db.pop_job() is None


def test_priority_then_age(db):
    low = db.push_job("a")
    high = db.push_job("b", priority=5)
    low2 = db.push_job("c")
    assert [db.pop_job().id for _ in range(3)] == [high, low, low2]


def test_failures_retry_then_dead_with_errors(db):
    jid = db.push_job({"x": 1}, max_attempts=2)
    db.pop_job().fail("boom 1")
    assert db.find_jobs({"_id": jid})[0]["status"] == "queued"
    db.pop_job().fail("boom 2")
    doc = db.find_jobs({"_id": jid})[0]
    assert doc["status"] == "dead"
    assert [e["error"] for e in doc["errors"]] == ["boom 1", "boom 2"]
    assert db.pop_job() is None


def test_expired_lease_is_reclaimed_and_old_owner_is_fenced(db):
    jid = db.push_job({"x": 1})
    first = db.pop_job(lease_s=0.05, worker="slow")
    time.sleep(0.1)
    second = db.pop_job(lease_s=30, worker="fast")
    assert second is not None and second.id == jid and second.token > first.token
    with pytest.raises(LeaseLost):
        first.heartbeat()
    with pytest.raises(LeaseLost):
        first.complete({"stale": True})
    second.complete({"fresh": True})
    assert db.find_jobs({"_id": jid})[0]["result"] == {"fresh": True}


def test_lost_workers_exhaust_attempts_then_dead(db):
    jid = db.push_job({"x": 1}, max_attempts=2)
    for _ in range(2):
        assert db.pop_job(lease_s=0.01) is not None
        time.sleep(0.03)
    assert db.pop_job() is None
    doc = db.find_jobs({"_id": jid})[0]
    assert doc["status"] == "dead" and "lease expired" in doc["errors"][-1]["error"]


def test_release_requeues_without_spending_an_attempt(db):
    jid = db.push_job({"x": 1}, max_attempts=1)
    db.pop_job().release()
    again = db.pop_job()
    assert again.id == jid
    again.complete()


def _claim_all(uri: str, out: multiprocessing.Queue) -> None:
    claimed = []
    with tdb.connect(uri, study="q") as db:
        while (job := db.pop_job(lease_s=60)) is not None:
            claimed.append(job.spec)
            job.complete()
    out.put(claimed)


def test_processes_popping_one_queue_claim_each_job_once(tmp_path):
    uri = str(tmp_path / "wh")
    with tdb.connect(uri, study="q") as db:
        for i in range(60):
            db.push_job(i)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(uri, out)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    claimed = [c for r in results for c in r]
    assert sorted(claimed) == list(range(60))  # every job exactly once


def _claim_and_hang(uri: str, ready) -> None:
    with tdb.connect(uri, study="q") as db:
        db.pop_job(lease_s=0.5, worker="doomed")
        ready.set()
        time.sleep(60)


def test_killed_worker_job_is_claimed_again_after_lease(tmp_path):
    uri = str(tmp_path / "wh")
    with tdb.connect(uri, study="q") as db:
        jid = db.push_job({"train": 1})
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        proc = ctx.Process(target=_claim_and_hang, args=(uri, ready))
        proc.start()
        assert ready.wait(60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        assert db.pop_job() is None  # lease still held by the dead worker
        time.sleep(0.6)
        job = db.pop_job(worker="rescuer")
        assert job is not None and job.id == jid and job.doc["attempts"] == 2
        job.complete()
