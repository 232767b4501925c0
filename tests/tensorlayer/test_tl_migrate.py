"""``tensordb migrate tensorlayer``: databases written exactly as TensorLayer wrote them, migrated and compared.

The source is built with PyMongo + GridFS the way ``tensorlayer/db.py`` did
(1.x: ``Params``/``paramsfs`` with pickle protocol 2, ``TrainLog``...,
``march``/``ModelArchitecture``, ``Job``, ``JOBS``; 2.x: ``Model``/``modelfs``,
``Dataset``/``datasetFilesystem``, ``Task``) on the MongoDB wire server.
"""

from __future__ import annotations

import os
import pickle
import uuid
from datetime import datetime

import gridfs
import numpy as np
import pymongo
import pytest

from tensordb_core.cli.main import main
from tensordb_core.errors import BackendUnavailable, InvalidURI
from tensordb_core.tensorlayer import TensorDB, TensorHub
from tensordb_core.tensorlayer.migrate import migrate_tensorlayer

pytestmark = pytest.mark.mongo

W = [np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros(3, dtype=np.float64)]
X, Y = np.random.default_rng(1).random((4, 3)), np.arange(4)
T0 = datetime(2019, 5, 1, 12, 0, 0, 123000)  # BSON keeps milliseconds


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def write_tensorlayer_1x(db, study: str = "mnistMLP") -> None:
    """What TensorLayer 1.7-1.9's TensorDB wrote for one short training run."""
    paramsfs, archfs = gridfs.GridFS(db, collection="paramsfs"), gridfs.GridFS(db, collection="ModelArchitecture")
    f_id = paramsfs.put(pickle.dumps(W, protocol=2))
    db.Params.insert_one({"acc": 0.9, "epoch": 3, "studyID": study, "f_id": f_id, "time": T0})
    f2 = paramsfs.put(pickle.dumps([w + 1 for w in W], protocol=2))
    db.Params.insert_one({"acc": 0.95, "epoch": 4, "studyID": study, "f_id": f2, "time": T0})
    for step in range(3):
        db.TrainLog.insert_one({"loss": 1.0 / (step + 1), "step": step, "time": T0, "studyID": study})
    db.ValidLog.insert_one({"acc": 0.9, "epoch": 3, "params": f_id, "studyID": study})
    db.TestLog.insert_one({"acc": 0.88, "studyID": study})
    fid = archfs.put(b"net = 'mlp'\n", filename="modelarchitecture")
    db.march.insert_one({"name": "mlp", "studyID": study, "fid": fid})
    job = {"job_id": 1, "learning_rate": 0.01, "studyID": study, "script": b"print('job')\n",
           "script_name": "job.py"}
    db.Job.replace_one(job, job, upsert=True)
    db.JOBS.insert_one({"weight": f_id, "model": fid, "dargs": {"type": "train"}, "epoch": 10, "time": T0,
                        "Running": False, "studyID": study})


def write_tensorlayer_2x(db, project: str = "proj") -> None:
    """What TensorLayer 2.x's TensorHub wrote: a model, a dataset, logs and tasks."""
    model_fs, dataset_fs = gridfs.GridFS(db, collection="modelfs"), gridfs.GridFS(db, collection="datasetFilesystem")
    params_id = model_fs.put(pickle.dumps(W, protocol=pickle.HIGHEST_PROTOCOL))
    db.Model.insert_one({"accuracy": 0.8, "name": "first", "model_name": "model", "project_name": project,
                         "architecture": {"name": "mlp"}, "time": T0, "params_id": params_id})
    dataset_id = dataset_fs.put(pickle.dumps([X, Y], protocol=2))
    db.Dataset.insert_one({"description": "tutorial", "project_name": project, "dataset_name": "mnist",
                           "dataset_id": dataset_id, "time": T0})
    db.TrainLog.insert_one({"accuracy": 0.33, "loss": 0.98, "project_name": project, "time": T0})
    for status, result in (("pending", {}), ("finished", {"acc": 0.7})):
        db.Task.insert_one({"task_name": "mnist", "project_name": project, "time": T0, "hyper_parameters": {"lr": 0.1},
                            "saved_result_keys": ["acc"], "status": status, "script": b"acc = lr\n",
                            "result": result})


@pytest.fixture
def source(mongo_server, raw_db, mongo_db_name) -> str:
    write_tensorlayer_1x(raw_db)
    write_tensorlayer_2x(raw_db)
    return f"mongodb://127.0.0.1:{mongo_server.port}/{mongo_db_name}?directConnection=true"


@pytest.fixture(params=["memory", "mongo"])
def dest(request, mongo_server):
    if request.param == "memory":
        yield f"memory://tl-dst-{uuid.uuid4().hex}"
        return
    name = f"dst_{uuid.uuid4().hex[:12]}"
    yield f"mongodb://127.0.0.1:{mongo_server.port}/{name}?directConnection=true&write_batch_size=100"
    with pymongo.MongoClient(f"mongodb://127.0.0.1:{mongo_server.port}/?directConnection=true") as client:
        client.drop_database(name)


def test_migrated_1x_database_reads_back_through_the_1x_api(source: str, dest: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # find_one_job writes _<script_name> here, as the original did
    report = migrate_tensorlayer(source, dest)
    assert report.refused == []
    assert report.migrated["Params"] == 2 and report.migrated["TrainLog"] == 4 and report.migrated["JOBS"] == 1
    with TensorDB(studyID="mnistMLP", uri=dest) as tl:
        params, f_id = tl.find_one_params({"acc": 0.9})
        assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(params, W))
        assert tl.find_one_params({"epoch": {"$gt": 3}})[0][0][0, 0] == 1
        assert tl.db.find_parameter_docs({"_id": f_id})[0]["time"] == "2019-05-01T12:00:00.123000"
        assert tl.load_model_architecture({"name": "mlp"})[0] == "net = 'mlp'\n"
        assert [r["step"] for r in tl.db.find_logs("train")] == [0, 1, 2]
        assert tl.db.find_logs("valid")[0]["metrics"]["acc"] == 0.9
        job = tl.find_one_job({"job_id": 1})
        assert job["learning_rate"] == 0.01 and job["script"] == b"print('job')\n"
        assert (tmp_path / "_job.py").read_bytes() == b"print('job')\n"
        _jid, code, weights, dargs, epoch = tl.peek_job()
        assert code == "net = 'mlp'\n" and dargs == {"type": "train"} and epoch == 10
        assert all(np.array_equal(a, b) for a, b in zip(weights, W))
        assert tl.db.best_parameters("acc")[1]["epoch"] == 4  # and the main API sees them


def test_migrated_2x_database_reads_back_through_the_2x_api(source: str, dest: str) -> None:
    migrate_tensorlayer(source, dest)
    with TensorHub(project_name="proj", uri=dest) as hub:
        net = hub.find_top_model(accuracy=0.8)
        assert net._name == "first" and net.config == {"name": "mlp"} and net._time == T0
        assert all(np.array_equal(a, b) for a, b in zip(net.all_weights, W))
        ds = hub.find_top_dataset("mnist")
        assert isinstance(ds, list) and np.array_equal(ds[0], X) and np.array_equal(ds[1], Y)
        assert hub.db.find_logs("train")[0]["metrics"] == {"accuracy": 0.33, "loss": 0.98}
        assert hub.check_unfinished_task("mnist") is True
        assert hub.db.find_jobs({"status": "done"})[0]["result"] == {"acc": 0.7}
        assert hub.run_top_task("mnist", trusted=True) is True
        assert hub.check_unfinished_task("mnist") is False


def test_rerun_is_idempotent_and_an_interrupted_run_resumes(source: str) -> None:
    dest = f"memory://tl-resume-{uuid.uuid4().hex}"

    class Stop(Exception):
        pass

    def stop_after_7(name: str, done: int, total: int) -> None:
        if done == 7:
            raise Stop

    with pytest.raises(Stop):
        migrate_tensorlayer(source, dest, progress=stop_after_7)
    resumed = migrate_tensorlayer(source, dest)
    assert sum(resumed.skipped.values()) == 7 and resumed.refused == []
    again = migrate_tensorlayer(source, dest)
    assert sum(again.migrated.values()) == 0 and sum(again.skipped.values()) == 15  # every source document
    with TensorDB(studyID="mnistMLP", uri=dest) as tl:
        assert len(tl.find_all_params()) == 2 and len(tl.db.find_logs("train")) == 3


def test_a_pickle_that_is_not_arrays_is_refused_by_name(raw_db, source: str) -> None:
    bad = gridfs.GridFS(raw_db, collection="paramsfs").put(pickle.dumps(Evil(), protocol=2))
    doc_id = raw_db.Params.insert_one({"acc": 0.1, "studyID": "mnistMLP", "f_id": bad}).inserted_id
    dest = f"memory://tl-evil-{uuid.uuid4().hex}"
    report = migrate_tensorlayer(source, dest)
    assert [where for where, _ in report.refused] == [f"Params/{doc_id}"]
    assert "posix.system" in report.refused[0][1] or "os.system" in report.refused[0][1]
    assert report.migrated["Params"] == 2
    assert f"refused Params/{doc_id}" in report.summary()


def test_one_study_only(source: str) -> None:
    dest = f"memory://tl-one-{uuid.uuid4().hex}"
    report = migrate_tensorlayer(source, dest, study="proj")
    assert report.studies == {"proj"} and "Params" not in report.migrated and report.migrated["Model"] == 1


def test_the_cli_migrates_and_reports(source: str, tmp_path, capsys) -> None:
    dest = str(tmp_path / "wh")
    assert main(["migrate", "tensorlayer", source, "--to", dest, "-q"]) == 0
    out = capsys.readouterr().out
    assert "Params: 2 migrated, 0 skipped" in out and "refused: 0" in out
    assert main(["migrate", "tensorlayer", source, "--to", dest, "-q"]) == 0
    assert "Params: 0 migrated, 2 skipped" in capsys.readouterr().out
    assert main(["find", "--uri", dest, "--study", "mnistMLP", "--collection", "params", '{"acc": 0.9}']) == 0
    assert "0.9" in capsys.readouterr().out


def test_bad_sources_are_typed_errors(mongo_server) -> None:
    with pytest.raises(InvalidURI):
        migrate_tensorlayer("./not-mongo", "memory://x")
    with pytest.raises(InvalidURI):
        migrate_tensorlayer(f"mongodb://127.0.0.1:{mongo_server.port}/?directConnection=true", "memory://x")
    with pytest.raises(BackendUnavailable) as err:
        migrate_tensorlayer("mongodb://u:s3cret@127.0.0.1:1/db?serverSelectionTimeoutMS=300", "memory://x")
    assert "s3cret" not in str(err.value)
