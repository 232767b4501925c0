"""TensorLayer 1.x's ``TensorDB`` as its users called it, on the embedded store and on MongoDB.

Each probe is a call as written against ``tensorlayer/db.py`` (1.7-1.9):
argument names, return shapes and "not found" values are the original's,
and what it writes is visible through the main API.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.errors import InvalidDocument, TensorDBError
from tensordb_core.tensorlayer import DBLogger, TensorDB

W = [np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros(3, dtype=np.float32)]


@pytest.fixture
def tl(tl_uri: str):
    with TensorDB(studyID="mnistMLP", uri=tl_uri) as db:
        yield db


def test_params_round_trip_with_top_level_queries(tl: TensorDB) -> None:
    args = {"acc": 0.9, "epoch": 3}
    f_id = tl.save_params(W, args)
    assert args["f_id"] == f_id and args["studyID"] == "mnistMLP" and isinstance(args["time"], datetime)
    tl.save_params([w + 1 for w in W], {"acc": 0.95, "epoch": 4})
    params, found = tl.find_one_params({"acc": 0.9})
    assert found == f_id and all(np.array_equal(a, b) for a, b in zip(params, W))
    assert tl.find_one_params(args={"acc": {"$gt": 0.92}})[0][1][0] == 1
    assert tl.find_one_params({"epoch": 3}, sort=[("acc", -1)])[1] == f_id
    assert tl.find_one_params({"acc": 0.1}) == (False, False)
    assert len(tl.find_all_params()) == 2 and tl.find_all_params({"epoch": 9}) == []
    # the main API sees the same parameter set, its numbers as metrics
    _, doc = tl.db.best_parameters("acc")
    assert doc["epoch"] == 4 and doc["metrics"]["acc"] == 0.95
    tl.del_params({"epoch": 3})
    assert tl.find_one_params({"epoch": 3}) == (False, False) and len(tl.find_all_params()) == 1
    tl.del_params()
    assert tl.find_all_params() == []


def test_logs_take_args_datetimes_and_delete_by_field(tl: TensorDB) -> None:
    tl.train_log({"loss": 1.0, "epoch": 1, "time": datetime(2024, 1, 1, 12)})
    tl.train_log(args={"loss": 0.5, "epoch": 2})
    tl.valid_log({"acc": 0.7, "epoch": 2})
    tl.test_log({"acc": 0.6})
    tl.log({"loss": 0.25, "epoch": 3})
    train = tl.db.find_logs("train")
    assert [r["metrics"]["loss"] for r in train] == [1.0, 0.5, 0.25]
    assert train[0]["time"] == "2024-01-01T12:00:00.000000"  # the documented stored form
    assert len(tl.db.find_logs("train", {"time": {"$lt": datetime(2025, 1, 1)}})) == 1
    tl.del_train_log({"epoch": 2})
    assert [r["epoch"] for r in tl.db.find_logs("train")] == [1, 3]
    tl.del_valid_log()
    tl.del_test_log({"acc": 0.6})
    assert tl.db.find_logs("valid") == [] and tl.db.find_logs("test") == []


def test_architectures_and_the_1x_job_queue(tl: TensorDB) -> None:
    aid = tl.save_model_architecture(b"net = 'mlp'", {"name": "mlp"})
    code, fid = tl.load_model_architecture({"name": "mlp"})
    assert (code, fid) == ("net = 'mlp'", aid)
    assert tl.load_model_architecture({"name": "cnn"}) == (False, False)
    f_id = tl.save_params(W, {"acc": 0.5})
    jid = tl.push_job({"name": "mlp"}, {"acc": 0.5}, {"type": "train"}, 10)
    peeked = tl.peek_job()
    assert peeked[0] == jid and peeked[1] == "net = 'mlp'" and peeked[3:] == ({"type": "train"}, 10)
    assert all(np.array_equal(a, b) for a, b in zip(peeked[2], W))
    assert tl.db.find_jobs({"_id": jid})[0]["spec"]["weight"] == f_id
    tl.run_job(jid)
    assert tl.peek_job() is False
    tl.del_job(jid)
    job = tl.db.find_jobs({"_id": jid})[0]
    assert job["Running"] is True and job["status"] == "done" and "Finished" in job


def test_saved_jobs_keep_their_script(tl: TensorDB, tmp_path, monkeypatch) -> None:
    script = tmp_path / "train_mnist.py"
    script.write_text("LEARNING = 0.01\n")
    monkeypatch.chdir(tmp_path)
    tl.save_job(str(script), {"job_id": 1, "learning_rate": 0.01})
    tl.save_job(str(script), {"job_id": 1, "learning_rate": 0.01})  # the original upserted: still one
    tl.save_job(None, {"job_id": 2})
    found = tl.find_one_job({"job_id": 1})
    assert found["learning_rate"] == 0.01 and found["script"] == b"LEARNING = 0.01\n"
    assert found["studyID"] == "mnistMLP"
    assert (tmp_path / "_train_mnist.py").read_bytes() == b"LEARNING = 0.01\n"
    assert tl.find_one_job({"job_id": 1, "learning_rate": 0.5}) is False
    assert tl.db.index.count("models", tl.scope.query({"job_id": 1})) == 1


def test_attributes_and_default_study(tl_uri: str) -> None:
    with TensorDB(uri=tl_uri) as db:
        assert len(db.studyID) == 36 and db.db.study == db.studyID  # a fresh uuid, like the original
        f_id = db.save_params(W, {"acc": 1.0})
        assert np.array_equal(__import__("pickle").loads(db.paramsfs.get(f_id).read())[0], W[0])
        assert "[TensorDB]" in str(db)
    with tdb.connect(tl_uri, study="other") as other:
        assert other.find_parameter_docs() == []  # studies stay apart


def test_dblogger_is_a_keras_callback(tl: TensorDB) -> None:
    class Model:
        Params = W

    logger = DBLogger(tl, Model())
    logger.set_params({"epochs": 1})
    logger.on_train_begin()
    logger.on_epoch_begin(0)
    for batch in range(3):
        logger.on_train_batch_begin(batch)
        logger.on_train_batch_end(batch, {"acc": np.float32(0.5), "loss": np.array(1.5)})
    logger.on_test_begin()  # a hook the original lacked: accepted
    logger.on_epoch_end(0, {"acc": np.float64(0.75)})
    logger.on_train_end()
    train = tl.db.find_logs("train")
    assert [r["batch"] for r in train] == [0, 1, 2] and isinstance(train[0]["time"], str)
    valid = tl.db.find_logs("valid")
    assert valid[0]["metrics"]["acc"] == 0.75
    assert tl.find_one_params({"epoch": 0})[1] == valid[0]["params"]


def test_bad_input_is_a_typed_error(tl: TensorDB) -> None:
    with pytest.raises(InvalidDocument):
        tl.save_params(W, {"metrics": 1})  # a field the warehouse reserves
    with pytest.raises(InvalidDocument):
        tl.save_params(object(), {})
    with pytest.raises(InvalidDocument):
        tl.find_one_params("acc")
    with pytest.raises(InvalidDocument):
        tl.save_model_architecture(b"\xff\xfe", {})
    with pytest.raises(TensorDBError):
        tl.run_job("no-such-job")


@pytest.mark.mongo
def test_without_uri_it_connects_to_mongodb_like_the_original(mongo_server, mongo_db_name, raw_db) -> None:
    with TensorDB(ip="127.0.0.1", port=mongo_server.port, db_name=mongo_db_name, user_name=None,
                  studyID="mnistMLP") as db:
        f_id = db.save_params(W, {"acc": 0.9})
        assert db.find_one_params({"acc": 0.9})[1] == f_id
    assert raw_db["params"].count_documents({"_study": "mnistMLP", "acc": 0.9}) == 1
