"""Local identity servers on 127.0.0.1 that answer as Microsoft's identity platform and
Google's OAuth 2.0 endpoints document, for the sign-in flows.

One server answers both shapes of path:
- Microsoft: ``POST /{tenant}/oauth2/v2.0/devicecode`` (RFC 8628 device authorization),
  ``GET /{tenant}/oauth2/v2.0/authorize`` and ``POST /{tenant}/oauth2/v2.0/token``, whose
  device-code grant answers ``authorization_pending``, ``slow_down``, ``expired_token`` or
  ``access_denied`` as the test scripts it (``device_plan``);
- Google: ``GET /o/oauth2/v2/auth`` and ``POST /token``.

The authorize endpoints consent at once for ``user`` (no page) and redirect to the client's
``redirect_uri`` with the code and the state, or with ``error=access_denied`` when
``deny`` is set. The token endpoints check the client (and its secret, where one is set),
the code's redirect_uri, and the PKCE verifier against the S256 challenge (RFC 7636, 4.6).
Given a ``backend`` (tests/support/oauth_server.OAuthServer, which Dovecot asks about
tokens), the access tokens given out are ones that Dovecot accepts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.support.local_http import read_form, send, serve
from tests.support.oauth_server import OAuthServer

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

Answer = tuple[int, dict[str, Any], dict[str, str]]


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    method: str
    scope: str
    username: str
    used: bool = False


@dataclass
class _Device:
    client_id: str
    scope: str
    username: str
    plan: list[str]
    expires: float
    polls: list[float] = field(default_factory=list)
    done: bool = False


@dataclass
class IdentityServer:
    """Microsoft-like and Google-like sign-in endpoints at ``base``."""

    client_id: str = "inboxd-test-client"
    client_secret: str | None = None
    user: str = "person@example.test"
    backend: OAuthServer | None = None
    access_lifetime: int = 3600
    #: what the next device flows' polls answer, in order; ``approve`` ends one with tokens
    device_plan: list[str] = field(default_factory=lambda: ["approve"])
    device_interval: float = 0.05
    device_lifetime: float = 900.0
    deny: bool = False
    codes: dict[str, _Code] = field(default_factory=dict)
    devices: dict[str, _Device] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                status, body, headers = owner.get(parts.path, query)
                send(self, status, body or None, headers)

            def do_POST(self) -> None:
                status, body, headers = owner.post(urlsplit(self.path).path, read_form(self))
                send(self, status, body or None, headers)

            def log_message(self, *_args: object) -> None:
                pass

        self._http = serve(Handler)

    @property
    def base(self) -> str:
        """The authority (Microsoft) and the base of Google's URLs."""
        return self._http.base

    @property
    def google_auth_url(self) -> str:
        return f"{self.base}/o/oauth2/v2/auth"

    @property
    def google_token_url(self) -> str:
        return f"{self.base}/token"

    def microsoft_token_url(self, tenant: str = "common") -> str:
        return f"{self.base}/{tenant}/oauth2/v2.0/token"

    def revoke(self, refresh_token: str) -> None:
        """The person withdrew consent: this refresh token no longer works."""
        with self._lock:
            self.refresh_tokens.pop(refresh_token, None)

    def device(self, user_code: str) -> _Device:
        """The device flow a person would enter ``user_code`` for."""
        with self._lock:
            return self.devices[user_code]

    # -- routes ----------------------------------------------------------------------------

    def get(self, path: str, query: dict[str, str]) -> Answer:
        """A GET: the authorize endpoints."""
        if path == "/o/oauth2/v2/auth" or path.endswith("/oauth2/v2.0/authorize"):
            return self._authorize(query)
        return 404, {"error": "not_found"}, {}

    def post(self, path: str, form: dict[str, str]) -> Answer:
        """A POST: device authorization or a token request."""
        if path.endswith("/oauth2/v2.0/devicecode"):
            return self._device_code(form)
        if path == "/token" or path.endswith("/oauth2/v2.0/token"):
            with self._lock:
                self.token_requests.append(form)
            return self._token(form)
        return 404, {"error": "not_found"}, {}

    def _authorize(self, query: dict[str, str]) -> Answer:
        with self._lock:
            self.authorize_requests.append(query)
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not redirect:
            return 400, {"error": "invalid_client"}, {}
        back: dict[str, str] = {"state": query["state"]} if "state" in query else {}
        if query.get("response_type") != "code":
            back["error"] = "unsupported_response_type"
        elif query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            back["error"] = "invalid_request"
            back["error_description"] = "PKCE S256 is required"
        elif self.deny:
            back["error"] = "access_denied"
        else:
            code = "code-" + secrets.token_urlsafe(18)
            with self._lock:
                self.codes[code] = _Code(
                    self.client_id,
                    redirect,
                    query["code_challenge"],
                    query["code_challenge_method"],
                    query.get("scope", ""),
                    self.user,
                )
            back["code"] = code
        separator = "&" if "?" in redirect else "?"
        return 302, {}, {"Location": redirect + separator + urlencode(back)}

    def _device_code(self, form: dict[str, str]) -> Answer:
        if form.get("client_id") != self.client_id:
            return 400, {"error": "invalid_client", "error_description": "unknown client"}, {}
        device_code = "dc-" + secrets.token_urlsafe(24)
        user_code = secrets.token_hex(4).upper()
        with self._lock:
            self.devices[user_code] = _Device(
                self.client_id,
                form.get("scope", ""),
                self.user,
                list(self.device_plan),
                time.monotonic() + self.device_lifetime,
            )
            self.devices[device_code] = self.devices[user_code]
        verify = f"{self.base}/devicelogin"
        return (
            200,
            {
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": verify,
                "expires_in": int(self.device_lifetime),
                "interval": self.device_interval,
                "message": f"To sign in, use a web browser to open the page {verify} and "
                f"enter the code {user_code} to authenticate.",
            },
            {},
        )

    def _token(self, form: dict[str, str]) -> Answer:
        if form.get("client_id") != self.client_id or (
            self.client_secret is not None and form.get("client_secret") != self.client_secret
        ):
            return 401, {"error": "invalid_client", "error_description": "Unknown client."}, {}
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._code_grant(form)
        if grant == DEVICE_GRANT:
            return self._device_grant(form)
        if grant == "refresh_token":
            with self._lock:
                username = self.refresh_tokens.get(form.get("refresh_token", ""))
            if username is None:
                said = "Token has been expired or revoked."
                return 400, {"error": "invalid_grant", "error_description": said}, {}
            return 200, self._tokens(username, refresh=False), {}
        return 400, {"error": "unsupported_grant_type"}, {}

    def _code_grant(self, form: dict[str, str]) -> Answer:
        with self._lock:
            found = self.codes.get(form.get("code", ""))
            if found is None or found.used:
                return 400, {"error": "invalid_grant", "error_description": "Bad code."}, {}
            found.used = True  # a code is good once, whatever happens next
        if form.get("redirect_uri") != found.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri"}, {}
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != found.challenge:
            said = "The code_verifier does not match the code_challenge."
            return 400, {"error": "invalid_grant", "error_description": said}, {}
        return 200, self._tokens(found.username, refresh=True), {}

    def _device_grant(self, form: dict[str, str]) -> Answer:
        with self._lock:
            device = self.devices.get(form.get("device_code", ""))
            if device is None or device.done:
                return 400, {"error": "invalid_grant"}, {}
            device.polls.append(time.monotonic())
            if time.monotonic() >= device.expires:
                step = "expired_token"
            else:
                step = device.plan.pop(0) if device.plan else "authorization_pending"
            if step != "approve":
                return 400, {"error": step, "error_description": f"AADSTS: {step}"}, {}
            device.done = True
        return 200, self._tokens(device.username, refresh=True), {}

    def _tokens(self, username: str, *, refresh: bool) -> dict[str, Any]:
        if self.backend is not None:
            access, lifetime = self.backend.issue_access(username)
        else:
            access, lifetime = "at-" + secrets.token_urlsafe(24), self.access_lifetime
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": lifetime,
        }
        if refresh:
            token = "rt-" + secrets.token_urlsafe(24)
            with self._lock:
                self.refresh_tokens[token] = username
            body["refresh_token"] = token
            body["id_token"] = id_token(self.client_id, username)
        return body

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


def id_token(audience: str, username: str) -> str:
    """An ID token as the providers shape it (its signature is not checked by inboxd)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {
        "iss": "http://127.0.0.1/",
        "aud": audience,
        "sub": hashlib.sha256(username.encode()).hexdigest()[:20],
        "email": username,
        "preferred_username": username,
        "exp": int(time.time()) + 3600,
    }
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"
