"""``tensordb status``: one study at a glance — what is stored, queued, running, and serving.

Everything here is a count or a small indexed query, so the view is cheap
enough to watch while a loop runs.
"""

from __future__ import annotations

import time
from typing import Any

from tensordb_core.cli.common import table
from tensordb_core.loop.deployer import DEFAULT_ALIAS
from tensordb_core.loop.worker import WORKERS, find_workers
from tensordb_core.warehouse import aliases, data, datasets, jobs, lifecycle, logs, models, params
from tensordb_core.warehouse.handle import TensorDB
from tensordb_core.warehouse.params import numeric

COLLECTIONS = (data.COLLECTION, models.COLLECTION, params.COLLECTION, jobs.COLLECTION, logs.COLLECTION,
               aliases.COLLECTION, aliases.HISTORY, WORKERS, datasets.DATASETS)
#: How many of the newest deletes and relabels the status shows.
RECENT_CHANGES = 5


def study_status(db: TensorDB, *, metric: str = "test_acc", mode: str = "max") -> dict[str, Any]:
    """Counts per collection, jobs per status, live workers, the best model by ``metric`` and the deployed one."""
    scope = db.scope
    counts = {c: db.index.count(c, scope.query({})) for c in COLLECTIONS}
    queue = {s: db.index.count(jobs.COLLECTION, scope.query({"status": s})) for s in jobs.STATES}
    field = f"metrics.{metric}"
    best = next(iter(db.index.find(params.COLLECTION, scope.query(numeric(field)),
                                   sort=[(field, -1 if mode == "max" else 1)], limit=1)), None)
    deployed_id = db.get_alias(DEFAULT_ALIAS)
    deployed = next(iter(db.find_parameter_docs({"_id": deployed_id}, limit=1)), None) if deployed_id else None
    return {
        "study": db.study,
        "at": time.time(),
        "counts": counts,
        "jobs": queue,
        "workers": find_workers(db),
        "metric": metric,
        "best": _model(best),
        "deployed": _model(deployed),
        "changes": [{k: a.get(k) for k in ("action", "collection", "query", "count", "who", "at")}
                    for a in lifecycle.recent(scope, RECENT_CHANGES)],
    }


def _model(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {"id": doc["_id"], "metrics": doc.get("metrics", {}), "job": doc.get("job"), "step": doc.get("step"),
            "hyper": doc.get("hyper"), "created": doc.get("_created")}


def format_status(status: dict[str, Any]) -> str:
    """The human view of :func:`study_status`."""
    metric = status["metric"]
    lines = [f"study {status['study']}",
             "documents: " + ", ".join(f"{k} {v}" for k, v in status["counts"].items()),
             "jobs:      " + ", ".join(f"{k} {v}" for k, v in status["jobs"].items())]
    workers = status["workers"]
    lines.append(f"workers:   {sum(w['alive'] for w in workers)} alive"
                 + (f", {sum(not w['alive'] for w in workers)} silent" if any(not w["alive"] for w in workers) else ""))
    if workers:  # one table (rich on a terminal, aligned text elsewhere), like every other listing
        rows = [{"role": w["role"], "name": w["name"], "state": "alive" if w["alive"] else "SILENT",
                 "heartbeat": f"{w['age_s']:.1f}s ago",
                 "doing": " ".join(f"{k}={w[k]}" for k in ("job", "serving", "scored", "claimed_elsewhere")
                                   if w.get(k)) or None,
                 "http": (w.get("info") or {}).get("http")} for w in workers]
        lines.append(table(rows, ["role", "name", "state", "heartbeat", "doing", "http"]))
    for label in ("best", "deployed"):
        m = status[label]
        if m is None:
            lines.append(f"{label + ':':<10} none" + (f" (no parameter set has {metric})" if label == "best" else ""))
        else:
            value = m["metrics"].get(metric)
            shown = f"{value:.4f}" if isinstance(value, (int, float)) else "-"
            lines.append(f"{label + ':':<10} {m['id']}  {metric} {shown}  job {m['job'] or '-'}  step {m['step']}")
    changes = status.get("changes") or []
    lines.append(f"changes:   {'none (no delete or relabel yet)' if not changes else 'newest first'}")
    for c in changes:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c["at"])) if c.get("at") else "-"
        lines.append(f"  {when}  {c['action']:<12} {c['collection']:<8} {c['count']:>7}  by {c['who']}  {c['query']}")
    return "\n".join(lines)
