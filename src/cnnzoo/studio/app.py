"""The studio's FastAPI application: :func:`create_app` puts the routers, the pages, the limits and the error
answers together.

Errors: a :class:`~cnnzoo.base.errors.CnnzooError` raised anywhere becomes a 4xx with ``{"error": "<its one line>"}``
(404 for what is not there, 413 for an upload over the limit, 415 for an upload that is no picture, 400 for the
rest), as do FastAPI's own validation errors and unknown routes; only a bug answers 500, with one line too.

FastAPI's interactive ``/docs`` page loads swagger-ui from a CDN by default; here it is served from a vendored copy
of swagger-ui-dist (``static/vendor/swagger-ui``, from the npm registry), so it works offline. The OpenAPI schema
is at ``/openapi.json``, and the ``/api`` page lists the routes from it in the studio's own style.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cnnzoo._version import __version__
from cnnzoo.base.devices import ThreadGovernor
from cnnzoo.base.errors import CnnzooError, ConfigError, UnknownModelError
from cnnzoo.studio import arithmetic, confusion, epochs, inference, runs, weights, zoo
from cnnzoo.studio.inference import ModelCache, UnsupportedUploadError, UploadTooLargeError, too_large
from cnnzoo.studio.limits import HEAVY_AT_ONCE, ROUTE_SECONDS, WorkLimit
from cnnzoo.studio.runs import NotFoundError, RunIndex, RunsDep

__all__ = ["MAX_UPLOAD_BYTES", "PAGES", "STATIC", "BodyLimit", "create_app", "status_of"]

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # a phone photo is a few MB; this is well above it and well below harm
_FORM_OVERHEAD = 64 * 1024  # multipart boundaries, headers and the small fields beside the file
STATIC = Path(__file__).resolve().parent / "static"
PAGES = ("/", "/zoo", "/runs", "/try", "/side", "/api", "/docs")
log = logging.getLogger("cnnzoo.studio")


def status_of(exc: CnnzooError) -> int:
    """The HTTP status a user error answers with."""
    if isinstance(exc, NotFoundError | UnknownModelError):
        return 404
    if isinstance(exc, UploadTooLargeError):
        return 413
    if isinstance(exc, UnsupportedUploadError):
        return 415
    return 400


class BodyLimit:
    """Refuse a request body over ``limit`` bytes while it arrives: at once from its Content-Length, or, for a
    chunked body, as soon as the bytes read pass the limit (so a huge upload is never spooled to disk)."""

    def __init__(self, app: ASGIApp, limit: int, message: str) -> None:
        self.app = app
        self.limit = limit
        self.message = message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = self.message
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse({"error": message}, status_code=413, headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, message)  # FastAPI's body parsing passes HTTPException on
            return msg

        await self.app(scope, counted, send)


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_SAFE_METHODS = (b"GET", b"HEAD", b"OPTIONS")


def _host_name(host: str) -> str:
    """``host`` of a Host header without its port (``[::1]:8000`` -> ``::1``), lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class GuardOrigin:
    """Answer only requests addressed to this studio, and run models only for its own pages.

    * The Host header must name the studio (``hosts``: the loopback names and the address it was told to bind):
      a web page that rebinds its own domain to 127.0.0.1 (DNS rebinding) sends its domain as the Host, and is
      answered 400 with nothing read. ``hosts`` None (bound to every address, on purpose) takes any Host.
    * A request that is not GET/HEAD/OPTIONS (``POST /api/predict`` runs a model) must come from the studio's own
      page: a browser sends the page's Origin, and another site's page gets 403. Programs that send no Origin
      (curl, scripts) are served as before.
    """

    def __init__(self, app: ASGIApp, hosts: Sequence[str] | None) -> None:
        self.app = app
        self.hosts = None if hosts is None else {_host_name(h) for h in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if self.hosts is not None and _host_name(host) not in self.hosts:
            shown = " ".join(host.split())[:80]
            await _error(400, f"Host {shown!r} is not this studio's address: open it at http://127.0.0.1:PORT/")(
                scope, receive, send
            )
            return
        origin = headers.get(b"origin")
        if scope.get("method", "GET").encode() not in _SAFE_METHODS and origin is not None:
            allowed = {f"{scheme}://{host}".lower() for scheme in ("http", "https")}
            if origin.decode("latin-1").strip().lower() not in allowed:
                await _error(403, "a request from another site's page: the studio runs models for its own pages only")(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) + " (see /openapi.json for the parameters)"


def create_app(
    root: str | Path = "runs",
    *,
    max_upload: int = MAX_UPLOAD_BYTES,
    cache_size: int = 12,
    missing_ok: bool = False,
    hosts: Sequence[str] | None = LOOPBACK_NAMES,
    heavy_at_once: int = HEAVY_AT_ONCE,
    route_seconds: float = ROUTE_SECONDS,
    adapt_threads: bool = False,
) -> FastAPI:
    """The studio for the runs under ``root`` (a directory of run directories, or one run directory).

    ``max_upload``: the largest picture accepted, in bytes; ``cache_size``: how many models (a run's, a weight's,
    an epoch snapshot's) stay loaded, 768 MB of weights at most.
    A ``root`` that is not a directory is a :class:`~cnnzoo.base.errors.ConfigError`, unless ``missing_ok`` and it does
    not exist (a fresh install: no runs yet, the trained weights to try). ``hosts``: the names a request's Host
    may give (:class:`GuardOrigin`); None takes any (a studio bound to every address on purpose).
    ``heavy_at_once`` and ``route_seconds``: the model work done at once, and the longest any request takes to be
    answered (:class:`~cnnzoo.studio.limits.WorkLimit`). ``adapt_threads``: model work re-decides PyTorch's CPU
    threads as the machine's load changes (``cnnzoo studio`` does; PyTorch's threads are the whole process's).
    """
    root = Path(root)
    if not root.is_dir() and not (missing_ok and not root.exists()):
        raise ConfigError(f"{root}: no such directory: give a run directory or a directory of runs (default runs/)")
    app = FastAPI(
        title="cnnzoo studio",
        version=__version__,
        description="The zoo, your runs, and a model to try: the JSON API the studio's pages use.",
        docs_url=None,  # FastAPI's own /docs page loads swagger-ui from a CDN: _add_pages serves a vendored copy
        redoc_url=None,
    )
    app.state.runs = RunIndex(root)
    app.state.models = ModelCache(cache_size, ThreadGovernor() if adapt_threads else None)
    app.state.max_upload = max_upload
    app.add_middleware(WorkLimit, heavy_at_once=heavy_at_once, route_seconds=route_seconds)  # the innermost
    app.add_middleware(BodyLimit, limit=max_upload + _FORM_OVERHEAD, message=too_large(max_upload))
    app.add_middleware(GuardOrigin, hosts=hosts)  # added last: the first to see a request
    _add_error_handlers(app)
    app.include_router(zoo.router)
    app.include_router(runs.router)
    app.include_router(weights.router)
    app.include_router(inference.router)
    app.include_router(confusion.router)
    app.include_router(epochs.router)
    app.include_router(arithmetic.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_pages(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CnnzooError)
    async def user_error(request: Request, exc: CnnzooError) -> JSONResponse:
        return _error(status_of(exc), str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such page or route {request.url.path[:100]!r}: see /api for the routes"
        return _error(exc.status_code, detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, _validation_message(exc))

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("studio: %s %s failed", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}: {exc}): a bug in cnnzoo studio, please report it")


def _add_pages(app: FastAPI) -> None:
    """Every page is the one-page app; it reads the address to know which tab to show (so each loads directly)."""

    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    def api_page() -> FileResponse:
        return FileResponse(STATIC / "api.html", media_type="text/html; charset=utf-8")

    for path in ("/", "/zoo", "/zoo/{name}", "/runs", "/runs/{run_id}", "/try", "/side"):
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False, response_class=FileResponse)
    app.add_api_route("/api", api_page, methods=["GET"], include_in_schema=False, response_class=FileResponse)

    def docs_page() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="cnnzoo studio: API (OpenAPI)",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="data:,",
        )

    app.add_api_route("/docs", docs_page, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)

    @app.get("/api/health", tags=["studio"], summary="the studio is up: its version and root")
    async def health(index: RunsDep) -> dict[str, Any]:  # on the event loop: no worker thread needed
        return {"ok": True, "version": __version__, "root": str(index.root), "single_run": index.single}
