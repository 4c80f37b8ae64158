"""A local OAuth 2.0 authorization server on 127.0.0.1 for XOAUTH2 tests.

It answers as RFC 6749 says a token endpoint does (refresh grant: ``access_token``,
``token_type``, ``expires_in``, a rotated ``refresh_token`` when asked to rotate; errors as
400/401 JSON with ``error`` and ``error_description``), with the documented throttling
answer of Google's and Microsoft's endpoints (429 + Retry-After), and it introspects tokens
as RFC 7662 says (``active``, ``username``, ``exp``) for the Dovecot it is paired with."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.support.local_http import read_form, send, serve


@dataclass
class _Grant:
    username: str
    client_id: str


@dataclass
class OAuthServer:
    """Token and introspection endpoints; ``url`` is the token endpoint's address."""

    client_id: str = "inboxd-test-client"
    client_secret: str | None = None
    access_lifetime: int = 3600
    rotate: bool = False
    #: answers to give before normal service resumes: (status, body, headers)
    scripted: list[tuple[int, dict[str, str], dict[str, str]]] = field(default_factory=list)
    refresh_tokens: dict[str, _Grant] = field(default_factory=dict)
    access_tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    introspections: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                status, body, headers = owner.handle(self.path, read_form(self))
                send(self, status, body, headers)

            def log_message(self, *_args: object) -> None:
                pass

        self._http = serve(Handler)

    @property
    def base(self) -> str:
        return self._http.base

    @property
    def url(self) -> str:
        """The token endpoint."""
        return f"{self.base}/token"

    @property
    def introspection_url(self) -> str:
        """RFC 7662 introspection, for Dovecot's oauth2 passdb."""
        return f"{self.base}/introspect"

    def grant(self, username: str) -> str:
        """A new refresh token for ``username`` (what a person's consent would give)."""
        token = "rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self.refresh_tokens[token] = _Grant(username, self.client_id)
        return token

    def issue_access(self, username: str) -> tuple[str, int]:
        """An access token for ``username`` that introspection accepts, given out by
        another test server (a sign-in's); not counted in ``token_requests``."""
        access = "at-" + secrets.token_urlsafe(24)
        with self._lock:
            self.access_tokens[access] = (username, time.time() + self.access_lifetime)
        return access, self.access_lifetime

    def revoke(self, refresh_token: str) -> None:
        """The person withdrew consent (or the provider expired the grant)."""
        with self._lock:
            self.refresh_tokens.pop(refresh_token, None)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working (as they do after an hour)."""
        with self._lock:
            self.access_tokens = {t: (u, 0.0) for t, (u, _) in self.access_tokens.items()}

    def handle(
        self, path: str, form: dict[str, str]
    ) -> tuple[int, dict[str, object], dict[str, str]]:
        """The status, JSON body and extra headers answering a POST to ``path``."""
        if path == "/introspect":
            return 200, self._introspect(form.get("token", "")), {}
        if path != "/token":
            return 404, {"error": "not_found"}, {}
        with self._lock:
            self.token_requests.append(form)
            if self.scripted:
                status, body, headers = self.scripted.pop(0)
                return status, dict(body), headers
        return self._refresh(form)

    def _introspect(self, token: str) -> dict[str, object]:
        with self._lock:
            self.introspections += 1
            found = self.access_tokens.get(token)
        if found is None or found[1] <= time.time():
            return {"active": False}
        return {"active": True, "username": found[0], "exp": int(found[1])}

    def _refresh(self, form: dict[str, str]) -> tuple[int, dict[str, object], dict[str, str]]:
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}, {}
        if form.get("client_id") != self.client_id or (
            self.client_secret is not None and form.get("client_secret") != self.client_secret
        ):
            return 401, {"error": "invalid_client", "error_description": "Unknown client."}, {}
        with self._lock:
            grant = self.refresh_tokens.get(form.get("refresh_token", ""))
            if grant is None:
                said = "Token has been expired or revoked."  # Google's words
                return 400, {"error": "invalid_grant", "error_description": said}, {}
            access = "at-" + secrets.token_urlsafe(24)
            self.access_tokens[access] = (grant.username, time.time() + self.access_lifetime)
            body: dict[str, object] = {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": self.access_lifetime,
                "scope": form.get("scope") or "https://mail.google.com/",
            }
            if self.rotate:
                self.refresh_tokens.pop(form["refresh_token"])
                fresh = "rt-" + secrets.token_urlsafe(24)
                self.refresh_tokens[fresh] = grant
                body["refresh_token"] = fresh
        return 200, body, {}

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
