"""OAuth 2.0 access tokens for XOAUTH2 logins (Gmail, Outlook / Microsoft 365).

Access tokens live about an hour, so an account that is to sync on its own keeps a refresh
token (in the vault, with the client secret when there is one) and trades it for access
tokens at the provider's token endpoint (RFC 6749, section 6). The access token is cached
in the vault until shortly before it expires; a provider that rotates refresh tokens
(Microsoft does) gets the new one stored at once.

What the endpoint answers decides what happens to the job: a revoked or expired grant
(``invalid_grant``) needs a person (the account needs attention, no retries); a client the
provider does not know is a settings problem; throttling (429, honouring Retry-After),
server errors and an unreachable endpoint are retried later.
"""

from __future__ import annotations

import email.utils
import ipaddress
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from inboxd.db.types import utcnow
from inboxd.errors import InvalidRequest, RetryableError
from inboxd.providers.base import AuthenticationFailed, ProviderConfigError, SecretStore

#: Token endpoints and scopes of the providers people use most; any other is given by URL.
PRESETS: dict[str, tuple[str, str]] = {
    "google": ("https://oauth2.googleapis.com/token", "https://mail.google.com/"),
    "microsoft": (
        "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
    ),
}
#: A cached access token is renewed when it has less than this left (a login may come late
#: in a long sync, and clocks differ).
RENEW_MARGIN = timedelta(minutes=5)
#: Errors (RFC 6749, 5.2) that mean the client registration or request is wrong.
_CLIENT_ERRORS = frozenset(
    {"invalid_client", "unauthorized_client", "invalid_scope", "unsupported_grant_type"}
)


class TokenSource(Protocol):
    """Gives the secret an XOAUTH2 login sends; ``renew`` asks for a new one (the server
    rejected the last)."""

    def __call__(self, *, renew: bool = False) -> str: ...


class SignInRequired(AuthenticationFailed):
    """The OAuth grant was revoked or expired: the person has to sign in again."""


class TokenEndpointUnavailable(RetryableError):
    """The token endpoint could not give a token now (throttled, failing, unreachable)."""


@dataclass(frozen=True)
class OAuthClient:
    """Where and as whom an account's refresh token is redeemed (no secrets)."""

    token_url: str
    client_id: str
    scope: str | None = None

    @classmethod
    def from_settings(cls, value: dict[str, Any]) -> OAuthClient:
        """From an account's ``oauth`` settings (already checked)."""
        return cls(value["token_url"], value["client_id"], value.get("scope") or None)

    @property
    def host(self) -> str:
        """The token endpoint's host (and port), for messages."""
        return urlsplit(self.token_url).netloc


def oauth_settings(value: Any) -> dict[str, Any]:
    """Check an account's ``oauth`` settings: ``provider`` (a preset) or ``token_url``,
    ``client_id``, optional ``scope``; returns them normalised."""
    if not isinstance(value, dict):
        raise InvalidRequest("oauth settings must be an object")
    provider = value.get("provider")
    token_url = str(value.get("token_url") or "").strip()
    scope = value.get("scope")
    if provider:
        if provider not in PRESETS:
            raise InvalidRequest(f"unknown OAuth provider {provider!r} (one of: google, microsoft)")
        preset_url, preset_scope = PRESETS[provider]
        token_url = token_url or preset_url
        scope = scope or preset_scope
    client_id = str(value.get("client_id") or "").strip()
    if not token_url or not client_id:
        raise InvalidRequest("OAuth needs a client id and a token endpoint (or a provider)")
    _check_token_url(token_url)
    out: dict[str, Any] = {"token_url": token_url, "client_id": client_id}
    if provider:
        out["provider"] = provider
    if scope:
        out["scope"] = " ".join(str(scope).split())
    return out


def _check_token_url(url: str) -> None:
    if not endpoint_allowed(url):
        raise InvalidRequest(f"the token endpoint must be an https:// URL (got {url!r})")


def endpoint_allowed(url: str) -> bool:
    """Whether tokens may be sent to ``url``: https, or plain http to a loopback address (a
    local identity provider, or a test's, on this machine)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and bool(parts.hostname) and _is_loopback(parts.hostname or "")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TokenAnswer:
    """A token endpoint's successful answer."""

    access_token: str
    expires_at: datetime
    refresh_token: str | None  # set when the provider rotated it


def redeem(
    client: OAuthClient, refresh_token: str, client_secret: str | None, *, timeout: float
) -> TokenAnswer:
    """Trade a refresh token for an access token (RFC 6749, 6)."""
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client.client_id,
    }
    if client_secret:
        form["client_secret"] = client_secret
    if client.scope:
        form["scope"] = client.scope
    try:
        response = httpx.post(
            client.token_url, data=form, timeout=timeout, headers={"Accept": "application/json"}
        )
    except httpx.HTTPError as exc:
        raise TokenEndpointUnavailable(
            f"OAuth token endpoint {client.host} unreachable: {exc}"
        ) from exc
    body = json_body(response)
    if response.status_code == 200 and isinstance(body.get("access_token"), str):
        lifetime = body.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float | str) else 3600.0
        rotated = body.get("refresh_token")
        return TokenAnswer(
            body["access_token"],
            utcnow() + timedelta(seconds=max(0.0, seconds)),
            rotated if isinstance(rotated, str) and rotated else None,
        )
    raise failure(client, response, body)


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The JSON object a token endpoint answered, or {} when it answered something else."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def failure(client: OAuthClient, response: httpx.Response, body: dict[str, Any]) -> Exception:
    """What a token endpoint's refusal means, as the exception a job raises."""
    code = str(body.get("error") or "")
    said = code + (f" ({body['error_description']})" if body.get("error_description") else "")
    if code == "invalid_grant":
        # The person revoked access, changed their password, or the grant expired.
        return SignInRequired(f"OAuth refresh token rejected by {client.host}: {said}")
    if code in _CLIENT_ERRORS:
        return ProviderConfigError(f"OAuth client rejected by {client.host}: {said}")
    status = response.status_code
    what = said or f"HTTP {status}"
    if status == 429 or status >= 500:
        return TokenEndpointUnavailable(
            f"OAuth token endpoint {client.host} answered {status}: {what}",
            retry_after=_retry_after(response),
        )
    return TokenEndpointUnavailable(f"unexpected answer from OAuth token endpoint: {what}")


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds: given as seconds or as an HTTP date (RFC 9110, 10.2.3)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utcnow()).total_seconds()) if when.tzinfo else None


class RefreshingToken:
    """An account's access token, renewed with its refresh token when it runs out (or
    when the mail server rejected it)."""

    def __init__(self, secrets: SecretStore, account_id: str, client: OAuthClient, timeout: float):
        self.secrets = secrets
        self.account_id = account_id
        self.client = client
        self.timeout = timeout
        self._lock = threading.Lock()

    def __call__(self, *, renew: bool = False) -> str:
        with self._lock:
            secret = self.secrets.secret(self.account_id)
            cached = secret.get("access_token")
            expires = secret.get("access_expires_at")
            fresh = bool(expires) and datetime.fromisoformat(str(expires)) - RENEW_MARGIN > utcnow()
            if cached and fresh and not renew:
                return str(cached)
            refresh_token = secret.get("refresh_token")
            if not refresh_token:
                raise AuthenticationFailed("no OAuth refresh token stored for this account")
            answer = redeem(
                self.client, refresh_token, secret.get("client_secret"), timeout=self.timeout
            )
            secret["access_token"] = answer.access_token
            secret["access_expires_at"] = answer.expires_at.isoformat()
            if answer.refresh_token:
                secret["refresh_token"] = answer.refresh_token
            self.secrets.store_secret(self.account_id, secret)
            return answer.access_token
