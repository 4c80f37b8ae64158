"""Signing in to Gmail and Outlook from the dashboard or an API client.

``POST /api/oauth/microsoft/device`` queues a ``sign_in`` job (Microsoft's device code; its
progress message shows the code and URL, its result the account's id).
``POST /api/oauth/{provider}/start`` answers the URL to send the browser to, and sets a
short-lived nonce cookie; the provider sends the browser back to
``GET /api/oauth/{provider}/callback``. That request comes from the provider's site, so the
session cookie (SameSite=Strict) does not come with it: the sealed state names the user,
and the nonce cookie (SameSite=Lax, sent on that top-level navigation) proves it is the
browser that started the sign-in.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from inboxd.actions import accounts as account_actions
from inboxd.actions import signin as actions
from inboxd.actions.signin import AUTHORIZATION_TTL
from inboxd.api.auth import CurrentUser
from inboxd.api.errors import rate_limited
from inboxd.api.schemas import Accepted, error_responses
from inboxd.api.state import State
from inboxd.errors import InvalidRequest

router = APIRouter(prefix="/api/oauth", tags=["sign-in"])

#: The cookie that ties a callback to the browser that started the sign-in.
NONCE_COOKIE = "inboxd_signin"

Provider = Literal["google", "microsoft"]


class DeviceSignIn(BaseModel):
    """A Microsoft sign-in with a device code: a new account, or ``account_id`` again."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: Literal["imap", "graph"] = "imap"
    tenant: str = Field(default="common", min_length=1, max_length=200)
    account_id: str | None = Field(default=None, min_length=1, max_length=36)


class BrowserSignIn(BaseModel):
    """A sign-in through the browser: a new account named ``name``, or ``account_id``
    again."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    account_id: str | None = Field(default=None, min_length=1, max_length=36)


class SignInUrl(BaseModel):
    """Where to send the browser."""

    url: str


@router.post(
    "/microsoft/device",
    status_code=202,
    response_model=Accepted,
    responses=error_responses(400, 401, 403, 404, 422, 429),
)
def start_device(body: DeviceSignIn, user: CurrentUser, state: State) -> Any:
    """Queue a device-code sign-in; follow its job for the code, URL and account id."""
    wait = state.job_limiter.take(user.id)
    if wait is not None:
        raise rate_limited(wait)
    account = (
        account_actions.get_account(state.app, body.account_id, owner=user.owner_filter())
        if body.account_id
        else None
    )
    if account is None and not body.name:
        raise InvalidRequest("a new account needs a name")
    job = actions.start_device_sign_in(
        state.app,
        owner=user.id,
        name=body.name,
        kind=body.kind,
        tenant=body.tenant,
        account=account,
    )
    return {"job_id": job.id, "status": job.status.value}


@router.post(
    "/{provider}/start",
    response_model=SignInUrl,
    responses=error_responses(400, 401, 403, 404, 422),
)
def start_browser(
    provider: Provider,
    body: BrowserSignIn,
    request: Request,
    response: Response,
    user: CurrentUser,
    state: State,
) -> Any:
    """Start the authorization-code flow (PKCE); answers the provider's sign-in URL."""
    account = (
        account_actions.get_account(state.app, body.account_id, owner=user.owner_filter())
        if body.account_id
        else None
    )
    started = actions.begin_web_sign_in(
        state.app,
        provider,
        user_id=user.id,
        owner_filter=user.owner_filter(),
        callback_url=str(request.url_for("sign_in_callback", provider=provider)),
        name=body.name or "",
        account=account,
    )
    response.set_cookie(
        NONCE_COOKIE,
        started.nonce,
        max_age=int(AUTHORIZATION_TTL.total_seconds()),
        path="/api/oauth",
        httponly=True,
        samesite="lax",
        secure=state.app.settings.cookie_secure,
    )
    return {"url": started.url}


@router.get(
    "/{provider}/callback",
    name="sign_in_callback",
    status_code=303,
    response_class=RedirectResponse,
    responses=error_responses(400, 404, 422),
)
def callback(provider: Provider, request: Request, state: State) -> Any:
    """Where the provider sends the browser back: the account is stored, the browser goes
    to the dashboard."""
    account = actions.finish_web_sign_in(
        state.app,
        provider,
        dict(request.query_params),
        nonce=request.cookies.get(NONCE_COOKIE),
    )
    done = RedirectResponse(f"/?signed_in={account.id}#overview", status_code=303)
    done.delete_cookie(NONCE_COOKIE, path="/api/oauth")
    return done
