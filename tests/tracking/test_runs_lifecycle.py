"""Runs: MLflow's verbs on every backend — params, tags, metrics with latest/min/max, status, search."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.errors import DocumentNotFound, InvalidDocument, InvalidQuery, TensorDBError
from tensordb_core.warehouse.runs import RunNotActive


def test_a_run_records_params_tags_metrics_and_ends_finished(tdb_handle: tdb.TensorDB) -> None:
    db = tdb_handle
    with db.start_run("baseline", params={"lr": 0.05, "layers": [64, 32]}, tags={"team": "vision"}) as run:
        assert run.status == "running"
        run.log_params({"batch_size": 32})
        run.set_tags({"stage": "dev"})
        for step, loss in enumerate([0.9, 0.4, 0.6]):
            run.log_metrics({"loss": loss}, step=step)
        db.valid_log({"acc": 0.8}, step=3)
        db.valid_log({"acc": 0.7}, step=4)
    doc = db.get_run(run.id)
    assert doc["status"] == run.status == "finished"
    assert doc["params"] == {"lr": 0.05, "layers": [64, 32], "batch_size": 32}
    assert doc["tags"] == {"team": "vision", "stage": "dev"}
    assert doc["metrics"] == {"loss": 0.6, "valid_acc": 0.7}
    assert doc["metrics_min"] == {"loss": 0.4, "valid_acc": 0.7}
    assert doc["metrics_max"] == {"loss": 0.9, "valid_acc": 0.8}
    assert doc["metrics_step"]["loss"] == 2
    logs = db.find_logs("train", {"run": run.id})
    assert [d["metrics"]["loss"] for d in logs] == [0.9, 0.4, 0.6], "run metrics are ordinary log records"
    assert {d["run"] for d in db.find_logs("valid")} == {run.id}


def test_a_block_that_raises_leaves_a_failed_run_with_the_error(tdb_handle: tdb.TensorDB) -> None:
    with pytest.raises(ZeroDivisionError), tdb_handle.start_run("boom") as run:
        run.log_metrics({"loss": 1.0})
        _ = 1 / 0
    doc = tdb_handle.get_run(run.id)
    assert doc["status"] == "failed" and "ZeroDivisionError" in doc["error"]
    assert doc["metrics"] == {"loss": 1.0}, "metrics logged before the failure are kept"
    assert tdb_handle.active_run() is None


def test_end_run_and_lineage_of_saves_jobs_and_aliases(tdb_handle: tdb.TensorDB) -> None:
    db = tdb_handle
    outer_run = db.lineage["run"]
    run = db.start_run(params={"lr": 0.1})
    assert db.active_run() is run and db.lineage["run"] == run.id
    pid = db.save_parameters({"w": np.ones(3)}, metrics={"acc": 0.5})
    job = db.push_job({"epochs": 1})
    db.set_alias("candidate", pid)
    db.end_run("killed")
    assert db.get_run(run.id)["status"] == "killed"
    assert db.lineage["run"] == outer_run, "the handle's own run id comes back"
    assert db.find_parameter_docs({"_id": pid})[0]["lineage"]["run"] == run.id
    assert db.find_jobs({"_id": job})[0]["run"] == run.id
    assert db.alias_history("candidate")[0]["run"] == run.id
    assert db.find_jobs({"run": None}) == []


def test_search_runs_by_params_status_and_metrics(tdb_handle: tdb.TensorDB) -> None:
    db = tdb_handle
    for lr, acc in [(0.01, 0.7), (0.05, 0.9), (0.5, 0.95), (0.02, 0.8)]:
        with db.start_run(f"lr={lr}", params={"lr": lr}, tags={"sweep": "a"}) as run:
            run.log_metrics({"valid_acc": acc - 0.1}, step=0)
            run.log_metrics({"valid_acc": acc}, step=1)
    with pytest.raises(RuntimeError), db.start_run("crashed", params={"lr": 0.03}):
        raise RuntimeError("x")
    found = db.search_runs({"params.lr": {"$lt": 0.1}, "status": "finished"}, sort=[("metrics.valid_acc", -1)])
    assert [d["params"]["lr"] for d in found] == [0.05, 0.02, 0.01]
    assert [d["name"] for d in db.search_runs({"metrics_max.valid_acc": {"$gte": 0.9}},
                                              sort=[("params.lr", 1)])] == ["lr=0.05", "lr=0.5"]
    assert [d["name"] for d in db.search_runs({"status": "failed"})] == ["crashed"]
    assert len(db.search_runs(limit=2)) == 2
    assert db.search_runs()[0]["name"] == "crashed", "newest first by default"
    with pytest.raises(InvalidQuery):
        db.search_runs({"params.lr": {"$where": "1"}})


def test_bad_input_is_refused_and_nothing_is_written(tdb_handle: tdb.TensorDB) -> None:
    db = tdb_handle
    with pytest.raises(InvalidDocument):
        db.start_run(params={"fn": print})
    with pytest.raises(InvalidDocument):
        db.start_run(params={"a.b": 1})
    assert db.search_runs() == []
    with db.start_run() as run:
        before = db.get_run(run.id)
        for bad in ({"loss": math.nan}, {"loss": math.inf}, {"loss": "low"}, {"loss": True}, {}):
            with pytest.raises(InvalidDocument):
                run.log_metrics(bad)
        with pytest.raises(InvalidDocument):
            run.log_params({"opt": object()})
        with pytest.raises(InvalidDocument):
            run.set_tags({"$bad": 1})
        run.flush()
        assert db.get_run(run.id) == before
        with pytest.raises(TensorDBError):
            db.start_run("nested")
    db.flush()
    assert db.find_logs() == []
    for write in (lambda: run.log_metrics({"loss": 1.0}), lambda: run.log_params({"a": 1}),
                  lambda: run.set_tags({"a": 1}), lambda: run.log_text("x", "a.txt")):
        with pytest.raises(RunNotActive):
            write()
    assert db.get_run(run.id)["params"] == {} and db.list_artifacts(run.id) == []
    with pytest.raises(DocumentNotFound):
        db.get_run("nope")


def test_runs_are_per_study(tracking_uri: str) -> None:
    with tdb.connect(tracking_uri, study="a") as a, tdb.connect(tracking_uri, study="b") as b:
        with a.start_run("mine", params={"lr": 1}) as run:
            pass
        assert b.search_runs() == [] and b.search_runs({"_study": "a"}) == []
        with pytest.raises(DocumentNotFound):
            b.get_run(run.id)
        assert [d["name"] for d in a.all_studies().search_runs()] == ["mine"]
