"""The FastAPI application: routers, error shape, static dashboard, the event pump."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inboxd import __version__
from inboxd.actions.idle import idle_connections
from inboxd.actions.jobs import ACCOUNT_KINDS, job_params_schemas
from inboxd.api import (
    errors,
    live,
    metrics,
    routes_accounts,
    routes_changes,
    routes_cleanups,
    routes_jobs,
    routes_messages,
    routes_newsletters,
    routes_signin,
    routes_status,
    routes_triage,
    routes_webhooks,
)
from inboxd.api.pump import EventPump
from inboxd.api.sse import RAW_SEND
from inboxd.api.state import ApiState
from inboxd.app import App

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
DOCS = Path(__file__).resolve().parent.parent / "web" / "docs"
#: Swagger UI's own files, from a package that ships them (no CDN: offline and CSP-safe).
SWAGGER_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"

_SECURITY_HEADERS = {
    # The dashboard loads only its own files; nothing may frame it.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SecurityHeaders:
    """Adds the security headers to every HTTP answer (plain ASGI: streams pass through
    untouched, unlike a BaseHTTPMiddleware)."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner
        self.headers = [(k.lower().encode(), v.encode()) for k, v in _SECURITY_HEADERS.items()]
        self.no_store = (b"cache-control", b"no-store")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        is_api = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                extra = [h for h in self.headers if h[0] not in present]
                if is_api and b"cache-control" not in present:
                    extra.append(self.no_store)
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.inner(scope, receive, send_with_headers)


#: Every request body is a small JSON document; anything bigger is a mistake or an attack.
MAX_BODY_BYTES = 1024 * 1024


class _BodyTooLarge(HTTPException):
    # An HTTPException, so the route's body parsing passes it on and the error handler
    # answers 413 in the usual shape.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


class BodyLimit:
    """Refuses request bodies over :data:`MAX_BODY_BYTES` with 413 before they are read
    whole (by ``Content-Length`` up front, or while a chunked body streams in)."""

    def __init__(self, inner: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.inner = inner
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.inner(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            errors.error_body("too_large", f"request body over {self.limit} bytes")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class DirectStreams:
    """The outermost ASGI layer: hands live streams the server's own ``send``.

    A stream's first message (the response start) still passes every middleware, so the
    headers are complete; its body chunks then skip the half-dozen wrappers that each
    middleware puts around ``send``. With a thousand clients those wrappers cost as much
    as the write itself (bench/live.py)."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND] = send
        await self.inner(scope, receive, send)


def _name_job_kinds(api: FastAPI) -> None:
    """The schema says which job kinds this installation runs and what each one's params
    hold: the server refuses anything else."""
    generate = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = generate()
            components = schema["components"]["schemas"]
            job = components["JobCreate"]
            job["properties"]["kind"]["enum"] = [kind for kind, _ in job_params_schemas()]
            job["oneOf"] = []
            for kind, params in job_params_schemas():
                components.update(params.pop("$defs", {}))
                branch: dict[str, Any] = {"properties": {"kind": {"const": kind}, "params": params}}
                # Omitted params are {}: a kind with required params needs them sent.
                required = ["params"] if params.get("required") else []
                if kind in ACCOUNT_KINDS:
                    required.append("account_id")
                    branch["properties"]["account_id"] = {"type": "string", "minLength": 1}
                if required:
                    branch["required"] = required
                job["oneOf"].append(branch)
            kinds = [kind for kind, _ in job_params_schemas()]
            for name in ("WebhookCreate", "WebhookChange"):
                filter_ = components[name]["properties"]["kinds"]
                for shape in filter_.get("anyOf", [filter_]):
                    if shape.get("type") == "array":
                        shape["items"]["enum"] = kinds
        return api.openapi_schema or generate()

    api.openapi = openapi  # type: ignore[method-assign]


def create_api(app: App) -> FastAPI:
    """The ASGI app over an open :class:`App` (the caller owns and closes it)."""
    settings = app.settings
    pump = EventPump(
        app.engine,
        poll_seconds=settings.live_poll_ms / 1000,
        max_per_user=settings.live_max_connections,
        max_backlog=settings.live_queue_size,
        send_timeout=settings.live_send_timeout_seconds,
    )

    @asynccontextmanager
    async def lifespan(_api: FastAPI) -> AsyncIterator[None]:
        pump.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            pump.stop()

    api = FastAPI(
        title="inboxd",
        version=__version__,
        description="Mail accounts in sync; long mail work as durable jobs with live progress.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    api.state.inboxd = ApiState(
        app=app,
        pump=pump,
        metrics=metrics.build_registry(app.engine, pump, lambda: idle_connections(app.settings)),
    )
    errors.install(api)
    for module in (
        routes_status,
        routes_accounts,
        routes_jobs,
        routes_messages,
        routes_triage,
        routes_cleanups,
        routes_newsletters,
        routes_changes,
        routes_webhooks,
        routes_signin,
        live,
        metrics,
    ):
        api.include_router(module.router)

    api.add_middleware(BodyLimit)
    api.add_middleware(SecurityHeaders)
    _name_job_kinds(api)

    @api.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @api.get("/docs", include_in_schema=False)
    def api_docs() -> FileResponse:
        return FileResponse(DOCS / "index.html", headers={"Cache-Control": "no-cache"})

    @api.get("/docs/init.js", include_in_schema=False)
    def api_docs_script() -> FileResponse:
        return FileResponse(DOCS / "init.js", headers={"Cache-Control": "no-cache"})

    @api.get("/favicon.ico", include_in_schema=False)
    @api.get("/favicon.svg", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(DOCS / "favicon.svg", media_type="image/svg+xml")

    api.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    api.mount(
        "/docs/assets", StaticFiles(directory=SWAGGER_ASSETS, check_dir=False), name="docs-assets"
    )
    return api
