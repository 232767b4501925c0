"""The worker loop in one process: architecture resolution, clean stops, continuous jobs, the evaluator's follow
mode, and ``until_idle`` (how the demo and ``tensordb worker --until-idle`` drain their work and return)."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import pytest

import tensordb_core as tdb
from polling import wait_for
from tensordb_core.cli.main import main
from tensordb_core.errors import InvalidDocument, InvalidQuery, NotFound, UnsafeOperation
from tensordb_core.loop.builders import build_model, register_builder
from tensordb_core.loop.numpy_mlp import NumpyMLP, build
from tensordb_core.loop.roles import BuildPolicy
from tensordb_core.loop.worker import WorkerOptions, find_workers, run_worker

ARCH = {"builder": "numpy-mlp", "inputs": 4, "outputs": 3}


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated Gaussian classes in 4 dimensions."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = (rng.normal(size=(n, 4)) * 0.3 + np.eye(3, 4)[y] * 3).astype(np.float32)
    return X, y


def seed_study(db: tdb.TensorDB, arch: dict[str, Any] | None = None, **spec: Any) -> str:
    X, y = blobs(64, 0)
    db.import_data(X, y, tags={"split": "train"})
    db.import_data(*blobs(30, 1), tags={"split": "test"})
    db.save_model_architecture(json.dumps(arch or ARCH), tags={"name": "net"})
    return db.push_job({"arch": {"name": "net"}, "data": {"split": "train"}, "batch_size": 16, "epochs": 2,
                        "hyper": {"hidden": [8], "lr": 0.1, "seed": 1}, **spec}, tags={"type": "train"})


def quiet(**kwargs: Any) -> WorkerOptions:
    return WorkerOptions(poll_s=0.02, heartbeat_s=0.2, **kwargs)


# -- architectures are referenced, not executed ------------------------------------------------------------
def test_module_function_builders_need_an_explicit_allow():
    code = json.dumps({**ARCH, "builder": "tensordb_core.loop.numpy_mlp:build"})
    with pytest.raises(UnsafeOperation, match="allow_import"):
        build_model(code, {"hidden": [2]})
    assert isinstance(build_model(code, {"hidden": [2]}, allow_import=True), NumpyMLP)
    for bad, error in (("os:system;rm", InvalidDocument), ("tensordb_core.loop.numpy_mlp:np", InvalidDocument),
                       ("no_such_module_x:build", NotFound)):
        with pytest.raises(error):
            build_model(json.dumps({**ARCH, "builder": bad}), allow_import=True)


def test_stored_code_runs_only_when_trusted():
    code = "def build(hyper):\n    return ('built', hyper['k'])\n"
    with pytest.raises(InvalidDocument, match="trusted"):
        build_model(code, {"k": 1})
    with pytest.raises(InvalidDocument, match="trusted"):
        build_model(code, {"k": 1}, allow_import=True)
    assert build_model(code, {"k": 1}, trusted=True) == ("built", 1)
    with pytest.raises(InvalidDocument, match="build"):
        build_model("x = 1\n", trusted=True)


def test_a_trainer_refuses_an_import_builder_unless_allowed(db):
    seed_study(db, {**ARCH, "builder": "tensordb_core.loop.numpy_mlp:build"}, max_attempts=1)
    assert run_worker(db, "trainer", quiet(until_idle=True)) == 0
    job = db.find_jobs()[0]
    assert job["status"] == "dead" and "allow_import" in job["errors"][0]["error"]
    jid = db.push_job(job["spec"], tags={"type": "train"})
    assert run_worker(db, "trainer", quiet(until_idle=True, policy=BuildPolicy(allow_import=True))) == 1
    assert db.find_jobs({"_id": jid})[0]["status"] == "done"
    assert len(db.find_parameter_docs({"job": jid})) == 2


# -- clean stops ---------------------------------------------------------------------------------------------
def test_a_stopped_trainer_releases_its_job(db):
    stop = threading.Event()
    batches: list[int] = []

    def stopping_mlp(config: Any, hyper: Any) -> NumpyMLP:
        model = build(config, hyper)
        fit = model.fit_batch

        def fit_batch(X: np.ndarray, y: np.ndarray) -> dict[str, float]:
            batches.append(len(X))
            if len(batches) == 3:
                stop.set()  # as SIGTERM would, in the middle of the first epoch
            return fit(X, y)

        model.fit_batch = fit_batch
        return model

    register_builder("stopping-mlp-test", stopping_mlp)
    jid = seed_study(db, {**ARCH, "builder": "stopping-mlp-test"})
    assert run_worker(db, "trainer", quiet(name="t1"), stop=stop) == 0
    assert len(batches) == 3  # it stopped at the next batch boundary
    job = db.find_jobs({"_id": jid})[0]
    assert job["status"] == "queued" and job["attempts_left"] == job["max_attempts"] and job["errors"] == []
    assert db.find_parameter_docs() == []
    (record,) = find_workers(db, include_stopped=True)
    assert record["state"] == "stopped" and record["name"] == "t1" and not record["alive"]


def test_a_continuous_job_resumes_from_its_checkpoint_on_another_worker(db):
    jid = seed_study(db, continuous={"min_new": 5, "max_rounds": 2})
    stop = threading.Event()
    said: list[str] = []

    def progress(message: str) -> None:
        said.append(message)
        if "epoch 2" in message:
            stop.set()  # the first round is saved; the worker is asked to stop while waiting for data

    assert run_worker(db, "trainer", quiet(progress=progress), stop=stop) == 0
    job = db.find_jobs({"_id": jid})[0]
    assert job["status"] == "queued" and any("released" in m for m in said)
    first = db.find_parameter_docs({"job": jid}, sort=[("_seq", 1)])
    assert [p["round"] for p in first] == [0, 0]

    db.import_data(*blobs(10, 2), tags={"split": "train"})
    said.clear()
    assert run_worker(db, "trainer", quiet(until_idle=True, progress=said.append)) == 1
    assert any("resumes from " + first[-1]["_id"] in m for m in said)
    job = db.find_jobs({"_id": jid})[0]
    assert job["status"] == "done" and job["result"]["rounds"] == 2
    saved = db.find_parameter_docs({"job": jid}, sort=[("_seq", 1)])
    assert [p["round"] for p in saved] == [0, 0, 1, 1] and [p["epoch"] for p in saved] == [0, 1, 2, 3]
    steps = [p["step"] for p in saved]
    assert steps[2] - steps[1] == 5  # 74 samples / 16 per batch: the resumed run continues the step count
    assert saved[-1]["lineage"]["data"]["count"] == 74
    assert saved[2]["lineage"]["run"] != saved[1]["lineage"]["run"]


def test_a_continuous_job_waits_for_enough_new_data(db):
    jid = seed_study(db, continuous={"min_new": 20, "max_rounds": 2}, epochs=1)
    counting = CountingIndex(db.index)
    trainer_db = tdb.TensorDB.from_stores(counting, db.blobs, "s1", _owns=False)
    stop = threading.Event()

    def feed() -> None:
        wait_for(lambda: db.find_parameter_docs({"job": jid}) != [])  # round 0 is saved
        db.import_data(*blobs(19, 3), tags={"split": "train"})
        polls = len(counting.afters["data"])
        wait_for(lambda: len(counting.afters["data"]) >= polls + 3)  # it looked three times and kept waiting
        db.import_data(*blobs(1, 4), tags={"split": "train"})

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        assert run_worker(trainer_db, "trainer", quiet(until_idle=True), stop=stop) == 1
    finally:
        stop.set()
        feeder.join()
    saved = db.find_parameter_docs({"job": jid}, sort=[("_seq", 1)])
    assert [p["round"] for p in saved] == [0, 1]
    assert saved[1]["lineage"]["data"]["count"] == 84  # round 1 started only with all 20 new samples


# -- the evaluator follows new parameters -------------------------------------------------------------------
class CountingIndex:
    """An index store that records every ``tail(after=...)`` per collection (followers must never rescan)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.afters = inner, {"params": [], "data": []}

    def tail(self, collection: str, query: Any = None, *, after: int = 0, limit: int = 0):
        self.afters.setdefault(collection, []).append(after)
        return self.inner.tail(collection, query, after=after, limit=limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_the_evaluator_scores_each_new_parameter_set_once(warehouse_uri):
    with tdb.connect(warehouse_uri, "s1") as db:
        seed_study(db)
        run_worker(db, "trainer", quiet(until_idle=True))
        db.save_parameters({"w": np.zeros(2)}, metrics={"valid_acc": 0.1})  # names no architecture: skipped
        counting = CountingIndex(db.index)
        watcher = tdb.TensorDB.from_stores(counting, db.blobs, "s1", _owns=False)
        stop = threading.Event()
        said: list[str] = []
        evaluator = threading.Thread(target=run_worker, args=(watcher, "evaluator", quiet(progress=said.append)),
                                     kwargs={"stop": stop})
        evaluator.start()
        afters = counting.afters["params"]
        try:
            wait_for(lambda: len(db.find_parameter_docs({"metrics.test_acc": {"$exists": True}})) == 2)
            db.push_job(db.find_jobs()[0]["spec"], tags={"type": "train"})
            run_worker(db, "trainer", quiet(until_idle=True))
            wait_for(lambda: len(db.find_parameter_docs({"metrics.test_acc": {"$exists": True}})) == 4)
            polls = len(afters)
            wait_for(lambda: len(afters) >= polls + 3)  # a few idle polls
        finally:
            stop.set()
            evaluator.join()
        X, y = db.find_data({"split": "test"}).arrays()
        for doc in db.find_parameter_docs({"metrics.test_acc": {"$exists": True}}):
            model = build(ARCH, doc["hyper"])
            model.load_parameters(db.load_parameters(doc))
            assert doc["metrics"]["test_acc"] == model.evaluate(X, y)["acc"]
        assert sum("scored" in m for m in said) == 4
        assert afters == sorted(afters) and afters[0] == 0
        assert afters[-1] == db.index.last_seq("params")  # it follows from the last seq it saw, never from 0 again


def test_tensordb_worker_until_idle_is_the_demos_loop(tmp_path, capsys):
    """The CLI's trainer and evaluator drain their work and exit, as the demo runs them; a deployer refuses."""
    uri = str(tmp_path / "wh")
    with tdb.connect(uri, "s1") as db:
        jid = seed_study(db)
    common = ["--uri", uri, "--study", "s1", "--poll", "0.02", "--heartbeat", "0.2", "--until-idle"]
    assert main(["worker", "--role", "trainer", "--name", "t1", *common]) == 0
    assert main(["worker", "--role", "evaluator", "--name", "e1", *common]) == 0
    out = capsys.readouterr().out
    assert "[trainer] stopped cleanly (1 handled)" in out and "[evaluator] stopped cleanly (2 handled)" in out
    with tdb.connect(uri, "s1") as db:
        assert db.find_jobs({"_id": jid})[0]["status"] == "done"
        assert all("test_acc" in p["metrics"] for p in db.find_parameter_docs({"job": jid}))
        records = {r["name"]: r for r in find_workers(db, include_stopped=True)}
        assert {n: (r["role"], r["state"]) for n, r in records.items()} == {
            "t1": ("trainer", "stopped"), "e1": ("evaluator", "stopped")}
        assert records["t1"]["jobs_done"] == 1 and records["e1"]["scored"] == 2
        assert run_worker(db, "evaluator", quiet(until_idle=True)) == 0  # caught up: returns at once
        with pytest.raises(InvalidQuery, match="until_idle"):
            run_worker(db, "deployer", quiet(until_idle=True))


def test_an_evaluator_until_idle_without_held_out_data_returns(db):
    seed_study(db)
    assert run_worker(db, "trainer", quiet(until_idle=True)) == 1
    assert run_worker(db, "evaluator", quiet(until_idle=True, test_query={"split": "nothing"})) == 0
    assert all("test_acc" not in p["metrics"] for p in db.find_parameter_docs())


def test_sigterm_stops_a_worker_run_from_python(db):
    import os
    import signal

    jid = seed_study(db, continuous={"min_new": 1000})

    def terminate_once_waiting() -> None:
        wait_for(lambda: len(db.find_parameter_docs({"job": jid})) == 2)  # round 0 saved: waiting for data
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=terminate_once_waiting)
    sender.start()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert run_worker(db, "trainer", quiet()) == 0  # returns instead of dying: the handler set the stop event
    finally:
        sender.join()
    assert signal.getsignal(signal.SIGTERM) is previous  # the process's own handler is back
    job = db.find_jobs({"_id": jid})[0]
    assert job["status"] == "queued" and job["attempts_left"] == job["max_attempts"]
    assert find_workers(db, include_stopped=True)[0]["state"] == "stopped"
