"""docs/records.md runs as written: every ``python`` and ``bash`` block, in document order, from an empty directory.

Why run the page rather than a copy of it: a doc whose examples are tested
somewhere else rots; here the blocks *are* the test.  Python blocks share one
namespace (as a reader pasting them into one session would), ``bash`` blocks
run in a shell with the installed ``tensordb`` command on ``PATH``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "records.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)

# The doc needs Pillow, scikit-learn and torch; .ci/run installs all three, so a missing one fails here.
import PIL  # noqa: F401
import sklearn  # noqa: F401
import torch  # noqa: F401


def blocks() -> list[tuple[str, str, int]]:
    """(language, code, line) of every fenced block."""
    text = DOC.read_text()
    return [(m[1], m[2], text.count("\n", 0, m.start()) + 1) for m in BLOCK.finditer(text)]


def test_the_page_has_the_examples_the_issue_asks_for():
    code = "\n".join(c for _, c, _ in blocks())
    for needle in ("import_records", "tdb.Encoded", "encode=", ".records(", "data_generator", "fields=",
                   "decode=False", "pad=", "TensorDBIterableDataset", "tensordb import-images", "load_sample_images"):
        assert needle in code, needle
    assert {lang for lang, _, _ in blocks()} <= {"python", "bash"}  # nothing the test would leave unrun


def test_every_block_runs_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    namespace: dict = {"__name__": "__records_doc__"}
    ran = 0
    for lang, code, line in blocks():
        if lang == "python":
            exec(compile(code, f"{DOC}:{line}", "exec"), namespace)  # noqa: S102 - our own documentation
        else:
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env, check=False,
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, f"docs/records.md:{line}\n{proc.stdout}\n{proc.stderr}"
            if "import-images" in code:
                out = proc.stdout.splitlines()
                assert out[0].startswith("imported 12 file(s)") and "(1 .txt)" in out[0], out
                assert out[1].startswith("imported 0 file(s)") and "12 already imported" in out[1], out
                assert "roses" in proc.stdout.split("\n", 2)[2]
        ran += 1
    assert ran == len(blocks()) >= 9
