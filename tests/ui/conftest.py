"""A small warehouse with everything the UI shows, filled once per module, and the app over it.

Study ``vision``: three runs (one failed) with train loss and valid accuracy
curves, artifacts (text, JSON, a PNG, a binary file), parameter sets saved
with an architecture's lineage, a registered model with two versions and an
alias moved twice, jobs in every state, a worker record, and samples (PNG
images of red and blue squares tagged by colour, plus 8×8 arrays).  Study
``tabular``: one run.  Building it takes well under a second.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.loop.worker import WorkerRecord
from tensordb_core.ui.app import UISettings, create_app

SECRET = "s3cr3t-ui-token"


def square(colour: str, size: int = 24) -> np.ndarray:
    image = np.full((size, size, 3), 240, np.uint8)
    channel = {"red": 0, "green": 1, "blue": 2}[colour]
    image[6:18, 6:18] = 0
    image[6:18, 6:18, channel] = 220
    return image


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def fill(uri: str) -> dict[str, Any]:
    """Write the study; returns the ids the tests look for."""
    ids: dict[str, Any] = {"runs": []}
    with tdb.connect(uri, study="vision") as db:
        db.save_model_architecture('{"builder": "numpy-mlp", "inputs": 64, "outputs": 10}', tags={"name": "mlp"})
        db.find_model_architecture({"name": "mlp"})
        records = [{"image": square(c), "colour": c, "label": k} for k, c in enumerate(["red", "blue"] * 3)]
        db.import_records(records, tags={"split": "train"}, encode={"image": "png"})
        db.import_data(np.arange(2 * 64, dtype=np.float32).reshape(2, 8, 8), np.array([3, 5]), tags={"split": "test"})
        for _ in db.data_generator({"split": "train"}, batch_size=6, epochs=1):
            pass  # what the parameter sets were trained on goes into their lineage
        ids["jobs"] = [db.push_job({"epochs": e, "arch": {"name": "mlp"}}, tags={"type": "train"}) for e in (1, 2, 3)]
        done = db.pop_job({"type": "train"}, lease_s=600, worker="w-done")  # the first run trains this job
        for i, (lr, fail) in enumerate([(0.1, False), (0.03, False), (0.01, True)]):
            if i == 1:
                db.lineage.pop("job")  # the other runs belong to no job
            try:
                with db.start_run(f"mlp-lr{lr}", params={"lr": lr, "layers": 2 + i, "optimizer": "sgd"},
                                  tags={"team": "vision"}) as run:
                    ids["runs"].append(run.id)
                    for step in range(20):
                        run.log_metrics({"loss": float(2.0 * np.exp(-lr * 5 * step) + 0.01 * i)}, step=step)
                        if step % 5 == 4:
                            run.log_metrics({"acc": 0.5 + 0.02 * step * (i + 1) / 3}, step=step, kind="valid")
                    pid = db.save_parameters({"w": np.full((4, 4), lr, np.float32)}, metrics={"valid_acc": 0.8 + i / 20})
                    ids.setdefault("params", []).append(pid)
                    run.log_text(f"training log of lr={lr}\nall good", "notes.txt")
                    if i == 0:
                        run.log_dict({"lr": lr, "note": "json artifact"}, "config.json")
                        run.log_artifact(png_bytes(square("red")), "sample.png", kind="file")
                        run.log_artifact(b"\x00\x01binary weights", "weights.bin")
                    if fail:
                        raise RuntimeError("diverged")
            except RuntimeError:
                pass
        db.register_model("classifier", ids["params"][0], description="digits MLP")
        db.register_model("classifier", ids["params"][1])
        db.set_model_alias("classifier", "production", 1, who="alice")
        db.set_model_alias("classifier", "production", 2, who="bob")
        db.set_model_alias("classifier", "staging", 2, who="bob")
        done.complete({"acc": 0.9})
        ids["done_job"] = done.id
        record = WorkerRecord(db, "trainer", "trainer@test", heartbeat_s=3600)
        record.update(job=None)
        record._quit.set()  # no beating thread left behind: the record stays as written
        db.save_dataset("squares-v1", {"split": "train"}, description="red and blue squares")
    with tdb.connect(uri, study="tabular") as db, db.start_run("gbm", params={"depth": 3}) as run:
        run.log_metrics({"rmse": 0.5}, step=0)
    return ids


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> tuple[str, dict[str, Any]]:
    uri = str(tmp_path_factory.mktemp("ui") / "warehouse")
    return uri, fill(uri)


@pytest.fixture(scope="module")
def ui_db(filled):
    uri, _ = filled
    with tdb.connect(uri, study="vision", create=False) as db:
        yield db


@pytest.fixture(scope="module")
def client(filled, ui_db):
    from starlette.testclient import TestClient

    app = create_app(UISettings(db=ui_db, uri=filled[0], default_study="vision"))
    with TestClient(app) as c:
        yield c
