"""``tensordb worker``: the trainer, evaluator and deployer loops, with clean shutdown.

Each role only pulls from the warehouse, so the loop needs no coordinator::

    tensordb worker --uri mongodb://db/lab --study s --role trainer
    tensordb worker --uri mongodb://db/lab --study s --role evaluator --test-query '{"split": "test"}'
    tensordb worker --uri mongodb://db/lab --study s --role deployer --metric test_acc --http-port 8080

* **trainer** pops train jobs (atomic claim with a lease) and runs them
  (:func:`roles.finish_job`); a continuous job trains again whenever new data
  arrives.
* **evaluator** follows the ``params`` collection (:class:`~tensordb_core.stream.follow.Follower`) from
  the last ``_seq`` it saw (no rescans), scores each new parameter set on a
  held-out query and records ``test_acc`` (``<prefix>_<metric>``) on it.  It
  claims each one first (:mod:`tensordb_core.loop.scoring`), so several evaluators
  share the work: each parameter set is scored once per prefix.
* **deployer** keeps the best parameter set loaded and serves it
  (:mod:`tensordb_core.loop.deployer`).

This is the only worker loop: ``tensordb worker``, ``tensordb demo`` and the
tests all run :func:`run_worker`.  A trainer or evaluator that should drain
the work in hand and return (the demo, a batch job, a test) sets
``WorkerOptions(until_idle=True)``: the trainer returns once no job is queued,
the evaluator once a pass over ``params`` finds nothing new to score (a
parameter set another live evaluator holds is left to it).

Stopping: SIGTERM or SIGINT sets a stop event.  A trainer checks it between
batches and while waiting for data, then *releases* its job (requeued without
spending an attempt; a continuous job resumes from its last checkpoint on the
next worker); the other roles finish the item in hand.  Every worker keeps a
document in the ``workers`` collection (role, host, pid, job, heartbeat,
state) for ``tensordb status``.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tensordb_core.errors import InvalidQuery, TensorDBError
from tensordb_core.loop.roles import DEFAULT_POLICY, BuildPolicy, Progress, evaluate_parameters, finish_job
from tensordb_core.loop.scoring import DEFAULT_LEASE_S, SCORED, ScoringClaims
from tensordb_core.store.protocols import new_id
from tensordb_core.stream.follow import Follower
from tensordb_core.warehouse.handle import TensorDB
from tensordb_core.warehouse.jobs import default_worker_name
from tensordb_core.warehouse.params import COLLECTION as PARAMS

ROLES = ("trainer", "evaluator", "deployer")
#: Collection of worker records (one document per worker process run).
WORKERS = "workers"


@dataclass
class WorkerOptions:
    """Settings of one worker; the CLI flags map one to one."""

    poll_s: float = 1.0
    heartbeat_s: float = 5.0
    name: str | None = None
    policy: BuildPolicy = DEFAULT_POLICY
    progress: Progress | None = None
    #: Trainer and evaluator: return once there is nothing to do (no queued job; nothing new to score)
    #: instead of polling until stopped.  A deployer serves until stopped, so it refuses this.
    until_idle: bool = False
    # trainer
    job_query: dict[str, Any] = field(default_factory=dict)
    lease_s: float = 120.0
    # evaluator
    test_query: dict[str, Any] = field(default_factory=lambda: {"split": "test"})
    prefix: str = "test"
    score_lease_s: float = DEFAULT_LEASE_S  # a scoring claim older than this may be taken over (scoring.py)
    # deployer
    metric: str = "test_acc"
    mode: str = "max"
    min_improvement: float = 0.0
    http_port: int | None = None
    http_host: str = "127.0.0.1"
    probe_query: dict[str, Any] = field(default_factory=dict)
    on_ready: Callable[[dict[str, Any]], None] | None = None


@contextmanager
def stop_on_signals(stop: threading.Event, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
    """Set ``stop`` on SIGTERM/SIGINT while the block runs (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda _sig, _frame: stop.set()) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class WorkerRecord:
    """This worker's document in ``workers``, kept fresh by a heartbeat thread.

    Why a thread: a trainer inside a long epoch still shows as alive; the
    record says the process lives, the job's own lease says the job progresses.
    """

    def __init__(self, db: TensorDB, role: str, name: str, heartbeat_s: float) -> None:
        self.db, self.id, self.heartbeat_s = db, new_id(), float(heartbeat_s)
        now = time.time()
        db.index.insert_many(WORKERS, [db.scope.new_doc(
            _id=self.id, name=name, role=role, host=socket.gethostname(), pid=os.getpid(), started=now,
            heartbeat=now, heartbeat_s=self.heartbeat_s, state="running", job=None, info={})])
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._beat_forever, name="tensordb-worker-heartbeat", daemon=True)
        self._thread.start()

    def update(self, **fields: Any) -> None:
        """Set fields on the record (and refresh its heartbeat)."""
        self.db.index.update_many(WORKERS, self.db.scope.query({"_id": self.id}),
                                  {"$set": {**fields, "heartbeat": time.time()}})

    def _beat_forever(self) -> None:
        while not self._quit.wait(self.heartbeat_s):
            try:
                self.update()
            except TensorDBError:
                pass  # the store is briefly unreachable: the next beat retries

    def close(self, state: str = "stopped") -> None:
        self._quit.set()
        self._thread.join(timeout=self.heartbeat_s + 5)
        self.update(state=state, job=None, stopped=time.time())


def run_worker(db: TensorDB, role: str, options: WorkerOptions | None = None, *,
               stop: threading.Event | None = None) -> int:
    """Run one role until ``stop`` is set (or SIGTERM/SIGINT in the main thread); returns jobs/items handled.

    With ``options.until_idle`` a trainer or evaluator also returns once it runs out of work.  Either way
    the worker's record is marked stopped (or failed, on an exception) before this returns.
    """
    if role not in ROLES:
        raise InvalidQuery(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    opts = options or WorkerOptions()
    if opts.poll_s <= 0 or opts.heartbeat_s <= 0:
        raise InvalidQuery("poll_s and heartbeat_s must be positive")
    if opts.until_idle and role == "deployer":
        raise InvalidQuery("a deployer serves until stopped: until_idle applies to trainers and evaluators")
    stop = stop if stop is not None else threading.Event()
    name = opts.name or f"{role}@{default_worker_name()}"
    loop = {"trainer": _trainer, "evaluator": _evaluator, "deployer": _deployer}[role]
    with stop_on_signals(stop):  # before the record exists: a SIGTERM from then on is a clean stop
        record = WorkerRecord(db, role, name, opts.heartbeat_s)
        state = "failed"
        try:
            handled = loop(db, opts, stop, record, name)
            state = "stopped"
            return handled
        finally:
            db.flush()
            record.close(state)


def _say(opts: WorkerOptions, message: str) -> None:
    if opts.progress is not None:
        opts.progress(message)


def _trainer(db: TensorDB, opts: WorkerOptions, stop: threading.Event, record: WorkerRecord, name: str) -> int:
    done = 0
    while not stop.is_set():
        job = db.pop_job({"type": "train", **opts.job_query}, lease_s=opts.lease_s, worker=name)
        if job is None:
            if opts.until_idle:
                break
            stop.wait(opts.poll_s)
            continue
        record.update(job=job.id)
        _say(opts, f"claimed job {job.id} (attempt {job.doc.get('attempts')})")
        if finish_job(db, job, opts.progress, stop=stop, policy=opts.policy, poll_s=opts.poll_s):
            done += 1
            _say(opts, f"job {job.id} done")
        record.update(job=None, jobs_done=done)
    return done


class HeldOut:
    """The evaluator's held-out arrays, reloaded only when the matching sample count changes."""

    def __init__(self, db: TensorDB, query: Mapping[str, Any]) -> None:
        self.db, self.query = db, dict(query)
        self.count = -1
        self.X: Any = None
        self.y: Any = None

    def arrays(self) -> tuple[Any, Any]:
        cursor = self.db.find_data(self.query)
        count = len(cursor)
        if count != self.count:
            self.X, self.y = cursor.arrays() if count else (None, None)
            self.count = count
        return self.X, self.y


def _evaluator(db: TensorDB, opts: WorkerOptions, stop: threading.Event, record: WorkerRecord, name: str) -> int:
    held_out = HeldOut(db, opts.test_query)
    scored = 0
    follower = Follower(db.index, PARAMS, db.scope.query({}))  # never skips a late-committed save
    claims = ScoringClaims(db.scope, opts.prefix, worker=name, lease_s=opts.score_lease_s)
    while not stop.is_set():
        X, y = held_out.arrays()
        if X is None:
            if opts.until_idle:
                break  # no held-out data: nothing can be scored
            stop.wait(opts.poll_s)
            continue
        skipped = claims.skipped
        batch = claims.due() + follower.poll()  # due: claimed elsewhere, but that lease ran out
        for doc in batch:
            if stop.is_set():
                break
            if claims.has_scores(doc):
                continue
            try:
                outcome, scores = claims.score(
                    doc, lambda d, X=X, y=y: evaluate_parameters(db, d, X, y, prefix=opts.prefix, policy=opts.policy))
            except Exception as exc:  # noqa: BLE001 - a model that cannot load or evaluate must not stop the loop
                _say(opts, f"cannot score {doc['_id']}: {type(exc).__name__}: {exc}")
                continue
            if outcome == SCORED and scores is not None:
                scored += 1
                _say(opts, f"scored {doc['_id']}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
                record.update(scored=scored, last_scored=doc["_id"])
        if claims.skipped != skipped:
            record.update(claimed_elsewhere=claims.skipped)
        if opts.until_idle:
            if not batch:
                break  # caught up with params
            continue  # more may have been saved while this batch was scored: look again at once
        stop.wait(opts.poll_s)
    return scored


def _deployer(db: TensorDB, opts: WorkerOptions, stop: threading.Event, record: WorkerRecord, name: str) -> int:
    from tensordb_core.loop.deployer import Deployer, serve_http

    deployer = Deployer(db, metric=opts.metric, mode=opts.mode, min_improvement=opts.min_improvement,
                        policy=opts.policy, progress=opts.progress, probe=opts.probe_query)
    deployer.resume()
    server = None
    info: dict[str, Any] = {"metric": opts.metric}
    if opts.http_port is not None:
        server = serve_http(deployer, opts.http_host, opts.http_port)
        host, port = server.server_address[:2]
        info["http"] = f"http://{host}:{port}"
        _say(opts, f"serving predictions at {info['http']}/predict")
    record.update(info=info)
    if opts.on_ready is not None:
        opts.on_ready(info)
    try:
        while not stop.is_set():
            try:
                if deployer.refresh():
                    served = deployer.served
                    record.update(serving=served.id if served else None, swaps=deployer.swaps)
            except TensorDBError as exc:  # the store is unreachable for a moment: keep serving, retry
                _say(opts, f"cannot refresh: {exc}")
            stop.wait(opts.poll_s)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    return deployer.swaps


def find_workers(db: TensorDB, *, include_stopped: bool = False) -> list[dict[str, Any]]:
    """Worker records of this study, newest first, with ``alive`` (heartbeat within 3 intervals) and ``age_s``."""
    q = {} if include_stopped else {"state": "running"}
    now = time.time()
    out = []
    for doc in db.index.find(WORKERS, db.scope.query(q), sort=[("_seq", -1)]):
        age = now - float(doc.get("heartbeat") or 0)
        out.append({**doc, "age_s": age,
                    "alive": doc.get("state") == "running" and age <= 3 * float(doc.get("heartbeat_s") or 5)})
    return out
