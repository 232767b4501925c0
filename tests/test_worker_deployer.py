"""The deployer: best model by a metric with a minimum improvement, atomic swaps, predict over Python and HTTP."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.loop.deployer import Deployer, NoModel, serve_http
from tensordb_core.loop.worker import WorkerOptions, find_workers, run_worker

ARCH = {"builder": "numpy-mlp", "inputs": 4, "outputs": 3}


def constant(db: tdb.TensorDB, arch: str, cls: int, **metrics: Any) -> str:
    """A parameter set whose model predicts class ``cls`` for every input."""
    bias = np.zeros(3, np.float32)
    bias[cls] = 1.0
    return db.save_parameters({"w0": np.zeros((4, 3), np.float32), "b0": bias}, metrics=metrics,
                              tags={"arch": arch, "hyper": {"hidden": []}})


@pytest.fixture
def arch(db) -> str:
    return db.save_model_architecture(json.dumps(ARCH), tags={"name": "linear"})


def test_deploys_the_best_only_on_a_real_improvement(db, arch):
    deployer = Deployer(db, metric="test_acc", min_improvement=0.05)
    with pytest.raises(NoModel):
        deployer.predict(np.zeros((2, 4)))
    constant(db, arch, 0, valid_acc=0.99)  # no test_acc yet: not a candidate
    assert deployer.refresh() is False and deployer.served is None
    a = constant(db, arch, 0, test_acc=0.50)
    assert deployer.refresh() is True
    predictions, served = deployer.predict(np.ones((5, 4)))
    assert served == a and predictions.tolist() == [0] * 5
    constant(db, arch, 1, test_acc=0.54)  # better, but by less than 0.05
    assert deployer.refresh() is False and deployer.served.id == a
    c = constant(db, arch, 2, test_acc=0.56)
    assert deployer.refresh() is True and deployer.served.id == c
    assert deployer.predict(np.ones((1, 4)))[0].tolist() == [2]
    assert [h["target"] for h in db.alias_history("deployed")] == [a, c]


def test_mode_min_and_a_restarted_deployer_resumes_from_the_alias(db, arch):
    first = Deployer(db, metric="test_loss", mode="min")
    constant(db, arch, 0, test_loss=0.9)
    low = constant(db, arch, 1, test_loss=0.2)
    constant(db, arch, 2, test_loss="nan")  # a diverged run is never "best"
    assert first.refresh() and first.served.id == low
    again = Deployer(db, metric="test_loss", mode="min")
    assert again.resume() and again.served.id == low
    assert again.refresh() is False and len(db.alias_history("deployed")) == 2


def test_a_broken_parameter_set_is_skipped_not_fatal(db, arch):
    db.import_data(np.ones((2, 4), np.float32), np.array([0, 1]))  # the probe the deployer predicts first
    good = constant(db, arch, 1, test_acc=0.6)
    broken = db.save_parameters({"other": np.zeros(2)}, metrics={"test_acc": 0.9},
                                tags={"arch": arch, "hyper": {"hidden": []}})
    deployer = Deployer(db)
    assert deployer.refresh() is False and broken in deployer.rejected
    assert deployer.refresh() is True and deployer.served.id == good


def test_predictions_never_mix_models_during_swaps(db, arch):
    ids = {constant(db, arch, 0, test_acc=0.1): 0, constant(db, arch, 1, test_acc=0.2): 1}
    docs = {d["_id"]: d for d in db.find_parameter_docs()}
    deployer = Deployer(db, alias=None)
    deployer.deploy(docs[next(iter(ids))])
    results: list[tuple[list[int], str]] = []
    done = threading.Event()

    def ask() -> None:
        while not done.is_set():
            predictions, pid = deployer.predict(np.ones((256, 4)))
            results.append((predictions.tolist(), pid))

    reader = threading.Thread(target=ask)
    reader.start()
    try:
        for i in range(60):
            deployer.deploy(docs[list(ids)[i % 2]])
    finally:
        done.set()
        reader.join()
    assert results and deployer.swaps == 61
    for predictions, pid in results:
        assert set(predictions) == {ids[pid]}  # every answer wholly from the model it names


def _http(url: str, body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_http_endpoint(db, arch):
    deployer = Deployer(db)
    server = serve_http(deployer)
    host, port = server.server_address[:2]
    url = f"http://{host}:{port}"
    try:
        assert host == "127.0.0.1"
        assert _http(f"{url}/healthz")[0] == 503
        assert _http(f"{url}/model") == (200, {"model": None, "metric": "test_acc"})
        assert _http(f"{url}/predict", b'{"inputs": [[0, 0, 0, 0]]}')[0] == 503
        pid = constant(db, arch, 2, test_acc=0.7)
        deployer.refresh()
        assert _http(f"{url}/healthz") == (200, {"ok": True})
        status, model = _http(f"{url}/model")
        assert status == 200 and model["model"] == pid and model["value"] == 0.7
        assert _http(f"{url}/predict", b'{"inputs": [[1, 2, 3, 4], [0, 0, 0, 0]]}') == (
            200, {"predictions": [2, 2], "model": pid})
        for bad in (b"{nope", b'{"x": 1}', b'{"inputs": "text"}', b'{"inputs": [[1, 2]]}'):
            status, reply = _http(f"{url}/predict", bad)
            assert status == 400 and reply["error"]
        assert _http(f"{url}/nothing")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_deployer_worker_reports_its_endpoint_and_what_it_serves(db, arch):
    pid = constant(db, arch, 1, test_acc=0.8)
    stop = threading.Event()
    ready: list[dict[str, Any]] = []
    opts = WorkerOptions(poll_s=0.02, heartbeat_s=0.2, http_port=0, on_ready=ready.append)
    worker = threading.Thread(target=run_worker, args=(db, "deployer", opts), kwargs={"stop": stop})
    worker.start()
    try:
        for _ in range(3000):
            records = find_workers(db)
            if records and records[0].get("serving") == pid:
                break
            stop.wait(0.02)
        (record,) = find_workers(db)
        assert record["alive"] and record["serving"] == pid and record["info"]["http"] == ready[0]["http"]
        assert _http(f"{ready[0]['http']}/predict", b'{"inputs": [[0, 0, 0, 0]]}')[1]["predictions"] == [1]
    finally:
        stop.set()
        worker.join()
    with pytest.raises(urllib.error.URLError):  # the endpoint is closed with the worker
        urllib.request.urlopen(f"{ready[0]['http']}/healthz", timeout=5)
