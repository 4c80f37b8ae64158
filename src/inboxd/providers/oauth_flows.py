"""Signing in with OAuth 2.0: the device-code flow (RFC 8628, Microsoft) and the
authorization-code flow with PKCE S256 (RFC 7636) and state, for Microsoft and Google.

A flow ends with a refresh token, which :mod:`inboxd.providers.oauth` redeems from then on.
The token requests go through the same plain client (httpx, a form POST) for both
providers: MSAL for Python refuses an authority that is not ``https://`` (a local one for
tests or checks), and the two requests it would make for us are a few lines each.

The ``id_token`` that comes with the tokens names the person who signed in (their address
becomes the IMAP login); it is read, not verified, as OpenID Connect allows for an ID token
received straight from the token endpoint over TLS (Core 1.0, 3.1.3.7).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from inboxd.config import Settings
from inboxd.db.types import utcnow
from inboxd.errors import InvalidRequest, InvalidState, PermanentError
from inboxd.providers.oauth import (
    PRESETS,
    OAuthClient,
    TokenEndpointUnavailable,
    failure,
    json_body,
    oauth_settings,
)

#: Scopes asked for besides the mail scope: the refresh token, and the person's address.
IDENTITY_SCOPES = {"google": "openid email", "microsoft": "openid profile email offline_access"}
#: What an ID token needs and a token refresh does not.
_OIDC_SCOPES = frozenset({"openid", "profile", "email"})
#: The mail scope of a Graph account (Microsoft Graph, not Outlook's IMAP).
GRAPH_SCOPE = "https://graph.microsoft.com/Mail.ReadWrite offline_access"
#: IMAP servers of the sign-in presets.
IMAP_HOSTS = {"google": "imap.gmail.com", "microsoft": "outlook.office365.com"}
#: RFC 8628, 3.5: each ``slow_down`` adds this much to the polling interval.
SLOW_DOWN_SECONDS = 5.0
#: How long a started authorization (its state and verifier) stays good.
AUTHORIZATION_TTL = timedelta(minutes=10)


class SignInFailed(PermanentError):
    """The sign-in did not give a grant (refused, expired, or the answer was wrong)."""


@dataclass(frozen=True)
class Endpoints:
    """Where and as whom a person signs in (one provider, one client)."""

    provider: str  # google or microsoft
    client_id: str
    token_url: str
    scope: str
    authorize_url: str | None = None
    device_url: str | None = None
    client_secret: str | None = None

    @property
    def client(self) -> OAuthClient:
        """The client that redeems the grant's refresh token afterwards."""
        return OAuthClient(self.token_url, self.client_id, self.scope)

    def account_oauth(self) -> dict[str, Any]:
        """An account's ``oauth`` settings for tokens from these endpoints (the mail scope
        only: a refresh asks for no identity scopes)."""
        mail_scope = " ".join(s for s in self.scope.split() if s not in _OIDC_SCOPES)
        return oauth_settings(
            {
                "provider": self.provider,
                "client_id": self.client_id,
                "token_url": self.token_url,
                "scope": mail_scope,
            }
        )


def microsoft_endpoints(
    settings: Settings,
    *,
    client_id: str | None = None,
    tenant: str = "common",
    mail_scope: str | None = None,
) -> Endpoints:
    """Microsoft's identity platform under ``INBOXD_GRAPH_AUTHORITY``, for ``tenant``."""
    client = client_id or settings.microsoft_client_id
    if not client:
        raise InvalidState(
            "no Microsoft client id: pass --client-id or set INBOXD_MICROSOFT_CLIENT_ID"
        )
    if not tenant or "/" in tenant or "?" in tenant:
        raise InvalidRequest(f"not a tenant: {tenant!r}")
    base = f"{settings.graph_authority.rstrip('/')}/{tenant}/oauth2/v2.0"
    scope = mail_scope or PRESETS["microsoft"][1]
    return Endpoints(
        provider="microsoft",
        client_id=client,
        token_url=f"{base}/token",
        scope=_scopes(scope, IDENTITY_SCOPES["microsoft"]),
        authorize_url=f"{base}/authorize",
        device_url=f"{base}/devicecode",
    )


def google_endpoints(
    settings: Settings, *, client_id: str | None = None, client_secret: str | None = None
) -> Endpoints:
    """Google's endpoints (``INBOXD_GOOGLE_AUTH_URL``, ``INBOXD_GOOGLE_TOKEN_URL``)."""
    client = client_id or settings.google_client_id
    if not client:
        raise InvalidState(
            "no Google client id: pass --oauth-client-id or set INBOXD_GOOGLE_CLIENT_ID"
        )
    secret = client_secret or (
        settings.google_client_secret.get_secret_value() if settings.google_client_secret else None
    )
    return Endpoints(
        provider="google",
        client_id=client,
        token_url=settings.google_token_url,
        scope=_scopes(PRESETS["google"][1], IDENTITY_SCOPES["google"]),
        authorize_url=settings.google_auth_url,
        client_secret=secret,
    )


def endpoints_for_account(
    settings: Settings, oauth: dict[str, Any], client_secret: str | None
) -> Endpoints:
    """The endpoints that signed an existing account in (from its ``oauth`` settings)."""
    provider = oauth.get("provider")
    token_url = str(oauth["token_url"])
    if provider == "google":
        found = google_endpoints(
            settings, client_id=oauth["client_id"], client_secret=client_secret
        )
        return replace(found, token_url=token_url)
    if provider == "microsoft" and token_url.endswith("/token"):
        base = token_url.removesuffix("/token")
        return Endpoints(
            provider="microsoft",
            client_id=oauth["client_id"],
            token_url=token_url,
            scope=_scopes(oauth.get("scope") or "", IDENTITY_SCOPES["microsoft"]),
            authorize_url=f"{base}/authorize",
            device_url=f"{base}/devicecode",
        )
    raise InvalidRequest(
        "this account's OAuth client is not Google's or Microsoft's: give it a "
        "new refresh token with `account update --password-stdin`"
    )


def account_oauth(account_settings: dict[str, Any]) -> dict[str, Any] | None:
    """The ``oauth`` settings an account signs in with: an IMAP account's own; a Graph
    account's made from its client, tenant and authority; None: no OAuth."""
    oauth = account_settings.get("oauth")
    if oauth:
        return dict(oauth)
    if account_settings.get("client_id") and account_settings.get("authority"):
        authority = str(account_settings["authority"]).rstrip("/")
        tenant = account_settings.get("tenant") or "common"
        return {
            "provider": "microsoft",
            "client_id": account_settings["client_id"],
            "token_url": f"{authority}/{tenant}/oauth2/v2.0/token",
            "scope": GRAPH_SCOPE,
        }
    return None


def graph_account_settings(endpoints: Endpoints, settings: Settings) -> dict[str, Any]:
    """A new Graph account's settings for a grant from Microsoft's ``endpoints`` (the
    service's authority and Graph URL, as for an account added with a refresh token)."""
    authority = settings.graph_authority.rstrip("/")
    tenant = endpoints.token_url.removeprefix(authority + "/").split("/", 1)[0] or "common"
    return {
        "client_id": endpoints.client_id,
        "tenant": tenant,
        "authority": settings.graph_authority,
        "graph_url": settings.graph_url,
    }


def _scopes(*parts: str) -> str:
    seen: list[str] = []
    for part in parts:
        seen += [s for s in part.split() if s not in seen]
    return " ".join(seen)


@dataclass(frozen=True)
class SignedIn:
    """What a finished sign-in gives: tokens, and who signed in."""

    refresh_token: str
    access_token: str
    expires_at: datetime
    username: str | None

    def secret(self, client_secret: str | None) -> dict[str, Any]:
        """An account's secret holding this grant (sealed by the account store)."""
        value: dict[str, Any] = {
            "refresh_token": self.refresh_token,
            "access_token": self.access_token,
            "access_expires_at": self.expires_at.isoformat(),
        }
        if client_secret:
            value["client_secret"] = client_secret
        return value


def _token_request(endpoints: Endpoints, form: dict[str, str], timeout: float) -> httpx.Response:
    form = form | {"client_id": endpoints.client_id}
    if endpoints.client_secret:
        form["client_secret"] = endpoints.client_secret
    try:
        return httpx.post(
            endpoints.token_url, data=form, timeout=timeout, headers={"Accept": "application/json"}
        )
    except httpx.HTTPError as exc:
        raise TokenEndpointUnavailable(
            f"OAuth token endpoint {endpoints.client.host} unreachable: {exc}"
        ) from exc


def _signed_in(endpoints: Endpoints, response: httpx.Response) -> SignedIn:
    body = json_body(response)
    access, refresh = body.get("access_token"), body.get("refresh_token")
    if response.status_code != 200 or not isinstance(access, str):
        raise failure(endpoints.client, response, body)
    if not isinstance(refresh, str) or not refresh:
        raise SignInFailed(
            f"{endpoints.client.host} gave no refresh token: is offline access allowed?"
        )
    lifetime = body.get("expires_in")
    seconds = float(lifetime) if isinstance(lifetime, int | float | str) else 3600.0
    return SignedIn(
        refresh_token=refresh,
        access_token=access,
        expires_at=utcnow() + timedelta(seconds=max(0.0, seconds)),
        username=id_token_username(body.get("id_token")),
    )


def id_token_username(id_token: Any) -> str | None:
    """The address an ID token names (``email``, else Microsoft's ``preferred_username``)."""
    if not isinstance(id_token, str) or id_token.count(".") != 2:
        return None
    payload = id_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return None
    if not isinstance(claims, dict):
        return None
    for name in ("email", "preferred_username"):
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


# -- the device-code flow (RFC 8628) ---------------------------------------------------------


@dataclass(frozen=True)
class DeviceCode:
    """A started device flow: what the person is shown, and what inboxd polls with."""

    device_code: str
    user_code: str
    verification_uri: str
    interval: float
    expires_at: float  # time.monotonic()

    @property
    def instructions(self) -> str:
        """What to tell the person."""
        return f"To sign in, open {self.verification_uri} and enter the code {self.user_code}"


def start_device_flow(endpoints: Endpoints, *, timeout: float) -> DeviceCode:
    """Ask for a device code and the code the person enters (RFC 8628, 3.1-3.2)."""
    if endpoints.device_url is None:
        raise InvalidRequest(f"{endpoints.provider} has no device flow (sign in with a browser)")
    form = {"client_id": endpoints.client_id, "scope": endpoints.scope}
    try:
        response = httpx.post(
            endpoints.device_url, data=form, timeout=timeout, headers={"Accept": "application/json"}
        )
    except httpx.HTTPError as exc:
        raise TokenEndpointUnavailable(
            f"OAuth device endpoint {endpoints.client.host} unreachable: {exc}"
        ) from exc
    body = json_body(response)
    if response.status_code != 200:
        raise failure(endpoints.client, response, body)
    try:
        # Microsoft's v2.0 endpoint says verification_uri; RFC 8628 allows the _url spelling.
        uri = str(body.get("verification_uri") or body["verification_url"])
        return DeviceCode(
            device_code=str(body["device_code"]),
            user_code=str(body["user_code"]),
            verification_uri=uri,
            interval=float(body.get("interval") or 5),
            expires_at=time.monotonic() + float(body.get("expires_in") or 900),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SignInFailed(f"unexpected device code answer from {endpoints.client.host}") from exc


def poll_device_flow(
    endpoints: Endpoints,
    code: DeviceCode,
    *,
    timeout: float,
    wait: Callable[[float], None] = time.sleep,
    slow_down: float = SLOW_DOWN_SECONDS,
) -> SignedIn:
    """Poll the token endpoint until the person approved, refused, or the code expired.
    ``wait`` sleeps between polls (a job's waits also notice a cancel)."""
    interval = code.interval
    while True:
        if time.monotonic() >= code.expires_at:
            raise SignInFailed("the sign-in code expired before it was used: start again")
        wait(interval)
        response = _token_request(
            endpoints,
            {
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": code.device_code,
            },
            timeout,
        )
        if response.status_code == 200:
            return _signed_in(endpoints, response)
        error = str(json_body(response).get("error") or "")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += slow_down
            continue
        if error == "expired_token":
            raise SignInFailed("the sign-in code expired before it was used: start again")
        if error in ("access_denied", "authorization_declined"):
            raise SignInFailed("the sign-in was refused")
        if error in ("bad_verification_code", "invalid_grant"):
            raise SignInFailed("the identity provider does not know this sign-in code")
        raise failure(endpoints.client, response, json_body(response))


# -- the authorization-code flow with PKCE ---------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    """A PKCE verifier (86 characters of 43-128 allowed) and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)
    return verifier, s256(verifier)


def s256(verifier: str) -> str:
    """RFC 7636, 4.2: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Authorization:
    """A started authorization: the URL the person opens, and what checks its answer."""

    url: str
    state: str
    verifier: str
    redirect_uri: str


def begin_authorization(
    endpoints: Endpoints,
    redirect_uri: str,
    *,
    state: str | None = None,
    verifier: str | None = None,
) -> Authorization:
    """The authorization URL with a PKCE challenge and a state (fresh ones unless given)."""
    if endpoints.authorize_url is None:
        raise InvalidRequest(f"{endpoints.provider} has no authorization endpoint")
    verifier = verifier or pkce_pair()[0]
    challenge = s256(verifier)
    state = state or secrets.token_urlsafe(24)
    query = {
        "client_id": endpoints.client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": endpoints.scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if endpoints.provider == "google":
        # Without these Google gives a refresh token only on the first consent.
        query |= {"access_type": "offline", "prompt": "consent"}
    separator = "&" if "?" in endpoints.authorize_url else "?"
    return Authorization(
        url=endpoints.authorize_url + separator + urlencode(query),
        state=state,
        verifier=verifier,
        redirect_uri=redirect_uri,
    )


def code_from_redirect(params: dict[str, str], state: str) -> str:
    """The code of a redirect's query, once its state is the one sent (RFC 6749, 4.1.2)."""
    if not secrets.compare_digest(params.get("state", ""), state):
        raise SignInFailed("the sign-in answer's state does not match: refused")
    if params.get("error"):
        said = params["error"] + (
            f" ({params['error_description']})" if params.get("error_description") else ""
        )
        raise SignInFailed(f"the sign-in was refused: {said}")
    code = params.get("code")
    if not code:
        raise SignInFailed("the sign-in answer has no code")
    return code


def redeem_code(
    endpoints: Endpoints, code: str, verifier: str, redirect_uri: str, *, timeout: float
) -> SignedIn:
    """Trade an authorization code and its PKCE verifier for tokens (RFC 6749, 4.1.3)."""
    response = _token_request(
        endpoints,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        timeout,
    )
    if response.status_code != 200 and json_body(response).get("error") == "invalid_grant":
        said = json_body(response).get("error_description") or "invalid_grant"
        raise SignInFailed(f"{endpoints.client.host} refused the sign-in code: {said}")
    return _signed_in(endpoints, response)


_CLOSE_PAGE = (
    b"<!doctype html><meta charset=utf-8><title>inboxd</title>"
    b"<p>%s You may close this tab and go back to inboxd.</p>"
)


def loopback_sign_in(
    endpoints: Endpoints,
    *,
    show: Callable[[str], None],
    timeout: float,
    wait_seconds: float = 300.0,
    host: str = "127.0.0.1",
) -> SignedIn:
    """The authorization-code flow for a program on the person's machine (RFC 8252): listen
    on ``host`` at a free port, ``show`` the URL, take the one redirect, exchange its code."""
    answer: dict[str, str] = {}
    arrived = threading.Event()

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            params = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            if arrived.is_set() or not ({"code", "error"} & params.keys()):
                self.send_error(404)  # a favicon, a second tab: not the redirect
                return
            answer.update(params)
            arrived.set()
            ok = "code" in params and params.get("state") == authorization.state
            page = _CLOSE_PAGE % (b"Signed in." if ok else b"The sign-in did not succeed.")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_args: object) -> None:
            pass

    server = HTTPServer((host, 0), Redirect)
    server.timeout = 0.2
    port = server.server_address[1]
    authorization = begin_authorization(endpoints, f"http://{host}:{port}/")
    try:
        show(authorization.url)
        deadline = time.monotonic() + wait_seconds
        while not arrived.is_set():
            if time.monotonic() >= deadline:
                raise SignInFailed("no sign-in arrived in time: start again")
            server.handle_request()
    finally:
        server.server_close()
    code = code_from_redirect(answer, authorization.state)
    return redeem_code(
        endpoints, code, authorization.verifier, authorization.redirect_uri, timeout=timeout
    )


def imap_settings(provider: str, username: str, oauth: dict[str, Any]) -> dict[str, Any]:
    """An IMAP account's settings at the provider's own server, signed in with OAuth."""
    return {
        "host": IMAP_HOSTS[provider],
        "port": 993,
        "security": "tls",
        "username": username,
        "auth": "xoauth2",
        "oauth": oauth,
    }
