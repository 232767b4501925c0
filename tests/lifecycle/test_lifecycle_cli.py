"""``tensordb delete | relabel | datasets`` and the status's audit lines: clean errors (exit 2, no traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tensordb_core as tdb
from tensordb_core.cli.main import main as cli_main


@pytest.fixture
def warehouse(tmp_path: Path) -> str:
    uri = str(tmp_path / "warehouse")
    with tdb.connect(uri, study="s") as db:
        db.import_data(np.zeros((10, 2), np.float32), np.arange(10) % 2, tags={"split": "train"})
    return uri


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = cli_main(list(argv))
    except SystemExit as exit_:  # argparse refuses bad option values itself (exit 2, usage line)
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_delete_relabel_datasets_and_status(warehouse: str, capsys) -> None:
    at = ["--uri", warehouse, "--study", "s"]
    assert run(capsys, "datasets", "list", *at)[1].startswith("no dataset versions")
    code, out, _ = run(capsys, "datasets", "save", "v1", "--description", "all ten", *at)
    assert code == 0 and "saved dataset v1: 10 sample(s)" in out
    code, out, _ = run(capsys, "datasets", "save", "odd", "--query", '{"label": 1}', *at)
    assert code == 0 and "saved dataset odd: 5 sample(s)" in out
    code, out, _ = run(capsys, "relabel", '{"label": 1}', '{"$set": {"label": 7}}', *at)
    assert code == 0 and "updated 5 sample(s)" in out
    code, out, _ = run(capsys, "delete", '{"label": 0}', *at)
    assert code == 0 and "deleted 5 sample(s)" in out
    code, out, _ = run(capsys, "datasets", "list", *at)
    assert code == 0 and "v1" in out and "all ten" in out and "10" in out
    code, out, _ = run(capsys, "datasets", "show", "v1", *at)
    assert code == 0 and json.loads(out)["count"] == 10
    code, out, _ = run(capsys, "status", *at)
    assert code == 0 and "delete" in out and "relabel" in out and '{"label": 0}' in out
    code, out, _ = run(capsys, "datasets", "drop", "v1", *at)
    assert code == 0 and "dropped dataset v1 (10 pinned" in out
    code, out, _ = run(capsys, "delete", "--all", *at)
    assert code == 0 and "deleted 5 sample(s)" in out


@pytest.mark.parametrize("argv", [
    ["delete"],                                   # an empty query without --all
    ["delete", "{}"],
    ["delete", "not json"],
    ["relabel", "{}", '{"$inc": {"label": 1}}'],
    ["relabel", "{}", '{"$set": {"_id": "x"}}'],
    ["relabel", "{}", "[1]"],
    ["datasets", "show", "nope"],
    ["datasets", "drop"],
    ["datasets", "save"],                         # no name
    ["datasets", "save", "v", "--query", "{bad"],
    ["gc", "--grace", "-1"],
    ["check", "--grace", "-5"],
])
def test_bad_input_exits_2_without_traceback_and_changes_nothing(warehouse: str, capsys, argv) -> None:
    code, out, err = run(capsys, *argv, "--uri", warehouse, "--study", "s")
    assert code == 2 and "Traceback" not in err + out and err.strip()
    with tdb.connect(warehouse, study="s") as db:
        assert sorted(d["label"] for d in db.find_data()) == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
