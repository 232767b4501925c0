"""The main job and the inspection commands, run the way a user runs them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tensordb_core.cli.demo import run_demo
from tensordb_core.cli.main import main
from tensordb_core.loop.worker import find_workers
from tensordb_core.warehouse.handle import connect


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "wh"
    said: list[str] = []
    result = run_demo(str(path), workers=2, epochs=6, say=said.append)
    result["said"] = "\n".join(said)
    return path, result


def test_demo_trains_a_good_model_with_worker_processes(demo_dir):
    _, result = demo_dir
    assert result["best_test_acc"] >= 0.9
    assert all(r["status"] == "done" for r in result["rows"])
    assert {r["worker"] for r in result["rows"]} <= {"worker-1", "worker-2"}
    assert all(r["steps"] == 6 * 34 for r in result["rows"])  # 1078 train samples / 32 per batch, 6 epochs


def test_the_summary_reads_the_starred_row_of_the_table(demo_dir):
    """Same selection (valid_acc, ties to the oldest), 1-based epochs and 6-character job ids in both."""
    _, result = demo_dir
    lines = result["said"].splitlines()
    (starred,) = [line.split() for line in lines if line.startswith("* ")]
    summary = next(line for line in lines if line.startswith("best model"))
    job, _status, epoch, valid, test = starred[1], starred[2], starred[-5], starred[-4], starred[-3]
    assert len(job) == 6 and 1 <= int(epoch) <= 6
    assert f"job {job} epoch {epoch} " in summary and f"valid_acc {valid}, test_acc {test};" in summary
    assert float(test) == pytest.approx(result["best_test_acc"], abs=5e-4)
    assert summary.endswith(f"parameter set {result['best_id']}")


def test_ties_are_broken_the_same_way_in_the_table_and_the_summary():
    import numpy as np

    from tensordb_core.cli.demo import best_model, comparison, format_table, summary

    with connect("memory://demo-ties", "t") as db:
        jobs = [db.push_job({"hyper": {"hidden": [h], "lr": 0.1}}) for h in (8, 16)]
        ids = {}
        for epoch in range(3):
            for jid in jobs:  # both jobs reach valid_acc 0.9 at epochs 2 and 3; the oldest is job 0's epoch 2
                ids[jid, epoch] = db.save_parameters({"w": np.zeros(2)}, step=epoch, metrics={
                    "valid_acc": 0.9 if epoch else 0.5, "test_acc": 0.1 * (epoch + 1)}, tags={"job": jid, "epoch": epoch})
        rows = comparison(db, jobs)
        best = best_model(db, {"job": {"$in": jobs}})
        assert best["_id"] == ids[jobs[0], 1] == rows[0]["best_id"]
        assert rows[0]["epoch"] == 2 and rows[0]["test_acc_of_best"] == pytest.approx(0.2)
        assert format_table(rows, best["_id"]).splitlines()[2].startswith(f"*  {jobs[0][-6:]}")
        assert summary(best, rows).startswith(f"best model (*): job {jobs[0][-6:]} epoch 2 ")


def test_the_demo_runs_the_worker_loop_until_idle(demo_dir):
    """The demo's trainers and evaluator are ``tensordb worker``'s loop: each left a worker record, stopped."""
    path, _ = demo_dir
    with connect(str(path), "digits-mlp") as db:
        records = find_workers(db, include_stopped=True)
        params = len(db.find_parameter_docs())
    assert all(r["state"] == "stopped" for r in records)
    trainers = [r for r in records if r["role"] == "trainer"]
    assert {r["name"] for r in trainers} == {"worker-1", "worker-2"} and sum(r.get("jobs_done", 0) for r in trainers) == 3
    (evaluator,) = [r for r in records if r["role"] == "evaluator"]
    assert evaluator["scored"] == params == 3 * 6


def test_cli_tables(demo_dir, capsys):
    path, _ = demo_dir
    common = ["--uri", str(path), "--study", "digits-mlp"]
    assert main(["find", '{"split": "test", "label": 3}', *common, "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert "split" in out and out.count("test") >= 5
    assert main(["jobs", *common]) == 0
    out = capsys.readouterr().out
    assert out.count("done") == 3
    assert main(["logs", "valid", *common]) == 0
    assert "metrics.valid_acc" in capsys.readouterr().out
    assert main(["find", "--collection", "params", "--newest", *common]) == 0
    assert "metrics.test_acc" in capsys.readouterr().out
    assert main(["check", *common]) == 0
    assert "OK" in capsys.readouterr().out


def test_cli_errors_are_one_line_and_typed(capsys, tmp_path):
    with connect(tmp_path / "w") as db:
        db.push_job({"epochs": 1})
    assert main(["find", '{"$where": "1"}', "--uri", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "$where" in err and "Traceback" not in err
    assert main(["find", "{not json", "--uri", str(tmp_path / "w")]) == 2
    assert "JSON" in capsys.readouterr().err
    assert main(["jobs", "--uri", "mongodb://bob:s3cr3tpw@h:99999/x"]) == 2
    err = capsys.readouterr().err
    assert "s3cr3tpw" not in err and "port" in err


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "tensordb_core.cli", "plugins"], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0
    for scheme in ("file", "memory", "sqlite", "mongodb", "s3", "gs", "az"):
        assert f"\n{scheme} " in out.stdout
