"""A trainer job runs inside its own run: params from the job's hyper, logs and parameter sets point at it."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np

import tensordb_core as tdb
from tensordb_core.loop.builders import register_builder
from tensordb_core.loop.numpy_mlp import NumpyMLP, build
from tensordb_core.loop.worker import WorkerOptions, run_worker

ARCH = {"builder": "numpy-mlp", "inputs": 4, "outputs": 3}


def _seed(db: tdb.TensorDB, arch: dict[str, Any]) -> str:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 48)
    X = (rng.normal(size=(48, 4)) * 0.3 + np.eye(3, 4)[y] * 3).astype(np.float32)
    db.import_data(X, y, tags={"split": "train"})
    db.save_model_architecture(json.dumps(arch), tags={"name": "net"})
    return db.push_job({"arch": {"name": "net"}, "data": {"split": "train"}, "valid": {"split": "train"},
                        "batch_size": 16, "epochs": 2, "hyper": {"hidden": [8], "lr": 0.1, "seed": 1}},
                       tags={"type": "train"})


def test_a_trainer_job_is_a_finished_run(tdb_handle: tdb.TensorDB) -> None:
    db = tdb_handle
    jid = _seed(db, ARCH)
    assert run_worker(db, "trainer", WorkerOptions(poll_s=0.02, heartbeat_s=0.2, until_idle=True)) == 1
    [run] = db.search_runs({"tags.job": jid})
    assert run["status"] == "finished" and run["job"] == jid
    assert run["params"] == {"hidden": [8], "lr": 0.1, "seed": 1}
    assert {"loss", "valid_acc"} <= set(run["metrics"])
    assert {d["lineage"]["run"] for d in db.find_parameter_docs({"job": jid})} == {run["_id"]}
    assert {d["run"] for d in db.find_logs("train")} == {run["_id"]}
    assert db.active_run() is None


def test_a_stopped_trainer_leaves_a_killed_run(tdb_handle: tdb.TensorDB) -> None:
    db = tdb_handle
    stop = threading.Event()

    def stopping_mlp(config: Any, hyper: Any) -> NumpyMLP:
        model = build(config, hyper)
        fit = model.fit_batch

        def fit_batch(X: np.ndarray, y: np.ndarray) -> dict[str, float]:
            stop.set()
            return fit(X, y)

        model.fit_batch = fit_batch
        return model

    register_builder("stopping-mlp-tracking", stopping_mlp)
    jid = _seed(db, {**ARCH, "builder": "stopping-mlp-tracking"})
    run_worker(db, "trainer", WorkerOptions(poll_s=0.02, heartbeat_s=0.2), stop=stop)
    [run] = db.search_runs({"tags.job": jid})
    assert run["status"] == "killed" and "Interrupted" in run["error"]
    assert db.find_jobs({"_id": jid})[0]["status"] == "queued"
