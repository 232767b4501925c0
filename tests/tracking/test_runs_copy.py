"""``tensordb copy`` carries runs, artifacts (every part blob) and registered models, and gives the same answers."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.warehouse import artifacts
from tensordb_core.warehouse.copying import copy_warehouse


def test_copy_carries_runs_artifacts_and_models(tracking_uri: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "PART_SIZE", 100)
    with tdb.connect(tracking_uri, study="s1") as db:
        with db.start_run("r", params={"lr": 0.1}) as run:
            run.log_metrics({"acc": 0.5})
            run.log_artifact(bytes(range(250)), "w.bin")
            pid = db.save_parameters({"w": np.arange(4.0)})
        db.register_model("m", pid)
        db.set_model_alias("m", "production", 1)
    dst = f"memory://copy-{uuid.uuid4().hex}"
    report = copy_warehouse(tracking_uri, dst, study="s1")
    for collection in ("runs", "artifacts", "registered_models", "model_versions", "model_alias_history"):
        assert report.copied[collection] == 1, collection
    with tdb.connect(dst, study="s1") as copy:
        assert copy.search_runs({"params.lr": 0.1})[0]["metrics"] == {"acc": 0.5}
        assert copy.load_artifact(run.id, "w.bin") == bytes(range(250))
        np.testing.assert_array_equal(copy.load_model("m", alias="production")["w"], np.arange(4.0))
        assert copy.model_alias_history("m")[0]["version"] == 1
    assert copy_warehouse(tracking_uri, dst, study="s1").documents_copied == 0, "a second copy copies nothing"
