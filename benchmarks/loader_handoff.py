"""torch DataLoader workers against torch's own hand-off ceiling (issue 16: workers >= 0.9x the single process).

Run from the repository root::

    .venv/bin/python benchmarks/loader_handoff.py              # both datasets of stream.py, ~1-2 minutes on 2 cores
    .venv/bin/python benchmarks/loader_handoff.py --workers 4

Why: the DataLoader rows of ``stream.py`` compare workers with one process,
which says how much the hand-off costs but not how much of it torch itself
costs.  Here, beside ``TensorDBIterableDataset`` in ``TensorDBDataLoader``
with persistent workers (``set_epoch``; workers hand over groups of batches)
and in one process, and in torch's plain ``DataLoader`` (one batch a
hand-off), a dataset that does no data work at all
yields the same batch tensors (uint8 images of the dataset's shape and int64
labels, allocated once) through a plain ``DataLoader``: what torch's worker
loop, queues and shared-memory hand-off alone allow on this machine (torch
copies each batch into new shared memory; TensorDB's workers decode into a
ring the main process maps).  ``torch loop alone``: the same with batches of
one byte a sample, what the worker loop and queues allow without the copy.  Each
row is the mean of the epochs after the first (``--epochs`` of them).
Results go to ``benchmarks/results/loader_handoff.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.utils.data
from benchkit import Spec, import_dataset, specs
from report import machine, write_json
from versus_litdata import _loader_epochs

import tensordb_core as tdb
from tensordb_core.torch import TensorDBDataLoader, TensorDBIterableDataset

RESULTS = Path(__file__).resolve().parent / "results" / "loader_handoff.json"


class SameBatches(torch.utils.data.IterableDataset):
    """``n`` samples as batches of one pair of tensors made once, split between the loader's workers."""

    def __init__(self, spec: Spec, shape: tuple[int, ...] | None = None) -> None:
        self.spec, self.shape = spec, shape if shape is not None else spec.shape

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        workers, me = (info.num_workers, info.id) if info is not None else (1, 0)
        X = torch.zeros((self.spec.batch, *self.shape), dtype=torch.uint8)
        y = torch.zeros(self.spec.batch, dtype=torch.int64)
        batches = -(-self.spec.n // self.spec.batch)
        for _ in range(me, batches, workers):
            yield X, y


def rates(spec: Spec, warehouse: str, workers: int, epochs: int) -> dict[str, float]:
    """Samples/s of each loader (the mean of the epochs after the first)."""
    out: dict[str, float] = {}
    for n_workers in (workers, 0):
        ds = TensorDBIterableDataset(warehouse, {"ds": spec.name}, study="bench", batch_size=spec.batch, seed=0)
        loader = TensorDBDataLoader(ds, num_workers=n_workers, persistent_workers=bool(n_workers))
        took, n = _loader_epochs(loader, epochs, ds.set_epoch)
        out[f"tensordb_{n_workers}"] = n / took
        del loader
        if n_workers:  # the same dataset in torch's own DataLoader: one batch per hand-off
            loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=n_workers, persistent_workers=True)
            took, n = _loader_epochs(loader, epochs, ds.set_epoch)
            out["plain"] = n / took
            del loader
        plain = torch.utils.data.DataLoader(SameBatches(spec), batch_size=None, num_workers=n_workers,
                                            persistent_workers=bool(n_workers))
        took, n = _loader_epochs(plain, epochs)
        out[f"handoff_{n_workers}"] = n / took
        del plain
        if n_workers:
            empty = torch.utils.data.DataLoader(SameBatches(spec, (1,)), batch_size=None, num_workers=n_workers,
                                                persistent_workers=True)
            took, n = _loader_epochs(empty, epochs)
            out["loop"] = n / took
            del empty
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5, help="epochs measured after the first")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    print(f"{'dataset':<10} {'TensorDB, ' + str(args.workers) + ' workers':>20} {'plain DataLoader':>17} "
          f"{'torch hand-off alone':>21} "
          f"{'torch loop alone':>17} {'TensorDB, one process':>22} {'workers / hand-off':>19} "
          f"{'workers / one process':>22}")
    with tempfile.TemporaryDirectory(prefix="tensordb-handoff-") as work:
        warehouse = str(Path(work) / "wh")
        with tdb.connect(warehouse, study="bench", blob_options={"fsync": False}) as db:
            for spec in specs(False):
                import_dataset(db, spec, None)
        for spec in specs(False):
            r = rates(spec, warehouse, args.workers, args.epochs)
            w = r[f"tensordb_{args.workers}"]
            row = {"dataset": spec.name, "batch": spec.batch, "workers": args.workers,
                   "tensordb_workers_per_s": round(w), "plain_dataloader_workers_per_s": round(r["plain"]),
                   "handoff_workers_per_s": round(r[f"handoff_{args.workers}"]),
                   "loop_workers_per_s": round(r["loop"]),
                   "tensordb_single_per_s": round(r["tensordb_0"]), "handoff_single_per_s": round(r["handoff_0"]),
                   "workers_vs_handoff": round(w / r[f"handoff_{args.workers}"], 2),
                   "workers_vs_single": round(w / r["tensordb_0"], 2)}
            rows.append(row)
            print(f"{spec.name:<10} {w:>20,.0f} {row['plain_dataloader_workers_per_s']:>17,} "
                  f"{row['handoff_workers_per_s']:>21,} {row['loop_workers_per_s']:>17,} "
                  f"{row['tensordb_single_per_s']:>22,} "
                  f"{row['workers_vs_handoff']:>18.2f}x {row['workers_vs_single']:>21.2f}x", flush=True)
    out = write_json(args.out, {"benchmark": "loader_handoff", "epochs": args.epochs, "machine": machine(), "rows": rows})
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
