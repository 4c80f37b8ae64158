"""``/mcp`` in ``inboxd serve``: the MCP server over streamable HTTP, behind an API key.

One session manager serves both protocol generations: clients of the stateless revision
(each request carries its protocol version) and older clients that open a session with
``initialize``; a session stays bound to the key that opened it. Every request must carry a
valid key (``Authorization: Bearer`` as the REST API takes it, or ``X-API-Key``), and its
Host and Origin headers must be allowed, so a web page reached through DNS rebinding cannot
talk to a server on the loopback interface.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import HTTPConnection
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from inboxd.api.auth import bearer_key
from inboxd.api.errors import error_body
from inboxd.app import App
from inboxd.config import Settings
from inboxd.mcp.server import SCOPE_USER, build_server
from inboxd.store.users import User, Users

PATH = "/mcp"
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """Which Host and Origin headers /mcp answers: the loopback names on any port, the
    bound address, and what the settings add (a proxy's public name, a browser client)."""
    names = [*_LOOPBACK]
    if settings.host not in ("0.0.0.0", "::", ""):
        names.append(f"[{settings.host}]" if ":" in settings.host else settings.host)
    names += settings.mcp_allowed_hosts
    hosts = [h for name in dict.fromkeys(names) for h in (name, f"{name}:*")]
    origins = [
        f"{scheme}://{name}{port}"
        for name in _LOOPBACK
        for scheme in ("http", "https")
        for port in ("", ":*")
    ]
    origins += [f"https://{name}" for name in settings.mcp_allowed_hosts]
    origins += settings.allowed_origins
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=list(dict.fromkeys(origins)),
    )


def _key_of(scope: Scope) -> str | None:
    conn = HTTPConnection(scope)
    key = conn.headers.get("x-api-key", "").strip()
    return key or bearer_key(conn)


class McpEndpoint:
    """The ASGI endpoint: authenticate, then hand the request to the session manager with
    the caller in its scope (the tools read it there; the SDK binds sessions to it)."""

    def __init__(self, manager: StreamableHTTPSessionManager, users: Users) -> None:
        self.manager = manager
        self.users = users

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        key = _key_of(scope)
        found = None
        if key is not None:
            found = await anyio.to_thread.run_sync(partial(self.users.authenticate_key, key))
        if found is None:
            await _unauthorized(send, key is not None)
            return
        user, key_id = found
        scope[SCOPE_USER] = user
        scope["user"] = _principal(user, key_id)
        await self.manager.handle_request(scope, receive, send)


def _principal(user: User, key_id: str) -> AuthenticatedUser:
    # The SDK lets only the principal that opened a session use it: one key, one session.
    return AuthenticatedUser(
        AccessToken(token=key_id, client_id=key_id, scopes=[], subject=user.id)
    )


async def _unauthorized(send: Send, had_key: bool) -> None:
    message = (
        "invalid or revoked API key"
        if had_key
        else "authentication required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
    )
    body = json.dumps(error_body("unauthorized", message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b"Bearer"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def mount(api: FastAPI, app: App) -> StreamableHTTPSessionManager:
    """Serve the MCP server at ``/mcp`` of the FastAPI app ``api``; its session manager runs
    within the app's lifespan (started and stopped with it)."""
    server = build_server(app)
    # Building the Starlette app is how the SDK makes the session manager; only the manager
    # is used, under inboxd's own authentication.
    server.streamable_http_app(
        streamable_http_path=PATH, transport_security=transport_security(app.settings)
    )
    manager = server.session_manager
    api.router.routes.append(Route(PATH, McpEndpoint(manager, Users(app.engine))))
    inner: Callable[[Any], AbstractAsyncContextManager[Any]] = api.router.lifespan_context

    @asynccontextmanager
    async def lifespan(asgi: Any) -> AsyncIterator[Any]:
        async with inner(asgi) as state, manager.run():
            yield state

    api.router.lifespan_context = lifespan
    return manager
