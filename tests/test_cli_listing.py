"""find, logs and jobs: a table cut at --limit says how much it left out, --help names the default, times read as times."""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.cli.main import main


@pytest.fixture
def warehouse(tmp_path):
    uri = str(tmp_path / "wh")
    with tdb.connect(uri, "s") as db:
        db.import_data(np.zeros((30, 2), np.float32), np.arange(30), tags={"split": "train"})
        for step in range(60):
            db.log("train", {"loss": 1 / (step + 1)}, step=step)
        db.log("valid", {"acc": 0.5}, step=1)
        for _ in range(3):
            db.push_job({"epochs": 1})
    return ["--uri", uri, "--study", "s"]


def test_find_says_what_the_limit_left_out(warehouse, capsys):
    assert main(["find", *warehouse, "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("showing 3 of 30 (use --limit N, 0 for all)")
    assert main(["find", '{"label": {"$lt": 5}}', *warehouse]) == 0
    assert "showing" not in capsys.readouterr().out  # all 5 matches shown
    assert main(["find", *warehouse, "--limit", "0"]) == 0
    assert "showing" not in capsys.readouterr().out
    assert main(["find", *warehouse]) == 0
    assert "showing 20 of 30" in capsys.readouterr().out


def test_logs_and_jobs_say_what_the_limit_left_out(warehouse, capsys):
    assert main(["logs", *warehouse]) == 0
    assert "showing 50 of 61" in capsys.readouterr().out
    assert main(["logs", "train", *warehouse, "--limit", "2", "--query", '{"step": {"$gte": 10}}']) == 0
    assert "showing 2 of 50" in capsys.readouterr().out
    assert main(["logs", "valid", *warehouse]) == 0
    assert "showing" not in capsys.readouterr().out
    assert main(["jobs", *warehouse, "--limit", "1"]) == 0
    assert "showing 1 of 3" in capsys.readouterr().out


def test_created_is_shown_as_a_time(warehouse, capsys):
    assert main(["find", *warehouse, "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "e+09" not in out
    stamp = re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", out).group(0)
    assert abs((datetime.now() - datetime.fromisoformat(stamp)).total_seconds()) < 600


@pytest.mark.parametrize(("command", "default"), [("find", 20), ("logs", 50), ("jobs", 50)])
def test_help_names_the_default_limit(command, default, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert f"(default: {default})" in " ".join(capsys.readouterr().out.split())
