"""Signing in to Gmail and Outlook from the dashboard or an API client.

``POST /api/oauth/microsoft/device`` queues a ``sign_in`` job (Microsoft's device code; its
progress message shows the code and URL, its result the account's id).
``POST /api/oauth/{provider}/start`` answers the URL to send the browser to, and sets a
short-lived nonce cookie; the provider sends the browser back to
``GET /api/oauth/{provider}/callback``. ``POST /api/accounts/{id}/sign-in`` does either for
an account whose grant was revoked (a device code for Microsoft, the browser for Google).

The callback comes from the provider's site, so the session cookie (SameSite=Strict) does
not come with it: the sealed state names the user, and the nonce cookie (SameSite=Lax, sent
on that top-level navigation) proves it is the browser that started the sign-in.
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
from inboxd.api.state import ApiState, State
from inboxd.store.users import User

router = APIRouter(tags=["sign-in"])

#: The cookie that ties a callback to the browser that started the sign-in.
NONCE_COOKIE = "inboxd_signin"
#: An account name, or a tenant: what the schema can say of them.
NAME = Field(min_length=1, max_length=200, pattern=r"\S")
TENANT = Field(default="common", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")

Provider = Literal["google", "microsoft"]


class DeviceSignIn(BaseModel):
    """A new account signed in to Microsoft with a device code."""

    model_config = ConfigDict(extra="forbid")

    name: str = NAME
    kind: Literal["imap", "graph"] = "imap"
    tenant: str = TENANT


class BrowserSignIn(BaseModel):
    """A new account signed in through the browser."""

    model_config = ConfigDict(extra="forbid")

    name: str = NAME


class SignInUrl(BaseModel):
    """Where to send the browser."""

    url: str


class SignInStarted(BaseModel):
    """A sign-in again: a queued device-code job (Microsoft), or a URL (Google)."""

    job_id: str | None = None
    status: str | None = None
    url: str | None = None


def _limited(state: ApiState, user: User) -> None:
    wait = state.job_limiter.take(user.id)
    if wait is not None:
        raise rate_limited(wait)


def _set_nonce(response: Response, state: ApiState, nonce: str) -> None:
    response.set_cookie(
        NONCE_COOKIE,
        nonce,
        max_age=int(AUTHORIZATION_TTL.total_seconds()),
        path="/api/oauth",
        httponly=True,
        samesite="lax",
        secure=state.app.settings.cookie_secure,
    )


@router.post(
    "/api/oauth/microsoft/device",
    status_code=202,
    response_model=Accepted,
    responses=error_responses(400, 401, 403, 409, 422, 429),
)
def start_device(body: DeviceSignIn, user: CurrentUser, state: State) -> Any:
    """Queue a device-code sign-in; follow its job for the code, URL and account id."""
    _limited(state, user)
    job = actions.start_device_sign_in(
        state.app, owner=user.id, name=body.name, kind=body.kind, tenant=body.tenant
    )
    return {"job_id": job.id, "status": job.status.value}


@router.post(
    "/api/oauth/{provider}/start",
    response_model=SignInUrl,
    responses=error_responses(400, 401, 403, 409, 422),
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
    started = actions.begin_web_sign_in(
        state.app,
        provider,
        user_id=user.id,
        owner_filter=user.owner_filter(),
        callback_url=str(request.url_for("sign_in_callback", provider=provider)),
        name=body.name,
    )
    _set_nonce(response, state, started.nonce)
    return {"url": started.url}


@router.post(
    "/api/accounts/{account_id}/sign-in",
    response_model=SignInStarted,
    responses=error_responses(400, 401, 403, 404, 409, 422, 429),
)
def sign_in_again(
    account_id: str, request: Request, response: Response, user: CurrentUser, state: State
) -> Any:
    """Sign an OAuth account in again: a device-code job for Microsoft (answered with its
    id), the browser for Google (answered with the URL)."""
    account = account_actions.get_account(state.app, account_id, owner=user.owner_filter())
    provider = actions.oauth_provider(account)
    if provider == "microsoft":
        _limited(state, user)
        job = actions.start_device_sign_in(state.app, owner=user.id, account=account)
        return {"job_id": job.id, "status": job.status.value}
    started = actions.begin_web_sign_in(
        state.app,
        provider,
        user_id=user.id,
        owner_filter=user.owner_filter(),
        callback_url=str(request.url_for("sign_in_callback", provider=provider)),
        account=account,
    )
    _set_nonce(response, state, started.nonce)
    return {"url": started.url}


@router.get(
    "/api/oauth/{provider}/callback",
    name="sign_in_callback",
    status_code=303,
    response_class=RedirectResponse,
    responses=error_responses(400, 403, 422),
)
def callback(provider: Provider, request: Request, state: State) -> Any:
    """Where the provider sends the browser back (``code`` and ``state``, or ``error``):
    the account is stored, the browser goes to the dashboard. Any query is taken: what
    does not carry a state sealed here for this browser is refused with 403."""
    answer = dict(request.query_params)
    account = actions.finish_web_sign_in(
        state.app, provider, answer, nonce=request.cookies.get(NONCE_COOKIE)
    )
    done = RedirectResponse(f"/?signed_in={account.id}#overview", status_code=303)
    done.delete_cookie(NONCE_COOKIE, path="/api/oauth")
    return done
