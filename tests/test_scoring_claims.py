"""Scoring claims: however many evaluators run, each parameter set is scored once per metric prefix.

Claims race from threads, each with its own warehouse handle (on the
directory store, its own SQLite connection); a stale claim (an evaluator
killed mid-score) is taken over, a fresh one is not; two evaluator workers
share one study's work.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest

import tensordb_core as tdb
from polling import wait_for
from tensordb_core.cli.status import format_status, study_status
from tensordb_core.errors import InvalidDocument
from tensordb_core.loop import roles, worker
from tensordb_core.loop.scoring import (
    ALREADY_SCORED,
    CLAIMED_ELSEWHERE,
    FIELD,
    SCORED,
    UNSCORABLE,
    ScoringClaims,
    claim_of,
    take_claim,
)
from tensordb_core.loop.worker import WorkerOptions, find_workers, run_worker
from tensordb_core.warehouse.copying import copy_warehouse

ARCH = {"builder": "numpy-mlp", "inputs": 4, "outputs": 3}
THREADS = 4


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def save_plain(db: tdb.TensorDB, n: int, **metrics: Any) -> list[str]:
    return [db.save_parameters([np.full(2, i, dtype=np.float32)], metrics=metrics or None) for i in range(n)]


def race(warehouse_uri: str, ids: list[str], evaluate: Any, contested: threading.Event) -> list[Counter]:
    """``THREADS`` claimers, each on its own handle, all trying every document in the same order.

    ``contested`` is set when a claimer first finds a document claimed by another.
    """
    outcomes: list[Counter] = [Counter() for _ in range(THREADS)]
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def claimer(k: int) -> None:
        try:
            with tdb.connect(warehouse_uri, "s1") as mine:
                claims = ScoringClaims(mine.scope, "test", worker=f"w{k}")
                start.wait(30)
                for pid in ids:
                    doc = mine.find_parameter_docs({"_id": pid})[0]
                    outcome, _ = claims.score(doc, lambda d, k=k: evaluate(k, d))
                    outcomes[k][outcome] += 1
                    if outcome == CLAIMED_ELSEWHERE:
                        contested.set()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return outcomes


def test_racing_claimers_score_each_document_exactly_once(warehouse_uri):
    with tdb.connect(warehouse_uri, "s1") as db:
        ids = save_plain(db, 24)
        calls: list[tuple[int, str]] = []
        lock = threading.Lock()

        contested = threading.Event()

        def evaluate(k: int, doc: dict[str, Any]) -> dict[str, float]:
            with lock:
                calls.append((k, doc["_id"]))
            if doc["_id"] == ids[0]:  # hold the first claim until another claimer has met it
                contested.wait(30)
            time.sleep(0.001)  # let the others run while a claim is held
            return {"test_acc": float(k)}

        outcomes = race(warehouse_uri, ids, evaluate, contested)
        assert contested.is_set() and sum(o[CLAIMED_ELSEWHERE] for o in outcomes) >= 1
        assert sorted(pid for _, pid in calls) == sorted(ids)  # each evaluated once, by one claimer
        assert sum(o[SCORED] for o in outcomes) == len(ids)
        assert all(set(o) <= {SCORED, CLAIMED_ELSEWHERE, ALREADY_SCORED} for o in outcomes)
        by = {pid: k for k, pid in calls}
        for doc in db.find_parameter_docs():
            claim = claim_of(doc, "test")
            assert claim["state"] == "done" and claim["worker"] == f"w{by[doc['_id']]}"
            assert doc["metrics"] == {"test_acc": float(by[doc["_id"]])}  # the metrics' shape is unchanged


def test_a_stale_claim_is_taken_over_and_a_fresh_one_is_not(db):
    pid = save_plain(db, 1)[0]
    clock = Clock()
    killed = take_claim(db.scope, pid, "test", worker="killed", lease_s=10, now=clock())  # never finishes
    assert killed is not None
    other = ScoringClaims(db.scope, "test", worker="other", lease_s=10, clock=clock)
    evaluated: list[str] = []

    def evaluate(doc: dict[str, Any]) -> dict[str, float]:
        evaluated.append(doc["_id"])
        return {"test_acc": 0.75}

    clock.now += 9.5  # fresh: left alone, remembered until its lease ends
    assert other.score(db.find_parameter_docs()[0], evaluate) == (CLAIMED_ELSEWHERE, None)
    assert evaluated == [] and other.skipped == 1 and other.due() == []
    clock.now += 1  # stale now: due again, and taken over
    (again,) = list(other.due())
    assert again["_id"] == pid and claim_of(again, "test")["worker"] == "killed"
    assert other.score(again, evaluate) == (SCORED, {"test_acc": 0.75})
    assert evaluated == [pid]
    # The killed evaluator comes back to life: its claim is fenced, it cannot write a second set of metrics.
    assert killed.finish({"test_acc": 0.1}, clock()) is False
    doc = db.find_parameter_docs()[0]
    assert doc["metrics"] == {"test_acc": 0.75}
    assert claim_of(doc, "test")["worker"] == "other" and claim_of(doc, "test")["state"] == "done"
    clock.now += 1e6  # a done claim is never taken again, however old
    assert take_claim(db.scope, pid, "test", worker="late", lease_s=10, now=clock()) is None


def test_claims_are_per_prefix_and_per_study(db):
    pid = save_plain(db, 1)[0]
    other_study = db.use_study("s2")
    assert take_claim(other_study.scope, pid, "test", worker="x", lease_s=60, now=1.0) is None  # not its document
    assert FIELD not in db.find_parameter_docs()[0]
    assert take_claim(db.scope, pid, "test", worker="a", lease_s=60, now=1.0) is not None
    assert take_claim(db.scope, pid, "test", worker="b", lease_s=60, now=2.0) is None
    assert take_claim(db.scope, pid, "holdout", worker="b", lease_s=60, now=2.0) is not None  # another prefix
    assert set(db.find_parameter_docs()[0][FIELD]) == {"test", "holdout"}
    with pytest.raises(InvalidDocument):
        ScoringClaims(db.scope, "te.st", worker="a")
    with pytest.raises(InvalidDocument):
        ScoringClaims(db.scope, "test", worker="a", lease_s=0)


def test_failures_hold_the_claim_for_one_lease(db):
    pid = save_plain(db, 1)[0]
    clock = Clock()
    a = ScoringClaims(db.scope, "test", worker="a", lease_s=10, clock=clock)
    b = ScoringClaims(db.scope, "test", worker="b", lease_s=10, clock=clock)

    def broken(doc: dict[str, Any]) -> dict[str, float]:
        raise ValueError("weights do not fit")

    with pytest.raises(ValueError):
        a.score(db.find_parameter_docs()[0], broken)
    claim = claim_of(db.find_parameter_docs()[0], "test")
    assert claim["state"] == "failed" and "weights do not fit" in claim["error"]
    assert b.score(db.find_parameter_docs()[0], broken)[0] == CLAIMED_ELSEWHERE  # not retried at once
    clock.now += 11
    assert b.score(db.find_parameter_docs()[0], lambda d: None) == (UNSCORABLE, None)  # retried after the lease
    assert claim_of(db.find_parameter_docs()[0], "test")["state"] == "failed"
    clock.now += 11
    assert a.score(db.find_parameter_docs()[0], lambda d: {"test_acc": 0.5})[0] == SCORED
    assert db.find_parameter_docs({"_id": pid})[0]["metrics"] == {"test_acc": 0.5}


def test_documents_scored_before_claims_existed_are_not_scored_again(db):
    save_plain(db, 1, test_acc=0.9)
    claims = ScoringClaims(db.scope, "test", worker="a")
    assert claims.score(db.find_parameter_docs()[0], lambda d: pytest.fail("scored twice")) == (ALREADY_SCORED, None)
    doc = db.find_parameter_docs()[0]
    assert doc["metrics"] == {"test_acc": 0.9} and claim_of(doc, "test")["state"] == "done"


# -- with real models: evaluators that stop when idle, and evaluators that keep following -------------------------------------
def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (rng.normal(size=(n, 4)) * 0.3 + np.eye(3, 4)[y] * 3).astype(np.float32), y


def quiet(**kwargs: Any) -> WorkerOptions:
    return WorkerOptions(poll_s=0.02, heartbeat_s=0.2, **kwargs)


def seed_trained(db: tdb.TensorDB, jobs: int) -> None:
    """A study with test data and ``2 * jobs`` trained parameter sets (two epochs per job)."""
    db.import_data(*blobs(48, 0), tags={"split": "train"})
    db.import_data(*blobs(20, 1), tags={"split": "test"})
    db.save_model_architecture(json.dumps(ARCH), tags={"name": "net"})
    for seed in range(jobs):
        db.push_job({"arch": {"name": "net"}, "data": {"split": "train"}, "batch_size": 16, "epochs": 2,
                     "hyper": {"hidden": [4], "lr": 0.1, "seed": seed}}, tags={"type": "train"})
    run_worker(db, "trainer", quiet(until_idle=True))


def test_evaluators_until_idle_side_by_side_score_each_set_once(warehouse_uri):
    with tdb.connect(warehouse_uri, "s1") as db:
        seed_trained(db, 2)
        counts: list[int] = []
        start = threading.Barrier(2)

        def until_idle(k: int) -> None:
            with tdb.connect(warehouse_uri, "s1") as mine:
                start.wait(30)
                counts.append(run_worker(mine, "evaluator", quiet(name=f"once{k}", until_idle=True)))

        threads = [threading.Thread(target=until_idle, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        docs = db.find_parameter_docs()
        assert len(docs) == 4 and sum(counts) == 4
        assert all(isinstance(d["metrics"]["test_acc"], float) and claim_of(d, "test")["state"] == "done" for d in docs)
        assert run_worker(db, "evaluator", quiet(until_idle=True)) == 0  # nothing left to score


def test_two_evaluator_workers_score_each_parameter_set_once_in_total(warehouse_uri, monkeypatch):
    evaluated: list[str] = []

    def slow_evaluate(db: tdb.TensorDB, doc: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, float] | None:
        evaluated.append(doc["_id"])
        time.sleep(0.01)  # a claim is held while the other evaluator looks at the same document
        return roles.evaluate_parameters(db, doc, *args, **kwargs)

    monkeypatch.setattr(worker, "evaluate_parameters", slow_evaluate)
    with tdb.connect(warehouse_uri, "s1") as db:
        seed_trained(db, 3)
        pids = [d["_id"] for d in db.find_parameter_docs()]
        # An evaluator killed mid-score left a claim behind; it is taken over once its (short) lease runs out.
        assert take_claim(db.scope, pids[0], "test", worker="killed", lease_s=0.5, now=time.time())
        stop = threading.Event()
        said: list[str] = []
        handled: list[int] = []
        handles = [tdb.connect(warehouse_uri, "s1") for _ in range(2)]
        workers = [threading.Thread(target=lambda h=h, k=k: handled.append(run_worker(
            h, "evaluator", quiet(name=f"ev{k}", progress=said.append, score_lease_s=30), stop=stop)))
            for k, h in enumerate(handles)]
        for w in workers:
            w.start()
        try:
            wait_for(lambda: all(claim_of(d, "test") and claim_of(d, "test")["state"] == "done"
                                 for d in db.find_parameter_docs()))
            shown = format_status(study_status(db))  # the live evaluators, their counts, the best model
        finally:
            stop.set()
            for w in workers:
                w.join()
            for h in handles:
                h.close()
        docs = db.find_parameter_docs()
        assert len(docs) == 6 and sum(handled) == 6 and sum("scored" in m for m in said) == 6
        assert sorted(evaluated) == sorted(pids)  # each evaluated once, by one of the two
        assert {claim_of(d, "test")["worker"] for d in docs} <= {"ev0", "ev1"}  # the dead one's too
        records = find_workers(db, include_stopped=True)
        assert sorted(r["name"] for r in records if r["role"] == "evaluator") == ["ev0", "ev1"]
        assert sum(r.get("scored", 0) for r in records) == 6
        assert "scored=" in shown and re.search(r"best: +\w+  test_acc \d\.\d{4}", shown)


def test_copy_carries_the_claims_as_they_are(warehouse_uri, tmp_path):
    with tdb.connect(warehouse_uri, "s1") as db:
        pid = save_plain(db, 1)[0]
        ScoringClaims(db.scope, "test", worker="a").score(db.find_parameter_docs()[0], lambda d: {"test_acc": 0.5})
        source = db.find_parameter_docs()[0]
    copy_warehouse(warehouse_uri, str(tmp_path / "copy"), study="s1")
    with tdb.connect(str(tmp_path / "copy"), "s1") as copy:
        (copied,) = copy.find_parameter_docs()
        assert copied["_id"] == pid and copied[FIELD] == source[FIELD] and copied["metrics"] == {"test_acc": 0.5}
        assert take_claim(copy.scope, pid, "test", worker="b", lease_s=60, now=time.time()) is None  # still done


def test_a_scoring_tag_is_refused_so_it_cannot_break_the_claims(tmp_path):
    with tdb.connect(str(tmp_path / "wh"), study="s") as db:
        with pytest.raises(InvalidDocument, match="reserved"):
            db.save_parameters({"w": np.zeros(2)}, tags={"scoring": 1})
        assert len(list(db.find_parameter_docs({}))) == 0


def test_a_slow_evaluation_keeps_its_claim_by_renewing_it(db):
    """A model that takes longer than the lease to score is not taken over while its evaluator lives."""
    pid = save_plain(db, 1)[0]
    clock = Clock()
    slow = ScoringClaims(db.scope, "test", worker="slow", lease_s=10, clock=clock, renew_every_s=0.02)
    outcomes: list[Any] = []

    def evaluate(doc: dict[str, Any]) -> dict[str, float]:
        clock.now += 25  # far past the first lease (until = 10)
        wait_for(lambda: claim_of(db.find_parameter_docs()[0], "test")["until"] >= clock.now + 10)
        outcomes.append(take_claim(db.scope, pid, "test", worker="thief", lease_s=10, now=clock()))
        return {"test_acc": 0.5}

    assert slow.score(db.find_parameter_docs()[0], evaluate) == (SCORED, {"test_acc": 0.5})
    assert outcomes == [None]  # renewed: the other evaluator could not take it
    claim = claim_of(db.find_parameter_docs()[0], "test")
    assert claim["worker"] == "slow" and claim["state"] == "done"
