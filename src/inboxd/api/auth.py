"""Who is calling: a Bearer key (API clients) or a session cookie (the dashboard).

Cookie-authenticated requests that change something must come from an allowed origin, so
another site cannot act through a logged-in browser (the cookie is SameSite=Strict too).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from inboxd.api.errors import ApiError, unauthorized
from inboxd.api.state import ApiState, api_state
from inboxd.store.users import User

SESSION_COOKIE = "inboxd_session"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def bearer_key(conn: HTTPConnection) -> str | None:
    """The key of an ``Authorization: Bearer`` header, if any."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def origin_allowed(conn: HTTPConnection, state: ApiState) -> bool:
    """True without an Origin header (not a browser) or with an allowed one."""
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    host = conn.headers.get("host", "")
    own = {f"http://{host}", f"https://{host}"}
    return origin in own or origin in state.app.settings.allowed_origins


def authenticate(conn: HTTPConnection, state: ApiState) -> tuple[User, bool] | None:
    """The caller and whether they came by cookie; None when not authenticated."""
    key = bearer_key(conn)
    if key is not None:
        found = state.users.authenticate_key(key)
        return (found[0], False) if found else None
    token = conn.cookies.get(SESSION_COOKIE)
    if token:
        user = state.users.session_user(token)
        return (user, True) if user else None
    return None


def current_user(request: Request) -> User:
    """Dependency: the authenticated user, or 401."""
    state = api_state(request)
    found = authenticate(request, state)
    if found is None:
        raise unauthorized(
            "invalid or revoked API key"
            if bearer_key(request)
            else "authentication required: send 'Authorization: Bearer <key>' or log in"
        )
    user, by_cookie = found
    if by_cookie and request.method not in _SAFE_METHODS and not origin_allowed(request, state):
        raise ApiError(403, "forbidden", "cross-origin request refused")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
