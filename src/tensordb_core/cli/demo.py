"""``tensordb demo``: the whole lifecycle on a real small data set, in under a minute.

Imports scikit-learn's bundled digits (no download) with train/valid/test
tags, stores an MLP architecture (a JSON builder config, not code), pushes one
train job per hyper-parameter setting, runs worker processes that pop jobs and
stream batches from the warehouse, scores every saved model on the test split,
and prints the comparison.  The trainers and the evaluator are the loop
``tensordb worker`` runs (:func:`~tensordb_core.loop.worker.run_worker`), told
to return once their work is done (``until_idle``).  The warehouse stays on
disk for ``tensordb find/logs/jobs`` to inspect.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tensordb_core.cli.tables import align, number
from tensordb_core.loop.worker import WorkerOptions, run_worker
from tensordb_core.warehouse.handle import TensorDB, connect
from tensordb_core.warehouse.params import numeric

STUDY = "digits-mlp"
SETTINGS = [
    {"hidden": [32], "lr": 0.05, "seed": 1},
    {"hidden": [64], "lr": 0.1, "seed": 2},
    {"hidden": [128, 64], "lr": 0.05, "seed": 3},
]
ARCHITECTURE = {"builder": "numpy-mlp", "inputs": 64, "outputs": 10, "hidden": [64]}


def load_digits_splits(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - the demo extra installs it
        from tensordb_core.errors import MissingDependency

        raise MissingDependency("the demo uses scikit-learn's bundled digits: pip install 'tensordb[demo]'") from exc
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)  # (1797, 8, 8)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(X))
    cut1, cut2 = int(0.6 * len(X)), int(0.8 * len(X))
    parts = {"train": order[:cut1], "valid": order[cut1:cut2], "test": order[cut2:]}
    return {name: (X[idx], y[idx]) for name, idx in parts.items()}


def prepare(db: TensorDB, epochs: int, say: Callable[[str], None]) -> list[str]:
    if len(db.find_data()) == 0:
        for split, (X, y) in load_digits_splits().items():
            db.import_data(X, y, tags={"split": split, "dataset": "sklearn-digits"})
            say(f"imported {len(X)} {split} samples")
    else:
        say(f"data already in the warehouse: {len(db.find_data())} samples")
    db.save_model_architecture(json.dumps(ARCHITECTURE), tags={"name": "mlp"})
    return [db.push_job({"arch": {"name": "mlp"}, "data": {"split": "train"}, "valid": {"split": "valid"},
                         "epochs": epochs, "batch_size": 32, "hyper": hyper}, tags={"type": "train"})
            for hyper in SETTINGS]


def _worker_process(uri: str, blobs: str | None, study: str, name: str) -> None:
    with connect(uri, study, blobs=blobs) as db:
        run_worker(db, "trainer", WorkerOptions(name=name, until_idle=True,
                                                progress=lambda m: print(f"  [{name}] {m}", flush=True)))


def _until_idle(db: TensorDB, role: str, stop: threading.Event, **options: Any) -> int:
    """Run ``role`` in this process until its work is done; Ctrl-C still ends the demo.

    The worker loop turns SIGINT into a clean stop (a trainer releases its job);
    the demo then stops too instead of going on to the next step.
    """
    handled = run_worker(db, role, WorkerOptions(until_idle=True, **options), stop=stop)
    if stop.is_set():
        raise KeyboardInterrupt
    return handled


#: How the demo picks a model, in its table and its summary alike: the highest valid_acc, ties to the oldest
#: parameter set (the rule of ``db.best_parameters``).
SELECT = "valid_acc"
_BEST_FIRST = [(f"metrics.{SELECT}", -1), ("_seq", 1)]
#: Job ids are shown by their last 6 characters, as the workers' progress lines show them.
SHORT_ID = 6


def best_model(db: TensorDB, query: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The parameter document with the best valid_acc among ``query``'s, ties to the oldest."""
    selected = {"$and": [numeric(f"metrics.{SELECT}"), query]} if query else numeric(f"metrics.{SELECT}")
    return next(iter(db.find_parameter_docs(selected, sort=_BEST_FIRST, limit=1)), None)


def comparison(db: TensorDB, job_ids: list[str]) -> list[dict[str, Any]]:
    """One row per job: hyper-parameters, its best model (epoch, valid and test accuracy), steps and wall time."""
    rows = []
    for jid in job_ids:
        job = db.find_jobs({"_id": jid})[0]
        best = best_model(db, {"job": jid})
        metrics = best["metrics"] if best else {}
        result = job.get("result") or {}
        rows.append({"job": jid, "status": job["status"], "hyper": job["spec"]["hyper"],
                     "best_id": best["_id"] if best else None,
                     "epoch": best["epoch"] + 1 if best and isinstance(best.get("epoch"), int) else None,
                     "best_valid_acc": metrics.get(SELECT), "test_acc_of_best": metrics.get("test_acc"),
                     "steps": result.get("steps"), "seconds": result.get("seconds"),
                     "worker": job.get("worker")})
    return rows


def format_table(rows: list[dict[str, Any]], best_id: str | None = None) -> str:
    """The comparison; ``*`` marks the row of the model the summary names (``best_id``)."""
    head = ["", "job", "status", "hidden", "lr", "epoch", "valid_acc", "test_acc", "steps", "sec"]
    cells = [["*" if best_id and r["best_id"] == best_id else "", r["job"][-SHORT_ID:], r["status"],
              str(r["hyper"]["hidden"]), str(r["hyper"]["lr"]), number(r["epoch"], "d"),
              number(r["best_valid_acc"], ".3f"), number(r["test_acc_of_best"], ".3f"), number(r["steps"], "d"),
              number(r["seconds"], ".1f")] for r in rows]
    return align(head, cells)


def summary(best: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The closing line: the starred row of the table, in words, with the parameter set the alias names."""
    row = next(r for r in rows if r["best_id"] == best["_id"])
    return (f"best model (*): job {row['job'][-SHORT_ID:]} epoch {number(row['epoch'], 'd')} (hidden "
            f"{row['hyper']['hidden']}, lr {row['hyper']['lr']}): {SELECT} {number(row['best_valid_acc'], '.3f')}, "
            f"test_acc {number(row['test_acc_of_best'], '.3f')}; alias 'best' -> parameter set {best['_id']}")


def run_demo(uri: str = "./tensordb-demo", blobs: str | None = None, *, study: str = STUDY, workers: int = 2,
             epochs: int = 12, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the demo; returns the comparison rows and the best model's test accuracy."""
    started = time.time()
    stop = threading.Event()
    with connect(uri, study, blobs=blobs) as db:
        say(f"warehouse: {db!r}")
        job_ids = prepare(db, epochs, say)
        say(f"pushed {len(job_ids)} train jobs; starting {workers} worker(s)")
        if db.index.uri.scheme == "memory" or workers <= 1:
            _until_idle(db, "trainer", stop, progress=lambda m: say(f"  [worker] {m}"))
        else:
            ctx = multiprocessing.get_context("spawn")
            procs = [ctx.Process(target=_worker_process, args=(db.index.uri.reveal(),
                                                                 blobs, study, f"worker-{i + 1}"))
                     for i in range(workers)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
        test = {"split": "test"}
        scored = _until_idle(db, "evaluator", stop, test_query=test)
        say(f"evaluator scored {scored} parameter sets on {len(db.find_data(test))} test samples")
        rows = comparison(db, job_ids)
        best = best_model(db, {"job": {"$in": job_ids}})  # select on validation, report test
        say("\n" + format_table(rows, best["_id"] if best else None))
        best_acc = best["metrics"].get("test_acc") if best else None
        if best:
            db.set_alias("best", best["_id"], who="tensordb demo")
            say("\n" + summary(best, rows))
        say(f"done in {time.time() - started:.1f}s — inspect with: {_command()} jobs --uri {db.index.uri.redacted()}"
            f" --study {study}")
        return {"rows": rows, "best_test_acc": best_acc, "best_id": best["_id"] if best else None}


def _command() -> str:
    """How to call ``tensordb`` from this shell: bare when it is on PATH, else the path this demo ran from."""
    if shutil.which("tensordb"):
        return "tensordb"
    here = os.path.join(os.path.dirname(sys.executable), "tensordb")
    return os.path.relpath(here) if os.path.exists(here) else f"{sys.executable} -m tensordb_core.cli"
