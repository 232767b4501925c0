"""What the UI's JSON endpoints answer: studies, runs and their curves, models with lineage, jobs and workers.

Every function takes an open handle and returns plain JSON-able values; the
routes in :mod:`tensordb_core.ui.app` only parse the request and call one.
Reads only: runs are read with the heartbeat lapse rule applied in memory
(``runs.effective``) rather than through ``search_runs``, which also stores
``killed`` for lapsed runs — a browser looking must never change what it looks at.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from tensordb_core.errors import DocumentNotFound, InvalidQuery
from tensordb_core.loop.worker import WORKERS, find_workers
from tensordb_core.store.scope import check_study
from tensordb_core.warehouse import artifacts, data, jobs, logs, models, params, registry, runs
from tensordb_core.warehouse.handle import TensorDB

#: The collections whose documents count as a study's activity (and make a study exist).
ACTIVITY = (data.COLLECTION, runs.COLLECTION, params.COLLECTION, jobs.COLLECTION, logs.COLLECTION,
            models.COLLECTION, registry.MODELS, WORKERS)
#: Rows a listing returns at most, whatever the request asks: a page stays fast on a big study.
MAX_ROWS = 1000
#: Points per curve at most: longer series are thinned evenly (the last point always kept).
MAX_POINTS = 5000


def list_studies(db: TensorDB) -> list[str]:
    """Every study name in the warehouse, sorted.

    One indexed query per study and collection (a skip scan over ``_study``),
    never a scan of the samples: a warehouse of millions of samples in three
    studies costs a few dozen small queries.
    """
    found: set[str] = set()
    for collection in ACTIVITY:
        last = None
        while True:
            q = {"_study": {"$gt": last if last is not None else ""}}
            doc = next(iter(db.index.find(collection, q, sort=[("_study", 1)], limit=1,
                                          projection={"_study": 1})), None)
            if doc is None:
                break
            last = doc["_study"]
            found.add(last)
    return sorted(found)


def study_exists(db: TensorDB, study: str) -> bool:
    """True when any collection holds a document of ``study``."""
    return any(db.index.count(c, {"_study": study}) for c in ACTIVITY)


def open_study(db: TensorDB, study: str) -> TensorDB:
    """The handle of ``study`` on the same stores, or DocumentNotFound (InvalidDocument for a malformed name)."""
    check_study(study)
    if not study_exists(db, study):
        raise DocumentNotFound(f"no study {study!r} in this warehouse (GET /api/studies lists them)")
    return db.use_study(study)


def _newest(db: TensorDB, collection: str, field: str = "_created") -> float | None:
    doc = next(iter(db.index.find(collection, db.scope.query({}), sort=[("_seq", -1)], limit=1)), None)
    value = doc.get(field) if doc else None
    return float(value) if isinstance(value, (int, float)) else None


def study_summary(db: TensorDB) -> dict[str, Any]:
    """Counts (samples, runs, parameter sets, jobs) and the time of the newest document of any kind."""
    count = lambda c: db.index.count(c, db.scope.query({}))
    times = [t for c in ACTIVITY if (t := _newest(db, c)) is not None]
    for doc in db.index.find(WORKERS, db.scope.query({}), sort=[("_seq", -1)], limit=5):
        if isinstance(doc.get("heartbeat"), (int, float)):
            times.append(float(doc["heartbeat"]))
    return {"study": db.study, "counts": {"samples": count(data.COLLECTION), "runs": count(runs.COLLECTION),
                                          "parameter_sets": count(params.COLLECTION), "jobs": count(jobs.COLLECTION),
                                          "registered_models": count(registry.MODELS)},
            "last_activity": max(times) if times else None}


def study_detail(db: TensorDB) -> dict[str, Any]:
    """The summary plus jobs per status, live workers and the dataset versions (when the warehouse has them)."""
    out = study_summary(db)
    out["jobs"] = {s: db.index.count(jobs.COLLECTION, db.scope.query({"status": s})) for s in jobs.STATES}
    out["workers"] = [_worker(w) for w in find_workers(db)]
    out["datasets"] = list_datasets(db)
    return out


def list_datasets(db: TensorDB) -> list[dict[str, Any]]:
    """The study's dataset versions, as ``db.list_datasets()`` gives them, made JSON-safe."""
    return [clean(d) for d in db.list_datasets()]


# -- runs ------------------------------------------------------------------------------------------
def run_row(doc: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """A run as the table shows it: status after the lapse rule, duration in seconds, params and latest metrics."""
    doc = runs.effective(dict(doc), now)
    started = doc.get("started")
    end = doc.get("ended") or (time.time() if doc.get("status") == "running" else doc.get("heartbeat"))
    duration = end - started if isinstance(started, (int, float)) and isinstance(end, (int, float)) else None
    return clean({"id": doc["_id"], "name": doc.get("name"), "status": doc.get("status"), "started": started,
                  "ended": doc.get("ended"), "duration_s": duration, "params": doc.get("params") or {},
                  "tags": doc.get("tags") or {}, "metrics": doc.get("metrics") or {},
                  "metrics_min": doc.get("metrics_min") or {}, "metrics_max": doc.get("metrics_max") or {},
                  "job": doc.get("job"), "user": doc.get("user"), "host": doc.get("host"), "error": doc.get("error")})


def search_runs(db: TensorDB, query: Mapping[str, Any] | None, sort: list[tuple[str, int]] | None,
                limit: int) -> dict[str, Any]:
    """Runs matching ``query`` (the portable query language over the run documents), with the column names."""
    scoped = db.scope.query(query)
    docs = list(db.index.find(runs.COLLECTION, scoped, sort=sort or runs.NEWEST_FIRST, limit=limit))
    total = db.index.count(runs.COLLECTION, scoped) if len(docs) >= limit else len(docs)
    now = time.time()
    rows = [run_row(d, now) for d in docs]
    return {"runs": rows, "total": total, "shown": len(rows),
            "params": sorted({k for r in rows for k in r["params"]}),
            "metrics": sorted({k for r in rows for k in r["metrics"]})}


def _run_doc(db: TensorDB, run_id: str) -> dict[str, Any]:
    for doc in db.index.find(runs.COLLECTION, db.scope.query({"_id": run_id}), limit=1):
        return doc
    raise DocumentNotFound(f"no run {run_id!r} in study {db.study!r}")


def run_detail(db: TensorDB, run_id: str) -> dict[str, Any]:
    """One run with its artifacts (names, kinds, sizes) and the job it ran for."""
    row = run_row(_run_doc(db, run_id))
    row["artifacts"] = [artifact_row(a) for a in artifacts.list_artifacts(db.scope, run_id)]
    row["job_doc"] = _job(db, row["job"]) if row.get("job") else None
    return row


PNG_MAGIC, JPEG_MAGIC = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"
#: File artifacts with these names are shown as text when their bytes are UTF-8.
TEXT_SUFFIXES = (".txt", ".log", ".csv", ".tsv", ".md", ".json", ".yaml", ".yml", ".toml", ".ini", ".cfg")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def shown_as(doc: Mapping[str, Any]) -> str | None:
    """How the run page shows an artifact: ``image``, ``text`` or None (a download link only), by kind and name."""
    name, kind = str(doc.get("name", "")).lower(), doc.get("kind")
    if kind == "figure" or (kind == "file" and name.endswith(IMAGE_SUFFIXES)):
        return "image"
    if kind in ("text", "json") or (kind == "file" and name.endswith(TEXT_SUFFIXES)):
        return "text"
    return None


def inline_type(doc: Mapping[str, Any], body: bytes) -> str | None:
    """The media type to show ``body`` inline with, or None to send it as a download.

    Decided from the bytes, not the name: only PNG and JPEG images and UTF-8
    text are ever rendered, so an uploaded ``.html`` or ``.svg`` can never run
    in the UI's origin.
    """
    if body.startswith(PNG_MAGIC):
        return "image/png"
    if body.startswith(JPEG_MAGIC):
        return "image/jpeg"
    if shown_as(doc) == "text":
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return "application/json" if doc.get("kind") == "json" else "text/plain; charset=utf-8"
    return None


def artifact_row(doc: Mapping[str, Any]) -> dict[str, Any]:
    return clean({"name": doc["name"], "kind": doc.get("kind"), "media_type": doc.get("media_type"),
                  "size": doc.get("size"), "sha256": doc.get("sha256"), "created": doc.get("_created"),
                  "shown_as": shown_as(doc)})


def run_curves(db: TensorDB, run_id: str) -> dict[str, Any]:
    """Every metric the run logged, as ``{name, kind, metric, steps, values}`` series in step order.

    Names are the run summary's (``loss``, ``valid_acc``), so a curve and its
    column in the runs table share a name.
    """
    _run_doc(db, run_id)
    series: dict[str, dict[str, Any]] = {}
    for doc in logs.find_logs(db.scope, None, {"run": run_id}, sort=[("step", 1), ("_seq", 1)]):
        for metric, value in (doc.get("metrics") or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            name = runs.summary_name(doc.get("kind", "train"), str(metric))
            s = series.setdefault(name, {"name": name, "kind": doc.get("kind"), "metric": metric, "steps": [],
                                         "values": []})
            s["steps"].append(doc.get("step"))
            s["values"].append(value)
    for s in series.values():
        n = len(s["steps"])
        if n > MAX_POINTS:
            keep = sorted({round(i * (n - 1) / (MAX_POINTS - 1)) for i in range(MAX_POINTS)})
            s["steps"], s["values"] = [s["steps"][i] for i in keep], [s["values"][i] for i in keep]
    return {"run": run_id, "series": [series[k] for k in sorted(series)]}


# -- models ----------------------------------------------------------------------------------------
def list_models(db: TensorDB) -> list[dict[str, Any]]:
    """Registered models with their versions (metrics, lineage ids) and alias history, newest change last."""
    out = []
    for m in registry.list_models(db.scope):
        versions = registry.list_versions(db.scope, m["name"])
        out.append(clean({"name": m["name"], "description": m.get("description"),
                          "latest_version": m.get("latest_version"), "aliases": m.get("aliases") or {},
                          "updated": m.get("updated"), "versions": [_version(v) for v in versions],
                          "alias_history": [_alias_change(h) for h in registry.model_alias_history(db.scope,
                                                                                                   m["name"])]}))
    return out


def _version(v: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.get(k) for k in ("version", "param_id", "description", "run", "job", "arch", "metrics", "step",
                                  "registered", "registered_by", "registered_in_run")}


def _alias_change(h: Mapping[str, Any]) -> dict[str, Any]:
    return {k: h.get(k) for k in ("alias", "previous", "version", "who", "at", "run")}


def model_version_lineage(db: TensorDB, name: str, version: int) -> dict[str, Any]:
    """Where a version came from: parameter set → run → job → architecture → data (query, snapshot, dataset)."""
    v = registry.get_model_version(db.scope, name, version)
    run = next(iter(db.index.find(runs.COLLECTION, db.scope.query({"_id": v.get("run")}), limit=1)), None) \
        if v.get("run") else None
    arch = next(iter(db.index.find(models.COLLECTION, db.scope.query({"_id": v.get("arch")}), limit=1,
                                   projection={"code": 0, "_blob": 0})), None) if v.get("arch") else None
    return clean({"name": name, "version": _version(v),
                  "run": run_row(run) if run else None,
                  "job": _job(db, v["job"]) if v.get("job") else None,
                  "architecture": {k: val for k, val in arch.items() if not k.startswith("_") or k in ("_id", "_created")}
                  if arch else None,
                  "data": v.get("data")})


# -- jobs and workers ------------------------------------------------------------------------------
def _job(db: TensorDB, job_id: str) -> dict[str, Any] | None:
    doc = next(iter(db.index.find(jobs.COLLECTION, db.scope.query({"_id": job_id}), limit=1)), None)
    return job_row(doc) if doc else None


def job_row(doc: Mapping[str, Any]) -> dict[str, Any]:
    tags = {k: v for k, v in doc.items() if not k.startswith("_") and k not in jobs.RESERVED and k != "token"}
    return clean({"id": doc["_id"], "status": doc.get("status"), "spec": doc.get("spec"), "tags": tags,
                  "priority": doc.get("priority"), "attempts": doc.get("attempts"),
                  "max_attempts": doc.get("max_attempts"), "worker": doc.get("worker"),
                  "lease_until": doc.get("lease_until"), "heartbeat": doc.get("heartbeat"),
                  "started": doc.get("started"), "finished": doc.get("finished"), "created": doc.get("_created"),
                  "result": doc.get("result"), "errors": doc.get("errors") or [], "run": doc.get("run")})


def job_queue(db: TensorDB, status: str | None, limit: int) -> dict[str, Any]:
    """Jobs per status, the newest jobs (of one status, or all) and every worker record with its heartbeat age."""
    if status is not None and status not in jobs.STATES:
        raise InvalidQuery(f"status must be one of {', '.join(jobs.STATES)}, not {status!r}")
    q = {"status": status} if status else {}
    docs = db.index.find(jobs.COLLECTION, db.scope.query(q), sort=[("_seq", -1)], limit=limit)
    return {"at": time.time(), "counts": {s: db.index.count(jobs.COLLECTION, db.scope.query({"status": s}))
                                          for s in jobs.STATES},
            "jobs": [job_row(d) for d in docs],
            "workers": [_worker(w) for w in find_workers(db, include_stopped=True)]}


def _worker(w: Mapping[str, Any]) -> dict[str, Any]:
    info = dict(w.get("info") or {})
    return clean({"name": w.get("name"), "role": w.get("role"), "state": w.get("state"), "alive": w.get("alive"),
                  "age_s": w.get("age_s"), "heartbeat": w.get("heartbeat"), "job": w.get("job"),
                  "host": w.get("host"), "info": info,
                  **{k: w.get(k) for k in ("serving", "scored", "handled") if k in w}})


# -- JSON ------------------------------------------------------------------------------------------
def clean(value: Any) -> Any:
    """``value`` as strict JSON: numpy scalars as numbers, NaN/inf as None, tuples as lists, bytes summarised."""
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return clean(value.item())
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)
