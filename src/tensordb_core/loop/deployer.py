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

import hmac
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from tensordb_core.errors import BackendUnavailable, InvalidQuery, NotFound, TensorDBError, UnsafeOperation
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
#: Seconds a client may take to send its request (a stalled client's connection is dropped, its thread freed).
DEFAULT_HTTP_TIMEOUT_S = 30.0
#: Where the bearer token comes from when ``serve_http`` is not given one (not argv: ``ps`` shows that).
TOKEN_ENV = "TENSORDB_HTTP_TOKEN"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class _Handler(BaseHTTPRequestHandler):
    deployer: Deployer  # set on the subclass serve_http makes
    token: str | None = None  # likewise: when set, every request but /healthz needs "Authorization: Bearer <token>"
    server_version = "tensordb-deployer"

    def handle_one_request(self) -> None:
        """Drop a client that stalls past the socket timeout, without a traceback on the worker's stderr."""
        try:
            super().handle_one_request()
        except OSError:  # TimeoutError while reading a body, or the client went away mid-reply
            self.close_connection = True

    def _authorized(self) -> bool:
        if self.token is None or self.path == "/healthz":
            return True
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return True
        self._reply(401, {"error": "send the deployer's token: Authorization: Bearer <token>"})
        return False

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
        if not self._authorized():
            return
        served = self.deployer.served
        if self.path == "/model":
            self._reply(200, served.describe() if served else {"model": None, "metric": self.deployer.metric})
        elif self.path == "/healthz":
            self._reply(200 if served else 503, {"ok": served is not None})
        else:
            self._reply(404, {"error": "unknown path; use GET /model, GET /healthz or POST /predict"})

    def do_POST(self) -> None:
        if not self._authorized():
            return
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
        except OSError:  # the body never came (socket timeout) or the client left: nobody to answer
            self.close_connection = True
            return
        except (ValueError, TypeError) as exc:
            self._reply(400, {"error": str(exc)})
            return
        except Exception as exc:  # noqa: BLE001 - the model failed on this input: say so, keep serving
            self._reply(500, {"error": f"{type(exc).__name__}: {exc}"})
            return
        self._reply(200, {"predictions": predictions.tolist(), "model": model_id})


def serve_http(deployer: Deployer, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None,
               timeout_s: float = DEFAULT_HTTP_TIMEOUT_S) -> ThreadingHTTPServer:
    """Start the JSON endpoint on a daemon thread; returns the server (``.server_address``, ``.shutdown()``).

    Each connection gets its own thread and a socket timeout of ``timeout_s``:
    a client that stalls is dropped after it, and others are answered
    meanwhile.  ``token`` (default: the ``TENSORDB_HTTP_TOKEN`` environment
    variable) makes every request but ``GET /healthz`` need
    ``Authorization: Bearer <token>``; binding beyond loopback without one is
    refused, since anyone who reaches the port could then use the model.
    """
    token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
    if type(port) is not int or not 0 <= port <= 65535:
        raise InvalidQuery(f"HTTP port must be an int from 0 to 65535 (0: any free port), got {port!r}")
    if not (isinstance(timeout_s, (int, float)) and 0 < timeout_s < float("inf")):
        raise InvalidQuery(f"HTTP timeout must be a positive number of seconds, got {timeout_s!r}")
    if host not in _LOOPBACK and not token:
        raise UnsafeOperation(
            f"serving predictions on {host!r} (beyond loopback) needs a token: set {TOKEN_ENV} "
            "(clients send Authorization: Bearer <token>), or bind 127.0.0.1"
        )
    handler = type("DeployerHandler", (_Handler,), {"deployer": deployer, "token": token, "timeout": timeout_s})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise BackendUnavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="tensordb-deployer-http", daemon=True).start()
    return server
