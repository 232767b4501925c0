"""``tensordb status``: counts, queue depths, live workers with heartbeats, the best and the deployed model."""

from __future__ import annotations

import json
import threading
import time

import numpy as np

import tensordb_core as tdb
from tensordb_core.cli.main import main
from tensordb_core.cli.status import format_status, study_status
from tensordb_core.loop.deployer import Deployer
from tensordb_core.loop.worker import WORKERS, WorkerOptions, run_worker


def test_status_of_a_study(tmp_path, capsys):
    uri = str(tmp_path / "wh")
    with tdb.connect(uri, "st") as db:
        db.import_data(np.zeros((5, 4), np.float32), np.arange(5), tags={"split": "train"})
        arch = db.save_model_architecture(json.dumps({"builder": "numpy-mlp", "inputs": 4, "outputs": 3}))
        low = db.save_parameters({"w0": np.zeros((4, 3), np.float32), "b0": np.zeros(3, np.float32)},
                                 metrics={"test_acc": 0.4}, tags={"arch": arch, "hyper": {"hidden": []}}, step=3)
        high = db.save_parameters({"w0": np.ones((4, 3), np.float32), "b0": np.zeros(3, np.float32)},
                                  metrics={"test_acc": 0.7}, tags={"arch": arch, "hyper": {"hidden": []}}, step=9)
        Deployer(db).deploy(db.find_parameter_docs({"_id": low})[0])
        for _ in range(3):
            db.push_job({"epochs": 1}, tags={"type": "x"})
        db.pop_job(worker="w")
        db.use_study("other").import_data(np.zeros((7, 2)))  # another study: not counted
        # A worker that died without saying so: its heartbeat went stale.
        db.index.insert_many(WORKERS, [db.scope.new_doc(name="ghost", role="trainer", state="running",
                                                        heartbeat=time.time() - 600, heartbeat_s=5.0)])
        stop = threading.Event()
        # heartbeat_s=1: "alive" means a beat within 3 intervals, and a loaded CI host let 0.3 s pass between
        # the status read and the CLI's (0 alive, 2 silent); the ghost, 600 s stale, stays silent either way
        opts = WorkerOptions(poll_s=0.02, heartbeat_s=1.0, name="eval-1", test_query={"split": "nothing"})
        worker = threading.Thread(target=run_worker, args=(db, "evaluator", opts), kwargs={"stop": stop})
        worker.start()
        try:
            for _ in range(2000):
                if any(w["name"] == "eval-1" for w in study_status(db)["workers"]):
                    break
                stop.wait(0.02)
            status = study_status(db)
            assert main(["status", "--uri", uri, "--study", "st"]) == 0
            text = capsys.readouterr().out
        finally:
            stop.set()
            worker.join()
        assert status["counts"]["data"] == 5 and status["counts"]["params"] == 2 and status["counts"]["jobs"] == 3
        assert status["jobs"] == {"queued": 2, "running": 1, "done": 0, "dead": 0}
        workers = {w["name"]: w for w in status["workers"]}
        assert workers["eval-1"]["alive"] and workers["eval-1"]["role"] == "evaluator"
        assert not workers["ghost"]["alive"] and workers["ghost"]["age_s"] >= 600
        assert status["best"]["id"] == high and status["best"]["metrics"]["test_acc"] == 0.7
        assert status["deployed"]["id"] == low
        assert "1 alive, 1 silent" in text and "SILENT" in text and "eval-1" in text
        assert f"best:      {high}  test_acc 0.7000" in text and f"deployed:  {low}" in text
        assert "queued 2, running 1" in text
        # After a clean stop the worker is no longer listed as running.
        assert [w["name"] for w in study_status(db)["workers"]] == ["ghost"]
        assert "no parameter set has valid_f1" in format_status(study_status(db, metric="valid_f1"))
    assert main(["status", "--uri", uri, "--study", "st", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["best"]["id"] == high
