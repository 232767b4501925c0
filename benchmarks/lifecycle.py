"""Data lifecycle figures (issue 15): pinning a dataset version, streaming it, and the space gc returns.

    .venv/bin/python benchmarks/lifecycle.py              # 1,000,000 pinned samples, 200,000 for the gc figure
    .venv/bin/python benchmarks/lifecycle.py --quick      # 100,000 and 50,000

Rows, on the embedded store (SQLite + files) in a temporary directory:

* import: the samples (16 float32 each) imported in calls of 100,000;
* save_dataset: the time to pin every sample as a version (one member
  document per sample, written in pages of 5,000);
* first batch: the time from ``data_generator(...)`` to its first batch,
  over the live data and over the version (both read their whole index
  table first), and one full epoch over each;
* gc after deleting 90%: samples of 1 KiB, every label but one of ten deleted (each chunk keeps a tenth), then
  ``gc(grace_s=0)`` (orphans deleted, mostly-dead chunks compacted): chunk
  bytes before and after, and the fraction returned.

Results print as a table and go to ``benchmarks/results/lifecycle.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from report import machine, write_json

import tensordb_core as tdb
from tensordb_core.warehouse import maintenance

RESULTS = Path(__file__).resolve().parent / "results" / "lifecycle.json"
IMPORT_CALL = 100_000


def _stored_bytes(db: tdb.TensorDB) -> int:
    return sum(db.blobs.size(k) for k in db.blobs.list() if not k.startswith("_tensordb/"))


def _import(db: tdb.TensorDB, n: int, width: int) -> float:
    began = time.perf_counter()
    rng = np.random.default_rng(0)
    for start in range(0, n, IMPORT_CALL):
        m = min(IMPORT_CALL, n - start)
        db.import_data(rng.standard_normal((m, width)).astype(np.float32), np.arange(start, start + m) % 10,
                       tags={"split": "train"})
    return time.perf_counter() - began


def _first_batch_and_epoch(db: tdb.TensorDB, **kwargs: Any) -> tuple[float, float, int]:
    began = time.perf_counter()
    stream = db.data_generator({"split": "train"}, batch_size=1024, seed=0, **kwargs)
    seen, first = 0, None
    with stream:
        for X, _ in stream:
            if first is None:
                first = time.perf_counter() - began
            seen += len(X)
    return first or 0.0, time.perf_counter() - began, seen


def pin_rows(root: Path, n: int) -> list[dict[str, Any]]:
    rows = []
    with tdb.connect(str(root / "pin"), study="bench") as db:
        rows.append({"row": "import", "samples": n, "seconds": round(_import(db, n, 16), 2)})
        began = time.perf_counter()
        info = db.save_dataset("v1", {"split": "train"})
        rows.append({"row": "save_dataset (pin)", "samples": info["count"],
                     "seconds": round(time.perf_counter() - began, 2)})
        for label, kwargs in (("live data", {}), ("dataset version", {"dataset": "v1"})):
            first, epoch, seen = _first_batch_and_epoch(db, **kwargs)
            rows.append({"row": f"first batch, {label}", "samples": seen, "seconds": round(first, 2)})
            rows.append({"row": f"epoch, {label}", "samples": seen, "seconds": round(epoch, 2),
                         "samples_per_s": round(seen / epoch)})
        began = time.perf_counter()
        db.drop_dataset("v1")
        rows.append({"row": "drop_dataset", "samples": n, "seconds": round(time.perf_counter() - began, 2)})
    return rows


def gc_rows(root: Path, n: int) -> list[dict[str, Any]]:
    with tdb.connect(str(root / "gc"), study="bench") as db:
        _import(db, n, 256)
        before = _stored_bytes(db)
        began = time.perf_counter()
        deleted = db.delete_data({"label": {"$ne": 0}})  # labels cycle 0..9: every chunk keeps a tenth
        deleted_s = time.perf_counter() - began
        began = time.perf_counter()
        maintenance.gc(db.index, db.blobs, grace_s=0)
        gc_s = time.perf_counter() - began
        after = _stored_bytes(db)
        kept = len(db.find_data())
    return [{"row": "delete 90%", "samples": deleted, "seconds": round(deleted_s, 2)},
            {"row": "gc (orphans + compaction)", "samples": kept, "seconds": round(gc_s, 2),
             "chunk_bytes_before": before, "chunk_bytes_after": after,
             "fraction_returned": round(1 - after / before, 4)}]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 pinned samples and 50,000 for gc")
    parser.add_argument("--n", type=int, help="pin this many samples instead")
    parser.add_argument("--gc-n", type=int, help="this many samples for the gc figure instead")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    n = args.n or (100_000 if args.quick else 1_000_000)
    gc_n = args.gc_n or (50_000 if args.quick else 200_000)
    began, load_before = time.perf_counter(), [round(v, 2) for v in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="tensordb-lifecycle-"))
    try:
        rows = pin_rows(work, n)
        print(f"pinning rows done in {time.perf_counter() - began:.0f}s", file=sys.stderr)
        rows += gc_rows(work, gc_n)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for r in rows:
        extra = "  ".join(f"{k}={v}" for k, v in r.items() if k not in ("row", "samples", "seconds"))
        print(f"{r['row']:<28} {r['samples']:>10,} samples {r['seconds']:>9.2f} s  {extra}")
    result = {"benchmark": "lifecycle", "pinned": n, "gc_samples": gc_n,
              "machine": {**machine(), "load_average_at_start": load_before},
              "total_seconds": round(time.perf_counter() - began, 1), "rows": rows}
    out = write_json(args.out, result)
    print(f"wrote {out} ({result['total_seconds']}s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
