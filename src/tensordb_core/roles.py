"""Worker roles: a trainer pops train jobs and trains; an evaluator scores saved parameters.

Both only pull from the warehouse, so any number of them can run on any
machine.  A train job's spec names its architecture by query and its data by
query::

    {"arch": {"name": "mlp"}, "data": {"split": "train"}, "valid": {"split": "valid"},
     "epochs": 5, "batch_size": 32, "hyper": {"lr": 0.1, "hidden": [64]}}
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .builders import build_model
from .errors import DocumentNotFound, LeaseLost
from .framework import DBLogger, fit_generator
from .warehouse import TensorDB

Progress = Callable[[str], None]


def run_train_job(db: TensorDB, job: Any, progress: Progress | None = None) -> dict[str, Any]:
    """Train the model a job describes, logging every step and saving parameters every epoch."""
    spec = job.spec
    code, arch_doc = db.find_model_architecture(spec.get("arch", {}))
    if arch_doc is None:
        raise DocumentNotFound(f"job {job.id}: no architecture matches {spec.get('arch')!r}")
    hyper = dict(spec.get("hyper", {}))
    model = build_model(code, hyper)
    valid_X, valid_y = db.find_data(spec["valid"]).arrays() if spec.get("valid") else (None, None)
    logger = DBLogger(db, model, tags={"job": job.id, "arch": arch_doc["_id"], "hyper": hyper})
    started, best = time.time(), None
    for epoch in range(int(spec.get("epochs", 1))):
        batches = db.data_generator(spec.get("data", {}), batch_size=int(spec.get("batch_size", 32)),
                                    shuffle=True, seed=hyper.get("seed", 0) * 1000 + epoch, epochs=1)
        train = fit_generator(model, batches, logger)
        metrics = {"train_loss": train.get("loss", 0.0), "train_acc": train.get("acc", 0.0)}
        if valid_X is not None:
            metrics["valid_acc"] = model.evaluate(valid_X, valid_y)["acc"]
        logger.on_epoch_end(epoch, metrics)
        best = max(best or 0.0, metrics.get("valid_acc", 0.0))
        job.heartbeat()
        if progress:
            progress(f"job {job.id[-6:]} epoch {epoch + 1}: loss {metrics['train_loss']:.3f}"
                     + (f" valid_acc {metrics['valid_acc']:.3f}" if "valid_acc" in metrics else ""))
    db.flush()
    return {"best_valid_acc": best, "steps": logger.step, "seconds": time.time() - started, "saved": logger.saved}


def train_worker(db: TensorDB, query: dict[str, Any] | None = None, *, lease_s: float = 120.0,
                 worker: str | None = None, progress: Progress | None = None, max_jobs: int | None = None) -> int:
    """Pop and run train jobs until none is left (or ``max_jobs``); returns how many completed."""
    done = 0
    while max_jobs is None or done < max_jobs:
        job = db.pop_job({"type": "train", **(query or {})}, lease_s=lease_s, worker=worker)
        if job is None:
            return done
        db.lineage["job"] = job.id
        try:
            result = run_train_job(db, job, progress)
        except LeaseLost:
            continue
        except Exception as exc:  # noqa: BLE001 - the job records why it failed; the worker goes on
            job.fail(f"{type(exc).__name__}: {exc}")
            if progress:
                progress(f"job {job.id[-6:]} failed: {exc}")
            continue
        job.complete(result)
        done += 1
    return done


def evaluate_new_parameters(db: TensorDB, test_query: dict[str, Any], *, metric: str = "test_acc",
                            progress: Progress | None = None) -> int:
    """Score every parameter set that lacks ``metric`` on the test split; returns how many were scored."""
    X, y = db.find_data(test_query).arrays()
    scored = 0
    for doc in db.find_parameter_docs({f"metrics.{metric}": {"$exists": False}}, sort=[("_seq", 1)]):
        arch_code, _ = db.find_model_architecture({"_id": doc.get("arch")})
        if arch_code is None:
            continue
        model = build_model(arch_code, doc.get("hyper", {}))
        model.load_parameters(db.load_parameters(doc))
        db.record_metrics(doc["_id"], {metric: model.evaluate(X, y)["acc"]})
        scored += 1
    if progress:
        progress(f"evaluator scored {scored} parameter sets on {len(X)} test samples")
    return scored
