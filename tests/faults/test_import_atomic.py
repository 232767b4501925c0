"""Imports killed with SIGKILL at random points are all or nothing, and a keyed retry never duplicates (issue 15).

Each trial starts a child that imports one keyed batch of samples over many
small chunks (``import_data`` on even trials, ``import_records`` on odd ones)
and kills it: half the trials the parent SIGKILLs it after a random delay,
half the child SIGKILLs itself right before or after its n-th store write
(intent, chunk, the hidden insert, the commit).  The parent then counts the
batch's visible samples (0 or all of them; anything between is a partial
import) and retries with the same key: the batch must then be there exactly
once, and a second retry must return the same ids.
"""

from __future__ import annotations

import random
import signal
import time
from typing import Any

import numpy as np
import pytest
from faultkit import _self_kill_after

import tensordb_core as tdb
from tensordb_core.store.retrying import unwrap
from tensordb_core.warehouse.maintenance import check

pytestmark = pytest.mark.timeout(600)
STUDY = "atomic"
N = 24


def batch(trial: int) -> np.ndarray:
    return np.random.default_rng(trial).standard_normal((N, 4, 4)).astype(np.float32)


def import_batch(db: Any, trial: int) -> list[str]:
    X = batch(trial)
    if trial % 2 == 0:
        return db.import_data(X, np.arange(N), tags={"trial": trial}, chunk_bytes=3 * X[0].nbytes, key=f"t{trial}")
    records = ({"x": X[i], "i": i} for i in range(N))
    return db.import_records(records, tags={"trial": trial}, chunk_bytes=3 * X[0].nbytes, key=f"t{trial}")


def importer(uri: str, trial: int, conn: Any, kill_at: int | None, seed: int) -> None:
    with tdb.connect(uri, study=STUDY) as db:
        if kill_at is not None:
            countdown, rng = [kill_at], random.Random(seed)
            _self_kill_after(unwrap(db.index), ("insert_many", "update_many", "delete_many"), countdown, rng)
            _self_kill_after(unwrap(db.blobs), ("put",), countdown, rng)
        conn.send("ready")
        import_batch(db, trial)
        conn.send("done")
        time.sleep(60)  # wait for the parent's kill: an import that finished is a trial too


def kill_trial(procs: Any, uri: str, trial: int, rng: random.Random) -> None:
    parent, child = procs.Pipe(duplex=False)
    kill_at = rng.randint(1, 40) if trial % 4 in (1, 2) else None
    proc = procs.Process(target=importer, args=(uri, trial, child, kill_at, rng.randrange(2**32)))
    proc.start()
    child.close()
    assert parent.poll(60), "the importer did not start within 60 s"
    parent.recv()
    if kill_at is None:
        time.sleep(rng.uniform(0.0, 0.3))
    else:
        deadline = time.monotonic() + 30
        while proc.is_alive() and not parent.poll(0.01) and time.monotonic() < deadline:
            pass
    if proc.is_alive():
        proc.kill()
    proc.join(10)
    parent.close()
    assert proc.exitcode == -signal.SIGKILL, f"trial {trial}: the importer exited with {proc.exitcode}, not killed"


def test_killed_imports_are_all_or_nothing_and_retries_do_not_duplicate(warehouse: str, procs, trials,
                                                                         record_property) -> None:
    n = trials(6, 100)
    rng = random.Random(15)
    partial, duplicated, complete_before_retry = 0, 0, 0
    for trial in range(n):
        kill_trial(procs, warehouse, trial, rng)
        with tdb.connect(warehouse, study=STUDY) as db:
            seen = len(db.find_data({"trial": trial}))
            partial += seen not in (0, N)
            complete_before_retry += seen == N
            ids = import_batch(db, trial)
            again = import_batch(db, trial)
            cur = db.find_data({"trial": trial})
            duplicated += len(cur) - N
            assert ids == again == cur.ids() and len(set(ids)) == N
            if trial % 2 == 0:
                assert np.array_equal(cur.arrays()[0], batch(trial))
            else:
                assert [r["i"] for r in cur.records()] == list(range(N))
    assert partial == 0 and duplicated == 0
    with tdb.connect(warehouse, study=STUDY) as db:
        report = check(db.index, db.blobs, grace_s=0)
        assert report.dangling == [] and report.corrupted == []
    record_property("fault_figures", {"trials": n, "partial": partial, "duplicated": duplicated,
                                      "complete_before_retry": complete_before_retry})
    print(f"\n[faults] killed imports on {warehouse.split('?')[0]}: {n} trials, partial {partial}, "
          f"duplicated {duplicated}, {complete_before_retry} had committed before the kill")
