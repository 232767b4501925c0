"""Worker roles' units of work: train one job, score one parameter set.

Both only pull from the warehouse, so any number of workers can run on any
machine.  A train job's spec names its architecture by query and its data by
query::

    {"arch": {"name": "mlp"}, "data": {"split": "train"}, "valid": {"split": "valid"},
     "epochs": 5, "batch_size": 32, "hyper": {"lr": 0.1, "hidden": [64]}}

A *continuous* job (``"continuous": true`` or ``{"min_new": 100, "max_rounds": 3}``)
never finishes on its own: it trains ``epochs`` epochs over everything its
data query matches (a *round*), saves the parameters, then waits — following
the data collection with ``index.tail`` from the last ``_seq`` it trained on,
without rescanning — until ``min_new`` new samples match, and trains another
round from the current weights.  It resumes from its newest checkpoint when a
worker takes it over.

This module is the work itself, with a ``stop`` event checked between
batches; it has no loop over jobs or parameter sets.  The one worker loop
(popping jobs, following ``params``, signals, worker records) is
:func:`tensordb_core.loop.worker.run_worker`, which ``tensordb worker``, the
demo and the tests all run; ``WorkerOptions(until_idle=True)`` makes it return
once the queue is empty or nothing is left to score.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tensordb_core.errors import DocumentNotFound, InvalidDocument, LeaseLost, TensorDBError
from tensordb_core.loop.builders import build_model
from tensordb_core.loop.framework import DBLogger, fit_generator
from tensordb_core.warehouse.handle import TensorDB

Progress = Callable[[str], None]


class Interrupted(TensorDBError):
    """A job stopped before it finished because its worker was asked to stop (the job is released)."""


@dataclass(frozen=True)
class BuildPolicy:
    """How a worker may turn an architecture document into a model.

    ``allow_import``: builders named ``package.module:function`` may be imported.
    ``trusted``: architecture strings that are Python code may be executed.
    Both default to off: an architecture is data naming an installed builder.
    """

    allow_import: bool = False
    trusted: bool = False

    def build(self, db: TensorDB, arch_query: Mapping[str, Any], hyper: Mapping[str, Any]) -> tuple[Any, dict]:
        """``(model, architecture document)`` for the newest architecture matching ``arch_query``."""
        code, doc = db.find_model_architecture(dict(arch_query))
        if doc is None:
            raise DocumentNotFound(f"no architecture matches {dict(arch_query)!r}")
        return build_model(code, hyper, allow_import=self.allow_import, trusted=self.trusted), doc


DEFAULT_POLICY = BuildPolicy()


class _Lease:
    """Heartbeats a job at most every ``lease_s / 3`` seconds (a write per heartbeat, not per batch)."""

    def __init__(self, job: Any) -> None:
        self.job, self.every = job, max(0.05, float(getattr(job, "lease_s", 60.0)) / 3)
        self.last = time.monotonic()

    def beat(self, force: bool = False) -> None:
        if force or time.monotonic() - self.last >= self.every:
            self.job.heartbeat()
            self.last = time.monotonic()


def _stopped(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def _train_epoch(db: TensorDB, model: Any, logger: DBLogger, spec: Mapping[str, Any], seed: int,
                 lease: _Lease, stop: threading.Event | None) -> dict[str, float]:
    """One pass over the job's data; raises :class:`Interrupted` when ``stop`` is set between batches."""

    def between_batches() -> None:
        lease.beat()
        if _stopped(stop):
            raise Interrupted("stop requested")

    with db.data_generator(spec.get("data", {}), batch_size=int(spec.get("batch_size", 32)), shuffle=True,
                           seed=seed, epochs=1) as batches:
        return fit_generator(model, batches, logger, after_batch=between_batches)


def _end_epoch(db: TensorDB, model: Any, logger: DBLogger, epoch: int, train: Mapping[str, float],
               valid: tuple[Any, Any] | None, extra_tags: Mapping[str, Any] | None = None) -> dict[str, Any]:
    metrics = {"train_loss": train.get("loss", 0.0), "train_acc": train.get("acc", 0.0)}
    if valid is not None and valid[0] is not None and len(valid[0]):
        metrics["valid_acc"] = model.evaluate(*valid)["acc"]
    if extra_tags:
        logger.tags.update(extra_tags)
    logger.on_epoch_end(epoch, metrics)
    return metrics


def _say_epoch(progress: Progress | None, job: Any, epoch: int, metrics: Mapping[str, Any]) -> None:
    if progress:
        progress(f"job {job.id[-6:]} epoch {epoch + 1}: loss {metrics['train_loss']:.3f}"
                 + (f" valid_acc {metrics['valid_acc']:.3f}" if "valid_acc" in metrics else ""))


def run_train_job(db: TensorDB, job: Any, progress: Progress | None = None, *,
                  stop: threading.Event | None = None, policy: BuildPolicy = DEFAULT_POLICY) -> dict[str, Any]:
    """Train the model a job describes, logging every step and saving parameters every epoch."""
    spec = job.spec
    hyper = dict(spec.get("hyper", {}))
    model, arch_doc = policy.build(db, spec.get("arch", {}), hyper)
    valid = db.find_data(spec["valid"]).arrays() if spec.get("valid") else None
    logger = DBLogger(db, model, tags={"job": job.id, "arch": arch_doc["_id"], "hyper": hyper})
    lease = _Lease(job)
    started, best = time.time(), None
    for epoch in range(int(spec.get("epochs", 1))):
        train = _train_epoch(db, model, logger, spec, hyper.get("seed", 0) * 1000 + epoch, lease, stop)
        metrics = _end_epoch(db, model, logger, epoch, train, valid)
        best = max(best or 0.0, metrics.get("valid_acc", 0.0))
        lease.beat(force=True)
        _say_epoch(progress, job, epoch, metrics)
    db.flush()
    return {"best_valid_acc": best, "steps": logger.step, "seconds": time.time() - started, "saved": logger.saved}


def continuous_options(spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"min_new", "max_rounds"}`` of a continuous job, or None for a job with a fixed number of epochs."""
    value = spec.get("continuous")
    if not value:
        return None
    opts = dict(value) if isinstance(value, Mapping) else {}
    min_new, max_rounds = int(opts.get("min_new", 1)), opts.get("max_rounds")
    if min_new < 1 or (max_rounds is not None and int(max_rounds) < 1):
        raise InvalidDocument("continuous.min_new and continuous.max_rounds must be at least 1")
    return {"min_new": min_new, "max_rounds": None if max_rounds is None else int(max_rounds)}


def _wait_for_data(db: TensorDB, query: Mapping[str, Any], after: int, min_new: int, lease: _Lease,
                   stop: threading.Event | None, poll_s: float) -> None:
    """Block until ``min_new`` samples matching ``query`` arrived after ``_seq`` ``after``."""
    scoped = db.scope.query(query)
    while True:
        if sum(1 for _ in db.index.tail("data", scoped, after=after, limit=min_new)) >= min_new:
            return
        lease.beat()
        if stop is None:
            time.sleep(poll_s)
        elif stop.wait(poll_s):
            raise Interrupted("stop requested")


def run_continuous_job(db: TensorDB, job: Any, progress: Progress | None = None, *,
                       stop: threading.Event | None = None, policy: BuildPolicy = DEFAULT_POLICY,
                       poll_s: float = 1.0) -> dict[str, Any]:
    """Train round after round as new data arrives (see the module docs); returns when ``max_rounds`` is reached."""
    spec, opts = job.spec, continuous_options(job.spec) or {"min_new": 1, "max_rounds": None}
    hyper = dict(spec.get("hyper", {}))
    model, arch_doc = policy.build(db, spec.get("arch", {}), hyper)
    logger = DBLogger(db, model, tags={"job": job.id, "arch": arch_doc["_id"], "hyper": hyper})
    lease = _Lease(job)
    seen, epoch, rounds = 0, 0, 0
    for checkpoint in db.find_parameter_docs({"job": job.id}, limit=1):  # resume where the last owner stopped
        model.load_parameters(db.load_parameters(checkpoint))
        logger.step = int(checkpoint.get("step") or 0)
        epoch, rounds = int(checkpoint.get("epoch", -1)) + 1, int(checkpoint.get("round", -1)) + 1
        seen = int(((checkpoint.get("lineage") or {}).get("data") or {}).get("last_seq") or 0)
        if progress:
            progress(f"job {job.id[-6:]} resumes from {checkpoint['_id']} (step {logger.step}, round {rounds})")
    started = time.time()
    per_round = int(spec.get("epochs", 1))
    data_q = spec.get("data", {})
    while opts["max_rounds"] is None or rounds < opts["max_rounds"]:
        _wait_for_data(db, data_q, seen, opts["min_new"] if rounds or seen else 1, lease, stop, poll_s)
        valid = db.find_data(spec["valid"]).arrays() if spec.get("valid") else None
        for _ in range(per_round):
            train = _train_epoch(db, model, logger, spec, hyper.get("seed", 0) * 1000 + epoch, lease, stop)
            metrics = _end_epoch(db, model, logger, epoch, train, valid, {"round": rounds})
            _say_epoch(progress, job, epoch, metrics)
            epoch += 1
        # The last epoch read every sample up to this _seq (its population was fixed when it started).
        seen = int(db.current_lineage().get("data", {}).get("last_seq") or seen)
        db.flush()
        lease.beat(force=True)
        rounds += 1
    return {"rounds": rounds, "steps": logger.step, "seconds": time.time() - started, "saved": logger.saved[-100:]}


def run_job(db: TensorDB, job: Any, progress: Progress | None = None, *, stop: threading.Event | None = None,
            policy: BuildPolicy = DEFAULT_POLICY, poll_s: float = 1.0) -> dict[str, Any]:
    """Run a train job, continuous or not, inside its own run (``db.start_run``).

    The run holds the job's hyperparameters and tags, and its logs and
    parameter sets point at it; it ends ``finished``, ``failed`` (the job
    raised), or ``killed`` (the worker was stopped, or lost the lease).
    """
    db.lineage["job"] = job.id
    spec = job.spec if isinstance(job.spec, Mapping) else {}
    hyper = spec.get("hyper") if isinstance(spec.get("hyper"), Mapping) else {}
    worker = (getattr(job, "doc", None) or {}).get("worker")
    tags = {"job": job.id, "worker": worker, "continuous": continuous_options(spec) is not None}
    with db.start_run(f"job {job.id}", params=hyper, tags=tags) as run:
        try:
            if continuous_options(job.spec) is not None:
                return run_continuous_job(db, job, progress, stop=stop, policy=policy, poll_s=poll_s)
            return run_train_job(db, job, progress, stop=stop, policy=policy)
        except (Interrupted, LeaseLost) as exc:
            run.end("killed", error=f"{type(exc).__name__}: {exc}")
            raise


def finish_job(db: TensorDB, job: Any, progress: Progress | None = None, *, stop: threading.Event | None = None,
               policy: BuildPolicy = DEFAULT_POLICY, poll_s: float = 1.0) -> bool:
    """Run a claimed job and settle it: complete, fail (retry/dead) or release on stop.  True if completed."""
    try:
        result = run_job(db, job, progress, stop=stop, policy=policy, poll_s=poll_s)
    except LeaseLost:
        return False
    except Interrupted:
        db.flush()
        try:
            job.release()
        except LeaseLost:
            pass
        if progress:
            progress(f"job {job.id[-6:]} released (worker stopping)")
        return False
    except Exception as exc:  # noqa: BLE001 - the job records why it failed; the worker goes on
        db.flush()
        try:
            job.fail(f"{type(exc).__name__}: {exc}")
        except LeaseLost:
            pass
        if progress:
            progress(f"job {job.id[-6:]} failed: {exc}")
        return False
    job.complete(result)
    return True


def evaluate_parameters(db: TensorDB, doc: Mapping[str, Any], X: Any, y: Any, *, prefix: str = "test",
                        policy: BuildPolicy = DEFAULT_POLICY) -> dict[str, float] | None:
    """``<prefix>_<metric>`` scores of one saved parameter set on ``(X, y)``, without recording them.

    Returns None when its architecture is unknown.
    """
    arch = doc.get("arch") or (doc.get("lineage") or {}).get("arch")
    if arch is None:
        return None
    try:
        model, _ = policy.build(db, {"_id": arch}, doc.get("hyper") or {})
    except DocumentNotFound:
        return None
    model.load_parameters(db.load_parameters(doc))
    return {f"{prefix}_{k}": float(v) for k, v in model.evaluate(X, y).items()}
