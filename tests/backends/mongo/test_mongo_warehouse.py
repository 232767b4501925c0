"""The public warehouse API end to end on MongoDB: collections for the index, GridFS for the blobs.

The core's own tests cover the API on the embedded stores; this checks the
same calls over the wire, including the seed's ``TensorDB(ip, port, db_name,
user_name, password, studyID)`` constructor against an authenticating server.
"""

from __future__ import annotations

import numpy as np
import pytest

import tensordb_core as tdb
from conftest import AUTH_PASSWORD, AUTH_USER, TEST_WRITE_BATCH
from tensordb_core.store.retrying import unwrap
from tensordb_mongo import GridFSBlobStore, MongoIndexStore

pytestmark = pytest.mark.mongo


def test_warehouse_round_trip_on_mongo_and_gridfs(mongo_uri, raw_db):
    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 255, size=(40, 4, 4), dtype=np.uint8), rng.integers(0, 10, size=40)
    with tdb.connect(mongo_uri, study="mnist") as db:
        assert isinstance(unwrap(db.index), MongoIndexStore) and isinstance(unwrap(db.blobs), GridFSBlobStore)
        db.import_data(X[:30], y[:30], tags={"split": "train"})
        db.import_data(X[30:], y[30:], tags={"split": "test"})
        Xs, ys = db.find_data({"split": "train"}).arrays()
        np.testing.assert_array_equal(Xs, X[:30])
        np.testing.assert_array_equal(ys, y[:30])
        seen = sum(len(xb) for xb, _ in db.data_generator({"split": "test"}, batch_size=4, shuffle=False, epochs=1))
        assert seen == 10
        pid = db.save_parameters([np.ones(3)], metrics={"acc": 0.5})
        db.save_parameters([np.zeros(3)], metrics={"acc": 0.9})
        _, best = db.best_parameters("acc")
        assert best["metrics"]["acc"] == 0.9 and best["_id"] != pid
        jid = db.push_job({"epochs": 1})
        job = db.pop_job(worker="w")
        assert job.id == jid and db.pop_job() is None
        job.complete({"ok": True})
    assert raw_db["blobs.files"].count_documents({}) >= 3  # data chunks and parameter archives are GridFS files
    assert "data" in raw_db.list_collection_names()


def test_seed_constructor_on_an_authenticating_server(mongo_auth_server):
    # mongoeco needs authSource/authMechanism (see conftest); they travel as MongoClient keyword options.
    mongoeco_auth = {"authSource": "admin", "authMechanism": "SCRAM-SHA-256", "write_batch_size": TEST_WRITE_BATCH}
    db = tdb.TensorDB(ip="127.0.0.1", port=mongo_auth_server.port, db_name="seed_lab", user_name=AUTH_USER,
                      password=AUTH_PASSWORD, studyID="ministMLP", index_options=mongoeco_auth,
                      blob_options=mongoeco_auth)
    try:
        assert AUTH_PASSWORD not in repr(db)
        db.import_data(np.arange(12, dtype=np.float32).reshape(3, 4), np.array([0, 1, 2]))
        Xs, ys = db.find_data().arrays()
        assert Xs.shape == (3, 4) and list(ys) == [0, 1, 2]
    finally:
        db.close()


def test_racing_evaluators_claim_each_parameter_set_once_on_mongo(mongo_uri):
    import threading

    from tensordb_core.loop.scoring import CLAIMED_ELSEWHERE, SCORED, ScoringClaims, claim_of

    with tdb.connect(mongo_uri, study="s") as db:
        ids = [db.save_parameters([np.full(2, i)]) for i in range(12)]
        evaluated: list[str] = []
        outcomes: list[str] = []
        contested = threading.Event()
        start = threading.Barrier(3)

        def evaluate(doc: dict) -> dict:
            evaluated.append(doc["_id"])
            if doc["_id"] == ids[0]:
                contested.wait(30)  # hold the first claim until another evaluator has met it
            return {"test_acc": 0.5}

        def claimer(k: int) -> None:
            with tdb.connect(mongo_uri, study="s") as mine:
                claims = ScoringClaims(mine.scope, "test", worker=f"w{k}")
                start.wait(30)
                for pid in ids:
                    outcome, _ = claims.score(mine.find_parameter_docs({"_id": pid})[0], evaluate)
                    outcomes.append(outcome)
                    if outcome == CLAIMED_ELSEWHERE:
                        contested.set()

        threads = [threading.Thread(target=claimer, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(evaluated) == sorted(ids) and outcomes.count(SCORED) == len(ids)
        assert contested.is_set()
        for doc in db.find_parameter_docs():
            assert claim_of(doc, "test")["state"] == "done" and doc["metrics"] == {"test_acc": 0.5}


def test_stream_groups_agree_and_wait_for_the_commit_grace_on_mongo(mongo_uri):
    """MongoDB commits _seq ranges out of order: a group's recorded bound settles for tail_grace_s first."""
    import time

    uri = f"{mongo_uri}&tail_grace_s=1"
    with tdb.connect(uri, study="s") as db:
        X = np.arange(120 * 4, dtype=np.float32).reshape(120, 4)
        db.import_data(X, np.arange(120), chunk_bytes=256)
        began = time.monotonic()
        with db.data_generator(batch_size=16, seed=1, shard=(0, 2), group="job-7") as stream:
            rank0 = [int(v) for _, y in stream for v in y]
        assert time.monotonic() - began >= 1  # the proposer waited for its bound to settle
        db.import_data(X[:30] + 1000, np.arange(120, 150), chunk_bytes=256)
    with tdb.connect(uri, study="s") as db:
        with db.data_generator(batch_size=16, seed=1, shard=(1, 2), group="job-7") as stream:
            rank1 = [int(v) for _, y in stream for v in y]
    assert sorted(rank0 + rank1) == list(range(120))
