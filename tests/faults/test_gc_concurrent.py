"""gc beside running writers never deletes a blob a document references or a writer is about to.

Two layers of evidence:

* **Every interleaving** of one writer's store calls with one gc's, enumerated
  exhaustively on in-process stores that let exactly one call through at a
  time in a chosen order — including the case where the writer's chunk has
  the same content as an orphan gc is about to delete (content addresses
  dedupe, so the writer's put is a no-op on a blob gc already condemned).
* **Real processes**: a writer process imports while the test process runs
  ``gc`` in a loop and plants orphans for it to find, on the embedded store
  and on MongoDB + GridFS.

Why gc here runs with a grace period (60 s) and not 0: in this design the
grace period is how long a write intent protects its blob — intents older
than it belong to crashed writers.  At ``grace_s=0`` every intent counts as
abandoned, so nothing protects an in-flight blob; the last test shows the
checker finds exactly that race, which is what makes the other checks mean
something.  Blob age plays no part: only intents (and documents) protect blobs.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from faultkit import STUDY, audit, drain, steady_writer

import tensordb_core as tdb
from tensordb_core.embedded.memory import MemoryIndexStore
from tensordb_core.embedded.memory_blobs import MemoryBlobStore
from tensordb_core.format.codec import pack_segments
from tensordb_core.store import scope
from tensordb_core.store.blobkit import content_key
from tensordb_core.store.scope import StudyScope
from tensordb_core.warehouse import data
from tensordb_core.warehouse.maintenance import check, gc

pytestmark = pytest.mark.timeout(600)
GRACE_S = 60.0


# -- exhaustive interleavings ----------------------------------------------------------------------


class Turnstile:
    """Lets one store call through at a time, in the order a schedule of actor names gives.

    When the actor whose turn it is has finished, its turns are skipped; past
    the end of the schedule whoever is left runs freely.
    """

    def __init__(self, schedule: str) -> None:
        self.schedule, self.pos = schedule, 0
        self.finished: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.errors: list[BaseException] = []
        self.cond = threading.Condition()
        self.local = threading.local()

    def _turn(self) -> str | None:
        while self.pos < len(self.schedule) and self.schedule[self.pos] in self.finished:
            self.pos += 1
        return self.schedule[self.pos] if self.pos < len(self.schedule) else None

    def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        who = self.local.name
        self.calls[who] += 1
        with self.cond:
            if not self.cond.wait_for(lambda: self._turn() in (who, None), timeout=10):
                raise AssertionError(f"turnstile stuck at {self.pos} of {self.schedule!r}")
        try:
            result = fn(*args, **kwargs)
            return list(result) if isinstance(result, Iterator) or hasattr(result, "close") else result
        finally:
            with self.cond:
                if self._turn() == who:
                    self.pos += 1
                self.cond.notify_all()

    def actor(self, name: str, fn: Any) -> threading.Thread:
        def body() -> None:
            self.local.name = name
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(exc)
            finally:
                with self.cond:
                    self.finished.add(name)
                    self.cond.notify_all()

        return threading.Thread(target=body)


def commutes(name: str, args: tuple[Any, ...]) -> bool:
    """Calls that cannot interact with the other actor in these scenarios, so need no turn of their own:
    gc's reads of collections the writer never touches and its sweep of stale intents and markers."""
    if name == "find" and args and args[0] in ("params", "models"):
        return True
    return name == "delete_many" and len(args) > 1 and "$lt" in repr(args[1])


class Gated:
    """A store whose every call (but those that commute) waits for its turn at the turnstile."""

    def __init__(self, inner: Any, turnstile: Turnstile) -> None:
        self.inner, self.turnstile, self.uri = inner, turnstile, inner.uri

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        if not callable(method) or name == "close":
            return method

        def call(*a: Any, **kw: Any) -> Any:
            return method(*a, **kw) if commutes(name, a) else self.turnstile.run(method, *a, **kw)

        return call


def chunk_of(seed: int) -> tuple[np.ndarray, bytes]:
    X = np.random.default_rng(seed).standard_normal((3, 4)).astype(np.float32)
    body, _ = pack_segments(list(X), "auto")
    return X, body


def run_schedule(schedule: str, *, dedupe: bool, grace_s: float) -> tuple[Any, list[str], Counter[str]]:
    """Run one writer import and one gc in the order ``schedule`` gives; return the check report and doc ids."""
    index, blobs = MemoryIndexStore(), MemoryBlobStore()
    X, body = chunk_of(1)
    if dedupe:
        blobs.put(content_key(body), body)  # an orphan with the writer's content: the writer's put is a no-op
    else:
        blobs.put(content_key(chunk_of(2)[1]), chunk_of(2)[1])  # an unrelated orphan, so gc deletes something
    turnstile = Turnstile(schedule)
    gidx, gblobs = Gated(index, turnstile), Gated(blobs, turnstile)
    ids: list[str] = []
    writer = turnstile.actor("W", lambda: ids.extend(
        data.import_data(StudyScope(gidx, gblobs, "s"), X, None, None, chunk_bytes=1 << 20)))
    collector = turnstile.actor("G", lambda: gc(gidx, gblobs, grace_s=grace_s))
    for t in (writer, collector):
        t.start()
    for t in (writer, collector):
        t.join(30)
    assert not turnstile.errors, turnstile.errors
    return check(index, blobs, grace_s=grace_s), ids, turnstile.calls


def schedules(writer_calls: int, gc_calls: int, sample: int | None = None) -> Iterator[str]:
    """Every order of the two actors' calls, or ``sample`` of them drawn at random (seeded)."""
    total = writer_calls + gc_calls
    if sample is None:
        spots_list: Any = itertools.combinations(range(total), writer_calls)
    else:
        rng = random.Random(1234)
        spots_list = (rng.sample(range(total), writer_calls) for _ in range(sample))
    for spots in spots_list:
        chosen = set(spots)
        yield "".join("W" if i in chosen else "G" for i in range(total))


def count_calls(dedupe: bool) -> tuple[int, int]:
    """The most turns each actor takes: run each first (gc then deletes the most, the writer writes twice)."""
    w_first = run_schedule("W" * 50, dedupe=dedupe, grace_s=GRACE_S)[2]
    g_first = run_schedule("G" * 50, dedupe=dedupe, grace_s=GRACE_S)[2]
    return max(w_first["W"], g_first["W"]), max(w_first["G"], g_first["G"])


@pytest.mark.parametrize("dedupe", [False, True], ids=["fresh-content", "content-of-a-doomed-orphan"])
def test_every_interleaving_of_a_writer_and_gc_keeps_documents_whole(dedupe: bool, long_run: bool, monkeypatch,
                                                                      record_property) -> None:
    """Exhaustive with ``--long``; a seeded random sample of the interleavings in the short profile."""
    monkeypatch.setattr(scope, "DELETION_POLL_S", 0.0)  # a waiting writer's polls are turns of their own
    w, g = count_calls(dedupe)
    assert w >= 4, "intent, blob, documents, intent removal"
    tried = 0
    for schedule in schedules(w, g, None if long_run else 400):
        report, ids, _ = run_schedule(schedule, dedupe=dedupe, grace_s=GRACE_S)
        assert len(ids) == 3, schedule
        assert report.dangling == [] and report.corrupted == [], f"schedule {schedule}: {report.dangling}"
        tried += 1
    record_property("interleavings", tried)
    print(f"\n[faults] writer x gc interleavings ({'dedupe' if dedupe else 'fresh'}, {w} x {g} calls): {tried}, "
          "dangling 0")


def test_the_checker_finds_the_race_when_intents_do_not_count() -> None:
    """Sanity of the harness: at grace 0 (every intent presumed abandoned) some interleaving must dangle."""
    w, g = count_calls(False)
    assert any(run_schedule(s, dedupe=False, grace_s=0.0)[0].dangling for s in schedules(w, g, 400))


# -- real processes --------------------------------------------------------------------------------


def test_gc_in_a_loop_beside_a_writer_process(warehouse: str, procs, trials) -> None:
    calls = trials(12, 60)
    parent, child = procs.Pipe(duplex=False)
    proc = procs.Process(target=steady_writer, args=(warehouse, 0, calls, child))
    acked: dict[str, set[str]] = {"data": set(), "params": set()}
    planted: set[str] = set()
    deleted: set[str] = set()
    rng = random.Random(5)
    runs = 0
    with tdb.connect(warehouse, study=STUDY) as db:
        proc.start()
        child.close()
        assert parent.poll(60)
        while proc.is_alive() or runs < 3:
            drain(parent, acked)
            junk = rng.randbytes(64)
            db.blobs.put(content_key(junk), junk)  # an orphan no writer announced
            planted.add(content_key(junk))
            deleted.update(gc(db.index, db.blobs, grace_s=GRACE_S))
            runs += 1
            proc.join(0.01)
        proc.join(30)
        drain(parent, acked)
        deleted.update(gc(db.index, db.blobs, grace_s=GRACE_S))
        assert proc.exitcode == 0
        assert planted <= deleted, "gc collects the orphans it can see"
        report = check(db.index, db.blobs, grace_s=GRACE_S)
        assert report.orphans == [] and report.pending == []
    found = audit(warehouse, acked, grace_s=GRACE_S)
    assert found.clean, found
    assert len(acked["data"]) + len(acked["params"]) == found.documents > 0
    print(f"\n[faults] gc beside a writer on {warehouse.split('?')[0]}: {runs} gc runs, {len(deleted)} orphans "
          f"deleted, {found.documents} documents intact, dangling 0, lost 0")
