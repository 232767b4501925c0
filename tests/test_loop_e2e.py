"""The continuous learning loop end to end: trainer, evaluator and deployer as three processes.

The study starts with training data of digits 0-4 only, so no model can
score much above 0.5 on the held-out test split of all ten digits.  Mid-run
the test imports digits 5-9; with no further step the continuous train job
trains on them, the evaluator scores the new parameters, and the deployer
swaps to the better model and serves it over HTTP.  Runs on the embedded
store (directory) and on MongoDB+GridFS (the mongoeco wire server).
Every wait is bounded; no assertion depends on timing.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tensordb_core as tdb
from serverkit import mongo_kit
from tensordb_core.cli.demo import load_digits_splits
from tensordb_core.loop.worker import find_workers

HERE = Path(__file__).resolve().parent
STUDY = "loop"
BOUND_S = 120.0  # an upper bound for each wait, far above what the loop needs


def _mongo_kit() -> Any:
    """The Mongo backend tests' launcher (tests/backends/mongo/conftest.py), reused rather than rewritten."""
    return mongo_kit()


@pytest.fixture(scope="module")
def mongo_server_uri() -> Iterator[str]:
    kit = _mongo_kit()
    server = kit.launch("mongoeco-loop")
    try:
        yield (f"mongodb://127.0.0.1:{server.port}/loop_{uuid.uuid4().hex[:12]}"
               f"?directConnection=true&write_batch_size={kit.TEST_WRITE_BATCH}")
    finally:
        server.stop()


@pytest.fixture(params=["embedded", pytest.param("mongo", marks=pytest.mark.mongo)])
def loop_uri(request, tmp_path) -> str:
    if request.param == "embedded":
        return str(tmp_path / "warehouse")
    return request.getfixturevalue("mongo_server_uri")


def wait_for(what: str, check: Callable[[], Any], procs: dict[str, subprocess.Popen], logs: Path) -> Any:
    """Poll ``check`` until it returns something truthy; fail (with the workers' output) after BOUND_S."""
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        for role, proc in procs.items():
            if proc.poll() is not None:
                pytest.fail(f"the {role} exited ({proc.returncode}) while waiting for {what}:\n{_output(logs)}")
        time.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}:\n{_output(logs)}")


def _output(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))


def http_json(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.load(reply)


def seed_study(uri: str) -> dict[str, Any]:
    splits = load_digits_splits()
    (Xtr, ytr), (Xte, yte) = splits["train"], splits["test"]
    early = ytr < 5
    with tdb.connect(uri, STUDY) as db:
        db.import_data(Xtr[early], ytr[early], tags={"split": "train"})
        db.import_data(Xte, yte, tags={"split": "test"})
        db.save_model_architecture(json.dumps({"builder": "numpy-mlp", "inputs": 64, "outputs": 10}),
                                   tags={"name": "mlp"})
        job = db.push_job({"arch": {"name": "mlp"}, "data": {"split": "train"}, "epochs": 3, "batch_size": 32,
                           "hyper": {"hidden": [32], "lr": 0.05, "seed": 1}, "continuous": {"min_new": 50}},
                          tags={"type": "train"})
    return {"job": job, "late": (Xtr[~early], ytr[~early]), "test": (Xte, yte)}


def start_worker(uri: str, role: str, logs: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "tensordb_core.cli", "worker", "--uri", uri, "--study", STUDY, "--role", role,
            "--poll", "0.1", "--heartbeat", "0.5", *extra]
    out = open(logs / f"{role}.log", "w")  # noqa: SIM115 - the child owns it until it exits
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


def test_new_data_reaches_the_served_model_without_a_manual_step(loop_uri, tmp_path):
    seeded = seed_study(loop_uri)
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = {role: start_worker(loop_uri, role, logs, *extra) for role, extra in (
        ("trainer", ()), ("evaluator", ("--test-query", '{"split": "test"}')),
        ("deployer", ("--metric", "test_acc", "--min-improvement", "0.01", "--http-port", "0")))}
    db = tdb.connect(loop_uri, STUDY)
    try:
        def deployer_url() -> str | None:
            for w in find_workers(db):
                if w["role"] == "deployer" and (w.get("info") or {}).get("http"):
                    return w["info"]["http"]
            return None

        url = wait_for("the deployer's HTTP endpoint", deployer_url, procs, logs)
        # Round 0 (3 epochs on digits 0-4) ends; the job then waits for new data.
        wait_for("the first round", lambda: len(db.find_parameter_docs({"job": seeded["job"], "round": 0})) == 3,
                 procs, logs)
        first = wait_for("a first deployed model", lambda: (m := http_json(f"{url}/model"))["model"] and m,
                         procs, logs)
        assert first["metric"] == "test_acc" and first["value"] <= 0.6  # half the digits unseen: ~0.5 at best

        Xlate, ylate = seeded["late"]
        db.import_data(Xlate, ylate, tags={"split": "train"})
        imported_seq = db.index.last_seq("data")

        better = wait_for("a better model to be served", lambda: (m := http_json(f"{url}/model"))["value"] >= 0.8
                          and m, procs, logs)
        Xte, yte = seeded["test"]
        reply = http_json(f"{url}/predict", {"inputs": Xte.tolist()})
        served = db.find_parameter_docs({"_id": reply["model"]})[0]
        accuracy = float((np.asarray(reply["predictions"]) == yte).mean())
        assert accuracy == pytest.approx(served["metrics"]["test_acc"], abs=1e-12)  # exactly the evaluated model
        assert served["metrics"]["test_acc"] >= better["value"] >= 0.8
        assert served["job"] == seeded["job"]
        assert served["lineage"]["data"]["last_seq"] >= imported_seq  # it trained on the new digits

        history = db.alias_history("deployed")
        targets = [h["target"] for h in history]
        # The deployer may swap again between our polls, so the first model we saw is *a* served one, not
        # necessarily the first (and the alias moves just after a swap, so it may lag the served model).
        assert history[0]["previous"] is None and first["model"] in targets
        assert len(history) >= 2
        values = [db.find_parameter_docs({"_id": h["target"]})[0]["metrics"]["test_acc"] for h in history]
        assert all(b >= a + 0.01 for a, b in itertools.pairwise(values))  # swaps only on a real improvement

        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            assert proc.wait(timeout=60) == 0, _output(logs)
        job = db.find_jobs({"_id": seeded["job"]})[0]
        assert job["status"] == "queued" and job["attempts_left"] == job["max_attempts"]  # released, not failed
        assert find_workers(db) == []  # every worker recorded a clean stop
        assert {w["state"] for w in find_workers(db, include_stopped=True)} == {"stopped"}
        assert "stopped cleanly" in (logs / "trainer.log").read_text()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        db.close()
