"""Crashed and stalled workers, and many processes on one queue or importing at once.

tests/test_jobs.py covers the job lifecycle on the embedded store; here the
same guarantees run on MongoDB (killed worker, fencing, dead letters) and the
concurrency checks run on both the embedded store (SQLite) and MongoDB:

* a job is claimed exactly once while processes push and pop together;
* a worker that stalls past its lease is fenced: it can neither complete nor
  overwrite the job its successor now owns, so each job has one accepted result;
* processes importing at once lose and duplicate nothing.
"""

from __future__ import annotations

import os
import random
import signal
import time
from typing import Any

import pytest
from faultkit import STUDY, audit, drain, steady_writer

import tensordb_core as tdb
from polling import wait_for
from tensordb_core.errors import LeaseLost

pytestmark = pytest.mark.timeout(300)
QUEUE = "q"


# -- one worker at a time, on MongoDB ------------------------------------------------------------


def claim_and_hang(uri: str, lease_s: float, conn: Any) -> None:
    with tdb.connect(uri, study=QUEUE) as db:
        job = db.pop_job(lease_s=lease_s, worker="doomed")
        conn.send(job.id if job else None)
        time.sleep(120)


def test_a_killed_workers_job_is_claimed_again_once_its_lease_expires(mongo_warehouse: str, procs) -> None:
    uri = mongo_warehouse
    with tdb.connect(uri, study=QUEUE) as db:
        jid = db.push_job({"train": 1}, max_attempts=3)
        parent, child = procs.Pipe(duplex=False)
        proc = procs.Process(target=claim_and_hang, args=(uri, 3.0, child))
        proc.start()
        assert parent.poll(60) and parent.recv() == jid
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL
        assert db.find_jobs({"_id": jid})[0]["status"] == "running"  # the dead worker still holds the lease
        job = wait_for(lambda: db.pop_job(worker="rescuer", lease_s=30), bound_s=30, poll_s=0.05)
        assert job is not None and job.id == jid and job.doc["attempts"] == 2 and job.token == 2
        job.complete({"ok": True})
        doc = db.find_jobs({"_id": jid})[0]
        assert (doc["status"], doc["worker"], doc["result"]) == ("done", "rescuer", {"ok": True})


def test_a_worker_whose_lease_was_taken_over_is_fenced(mongo_warehouse: str) -> None:
    with tdb.connect(mongo_warehouse, study=QUEUE) as db:
        jid = db.push_job({"x": 1})
        slow = db.pop_job(lease_s=0.2, worker="slow")
        fast = wait_for(lambda: db.pop_job(lease_s=30, worker="fast"), bound_s=30, poll_s=0.05)
        assert fast.id == jid and fast.token > slow.token
        for stale in (slow.heartbeat, lambda: slow.complete({"stale": True}), lambda: slow.fail("stale"),
                      slow.release):
            with pytest.raises(LeaseLost):
                stale()
        fast.heartbeat()
        fast.complete({"fresh": True})
        doc = db.find_jobs({"_id": jid})[0]
        assert (doc["status"], doc["result"], doc["errors"]) == ("done", {"fresh": True}, [])


def test_a_job_that_keeps_failing_ends_dead_with_its_errors(mongo_warehouse: str) -> None:
    with tdb.connect(mongo_warehouse, study=QUEUE) as db:
        jid = db.push_job({"x": 1}, max_attempts=3)
        for n in range(3):
            db.pop_job(worker=f"w{n}").fail(f"boom {n}")
        assert db.pop_job() is None
        doc = db.find_jobs({"_id": jid})[0]
        assert doc["status"] == "dead" and doc["attempts"] == 3
        assert [(e["error"], e["worker"]) for e in doc["errors"]] == [(f"boom {n}", f"w{n}") for n in range(3)]


# -- many processes, both stores -----------------------------------------------------------------


def fenced_worker(uri: str, name: str, seed: int, conn: Any) -> None:
    """Work the queue with a short lease; stall past it on some jobs.  Report each outcome."""
    rng = random.Random(seed)
    with tdb.connect(uri, study=QUEUE) as db:
        idle_since = time.monotonic()
        claimed = 0
        while time.monotonic() - idle_since < 3.0:
            job = db.pop_job(lease_s=0.4, worker=name)
            if job is None:
                time.sleep(0.02)
                continue
            idle_since = time.monotonic()
            claimed += 1
            stall = (seed == 0 and claimed <= 3) or rng.random() < 0.25  # worker 0 stalls at first: some fence
            if stall:
                time.sleep(0.9)  # past the lease, without a heartbeat: someone else may take it over
            elif job.doc["attempts"] > 1:
                # Taken over from a stalled worker: hold it (heartbeating) while that worker wakes and tries
                # to complete, so its stale completion meets a *running* job and only the token refuses it.
                hold_until = time.monotonic() + 1.0
                while time.monotonic() < hold_until:
                    job.heartbeat()
                    time.sleep(0.1)
            else:
                job.heartbeat()
            try:
                job.complete({"by": name, "token": job.token})
                conn.send(("done", job.id, name, job.token, stall))
            except LeaseLost:
                conn.send(("fenced", job.id, name, job.token, stall))
    conn.send(("exit", None, name, None, None))


def test_a_job_is_never_completed_by_two_workers(warehouse: str, procs, trials) -> None:
    jobs = trials(24, 120)
    with tdb.connect(warehouse, study=QUEUE) as db:
        ids = [db.push_job({"n": i}, max_attempts=10) for i in range(jobs)]
    parent, child = procs.Pipe(duplex=False)
    workers = [procs.Process(target=fenced_worker, args=(warehouse, f"w{k}", k, child)) for k in range(3)]
    for p in workers:
        p.start()
    child.close()
    events: list[tuple[Any, ...]] = []
    exited = 0
    deadline = time.monotonic() + 240
    while exited < len(workers) and time.monotonic() < deadline:
        if parent.poll(0.5):
            event = parent.recv()
            events.append(event)
            exited += event[0] == "exit"
    for p in workers:
        p.join(30)
        assert p.exitcode == 0
    accepted = [e for e in events if e[0] == "done"]
    fenced = [e for e in events if e[0] == "fenced"]
    assert sorted(e[1] for e in accepted) == sorted(ids), "every job has exactly one accepted completion"
    assert fenced, "some stale completion was tried and refused (worker 0 stalls on its first jobs)"
    assert all(e[4] for e in fenced), "only a worker that stalled past its lease is ever fenced"
    with tdb.connect(warehouse, study=QUEUE) as db:
        for doc in db.find_jobs():
            winner = next(e for e in accepted if e[1] == doc["_id"])
            assert doc["status"] == "done"
            assert doc["result"] == {"by": winner[2], "token": winner[3]} and doc["token"] == winner[3]
    print(f"\n[faults] fenced workers on {warehouse.split('?')[0]}: {jobs} jobs, {len(fenced)} stale completions "
          f"refused, 0 jobs completed twice")


def push_and_pop(uri: str, k: int, per: int, all_pushed: Any, conn: Any) -> None:
    """Push ``per`` jobs while popping; then pop until the queue is empty after every process has pushed."""
    claimed: list[Any] = []
    with tdb.connect(uri, study=QUEUE) as db:
        for i in range(per):
            db.push_job({"from": k, "i": i})
            job = db.pop_job(lease_s=120)
            if job is not None:
                claimed.append(job.spec)
                job.complete()
        conn.send(("pushed", k))
        while True:
            job = db.pop_job(lease_s=120)
            if job is not None:
                claimed.append(job.spec)
                job.complete()
            elif all_pushed.is_set():
                break
            else:
                time.sleep(0.01)
    conn.send(("claimed", claimed))


def test_processes_pushing_and_popping_one_queue_claim_each_job_once(warehouse: str, procs, trials) -> None:
    n, per = 3, trials(20, 100)
    parent, child = procs.Pipe(duplex=False)
    all_pushed = procs.Event()
    ps = [procs.Process(target=push_and_pop, args=(warehouse, k, per, all_pushed, child)) for k in range(n)]
    for p in ps:
        p.start()
    child.close()
    pushed, claimed = 0, []
    finished = 0
    deadline = time.monotonic() + 240
    while finished < n and time.monotonic() < deadline:
        if not parent.poll(0.5):
            continue
        kind, value = parent.recv()
        if kind == "pushed":
            pushed += 1
            if pushed == n:
                all_pushed.set()
        else:
            claimed += value
            finished += 1
    for p in ps:
        p.join(30)
        assert p.exitcode == 0
    keys = sorted((s["from"], s["i"]) for s in claimed)
    assert keys == [(k, i) for k in range(n) for i in range(per)], "every job claimed exactly once"
    with tdb.connect(warehouse, study=QUEUE) as db:
        docs = db.find_jobs()
        assert len(docs) == n * per and all(d["status"] == "done" and d["attempts"] == 1 for d in docs)


def test_processes_importing_at_once_lose_and_duplicate_nothing(warehouse: str, procs, trials) -> None:
    n, calls = 3, trials(6, 30)
    pipes = [procs.Pipe(duplex=False) for _ in range(n)]
    ps = [procs.Process(target=steady_writer, args=(warehouse, k, calls, child)) for k, (_, child) in enumerate(pipes)]
    for p in ps:
        p.start()
    acked: dict[str, set[str]] = {"data": set(), "params": set()}
    for p, (parent, _) in zip(ps, pipes):
        p.join(240)
        assert p.exitcode == 0
        drain(parent, acked)
    found = audit(warehouse, acked)
    assert found.clean, found
    assert found.documents == len(acked["data"]) + len(acked["params"])
    with tdb.connect(warehouse, study=STUDY) as db:
        for k in range(n):
            assert len(db.find_data({"trial": k})) == 7 * len([c for c in range(calls) if c % 3 != 2])
