"""The deployer role's model holder: keep the best model loaded, swap it atomically, serve ``predict``.

Why a holder: requests must never see a half-loaded model.  A better
parameter set is built and loaded *beside* the one being served; only then is
the single reference swapped (under a lock), so every ``predict`` runs wholly
on the old model or wholly on the new one.  Before the swap the new model
must predict one stored sample (``probe``: a data query; any sample of the
study by default), so a parameter set that does not fit its architecture is
rejected, never served.

"Better" is by one metric (``test_acc`` by default, ``mode="min"`` for a
loss) with a minimum improvement, so noise between evaluations does not flap
the served model.  Each swap moves the ``deployed`` alias, whose history
answers "what was serving at time t" (:meth:`TensorDB.alias_history`).

:func:`serve_http` adds a tiny JSON endpoint (stdlib ``http.server``, bound
to 127.0.0.1 unless told otherwise; put a real proxy in front for anything
public)::

    GET  /model     {"model": id, "metric": "test_acc", "value": 0.93, "metrics": {...}, "loaded_at": t}
    GET  /healthz   200 once a model is loaded, 503 before
    POST /predict   {"inputs": [[...], ...]}  ->  {"predictions": [...], "model": id}
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from tensordb_core.errors import InvalidQuery, NotFound, TensorDBError
from tensordb_core.loop.roles import DEFAULT_POLICY, BuildPolicy, Progress
from tensordb_core.warehouse.handle import TensorDB
from tensordb_core.warehouse.params import COLLECTION as PARAMS
from tensordb_core.warehouse.params import numeric

DEFAULT_ALIAS = "deployed"
#: Largest request body /predict accepts.
MAX_BODY = 16 << 20


@dataclass(frozen=True)
class Served:
    """One loaded model and the parameter document it came from."""

    model: Any = field(repr=False)
    doc: dict[str, Any] = field(repr=False)
    metric: str
    value: float
    loaded_at: float

    @property
    def id(self) -> str:
        return self.doc["_id"]

    def describe(self) -> dict[str, Any]:
        return {"model": self.id, "metric": self.metric, "value": self.value, "metrics": self.doc.get("metrics", {}),
                "hyper": self.doc.get("hyper"), "job": self.doc.get("job"), "step": self.doc.get("step"),
                "loaded_at": self.loaded_at}


class NoModel(NotFound):
    """``predict`` was called before any model was deployed."""


class Deployer:
    """Keeps the best parameter set of a study (by ``metric``) loaded and serves predictions from it."""

    def __init__(self, db: TensorDB, *, metric: str = "test_acc", mode: str = "max", min_improvement: float = 0.0,
                 query: Mapping[str, Any] | None = None, policy: BuildPolicy = DEFAULT_POLICY,
                 alias: str | None = DEFAULT_ALIAS, progress: Progress | None = None,
                 probe: Mapping[str, Any] | None = None) -> None:
        if mode not in ("max", "min"):
            raise InvalidQuery(f"mode must be 'max' or 'min', not {mode!r}")
        if min_improvement < 0:
            raise InvalidQuery("min_improvement must be >= 0")
        self.db, self.metric, self.mode, self.min_improvement = db, metric, mode, float(min_improvement)
        self.query, self.policy, self.alias, self.progress = dict(query or {}), policy, alias, progress
        self.probe_query = dict(probe or {})
        self._probe: Any = None
        self._lock = threading.Lock()
        self._served: Served | None = None
        self.swaps = 0
        #: Parameter sets that failed to load, with why: never retried, so one bad set cannot block better ones.
        self.rejected: dict[str, str] = {}

    # -- what is served --------------------------------------------------------------------------------
    @property
    def served(self) -> Served | None:
        """The model being served now (a consistent snapshot), or None."""
        with self._lock:
            return self._served

    def predict(self, X: Any) -> tuple[np.ndarray, str]:
        """``(predictions, parameter id)`` from the served model; :class:`NoModel` before the first deploy."""
        served = self.served
        if served is None:
            raise NoModel("no model is deployed yet (no parameter set has the metric "
                          f"{self.metric!r}; is an evaluator running?)")
        return np.asarray(served.model.predict(np.asarray(X, dtype=np.float32))), served.id

    # -- choosing and swapping ---------------------------------------------------------------------------
    def best_doc(self) -> dict[str, Any] | None:
        """The best parameter document by the metric (documents only: no arrays are read)."""
        field_ = f"metrics.{self.metric}"
        parts = [numeric(field_)] + ([self.query] if self.query else [])
        if self.rejected:
            parts.append({"_id": {"$nin": sorted(self.rejected)}})
        q = {"$and": parts} if len(parts) > 1 else parts[0]
        for doc in self.db.index.find(PARAMS, self.db.scope.query(q), sort=[(field_, -1 if self.mode == "max" else 1)],
                                      limit=1):
            return doc
        return None

    def _better(self, value: float, than: float) -> bool:
        gain = value - than if self.mode == "max" else than - value
        return gain > 0 and gain >= self.min_improvement

    def refresh(self) -> bool:
        """Deploy the best parameter set if it beats the served one by ``min_improvement``; True if swapped."""
        best = self.best_doc()
        current = self.served
        if best is None or (current is not None and best["_id"] == current.id):
            return False
        value = float(best["metrics"][self.metric])
        if current is not None and not self._better(value, current.value):
            return False
        try:
            self.deploy(best)
        except Exception as exc:  # noqa: BLE001 - a broken parameter set must not take the server down
            self.rejected[best["_id"]] = f"{type(exc).__name__}: {exc}"
            if self.progress:
                self.progress(f"cannot deploy {best['_id']} (skipped from now on): {self.rejected[best['_id']]}")
            return False
        return True

    def deploy(self, doc: Mapping[str, Any]) -> Served:
        """Load ``doc``'s model beside the served one, then swap the reference atomically."""
        arch = doc.get("arch") or (doc.get("lineage") or {}).get("arch")
        if arch is None:
            raise NotFound(f"parameter set {doc['_id']} names no architecture; the deployer cannot build it")
        model, _ = self.policy.build(self.db, {"_id": arch}, doc.get("hyper") or {})
        model.load_parameters(self.db.load_parameters(doc))
        sample = self._probe_sample()
        if sample is not None:
            model.predict(sample)  # a model that cannot answer is never swapped in
        value = (doc.get("metrics") or {}).get(self.metric)
        served = Served(model, dict(doc), self.metric, float(value) if isinstance(value, (int, float)) else float("nan"),
                        time.time())
        with self._lock:
            previous, self._served = self._served, served
            self.swaps += 1
        if self.alias:
            self.db.set_alias(self.alias, served.id, who=f"deployer:{self.db.lineage.get('run')}")
        if self.progress:
            was = f" (was {previous.id}, {self.metric} {previous.value:.4f})" if previous else ""
            self.progress(f"deployed {served.id} {self.metric} {served.value:.4f}{was}")
        return served

    def _probe_sample(self) -> Any:
        """One stored sample (of ``probe``'s query) the new model must predict before it is swapped in."""
        if self._probe is None:
            X, _ = self.db.find_data(self.probe_query, limit=1).arrays()
            if len(X) == 0:
                return None
            self._probe = X
        return self._probe

    def resume(self) -> bool:
        """Serve what the alias points at (a restarted deployer keeps serving without a gap); True if loaded."""
        if not self.alias:
            return False
        target = self.db.get_alias(self.alias)
        docs = self.db.find_parameter_docs({"_id": target}, limit=1) if target else []
        if not docs:
            return False
        try:
            self.deploy(docs[0])
        except TensorDBError:
            return False
        return True


# -- HTTP ----------------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    deployer: Deployer  # set on the subclass serve_http makes
    server_version = "tensordb-deployer"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a request log per prediction would drown the worker's output."""

    def _reply(self, status: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        served = self.deployer.served
        if self.path == "/model":
            self._reply(200, served.describe() if served else {"model": None, "metric": self.deployer.metric})
        elif self.path == "/healthz":
            self._reply(200 if served else 503, {"ok": served is not None})
        else:
            self._reply(404, {"error": "unknown path; use GET /model, GET /healthz or POST /predict"})

    def do_POST(self) -> None:
        if self.path != "/predict":
            self._reply(404, {"error": "unknown path; use POST /predict"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                raise ValueError(f"send a JSON body of 1 byte to {MAX_BODY} bytes")
            body = json.loads(self.rfile.read(length))
            if not isinstance(body, dict) or "inputs" not in body:
                raise ValueError('the body must be {"inputs": [...]}')
            predictions, model_id = self.deployer.predict(body["inputs"])
        except NoModel as exc:
            self._reply(503, {"error": str(exc)})
            return
        except (ValueError, TypeError) as exc:
            self._reply(400, {"error": str(exc)})
            return
        except Exception as exc:  # noqa: BLE001 - the model failed on this input: say so, keep serving
            self._reply(500, {"error": f"{type(exc).__name__}: {exc}"})
            return
        self._reply(200, {"predictions": predictions.tolist(), "model": model_id})


def serve_http(deployer: Deployer, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Start the JSON endpoint on a daemon thread; returns the server (``.server_address``, ``.shutdown()``)."""
    handler = type("DeployerHandler", (_Handler,), {"deployer": deployer})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="tensordb-deployer-http", daemon=True).start()
    return server
