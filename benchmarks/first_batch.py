"""Time to the first batch against warehouse size (issue 16: a 1M-sample warehouse within 2x of a 20k one).

Run from the repository root::

    .venv/bin/python benchmarks/first_batch.py                        # 20,000 and 1,000,000 samples, ~3 minutes on 2 cores
    .venv/bin/python benchmarks/first_batch.py --sizes 20000,200000

Each size gets a fresh embedded warehouse of tiny samples (4 float32 values,
so the warehouse's size is its index, not its bytes), imported in blocks of
50,000.  Measured (best of ``--repeat``): a shuffled stream from
``data_generator`` to its first batch of 64, with the stream's own
``index_s``; then the first batch of a stream started with an
:class:`~tensordb_core.stream.memo.IndexMemo` that an earlier stream filled
(what a persistent torch loader worker sees from its second epoch on).
Also timed: closing the stream right after its first batch (``close_ms``),
and a torch ``DataLoader`` of :class:`~tensordb_core.torch.TensorDBIterableDataset`
with ``--workers`` persistent workers, from ``iter`` to its first batch
(``loader_first_batch_ms``: worker 0's, rank 0 of the shards, whose piece
starts the epoch; ``loader_every_worker_ms``: to the last worker's first
batch, each other worker a shard that counts the blocks to place its piece).
Then the same from the references a whole epoch kept in a ``cache_dir``
(stream/snapshots.py: what the next run of a training script starts from):
``first_batch_kept_ms``, ``loader_first_batch_kept_ms``,
``loader_every_worker_kept_ms``.
Results go to ``benchmarks/results/first_batch.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from report import machine, write_json

import tensordb_core as tdb
from tensordb_core.stream.batches import data_stream
from tensordb_core.stream.memo import IndexMemo

RESULTS = Path(__file__).resolve().parent / "results" / "first_batch.json"


def first_batch(db: tdb.TensorDB, memo: IndexMemo | None = None, cache: str | None = None
                ) -> tuple[float, float, float]:
    """(seconds to the first batch, the stream's index_s, seconds to close it right after) for a shuffled
    stream of the whole warehouse: what a ``break`` out of the loop, or the end of its ``with``, waits.
    ``cache``: a ``cache_dir`` holding the references an earlier stream kept (stream/snapshots.py)."""
    began = time.perf_counter()
    with data_stream(db.scope, {}, batch_size=64, shuffle=True, seed=0, index_memo=memo, cache_dir=cache) as stream:
        next(stream)
        took = time.perf_counter() - began
        index_s = stream.stats.index_s
        closing = time.perf_counter()
    return took, index_s, time.perf_counter() - closing


def loader_first_batch(uri: Path, workers: int, cache: str | None = None) -> tuple[float, float]:
    """Seconds from ``iter(DataLoader)`` to its first batch, the workers started by it (what a training
    script waits for at its first epoch), and to its ``workers``-th batch: the loader takes batches from
    its workers in turn, so that one is the last worker's first (each worker is a shard whose piece,
    but rank 0's, starts inside a window it reads whole)."""
    from tensordb_core.torch import TensorDBDataLoader, TensorDBIterableDataset

    dataset = TensorDBIterableDataset(uri, {}, study="bench", batch_size=64, cache_dir=cache)
    loader = TensorDBDataLoader(dataset, num_workers=workers, persistent_workers=True)
    began = time.perf_counter()
    batches = iter(loader)
    next(batches)
    took = time.perf_counter() - began
    for _ in range(workers - 1):
        next(batches)
    every = time.perf_counter() - began
    del batches  # the workers stop with their iterator
    return took, every


def loader_runs(uri: Path, workers: int, repeat: int, cache: str | None = None) -> list[tuple[float, float]]:
    """``repeat`` runs of :func:`loader_first_batch` (one of NaNs without workers)."""
    if not workers:
        return [(float("nan"), float("nan"))]
    return [loader_first_batch(uri, workers, cache) for _ in range(repeat)]


def best_each(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The best first batch and the best every-worker first batch of ``runs``, each on its own.  Why: the best
    run by its first batch (a tuple's min) reported whatever its every-worker time was, the noisier figure."""
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (0: skip that row)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tensordb-ttfb-") as work:
        for n in (int(v) for v in args.sizes.split(",")):
            with tdb.connect(Path(work) / f"wh-{n}", study="bench", blob_options={"fsync": False}) as db:
                began = time.perf_counter()
                for a in range(0, n, 50_000):
                    m = min(50_000, n - a)
                    db.import_data(np.arange(a, a + m, dtype=np.float32)[:, None].repeat(4, 1), np.arange(a, a + m))
                imported = time.perf_counter() - began
                runs = [first_batch(db) for _ in range(args.repeat)]
                took, index_s, _ = min(runs)
                close_s = min(r[2] for r in runs)
                memo = IndexMemo()
                first_batch(db, memo)
                memo_took = min(first_batch(db, memo)[0] for _ in range(args.repeat))
                cold_runs = loader_runs(Path(work) / f"wh-{n}", args.workers, args.repeat)
                loader_took, loader_every = best_each(cold_runs)
                cache = str(Path(work) / f"cache-{n}")
                with data_stream(db.scope, {}, batch_size=64, shuffle=True, seed=0, cache_dir=cache) as stream:
                    for _ in stream:  # one whole epoch keeps the references in cache
                        pass
                kept_took = min(first_batch(db, cache=cache)[0] for _ in range(args.repeat))
                kept_runs = loader_runs(Path(work) / f"wh-{n}", args.workers, args.repeat, cache)
                kept_loader = best_each(kept_runs)
            rows.append({"samples": n, "import_s": round(imported, 1), "first_batch_ms": round(took * 1e3, 1),
                         "index_ms": round(index_s * 1e3, 1), "index_us_per_doc": round(index_s / n * 1e6, 2),
                         "first_batch_with_memo_ms": round(memo_took * 1e3, 1), "close_ms": round(close_s * 1e3, 1),
                         "loader_first_batch_ms": round(loader_took * 1e3, 1), "loader_workers": args.workers,
                         "loader_every_worker_ms": round(loader_every * 1e3, 1),
                         "first_batch_kept_ms": round(kept_took * 1e3, 1),
                         "loader_first_batch_kept_ms": round(kept_loader[0] * 1e3, 1),
                         "loader_every_worker_kept_ms": round(kept_loader[1] * 1e3, 1),
                         "loader_every_worker_median_ms": round(statistics.median(r[1] for r in cold_runs) * 1e3,
                                                                1),
                         "loader_every_worker_kept_median_ms": round(statistics.median(r[1] for r in kept_runs) * 1e3,
                                                                     1)})
            print(f"{n:>9,} samples: first batch {took * 1e3:8.1f} ms (index {index_s * 1e3:.1f} ms, "
                  f"{index_s / n * 1e6:.2f} us/doc); with an index memo {memo_took * 1e3:.1f} ms; "
                  f"closed {close_s * 1e3:.1f} ms after it; DataLoader, {args.workers} workers: "
                  f"{loader_took * 1e3:.0f} ms (every worker's first: {loader_every * 1e3:.0f} ms); "
                  f"from references kept in cache_dir: stream {kept_took * 1e3:.1f} ms, DataLoader "
                  f"{kept_loader[0] * 1e3:.0f} ms (every worker's first: {kept_loader[1] * 1e3:.0f} ms); "
                  f"imported in {imported:.1f}s", flush=True)
    if len(rows) > 1:
        ratio = rows[-1]["first_batch_ms"] / rows[0]["first_batch_ms"]
        print(f"first batch, {rows[-1]['samples']:,} / {rows[0]['samples']:,} samples: {ratio:.1f}x (target <= 2x)")
        if args.workers:
            ratio = rows[-1]["loader_first_batch_ms"] / rows[0]["loader_first_batch_ms"]
            print(f"DataLoader first batch, {rows[-1]['samples']:,} / {rows[0]['samples']:,} samples: {ratio:.1f}x")
            for kind, key in (("", "loader_every_worker"), (" from kept references", "loader_every_worker_kept")):
                best = rows[-1][f"{key}_ms"] / rows[0][f"{key}_ms"]
                median = rows[-1][f"{key}_median_ms"] / rows[0][f"{key}_median_ms"]
                print(f"DataLoader, every worker's first batch{kind}: {best:.1f}x (medians: {median:.1f}x)")
    result = {"benchmark": "first_batch", "repeat": args.repeat, "machine": machine(), "rows": rows}
    out = write_json(args.out, result)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
