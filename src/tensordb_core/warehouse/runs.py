"""Runs: one training attempt with its hyperparameters, tags, status and metric summaries.

MLflow's verbs, stored in the ``runs`` collection.  A run's step metrics go to
the ``logs`` collection (the same records ``train_log`` writes, tagged with the
run id); the run document keeps what a search needs: ``params``, ``tags``,
``status`` and, per metric, the latest value (``metrics.<name>``), the
minimum (``metrics_min.<name>``), the maximum (``metrics_max.<name>``) and the
step of the latest (``metrics_step.<name>``).  The summaries are kept in
memory and written by the heartbeat (and at the end), so a loop that logs every
step still pays no extra round trip per step.

Why a heartbeat: a SIGKILLed trainer cannot mark its run ``failed``.  A
daemon thread renews ``expires`` every ``heartbeat_s``; a ``running`` run
whose ``expires`` is in the past reads ``killed`` (the rule is evaluated on
every read, and a writable handle also stores it).  A run declared killed
whose process was only stalled comes back to ``running`` at its next beat.
"""

from __future__ import annotations

import contextlib
import getpass
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Self

from tensordb_core.errors import DocumentNotFound, InvalidDocument, TensorDBError
from tensordb_core.store.scope import StudyScope, check_json_value, check_key
from tensordb_core.warehouse.artifacts import log_artifact
from tensordb_core.warehouse.names import RUNS

COLLECTION = RUNS
STATES = ("running", "finished", "failed", "killed")
ENDED = ("finished", "failed", "killed")
#: Defaults: a killed process's run reads ``killed`` within ``LAPSE_S`` (+ one beat) seconds.
HEARTBEAT_S = 10.0
LAPSE_S = 30.0
NEWEST_FIRST = [("_seq", -1)]

#: ``log(kind, metrics, step, run)`` — the handle's log writer (the ``logs`` collection).
LogFn = Callable[[str, Mapping[str, Any], "int | None", str], None]


class RunNotActive(TensorDBError):
    """Logging to a run that has ended (finished, failed or killed): start a new run instead."""


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database (containers)
        return "unknown"


def check_params(params: Mapping[str, Any] | None, where: str = "params") -> dict[str, Any]:
    """Hyperparameters as a JSON-like dict with plain keys, or :class:`InvalidDocument`."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise InvalidDocument(f"{where} must be a dict, not {type(params).__name__}")
    return check_json_value(dict(params), where)


def check_metric_values(metrics: Mapping[str, Any]) -> dict[str, float | int]:
    """Metrics a run accepts: finite numbers under plain names (a diverged NaN is refused, not stored)."""
    if not isinstance(metrics, Mapping) or not metrics:
        raise InvalidDocument("metrics must be a non-empty dict of name -> number")
    out: dict[str, float | int] = {}
    for name, value in metrics.items():
        check_key(name, "metrics")
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidDocument(f"metric {name!r}: {type(value).__name__} is not a number")
        if not math.isfinite(value):
            raise InvalidDocument(f"metric {name!r}: {value} is not finite (log a finite value or a tag)")
        out[name] = value
    return out


def summary_name(kind: str, name: str) -> str:
    """The run-summary key of a ``kind`` log metric: train keeps its name, valid/test get a prefix."""
    return name if kind == "train" or name.startswith(f"{kind}_") else f"{kind}_{name}"


def effective(doc: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """``doc`` with the lapse rule applied: a ``running`` run past its ``expires`` reads ``killed``."""
    if doc.get("status") == "running" and isinstance(doc.get("expires"), (int, float)) \
            and doc["expires"] < (time.time() if now is None else now):
        return {**doc, "status": "killed", "ended": doc["expires"]}
    return doc


def reap_lapsed(scope: StudyScope) -> int:
    """Store ``killed`` for this study's runs whose heartbeat lapsed (a no-op on the read-only view)."""
    if scope.study is None:
        return 0
    now = time.time()
    return scope.index.update_many(COLLECTION, scope.query({"status": "running", "expires": {"$lt": now}}),
                                   {"$set": {"status": "killed", "ended": now}})


def get_run(scope: StudyScope, run_id: str) -> dict[str, Any]:
    """The run document (lapse rule applied), or :class:`DocumentNotFound`."""
    reap_lapsed(scope)
    for doc in scope.index.find(COLLECTION, scope.query({"_id": run_id}), limit=1):
        return effective(doc)
    raise DocumentNotFound(f"no run {run_id!r} in study {scope.study!r}")


def search_runs(scope: StudyScope, query: Mapping[str, Any] | None = None, *, sort: Any = None,
                limit: int = 0) -> list[dict[str, Any]]:
    """Runs matching a portable query over ``params.*``, ``tags.*``, ``status``, ``name`` and the metric summaries."""
    reap_lapsed(scope)
    docs = scope.index.find(COLLECTION, scope.query(query), sort=sort or NEWEST_FIRST, limit=limit)
    return [effective(d) for d in docs]


class Run:
    """A started run: log to it, then end it (or use it as a context manager).

    Not shared across processes: each process (each DDP rank, each worker)
    opens its own run, or logs through its handle's active run.
    """

    def __init__(self, scope: StudyScope, doc: dict[str, Any], log: LogFn, *, heartbeat_s: float,
                 on_end: Callable[[Run], None] | None = None) -> None:
        self._scope, self._log, self._on_end = scope, log, on_end
        self.id: str = doc["_id"]
        self.name: str | None = doc.get("name")
        self.heartbeat_s, self.lapse_s = heartbeat_s, float(doc["lapse_s"])
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[float, int | None]] = {}  # name -> latest (value, step)
        self._low: dict[str, float] = {}
        self._high: dict[str, float] = {}
        self._ended: str | None = None
        self._stop = threading.Event()
        self._beater = threading.Thread(target=self._beat_forever, name=f"tensordb-run-{self.id[-6:]}", daemon=True)
        self._beater.start()

    # -- state ----------------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        """``running``, ``finished``, ``failed`` or ``killed``, as stored (lapse rule applied)."""
        return get_run(self._scope, self.id)["status"]

    @property
    def doc(self) -> dict[str, Any]:
        """The run document as stored now (summaries written up to the last beat)."""
        return get_run(self._scope, self.id)

    def _require_active(self) -> None:
        if self._ended is not None:
            raise RunNotActive(f"run {self.id} has ended ({self._ended}): start a new run to log more")

    # -- logging --------------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters (JSON-like values; a later value for the same name replaces it)."""
        self._require_active()
        cleaned = check_params(params)
        if cleaned:
            self._update({"$set": {f"params.{k}": v for k, v in cleaned.items()}})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Attach searchable tags (``tags.<name>`` in :func:`search_runs`)."""
        self._require_active()
        cleaned = check_params(tags, "tags")
        if cleaned:
            self._update({"$set": {f"tags.{k}": v for k, v in cleaned.items()}})

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None, *, kind: str = "train") -> None:
        """Step metrics: written to ``logs`` (like ``train_log``) and summarised on the run (latest/min/max)."""
        self._require_active()
        cleaned = check_metric_values(metrics)
        self._log(kind, cleaned, step, self.id)
        self.observe(kind, cleaned, step)

    def observe(self, kind: str, metrics: Mapping[str, Any], step: int | None) -> None:
        """Fold logged metrics into the summaries (numbers only; written at the next beat or the end)."""
        with self._lock:
            for name, value in metrics.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    continue  # a "nan" kept by train_log, a string: logged, not summarised
                key = summary_name(kind, str(name))
                if key.startswith("$") or "." in key:
                    continue
                self._pending[key] = (value, step)
                self._low[key] = min(self._low.get(key, value), value)
                self._high[key] = max(self._high.get(key, value), value)

    def flush(self) -> None:
        """Write the pending metric summaries now."""
        with self._lock:
            pending, low, high = self._pending, self._low, self._high
            self._pending, self._low, self._high = {}, {}, {}
        if not pending:
            return
        update: dict[str, Any] = {"$set": {}, "$min": {f"metrics_min.{k}": v for k, v in low.items()},
                                  "$max": {f"metrics_max.{k}": v for k, v in high.items()}}
        for key, (value, step) in pending.items():
            update["$set"][f"metrics.{key}"] = value
            update["$set"][f"metrics_step.{key}"] = step
        try:
            self._update(update)
        except BaseException:
            with self._lock:  # keep them for the next attempt; newer values logged meanwhile win
                for key, item in pending.items():
                    self._pending.setdefault(key, item)
                    self._low[key] = min(self._low.get(key, low[key]), low[key])
                    self._high[key] = max(self._high.get(key, high[key]), high[key])
            raise

    def log_artifact(self, source: Any, name: str | None = None, **options: Any) -> dict[str, Any]:
        """Store a file (path), bytes, or a matplotlib figure (PNG) under ``name``; see :mod:`.artifacts`."""
        self._require_active()
        return log_artifact(self._scope, self.id, source, name, **options)

    def log_text(self, text: str, name: str) -> dict[str, Any]:
        """Store ``text`` (UTF-8) as an artifact; :meth:`TensorDB.load_artifact` returns it as ``str``."""
        return self.log_artifact(text, name, kind="text")

    def log_dict(self, value: Any, name: str) -> dict[str, Any]:
        """Store a JSON-like value as an artifact; :meth:`TensorDB.load_artifact` returns it parsed."""
        return self.log_artifact(value, name, kind="json")

    def log_figure(self, figure: Any, name: str) -> dict[str, Any]:
        """Store a matplotlib figure as a PNG artifact."""
        return self.log_artifact(figure, name, kind="figure")

    # -- heartbeat and end ----------------------------------------------------------------------------
    def _update(self, update: Mapping[str, Any]) -> None:
        self._scope.index.update_many(COLLECTION, self._scope.query({"_id": self.id}), update)

    def beat(self) -> None:
        """Write pending summaries and renew the lease (revives a run a stall made read ``killed``)."""
        self.flush()
        now = time.time()
        self._scope.index.update_many(
            COLLECTION, self._scope.query({"_id": self.id, "status": {"$in": ["running", "killed"]}, "ended_by": None}),
            {"$set": {"status": "running", "heartbeat": now, "expires": now + self.lapse_s, "ended": None}})

    def _beat_forever(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with contextlib.suppress(Exception):  # a missed beat is retried; a long outage reads "killed"
                self.beat()

    def end(self, status: str = "finished", *, error: str | None = None) -> None:
        """End the run (``finished``, ``failed`` or ``killed``); a second call does nothing."""
        if status not in ENDED:
            raise InvalidDocument(f"a run ends as one of {ENDED}, not {status!r}")
        if self._ended is not None:
            return
        self._stop.set()
        self._beater.join(timeout=5)
        try:
            self.flush()
            fields: dict[str, Any] = {"status": status, "ended": time.time(), "ended_by": "process", "expires": None}
            if error is not None:
                fields["error"] = str(error)[:10000]
            self._update({"$set": fields})
        finally:
            self._ended = status
            if self._on_end is not None:
                self._on_end(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            self.end("finished")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("killed", error="KeyboardInterrupt")
        else:
            self.end("failed", error=f"{exc_type.__name__}: {exc}")

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self.name!r}, ended={self._ended!r})"


def start_run(scope: StudyScope, log: LogFn, *, name: str | None = None, params: Mapping[str, Any] | None = None,
              tags: Mapping[str, Any] | None = None, job: str | None = None, heartbeat_s: float = HEARTBEAT_S,
              lapse_s: float = LAPSE_S, on_end: Callable[[Run], None] | None = None) -> Run:
    """Insert a ``running`` run document and start its heartbeat."""
    scope.require_writable()
    if name is not None and (not isinstance(name, str) or len(name) > 500):
        raise InvalidDocument("a run name is a string of at most 500 characters")
    if not (0 < heartbeat_s < lapse_s):
        raise InvalidDocument(f"heartbeat_s ({heartbeat_s}) must be positive and shorter than lapse_s ({lapse_s})")
    now = time.time()
    doc = scope.new_doc(name=name, status="running", params=check_params(params), tags=check_params(tags, "tags"),
                        metrics={}, metrics_min={}, metrics_max={}, metrics_step={}, job=job, started=now,
                        ended=None, ended_by=None, heartbeat=now, expires=now + float(lapse_s),
                        lapse_s=float(lapse_s), host=socket.gethostname(), pid=os.getpid(), user=_user(), error=None)
    scope.index.insert_many(COLLECTION, [doc])
    return Run(scope, doc, log, heartbeat_s=float(heartbeat_s), on_end=on_end)
