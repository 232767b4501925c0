"""The web UI's ASGI application: read-only routes, the token check, time limits and JSON errors.

Why each guard:

- Only GET (and the HEAD Starlette adds) routes exist: the UI cannot change
  the warehouse, whatever a page or a script sends (other methods get 405).
- A bearer token (``Authorization: Bearer``, or the cookie a page visit with
  ``?token=`` sets) is required when one is configured; ``tensordb ui``
  refuses to listen beyond loopback without one.
- Each request's warehouse work runs on a worker thread under a time limit
  (:data:`DEFAULT_REQUEST_TIMEOUT_S`): a slow query answers 503 instead of
  holding the page forever.
- Every bad input is a typed :class:`~tensordb_core.errors.TensorDBError`
  answered as ``{"error": ..., "type": ...}`` with 400 (malformed) or 404
  (unknown study, run, model, sample); messages pass through URI redaction.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from tensordb_core.errors import (
    CodecError,
    InvalidArgument,
    InvalidDocument,
    InvalidQuery,
    InvalidURI,
    NotFound,
    TensorDBError,
)
from tensordb_core.store.uri import redact_text
from tensordb_core.ui import api, samples
from tensordb_core.warehouse import artifacts
from tensordb_core.warehouse.handle import TensorDB

DEFAULT_REQUEST_TIMEOUT_S = 30.0
TOKEN_COOKIE = "tensordb_ui_token"
STATIC = files("tensordb_core.ui") / "static"
#: Pages: (path, page name, title).  Each is one HTML shell; its script draws it from the /api/ endpoints.
PAGES = (("/", "studies", "Studies"),
         ("/studies/{study}/runs", "runs", "Runs"),
         ("/studies/{study}/runs/{run}", "run", "Run"),
         ("/studies/{study}/models", "models", "Models"),
         ("/studies/{study}/jobs", "jobs", "Jobs & workers"),
         ("/studies/{study}/data", "data", "Data"))
#: Artifacts up to this size may be shown inline; larger ones are always streamed as downloads.
INLINE_MAX_BYTES = 20 << 20
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


@dataclass(frozen=True)
class UISettings:
    """What the app serves: the open warehouse, the study pages open on, the token (None: none) and time limit."""

    db: TensorDB
    uri: str
    default_study: str | None = None
    token: str | None = None
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    #: Host names requests may address (the Host header); None accepts any.  Without a token, ``tensordb ui``
    #: accepts only loopback names, so a web page whose DNS name is rebound to 127.0.0.1 cannot read the UI.
    allowed_hosts: tuple[str, ...] | None = None


def status_of(exc: TensorDBError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, (InvalidQuery, InvalidDocument, InvalidArgument, InvalidURI, CodecError)):
        return 400
    return 500


def error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": redact_text(message), "type": kind}, status_code=status)


class Guard:
    """ASGI middleware: the token check and the security headers, on every response (static files included)."""

    def __init__(self, app: ASGIApp, token: str | None, allowed_hosts: tuple[str, ...] | None = None) -> None:
        self.app, self.token = app, token
        self.allowed_hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    def _host_allowed(self, request: Request) -> bool:
        if self.allowed_hosts is None:
            return True
        host = request.headers.get("host", "").lower()
        name = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0] if ":" in host else host
        return name in self.allowed_hosts

    def _authorised(self, request: Request) -> bool:
        if not self.token:
            return True
        offered = request.headers.get("authorization", "")
        candidates = [offered[7:] if offered.lower().startswith("bearer ") else "",
                      request.cookies.get(TOKEN_COOKIE, ""), request.query_params.get("token", "")]
        return any(c and hmac.compare_digest(c.encode(), self.token.encode()) for c in candidates)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if not self._host_allowed(request):
            await self._send_with_headers(error(400, "this UI answers only to its own address (Host header "
                                                "refused): open it as http://127.0.0.1:<port>/", "BadHost"),
                                          scope, receive, send)
            return
        if not self._authorised(request):
            response: Response = error(401, "a token is required: send 'Authorization: Bearer <token>' or open "
                                       "the page with ?token=<token>", "Unauthorized")
            response.headers["www-authenticate"] = "Bearer"
            await self._send_with_headers(response, scope, receive, send)
            return
        if self.token and request.query_params.get("token") and not request.url.path.startswith("/api/"):
            # A page opened with ?token=: keep it in an HttpOnly cookie and drop it from the address bar.
            clean = request.url.remove_query_params("token")
            response = RedirectResponse(str(clean.path) + (f"?{clean.query}" if clean.query else ""), 303)
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict", path="/")
            await self._send_with_headers(response, scope, receive, send)
            return

        async def send_secured(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_secured)

    async def _send_with_headers(self, response: Response, scope: Scope, receive: Receive, send: Send) -> None:
        for k, v in SECURITY_HEADERS.items():
            response.headers[k] = v
        await response(scope, receive, send)


# -- request parsing -----------------------------------------------------------------------------------
def json_query(request: Request, name: str = "q") -> dict[str, Any] | None:
    """The ``q`` parameter as a JSON object (the portable query language), or InvalidQuery naming the problem."""
    text = request.query_params.get(name, "").strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidQuery(f"parameter {name!r} must be a JSON object, e.g. {{\"split\": \"train\"}}: {exc.msg} at "
                           f"character {exc.pos}") from exc
    if not isinstance(value, dict):
        raise InvalidQuery(f"parameter {name!r} must be a JSON object, not {type(value).__name__}")
    return value


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidQuery(f"parameter {name!r} must be an integer, not {text!r}") from None
    if not low <= value <= high:
        raise InvalidQuery(f"parameter {name!r} must be between {low} and {high}, not {value}")
    return value


def sort_param(request: Request) -> list[tuple[str, int]] | None:
    """``sort=metrics.valid_acc:-1,params.lr`` → ``[("metrics.valid_acc", -1), ("params.lr", 1)]``."""
    text = request.query_params.get("sort", "").strip()
    out = []
    for spec in filter(None, (s.strip() for s in text.split(","))):
        field, _, direction = spec.partition(":")
        if not field or field.startswith("$") or direction not in ("", "1", "-1", "asc", "desc"):
            raise InvalidQuery(f"parameter 'sort' takes FIELD or FIELD:-1, comma-separated, not {spec!r}")
        out.append((field, -1 if direction in ("-1", "desc") else 1))
    return out or None


# -- endpoints -----------------------------------------------------------------------------------------
def endpoint(work: Callable[[Request, UISettings], Any]) -> Callable[[Request], Any]:
    """A route answering ``work``'s value as JSON (or a Response it returns) under the request time limit."""

    async def handle(request: Request) -> Response:
        settings: UISettings = request.app.state.settings
        try:
            result = await asyncio.wait_for(run_in_threadpool(work, request, settings), settings.request_timeout_s)
        except TensorDBError as exc:
            return error(status_of(exc), str(exc), type(exc).__name__)
        except TimeoutError:
            return error(503, f"the request took longer than {settings.request_timeout_s:g} s: narrow the query "
                         "(or start tensordb ui with a longer --request-timeout)", "Timeout")
        return result if isinstance(result, Response) else JSONResponse(result)

    handle.__name__ = work.__name__
    return handle


def _study(request: Request, settings: UISettings) -> TensorDB:
    return api.open_study(settings.db, request.path_params["study"])


def get_info(request: Request, settings: UISettings) -> dict[str, Any]:
    return {"uri": redact_text(settings.uri), "default_study": settings.default_study, "read_only": True,
            "token_required": bool(settings.token)}


def get_studies(request: Request, settings: UISettings) -> dict[str, Any]:
    db = settings.db
    return {"studies": [api.study_summary(db.use_study(s)) for s in api.list_studies(db)]}


def get_study(request: Request, settings: UISettings) -> dict[str, Any]:
    return api.study_detail(_study(request, settings))


def get_runs(request: Request, settings: UISettings) -> dict[str, Any]:
    db = _study(request, settings)
    return api.search_runs(db, json_query(request), sort_param(request),
                           int_param(request, "limit", 200, 1, api.MAX_ROWS))


def get_run(request: Request, settings: UISettings) -> dict[str, Any]:
    return api.run_detail(_study(request, settings), request.path_params["run"])


def get_run_metrics(request: Request, settings: UISettings) -> dict[str, Any]:
    return api.run_curves(_study(request, settings), request.path_params["run"])


def get_artifacts(request: Request, settings: UISettings) -> dict[str, Any]:
    return {"artifacts": api.run_detail(_study(request, settings), request.path_params["run"])["artifacts"]}


def get_artifact(request: Request, settings: UISettings) -> Response:
    """Small images and text inline (decided from their bytes); everything else a download streamed part by part."""
    db = _study(request, settings)
    run, name = request.path_params["run"], request.path_params["name"]
    artifacts.check_name(name)
    doc = artifacts.artifact_doc(db.scope, run, name)
    headers = {"content-disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
               "content-length": str(int(doc.get("size") or 0))}
    if not request.query_params.get("download") and int(doc.get("size") or 0) <= INLINE_MAX_BYTES:
        body = b"".join(artifacts.iter_parts(db.scope, doc))
        shown = api.inline_type(doc, body)
        if shown:
            return Response(body, media_type=shown)
        return Response(body, media_type="application/octet-stream", headers=headers)
    return StreamingResponse(artifacts.iter_parts(db.scope, doc), media_type="application/octet-stream",
                             headers=headers)


def get_models(request: Request, settings: UISettings) -> dict[str, Any]:
    return {"models": api.list_models(_study(request, settings))}


def get_model_version(request: Request, settings: UISettings) -> dict[str, Any]:
    version = request.path_params["version"]
    return api.model_version_lineage(_study(request, settings), request.path_params["name"], version)


def get_jobs(request: Request, settings: UISettings) -> dict[str, Any]:
    return api.job_queue(_study(request, settings), request.query_params.get("status") or None,
                         int_param(request, "limit", 100, 1, api.MAX_ROWS))


def get_data(request: Request, settings: UISettings) -> dict[str, Any]:
    return samples.sample_page(_study(request, settings), json_query(request),
                               int_param(request, "page", 1, 1, 10**9),
                               int_param(request, "per_page", 24, 1, samples.MAX_PAGE),
                               request.query_params.get("dataset") or None)


def get_thumbnail(request: Request, settings: UISettings) -> Response:
    png = samples.thumbnail(_study(request, settings), request.path_params["sample"], request.path_params["field"])
    return Response(png, media_type="image/png")


def get_datasets(request: Request, settings: UISettings) -> dict[str, Any]:
    return {"datasets": api.list_datasets(_study(request, settings))}


API = (("/api/info", get_info),
       ("/api/studies", get_studies),
       ("/api/studies/{study}", get_study),
       ("/api/studies/{study}/runs", get_runs),
       ("/api/studies/{study}/runs/{run}", get_run),
       ("/api/studies/{study}/runs/{run}/metrics", get_run_metrics),
       ("/api/studies/{study}/runs/{run}/artifacts", get_artifacts),
       ("/api/studies/{study}/runs/{run}/artifacts/{name}", get_artifact),
       ("/api/studies/{study}/models", get_models),
       ("/api/studies/{study}/models/{name}/versions/{version:int}", get_model_version),
       ("/api/studies/{study}/jobs", get_jobs),
       ("/api/studies/{study}/data", get_data),
       ("/api/studies/{study}/data/{sample}/thumbnail/{field}", get_thumbnail),
       ("/api/studies/{study}/datasets", get_datasets))


# -- pages ---------------------------------------------------------------------------------------------
def page(name: str, title: str) -> Callable[[Request], Any]:
    """The HTML shell of one page: navigation, a mount point, and the page's script (no inline script)."""

    async def handle(request: Request) -> HTMLResponse:
        settings: UISettings = request.app.state.settings
        study = request.path_params.get("study") or settings.default_study or ""
        run = request.path_params.get("run", "")
        esc = lambda s: html.escape(str(s), quote=True)
        base = f"/studies/{quote(study, safe='')}" if study else ""
        nav = "".join(
            f'<a href="{esc(href)}" class="{"active" if key == name or (key == "runs" and name == "run") else ""}">'
            f"{esc(label)}</a>"
            for key, href, label in (("studies", "/", "Studies"), ("runs", f"{base}/runs", "Runs"),
                                     ("models", f"{base}/models", "Models"), ("jobs", f"{base}/jobs", "Jobs"),
                                     ("data", f"{base}/data", "Data"))
            if key == "studies" or study)
        body = (STATIC / "page.html").read_text(encoding="utf-8")
        for key, value in (("title", esc(title)), ("page", esc(name)), ("study", esc(study)), ("run", esc(run)),
                           ("nav", nav), ("uri", esc(redact_text(settings.uri))),
                           ("study_label", esc(study or "all studies"))):
            body = body.replace("{{" + key + "}}", value)
        return HTMLResponse(body)

    handle.__name__ = f"page_{name}"
    return handle


async def not_found(request: Request, exc: HTTPException) -> Response:
    if request.url.path.startswith("/api/") or exc.status_code != 404:
        return error(exc.status_code, exc.detail or "error", "HTTPError")
    return HTMLResponse("<!doctype html><title>Not found</title><p>Not found. <a href='/'>Studies</a>",
                        status_code=404)


def create_app(settings: UISettings) -> Starlette:
    """The application; serve it with uvicorn (``tensordb ui``) or drive it with Starlette's TestClient."""
    routes = [Route(path, endpoint(fn), methods=["GET"]) for path, fn in API]
    routes += [Route(path, page(name, title), methods=["GET"]) for path, name, title in PAGES]
    routes.append(Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"))
    app = Starlette(routes=routes, middleware=[Middleware(Guard, token=settings.token,
                                                               allowed_hosts=settings.allowed_hosts)],
                    exception_handlers={HTTPException: not_found})
    app.state.settings = settings
    return app
