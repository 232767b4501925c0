"""``tensordb compare``: one row per run with its hyper-parameters and best metrics, and the learning-curve plot."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.cli.compare import collect_runs, compare_runs, format_rows, learning_curves, plot_runs
from tensordb_core.cli.main import main
from tensordb_core.errors import InvalidQuery, MissingDependency
from tensordb_core.loop.worker import WorkerOptions, run_worker

SETTINGS = [{"hidden": [4], "lr": 0.01, "seed": 1}, {"hidden": [16], "lr": 0.2, "seed": 2}]


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (rng.normal(size=(n, 4)) * 0.6 + np.eye(3, 4)[y] * 2).astype(np.float32), y


@pytest.fixture
def trained(tmp_path) -> str:
    """Two finished runs with different hyper-parameters, scored by an evaluator, plus one queued run."""
    uri = str(tmp_path / "wh")
    with tdb.connect(uri, "cmp") as db:
        for split, seed in (("train", 0), ("valid", 1), ("test", 2)):
            db.import_data(*blobs(96, seed), tags={"split": split})
        db.save_model_architecture(json.dumps({"builder": "numpy-mlp", "inputs": 4, "outputs": 3}),
                                   tags={"name": "mlp"})
        for hyper in SETTINGS:
            db.push_job({"arch": {"name": "mlp"}, "data": {"split": "train"}, "valid": {"split": "valid"},
                         "epochs": 3, "batch_size": 16, "hyper": hyper}, tags={"type": "train"})
        run_worker(db, "trainer", WorkerOptions(name="w1", until_idle=True))
        run_worker(db, "evaluator", WorkerOptions(until_idle=True))
        db.push_job({"arch": {"name": "mlp"}, "epochs": 1, "hyper": {"hidden": [2], "lr": 0.5}},
                    tags={"type": "train"})
    return uri


def test_one_row_per_run_best_first(trained):
    with tdb.connect(trained, "cmp") as db:
        metric, rows = compare_runs(db, metric="valid_acc")
        jobs = {j["_id"]: j for j in db.find_jobs()}
        assert metric == "valid_acc" and len(rows) == 3
        finished = [r for r in rows if r["status"] == "done"]
        assert [r["hyper"] for r in rows[:2]] and rows[2]["status"] == "queued" and rows[2]["best_valid_acc"] is None
        for row in finished:
            params = db.find_parameter_docs({"job": row["run"]})
            assert row["saved"] == len(params) == 3
            assert row["best_valid_acc"] == max(p["metrics"]["valid_acc"] for p in params)
            best = next(p for p in params if p["_id"] == row["best_id"])
            assert row["best_metrics"]["test_acc"] == best["metrics"]["test_acc"]
            assert row["steps"] == 3 * 6  # 96 samples / 16 per batch, 3 epochs
            assert row["hyper"] == jobs[row["run"]]["spec"]["hyper"] and row["worker"] == "w1"
            assert row["wall_s"] == jobs[row["run"]]["result"]["seconds"]
        assert finished[0]["best_valid_acc"] >= finished[1]["best_valid_acc"]
        assert compare_runs(db, metric="train_loss", mode="min")[1][0]["best_train_loss"] <= \
            compare_runs(db, metric="train_loss", mode="min")[1][1]["best_train_loss"]


def test_metric_names_resolve_and_unknown_ones_say_what_exists(trained):
    with tdb.connect(trained, "cmp") as db:
        assert compare_runs(db, metric="acc")[0] == "valid_acc"  # validation first: that is what selects models
        with pytest.raises(InvalidQuery, match="test_acc"):
            compare_runs(db, metric="f1")


def test_learning_curves_come_from_each_runs_own_logs(trained):
    with tdb.connect(trained, "cmp") as db:
        runs = [r for r in collect_runs(db) if r.params]
        curves = learning_curves(db, runs, "test_acc")
        for run in runs:
            assert len(curves[run.key]["train_loss"]) == 18  # one log per step, none from the other run
            assert [s for s, _ in curves[run.key]["test_acc"]] == [6, 12, 18]


def test_plot_writes_a_png(trained, tmp_path):
    out = tmp_path / "curves.png"
    with tdb.connect(trained, "cmp") as db:
        assert plot_runs(db, str(out), metric="acc") == "valid_acc"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_plot_without_matplotlib_is_a_clear_error(trained, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an uninstalled package looks like to import
    with tdb.connect(trained, "cmp") as db, pytest.raises(MissingDependency, match=r"tensordb\[plot\]"):
        plot_runs(db, str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def test_compare_command(trained, tmp_path, capsys):
    out = tmp_path / "cmd.png"
    assert main(["compare", "--uri", trained, "--study", "cmp", "--metric", "acc", "--plot", str(out)]) == 0
    text = capsys.readouterr().out
    assert "best valid_acc" in text and "test_acc" in text and "lr=0.2" in text and "queued" in text
    assert out.read_bytes()[:4] == b"\x89PNG"
    with tdb.connect(trained, "cmp") as db:
        assert format_rows(*compare_runs(db)).splitlines()[0] == text.splitlines()[0]
    assert main(["compare", "--uri", trained, "--study", "none"]) == 0
    assert "no runs" in capsys.readouterr().out
    assert main(["compare", "--uri", str(tmp_path / "empty"), "--study", "none"]) == 2
    assert "no warehouse at" in capsys.readouterr().err


def test_round_starts_mark_where_new_data_began_a_round():
    from tensordb_core.cli.compare import Run

    run = Run("j", params=[{"round": r, "step": s} for r, s in ((0, 10), (0, 20), (1, 30), (1, 40), (2, 50))])
    assert run.round_starts() == [20, 40]
    assert Run("k", params=[{"step": 5}]).round_starts() == []


def test_the_default_metric_is_whichever_accuracy_the_study_has(tmp_path, capsys) -> None:
    """A study scored only on test data (the continuous loop's evaluator) ranks by test_acc without --metric."""
    uri = str(tmp_path / "only-test")
    with tdb.connect(uri, "loop") as db:
        db.save_parameters({"w": np.zeros(2)}, metrics={"test_acc": 0.8, "train_loss": 0.3})
        assert compare_runs(db)[0] == "test_acc"
    assert main(["compare", "--uri", uri, "--study", "loop"]) == 0
    assert "best test_acc" in capsys.readouterr().out
