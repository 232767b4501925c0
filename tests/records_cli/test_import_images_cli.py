"""``tensordb import-images``, run as a user runs it: an ImageFolder written with Pillow, the real command.

What the contract says: class subfolders become ``label`` (index among the
sorted class names) and ``label_name``; the file's path relative to the root
is ``path``; JPEG and PNG bytes come back identical to the files; other files
are skipped and counted; a rerun (after ``--limit``, after a SIGKILL, after
new files arrived) imports only what is not there yet; bad input is a typed
error naming the file, exit status 2 on the command line.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tensordb_core.cli.import_images import (
    ClassesChanged,
    FolderNotFound,
    NotAnImage,
    UnreadableFile,
    import_images,
)
from tensordb_core.errors import InvalidDocument, TensorDBError
from tensordb_core.warehouse.handle import connect

CLASSES = ["cat", "dog", "zebra"]  # written out of order below: labels follow the sorted names


def picture(rng: np.random.Generator, h: int, w: int, channels: int) -> np.ndarray:
    """A smooth gradient with a little noise: realistic enough for JPEG, small enough to be quick."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = (yy * rng.uniform(0.2, 1) + xx * rng.uniform(0.2, 1)) % 256
    img = np.stack([base + rng.integers(0, 60) for _ in range(max(channels, 1))], axis=-1)
    img = np.clip(img + rng.integers(-5, 5, size=img.shape), 0, 255).astype(np.uint8)
    return img[..., 0] if channels == 0 else img


def write_folder(root: Path, per_class: int = 4, seed: int = 0) -> dict[str, bytes]:
    """ROOT/<class>/... with JPEGs (RGB, gray) and PNGs (RGB, gray, RGBA), a nested folder and non-images.

    Returns ``{relative path: file bytes}`` of the images only.
    """
    rng = np.random.default_rng(seed)
    files: dict[str, bytes] = {}
    for ci, name in enumerate(reversed(CLASSES)):
        for i in range(per_class):
            kind = (ci + i) % 5
            channels = (3, 0, 3, 0, 4)[kind]
            fmt, ext = (("JPEG", ".jpg"), ("JPEG", ".jpeg"), ("PNG", ".png"), ("PNG", ".PNG"), ("PNG", ".png"))[kind]
            arr = picture(rng, int(rng.integers(24, 64)), int(rng.integers(24, 64)), channels)
            out = io.BytesIO()
            Image.fromarray(arr).save(out, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
            rel = f"{name}/{'sub/' if i == per_class - 1 else ''}{name}-{i}{ext}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(out.getvalue())
            files[rel] = out.getvalue()
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "README").write_text("a file beside the class folders")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.jpg").write_bytes(files[next(iter(files))])
    return files


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tensordb_core.cli", "import-images", *args],
                          check=False, capture_output=True, text=True, timeout=timeout)


def summary_of(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stored(wh: Path, study: str = "imgs") -> list[dict]:
    with connect(str(wh), study) as db:
        return db.find_data({}).records(decode=False)


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path / "images"
    return root, write_folder(root)


def test_import_keeps_the_bytes_and_labels_by_sorted_class_names(folder, tmp_path):
    root, files = folder
    wh = tmp_path / "wh"
    summary = summary_of(run_cli(str(root), "--uri", str(wh), "--study", "imgs", "--tags", '{"split": "train"}',
                                 "--json"))
    assert summary["imported"] == len(files) == 12
    assert summary["bytes"] == sum(map(len, files.values()))
    assert summary["other"] == {".txt": 1, "(no class folder)": 1} and summary["skipped"] == 2
    assert summary["already"] == 0 and summary["classes"] == 3

    with connect(str(wh), "imgs") as db:
        assert len(db.find_data({"label_name": "dog"})) == 4
        assert len(db.find_data({"label": 2, "split": "train"})) == 4  # zebra: third of the sorted names
        recs = db.find_data({}).records(decode=False)
        assert {r["path"]: bytes(r["image"]) for r in recs} == files  # identical to the files, JPEG and PNG
        assert all(r["label"] == CLASSES.index(r["label_name"]) for r in recs)
        assert all(r["path"].startswith(r["label_name"] + "/") for r in recs)

        decoded = db.find_data({"path": {"$in": [p for p in files if p.lower().endswith(".png")]}}).records()
        assert decoded
        for r in decoded:  # PNG is lossless: the decoded pixels are the written ones
            assert np.array_equal(r["image"], np.asarray(Image.open(io.BytesIO(files[r["path"]]))))
        for r in db.find_data({"label_name": "cat"}).records():  # JPEG, RGB and gray: decoded to the file's shape
            want = np.asarray(Image.open(io.BytesIO(files[r["path"]])))
            assert r["image"].shape == want.shape and r["image"].dtype == np.uint8


def test_summary_line_and_progress_without_json(folder, tmp_path):
    root, files = folder
    proc = run_cli(str(root), "--uri", str(tmp_path / "wh"), "--study", "imgs")
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith(f"imported {len(files)} file(s)") and "from 3 class(es)" in line
    assert "1 .txt" in line and "1 (no class folder)" in line
    assert "importing" in proc.stderr  # the progress bar (or its plain-text stand-in) is on stderr


def test_rerun_after_a_partial_import_imports_only_the_rest(folder, tmp_path):
    root, files = folder
    wh = tmp_path / "wh"
    first = summary_of(run_cli(str(root), "--uri", str(wh), "--study", "imgs", "--limit", "5", "-q", "--json"))
    assert first["imported"] == 5
    second = summary_of(run_cli(str(root), "--uri", str(wh), "--study", "imgs", "-q", "--json"))
    assert second["imported"] == len(files) - 5 and second["already"] == 5
    third = summary_of(run_cli(str(root), "--uri", str(wh), "--study", "imgs", "-q", "--json"))
    assert third["imported"] == 0 and third["already"] == len(files)
    assert Counter(r["path"] for r in stored(wh)) == Counter(list(files))  # every file exactly once

    new = root / "dog" / "late.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(new)
    changed = next(p for p in files if p.startswith("cat/") and p.endswith(".jpg"))
    Image.fromarray(np.full((9, 9, 3), 7, np.uint8)).save(root / changed, format="JPEG")  # same path, other bytes
    fourth = summary_of(run_cli(str(root), "--uri", str(wh), "--study", "imgs", "-q", "--json"))
    assert fourth["imported"] == 2 and fourth["changed"] == 1 and fourth["already"] == len(files) - 1


def test_rerun_after_sigkill_mid_import_completes_it(tmp_path):
    """The command is killed while it blocks on a file (a FIFO named .jpg, late in sorted order) after committing
    every earlier file (--commit-every 1); the rerun imports exactly the files the killed run had not."""
    root = tmp_path / "images"
    files = write_folder(root, per_class=6, seed=3)
    fifo = root / "zebra" / "zzz-blocks.jpg"
    os.mkfifo(fifo)
    before_fifo = sum(1 for p in files if p < "zebra/zzz-blocks.jpg")
    wh = tmp_path / "wh"
    proc = subprocess.Popen([sys.executable, "-m", "tensordb_core.cli", "import-images", str(root), "--uri", str(wh),
                             "--study", "imgs", "--chunk-mb", "0.000001", "--commit-every", "1", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        count = 0
        while time.monotonic() < deadline and count < before_fifo:
            time.sleep(0.2)
            if wh.exists():
                try:
                    with connect(str(wh), "imgs") as db:
                        count = len(db.find_data({}))
                except TensorDBError:
                    count = 0
        assert count == before_fifo, (count, before_fifo, proc.poll())
        assert proc.poll() is None  # still blocked on the FIFO
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    fifo.unlink()
    rerun = summary_of(run_cli(str(root), "--uri", str(wh), "--study", "imgs", "-q", "--json"))
    assert rerun["already"] == before_fifo and rerun["imported"] == len(files) - before_fifo
    assert Counter(r["path"] for r in stored(wh)) == Counter(list(files))


def test_missing_directory_is_a_typed_error(tmp_path):
    proc = run_cli(str(tmp_path / "nope"), "--uri", str(tmp_path / "wh"), "--study", "imgs")
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    with connect(str(tmp_path / "wh"), "imgs") as db:
        with pytest.raises(FolderNotFound) as err:
            import_images(db, tmp_path / "nope")
        assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, TensorDBError)
        (tmp_path / "a-file").write_text("x")
        with pytest.raises(FolderNotFound, match="not a directory"):
            import_images(db, tmp_path / "a-file")


def test_a_file_that_is_not_an_image_stops_the_import_or_is_skipped_and_counted(folder, tmp_path):
    root, files = folder
    (root / "dog" / "fake.jpg").write_text("this is text, not a JPEG")
    wh = tmp_path / "wh"
    proc = run_cli(str(root), "--uri", str(wh), "--study", "imgs", "-q")
    assert proc.returncode == 2 and "dog/fake.jpg" in proc.stderr and "neither a JPEG nor a PNG" in proc.stderr
    skipped = summary_of(run_cli(str(root), "--uri", str(wh), "--study", "imgs", "-q", "--on-error", "skip",
                                 "--json"))
    assert skipped["undecodable"] == 1
    assert skipped["imported"] + skipped["already"] == len(files)  # the run that stopped kept what it had written
    assert Counter(r["path"] for r in stored(wh)) == Counter(list(files))


def test_a_truncated_header_is_not_an_image(tmp_path):
    root = tmp_path / "images"
    write_folder(root)
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with connect(str(tmp_path / "wh"), "imgs") as db, pytest.raises(NotAnImage, match="cat/broken.png"):
        import_images(db, root)


def test_an_unreadable_file_is_a_typed_error_naming_it(tmp_path):
    root = tmp_path / "images"
    write_folder(root)
    (root / "dog" / "gone.jpg").symlink_to(tmp_path / "missing-target.jpg")  # unreadable even for root
    proc = run_cli(str(root), "--uri", str(tmp_path / "wh"), "--study", "imgs", "-q")
    assert proc.returncode == 2 and "cannot read 'dog/gone.jpg'" in proc.stderr
    with connect(str(tmp_path / "wh2"), "imgs") as db:
        with pytest.raises(UnreadableFile) as err:
            import_images(db, root)
        assert isinstance(err.value, OSError)


def test_bad_options_and_a_changed_class_list(folder, tmp_path):
    root, _ = folder
    wh = tmp_path / "wh"
    for tags, why in (('{"label": 1}', "writes those fields itself"), ("[1]", "JSON object"),
                      ("{oops", "JSON object")):
        proc = run_cli(str(root), "--uri", str(wh), "--study", "imgs", "--tags", tags, "-q")
        assert proc.returncode == 2 and why in proc.stderr, proc.stderr
    env = {k: v for k, v in os.environ.items() if k != "TENSORDB_STUDY"}
    proc = subprocess.run([sys.executable, "-m", "tensordb_core.cli", "import-images", str(root), "--uri", str(wh)],
                          check=False, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "--study" in proc.stderr

    summary_of(run_cli(str(root), "--uri", str(wh), "--study", "imgs", "-q", "--json"))
    (root / "bird").mkdir()  # sorts first: every label would move by one
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "bird" / "b.png")
    with connect(str(wh), "imgs") as db:
        with pytest.raises(ClassesChanged, match="'cat': 0 -> 1") as err:
            import_images(db, root)
        assert isinstance(err.value, InvalidDocument)
        assert len(db.find_data({})) == 12  # refused before anything was written


def test_files_are_committed_in_batches_of_commit_every(tmp_path):
    """Each batch is one atomic import call: 5 new files with commit_files=2 are 3 calls (2 + 2 + 1)."""
    root = tmp_path / "images"
    files = write_folder(root, per_class=1, seed=5)
    calls = []
    with connect(str(tmp_path / "wh"), "imgs") as db:
        original = db.import_records

        def counting(records, **kwargs):
            ids = original(records, **kwargs)
            calls.append(len(ids))
            return ids

        db.import_records = counting
        summary = import_images(db, root, commit_files=2)
        assert summary.imported == len(files)
        assert calls == [2] * (len(files) // 2) + ([len(files) % 2] if len(files) % 2 else [])
        with pytest.raises(InvalidDocument):
            import_images(db, root, commit_files=0)
