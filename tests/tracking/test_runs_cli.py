"""``tensordb runs`` lists and filters runs with the same query language as ``db.search_runs``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tensordb_core as tdb
from tensordb_core.cli.main import main


def test_runs_lists_filters_and_sorts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = str(tmp_path / "w")
    with tdb.connect(uri, study="s1") as db:
        for lr, acc in [(0.01, 0.7), (0.05, 0.9), (0.5, 0.95)]:
            with db.start_run(f"lr={lr}", params={"lr": lr}) as run:
                run.log_metrics({"valid_acc": acc})
    assert main(["runs", "--uri", uri, "--study", "s1", '{"params.lr": {"$lt": 0.1}}',
                 "--sort", "metrics.valid_acc:-1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["id", "name", "status", "started"] and "metrics.valid_acc" in out[0]
    assert [line.split()[1] for line in out[2:]] == ["lr=0.05", "lr=0.01"]
    assert main(["runs", "--uri", uri, "--study", "s1", "--json", "--limit", "1"]) == 0
    [doc] = json.loads(capsys.readouterr().out)
    assert doc["name"] == "lr=0.5" and doc["status"] == "finished"
    assert main(["runs", "--uri", uri, "--study", "other"]) == 0
    assert "no runs match" in capsys.readouterr().out
    assert main(["runs", "--uri", uri, "--study", "s1", "{not json"]) == 2
    assert main(["runs", "--uri", uri, "--study", "s1", "--sort", "metrics.acc:sideways"]) == 2
    assert "error" in capsys.readouterr().err
