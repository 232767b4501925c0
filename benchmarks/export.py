"""Export throughput: samples/s writing each format from a 20,000-sample warehouse.

Run from the repository root::

    .venv/bin/python benchmarks/export.py            # 20,000 samples per dataset
    .venv/bin/python benchmarks/export.py --quick    # a fifth of that
    .venv/bin/python benchmarks/export.py --markdown benchmarks/results/export.json

Two embedded warehouses, built once per run: ``xy`` (``import_data``: float32
28x28 arrays, an int label, a split tag) and ``jpeg`` (``import_records``:
RGB 64x64 JPEGs at quality 90 kept encoded, an int label, a caption).  Each
row is one ``export_data(db, path, format=...)`` of every sample — the
index scan, the paged reads through the cursor and the writer — timed end to
end, the best of ``--repeat`` runs (each into a fresh path).  ``MB out`` is
the size of what was written.  Results print as a table and go to
``benchmarks/results/export.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import tensordb_core as tdb
from tensordb_core.export import FORMATS, export_data
from tensordb_core.format.media import encode_image

RESULTS = Path(__file__).resolve().parent / "results" / "export.json"


def build_xy(root: Path, n: int) -> Any:
    db = tdb.connect(root / "xy", study="bench")
    rng = np.random.default_rng(0)
    for start in range(0, n, 5000):
        m = min(5000, n - start)
        X = rng.random((m, 28, 28), dtype=np.float32)
        db.import_data(X, rng.integers(0, 10, m), tags={"split": "train"})
    return db


def _jpegs(n: int) -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:64, 0:64]
    for i in range(n):
        base = rng.integers(0, 255, 3)
        image = np.stack([(xx * (c + 1) + yy + base[c]) % 256 for c in range(3)], -1)
        image = np.clip(image + rng.integers(-12, 12, image.shape), 0, 255).astype(np.uint8)  # a photo's grain
        yield {"image": tdb.Encoded(encode_image(image, "jpeg", 90), "jpeg"), "label": i % 10,
               "caption": f"image {i}"}


def build_jpeg(root: Path, n: int) -> Any:
    db = tdb.connect(root / "jpeg", study="bench")
    db.import_records(_jpegs(n), tags={"split": "train"})
    return db


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(db: Any, out: Path, fmt: str, repeat: int) -> dict[str, Any]:
    best = float("inf")
    nbytes = samples = 0
    for attempt in range(repeat):
        path = out / f"{fmt}-{attempt}"
        began = time.perf_counter()
        summary = export_data(db, path, format=fmt)
        best = min(best, time.perf_counter() - began)
        nbytes, samples = size_of(path), summary["samples"]
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return {"format": fmt, "samples": samples, "seconds": round(best, 3), "samples_per_s": round(samples / best),
            "mb_out": round(nbytes / 1e6, 1), "mb_per_s": round(nbytes / 1e6 / best, 1)}


def table(result: dict[str, Any]) -> str:
    head = ["dataset", "format", "samples", "seconds", "samples/s", "MB out", "MB/s"]
    rows = [[r["dataset"], r["format"], str(r["samples"]), f"{r['seconds']:.2f}", str(r["samples_per_s"]),
             f"{r['mb_out']:.1f}", f"{r['mb_per_s']:.1f}"] for r in result["rows"]]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    return "\n".join(lines + ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows])


def markdown(result: dict[str, Any]) -> str:
    lines = ["| dataset | format | samples | seconds | samples/s | MB out | MB/s |", "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['dataset']} | {r['format']} | {r['samples']} | {r['seconds']:.2f} | {r['samples_per_s']} | "
              f"{r['mb_out']:.1f} | {r['mb_per_s']:.1f} |" for r in result["rows"]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4,000 samples per dataset instead of 20,000")
    parser.add_argument("--n", type=int, help="this many samples per dataset (overrides --quick)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; the best is kept")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated formats to time")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--markdown", metavar="JSON", help="print a saved result as a Markdown table and exit")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    n = args.n or (4_000 if args.quick else 20_000)
    formats = [f for f in args.formats.split(",") if f]
    rows = []
    with tempfile.TemporaryDirectory(prefix="tensordb-export-bench-") as tmp:
        root = Path(tmp)
        for name, build in (("xy", build_xy), ("jpeg", build_jpeg)):
            began = time.perf_counter()
            db = build(root, n)
            print(f"built {name}: {n} samples in {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
            (root / "out").mkdir(exist_ok=True)
            for fmt in formats:
                row = {"dataset": name, **measure(db, root / "out", fmt, args.repeat)}
                print(f"  {fmt}: {row['samples_per_s']} samples/s", file=sys.stderr, flush=True)
                rows.append(row)
            db.close()
    result = {"n": n, "repeat": args.repeat, "cpus": os.cpu_count(), "rows": rows}
    print(table(result))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
