"""What the fault tests' child processes run, and the audit that proves nothing was lost.

Children write deterministic content: every sample's array is a function of
its tags ``(trial, call, i)`` and every parameter set's arrays of
``(trial, call)``, so the audit can recompute what each surviving document
must read back, count acknowledged documents that vanished ("lost") and
documents that exist twice ("duplicated"), and find documents whose blobs are
missing ("dangling").
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import tensordb_core as tdb
from tensordb_core.store.retrying import unwrap
from tensordb_core.warehouse.maintenance import check

STUDY = "faults"
SAMPLE_SHAPE = (6, 5)


def sample(trial: int, call: int, i: int) -> np.ndarray:
    return np.random.default_rng([trial, call, i]).standard_normal(SAMPLE_SHAPE).astype(np.float32)


def parameters(trial: int, call: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([trial, call, 10**6])
    return {"w": rng.standard_normal((16, 8)).astype(np.float32), "b": rng.integers(0, 9, 8, dtype=np.int64)}


def write_one(db: Any, trial: int, call: int, samples: int = 7) -> tuple[str, list[str]]:
    """One acknowledged write: a parameter set every third call (the first included, so even a writer killed
    early has acknowledged one), else an import of several chunks."""
    if call % 3 == 0:
        return "params", [db.save_parameters(parameters(trial, call), metrics={"loss": 1.0 / (call + 1)},
                                             tags={"trial": trial, "call": call})]
    X = np.stack([sample(trial, call, i) for i in range(samples)])
    tags = [{"trial": trial, "call": call, "i": i} for i in range(samples)]
    return "data", db.import_data(X, np.arange(samples) % 3, tags, chunk_bytes=2 * X[0].nbytes)


def _self_kill_after(store: Any, names: tuple[str, ...], countdown: list[int], rng: random.Random) -> None:
    """Make the ``countdown[0]``-th call to any of ``names`` SIGKILL this process, before or after it runs."""
    for name in names:
        original = getattr(store, name)

        def hooked(*args: Any, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            countdown[0] -= 1
            if countdown[0] == 0 and rng.random() < 0.5:
                os.kill(os.getpid(), signal.SIGKILL)
            result = _original(*args, **kwargs)
            if countdown[0] == 0:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        setattr(store, name, hooked)


def crash_writer(uri: str, trial: int, conn: Any, kill_at: int | None, seed: int) -> None:
    """Write until killed: by the parent's SIGKILL, or (``kill_at``) by itself at its ``kill_at``-th store write."""
    with tdb.connect(uri, study=STUDY) as db:
        if kill_at is not None:
            countdown, rng = [kill_at], random.Random(seed)
            _self_kill_after(unwrap(db.index), ("insert_many", "delete_many"), countdown, rng)
            _self_kill_after(unwrap(db.blobs), ("put",), countdown, rng)
        conn.send(("ready", None))
        call = 0
        while True:
            kind, ids = write_one(db, trial, call)
            conn.send((kind, ids))
            call += 1


def steady_writer(uri: str, trial: int, calls: int, conn: Any) -> None:
    """Write ``calls`` times without faults, acknowledging each write."""
    with tdb.connect(uri, study=STUDY) as db:
        conn.send(("ready", None))
        for call in range(calls):
            kind, ids = write_one(db, trial, call)
            conn.send((kind, ids))
    conn.send(("done", None))


def drain(conn: Any, acked: dict[str, set[str]]) -> None:
    """Collect every acknowledgement waiting in the pipe."""
    while True:
        try:
            if not conn.poll(0):
                return
            kind, ids = conn.recv()
        except (EOFError, OSError):
            return
        if kind in acked:
            acked[kind].update(ids)


def run_until_killed(procs: Any, uri: str, trial: int, rng: random.Random, acked: dict[str, set[str]]) -> str:
    """One crash trial; returns how the child died ("parent-kill" or "self-kill")."""
    parent, child = procs.Pipe(duplex=False)
    self_kill = trial % 2 == 1
    kill_at = rng.randint(1, 30) if self_kill else None
    proc = procs.Process(target=crash_writer, args=(uri, trial, child, kill_at, rng.randrange(2**32)))
    proc.start()
    child.close()
    if not parent.poll(60):
        proc.kill()
        raise AssertionError("the writer did not start within 60 s")
    parent.recv()
    if not self_kill:
        deadline = time.monotonic() + rng.uniform(0.0, 0.4)
        while time.monotonic() < deadline:
            drain(parent, acked)
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while proc.is_alive() and time.monotonic() < deadline:
        drain(parent, acked)
        proc.join(0.01)
    proc.join(5)
    drain(parent, acked)
    parent.close()
    assert proc.exitcode == -signal.SIGKILL, f"writer exited with {proc.exitcode}, not killed"
    return "self-kill" if self_kill else "parent-kill"


@dataclass
class Audit:
    """What the audit of a warehouse found."""

    documents: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[Any] = field(default_factory=list)
    dangling: list[Any] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)
    wrong_content: list[str] = field(default_factory=list)
    orphans: int = 0

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.dangling or self.corrupted or self.wrong_content)


def audit(uri: str, acked: dict[str, set[str]], *, grace_s: float = 0.0) -> Audit:
    """Cross-check the warehouse: every document reads back what was written, nothing acknowledged is gone."""
    out = Audit()
    with tdb.connect(uri, study=STUDY) as db:
        report = check(db.index, db.blobs, verify=True, grace_s=grace_s)
        out.dangling, out.corrupted, out.orphans = report.dangling, report.corrupted, len(report.orphans)
        docs = list(db.find_data())
        out.documents = len(docs)
        seen = Counter((d["trial"], d["call"], d["i"]) for d in docs)
        out.duplicated = [k for k, n in seen.items() if n > 1]
        if not out.dangling:
            X, _ = db.find_data().arrays()  # verifies every sample's CRC-32
            for doc, x in zip(docs, X):
                if not np.array_equal(x, sample(doc["trial"], doc["call"], doc["i"])):
                    out.wrong_content.append(doc["_id"])
        pdocs = db.find_parameter_docs()
        out.documents += len(pdocs)
        pseen = Counter((d["trial"], d["call"]) for d in pdocs)
        out.duplicated += [k for k, n in pseen.items() if n > 1]
        for doc in pdocs:
            if any(doc["_blob"]["key"] == key for _, _, key in out.dangling):
                continue
            got = db.load_parameters(doc)  # verified against its content address
            want = parameters(doc["trial"], doc["call"])
            if set(got) != set(want) or any(not np.array_equal(got[k], want[k]) for k in want):
                out.wrong_content.append(doc["_id"])
        present = {d["_id"] for d in docs} | {d["_id"] for d in pdocs}
        out.lost = sorted((acked.get("data", set()) | acked.get("params", set())) - present)
    return out
