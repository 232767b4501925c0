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
the size of what was written; ``RSS growth`` is how far the export raised
its process's peak resident memory (each export runs in a fresh process,
its format's library imported before the clock and the baseline): the
memory bound in practice.  Results print as a table and go to
``benchmarks/results/export.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from report import write_json

import tensordb_core as tdb
from tensordb_core.format.media import encode_image
from tensordb_core.warehouse.export import FORMATS, export_data

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


def child(uri: str, fmt: str, path: str, page_size: int) -> None:
    """One export in this (fresh) process; prints its time and peak RSS as JSON (``--child``)."""
    FORMATS[fmt].writer()  # the format's library imported before the clock starts (datasets takes ~3 s)
    db = tdb.connect(uri, study="bench")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    summary = export_data(db, path, format=fmt, page_size=page_size)
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "samples": summary["samples"], "rss_before_mb": before / 1024,
                      "rss_peak_mb": peak / 1024}))


def measure(uri: Path, out: Path, fmt: str, repeat: int, page_size: int) -> dict[str, Any]:
    """Best of ``repeat`` exports, each in a fresh process (so its peak RSS is the export's own)."""
    runs = []
    for attempt in range(repeat):
        path = out / f"{fmt}-{attempt}"
        done = subprocess.run([sys.executable, __file__, "--child", str(uri), fmt, str(path), str(page_size)],
                              check=True, capture_output=True, text=True)
        run = json.loads(done.stdout.strip().splitlines()[-1])
        run["nbytes"] = size_of(path)
        runs.append(run)
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    best = min(runs, key=lambda r: r["seconds"])
    s, nbytes = best["seconds"], best["nbytes"]
    return {"format": fmt, "samples": best["samples"], "seconds": round(s, 3),
            "samples_per_s": round(best["samples"] / s), "mb_out": round(nbytes / 1e6, 1),
            "mb_per_s": round(nbytes / 1e6 / s, 1),
            "rss_growth_mb": round(max(r["rss_peak_mb"] - r["rss_before_mb"] for r in runs), 1)}


def table(result: dict[str, Any]) -> str:
    head = ["dataset", "format", "samples", "seconds", "samples/s", "MB out", "MB/s", "RSS growth MB"]
    rows = [[r["dataset"], r["format"], str(r["samples"]), f"{r['seconds']:.2f}", str(r["samples_per_s"]),
             f"{r['mb_out']:.1f}", f"{r['mb_per_s']:.1f}", f"{r['rss_growth_mb']:.0f}"] for r in result["rows"]]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    return "\n".join(lines + ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows])


def markdown(result: dict[str, Any]) -> str:
    lines = ["| dataset | format | samples | seconds | samples/s | MB out | MB/s | RSS growth MB |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['dataset']} | {r['format']} | {r['samples']} | {r['seconds']:.2f} | {r['samples_per_s']} | "
              f"{r['mb_out']:.1f} | {r['mb_per_s']:.1f} | {r['rss_growth_mb']:.0f} |" for r in result["rows"]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4,000 samples per dataset instead of 20,000")
    parser.add_argument("--n", type=int, help="this many samples per dataset (overrides --quick)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; the best is kept")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated formats to time")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--page-size", type=int, default=512, help="export_data's page_size")
    parser.add_argument("--markdown", metavar="JSON", help="print a saved result as a Markdown table and exit")
    parser.add_argument("--child", nargs=4, metavar=("URI", "FORMAT", "PATH", "PAGE_SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2], int(args.child[3]))
        return 0
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
            build(root, n).close()
            print(f"built {name}: {n} samples in {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
            (root / "out").mkdir(exist_ok=True)
            for fmt in formats:
                row = {"dataset": name, **measure(root / name, root / "out", fmt, args.repeat, args.page_size)}
                print(f"  {fmt}: {row['samples_per_s']} samples/s", file=sys.stderr, flush=True)
                rows.append(row)
    result = {"n": n, "repeat": args.repeat, "cpus": os.cpu_count(), "rows": rows}
    print(table(result))
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
