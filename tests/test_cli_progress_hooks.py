"""The long commands report progress through one callback the CLI turns into a bar (cli/progress.py).

``copy`` counts documents handled (copied or already present), ``import-images``
counts files looked at; a pipe gets one summary line on stderr, ``--quiet`` none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import tensordb_core as tdb
from tensordb_core.cli.import_images import import_images, scan
from tensordb_core.cli.main import main
from tensordb_core.warehouse.copying import copy_warehouse


def small_study(uri: str) -> int:
    """A study with data, a parameter set and a job; returns how many documents it holds in all."""
    with tdb.connect(uri, "s") as db:
        db.import_data(np.zeros((7, 2), np.float32), list(range(7)), tags={"split": "train"})
        db.save_parameters({"w": np.ones(3, np.float32)}, metrics={"acc": 0.5})
        db.push_job({"epochs": 1})
        return sum(db.index.count(c) for c in ("data", "params", "jobs"))


def test_copy_counts_every_document_once_per_run(tmp_path: Path) -> None:
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    documents = small_study(src)
    for run in range(2):  # the rerun finds them present: it still counts them
        counted: list[int] = []
        report = copy_warehouse(src, dst, study="s", progress=counted.append, page=3)
        assert sum(counted) >= documents, f"run {run}: {sum(counted)} counted, {documents} in data/params/jobs"
        assert sum(counted) == sum(report.copied.values()) + sum(report.skipped.values())
        assert max(counted) <= 3, "told page by page"


def test_copy_command_prints_one_progress_line_off_a_terminal(tmp_path: Path, capsys) -> None:
    src = str(tmp_path / "src")
    small_study(src)
    assert main(["copy", src, str(tmp_path / "dst"), "--study", "s"]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("copying: ")], err


def image_folder(root: Path, n: int) -> Path:
    (root / "cat").mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (4, 4), (i, 0, 0)).save(root / "cat" / f"{i}.png")
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def test_import_images_counts_files_looked_at(tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "imgs", 5)
    counted: list[int] = []
    with tdb.connect(str(tmp_path / "wh"), "s") as db:
        summary = import_images(db, scan(folder), progress=counted.append)
        assert summary.imported == 5 and counted == [1] * 5
        counted.clear()
        import_images(db, folder, progress=counted.append)  # a rerun looks at every file again
        assert counted == [1] * 5


def test_import_images_bar_line_and_quiet(tmp_path: Path, capsys) -> None:
    folder = image_folder(tmp_path / "imgs", 3)
    wh = str(tmp_path / "wh")
    assert main(["import-images", str(folder), "--uri", wh, "--study", "s"]) == 0
    assert "importing: 3 files" in capsys.readouterr().err
    assert main(["import-images", str(folder), "--uri", wh, "--study", "s", "--quiet"]) == 0
    assert "importing" not in capsys.readouterr().err
