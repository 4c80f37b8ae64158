"""Login sessions, the caller, health, the status snapshot and the history of runs."""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from inboxd.activity import current_status, recent_runs
from inboxd.api.auth import SESSION_COOKIE, CurrentUser, origin_allowed
from inboxd.api.errors import ApiError, error_body, rate_limited, unauthorized
from inboxd.api.routes_accounts import owned_account
from inboxd.api.schemas import (
    CurrentStatus,
    Health,
    LoginIn,
    RunOut,
    UserOut,
    Vocabulary,
    error_responses,
)
from inboxd.api.state import State
from inboxd.db import migrate
from inboxd.db.engine import reading
from inboxd.vocabulary import vocabulary

log = logging.getLogger(__name__)

router = APIRouter()


@router.post(
    "/api/session",
    tags=["session"],
    response_model=UserOut,
    responses=error_responses(400, 401, 403, 422, 429),
)
def login(body: LoginIn, request: Request, response: Response, state: State) -> Any:
    """Log in with an API key: sets an HttpOnly, SameSite=Strict session cookie."""
    client = request.client.host if request.client else "unknown"
    wait = state.login_limiter.take(client)
    if wait is not None:
        raise rate_limited(wait)
    if not origin_allowed(request, state):
        raise ApiError(403, "forbidden", "cross-origin login refused")
    found = state.users.authenticate_key(body.key)
    if found is None:
        raise unauthorized("invalid or revoked API key")
    user, key_id = found
    days = state.app.settings.session_days
    token, _expires = state.users.open_session(user, key_id, timedelta(days=days))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(days * 86400),
        httponly=True,
        samesite="strict",
        secure=state.app.settings.cookie_secure,
        path="/",
    )
    return user.to_dict()


@router.delete("/api/session", tags=["session"], status_code=204, response_class=Response)
def logout(request: Request, state: State) -> Response:
    """Log out: ends the session and clears the cookie."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        state.users.close_session(token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/api/me", tags=["session"], response_model=UserOut, responses=error_responses(401))
def me(user: CurrentUser) -> Any:
    """Who is calling."""
    return user.to_dict()


@router.get(
    "/api/processing/current-status",
    tags=["status"],
    response_model=CurrentStatus,
    responses=error_responses(401),
)
def processing_status(user: CurrentUser, state: State) -> Any:
    """Running and waiting work per account, and recent runs (the polling fallback)."""
    return current_status(state.app.engine, user.owner_filter())


@router.get(
    "/api/vocabulary",
    tags=["status"],
    response_model=Vocabulary,
    responses=error_responses(401),
)
def get_vocabulary(user: CurrentUser) -> Any:
    """Job statuses, event types, steps, account and activity states (the dashboard's
    source for them)."""
    return vocabulary()


@router.get(
    "/api/runs",
    tags=["status"],
    response_model=list[RunOut],
    responses=error_responses(400, 401, 404, 422),
)
def runs(
    user: CurrentUser,
    state: State,
    account_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Any:
    """Finished runs, newest first, with counts and durations (kept across restarts)."""
    if account_id is not None:
        owned_account(state, user, account_id)
    return recent_runs(state.app.engine, user.owner_filter(), account_id=account_id, limit=limit)


@router.get("/healthz", tags=["health"], response_model=Health)
def healthz() -> Any:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"], response_model=Health, responses=error_responses(503))
def readyz(state: State) -> Any:
    """Readiness: the database answers, its schema is current, the data dir has room."""
    try:
        with reading(state.app.engine) as conn:
            conn.execute(text("SELECT 1"))
        current = migrate.is_up_to_date(state.app.engine)
    except Exception as exc:
        # The detail may name hosts or users: it goes to the log, not to the caller.
        log.warning("readiness check failed: %s", exc)
        return JSONResponse(error_body("unavailable", "database unreachable"), 503)
    if not current:
        return JSONResponse(error_body("unavailable", "database schema is not current"), 503)
    settings = state.app.settings
    if shutil.disk_usage(settings.data_dir).free < settings.min_free_disk_mb * 1024 * 1024:
        message = (
            "no space left on the data directory's disk "
            f"(under {settings.min_free_disk_mb} MB free)"
        )
        return JSONResponse(error_body("unavailable", message), 503)
    return {"status": "ready"}
