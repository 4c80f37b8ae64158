"""Signing in to Gmail and Outlook with OAuth, for the CLI and the server.

The CLI runs a flow in its own process (the person is at that terminal): Microsoft's device
code, or the authorization code through a listener on 127.0.0.1. The server starts a
``sign_in`` job for a device code (the web process never waits on a person), and takes the
authorization code at its own callback route: the state it sends is sealed with the
installation's secret key and holds the user, the PKCE verifier and an expiry, and the
callback must come from the browser that started it (a nonce cookie), so no other browser,
user or late replay can finish it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inboxd.actions.accounts import registry
from inboxd.app import App
from inboxd.errors import (
    ConfigError,
    Forbidden,
    InvalidRequest,
    InvalidState,
    PermanentError,
    RetryableError,
)
from inboxd.jobs.model import Job
from inboxd.providers.oauth_flows import (
    AUTHORIZATION_TTL,
    GRAPH_SCOPE,
    Endpoints,
    SignedIn,
    account_oauth,
    begin_authorization,
    code_from_redirect,
    endpoints_for_account,
    google_endpoints,
    imap_settings,
    loopback_sign_in,
    microsoft_endpoints,
    pkce_pair,
    poll_device_flow,
    redeem_code,
    start_device_flow,
)
from inboxd.providers.registry import names as provider_names
from inboxd.store.accounts import Account
from inboxd.sync.signin import REQUEST_TIMEOUT, add_signed_in

#: Providers a person can sign in to.
PROVIDERS = ("google", "microsoft")

__all__ = [
    "AUTHORIZATION_TTL",
    "PROVIDERS",
    "WebSignIn",
    "begin_web_sign_in",
    "cli_sign_in",
    "finish_web_sign_in",
    "graph_available",
    "oauth_provider",
    "sign_in_again",
    "start_device_sign_in",
    "store_signed_in",
]


def _endpoints(app: App, provider: str, **given: Any) -> Endpoints:
    if provider == "google":
        return google_endpoints(app.settings, **given)
    if provider == "microsoft":
        return microsoft_endpoints(app.settings, **given)
    raise InvalidRequest(f"unknown sign-in provider {provider!r} (one of: google, microsoft)")


def _account_endpoints(app: App, account: Account, client_secret: str | None = None) -> Endpoints:
    """The endpoints and client that signed ``account`` in (its client may not be the
    settings' one), with its stored client secret unless a new one is given."""
    oauth = account_oauth(account.settings)
    if not oauth:
        raise InvalidState(f"account {account.name!r} does not sign in with OAuth")
    accounts = registry(app)
    kept = accounts.secret(account.id).get("client_secret") if account.has_secret else None
    return endpoints_for_account(app.settings, oauth, client_secret or kept)


def graph_available() -> bool:
    """Whether this installation has the Graph provider (a Graph account can be stored)."""
    return "graph" in provider_names()


def cli_sign_in(
    app: App,
    provider: str,
    *,
    show: Callable[[str], None],
    client_id: str | None = None,
    client_secret: str | None = None,
    tenant: str = "common",
    graph: bool = False,
    wait_seconds: float = 300.0,
) -> tuple[Endpoints, SignedIn]:
    """Sign in from a terminal: a device code for Microsoft, a browser and a loopback
    redirect for Google (Google allows no device flow for mail)."""
    if provider == "microsoft":
        endpoints = microsoft_endpoints(
            app.settings,
            client_id=client_id,
            tenant=tenant,
            mail_scope=GRAPH_SCOPE if graph else None,
        )
        code = start_device_flow(endpoints, timeout=REQUEST_TIMEOUT)
        show(code.instructions)
        return endpoints, poll_device_flow(endpoints, code, timeout=REQUEST_TIMEOUT)
    endpoints = _endpoints(app, provider, client_id=client_id, client_secret=client_secret)
    granted = loopback_sign_in(
        endpoints, show=show, timeout=REQUEST_TIMEOUT, wait_seconds=wait_seconds
    )
    return endpoints, granted


def store_signed_in(
    app: App,
    endpoints: Endpoints,
    granted: SignedIn,
    name: str,
    *,
    owner: str,
    kind: str = "imap",
    settings: dict[str, Any] | None = None,
    sync_interval_seconds: int | None = None,
) -> Account:
    """A new account holding the grant; ``settings`` overrides the provider's IMAP server
    (host, port, security, username) for the CLI's options."""
    accounts = registry(app)
    if not settings:
        return add_signed_in(accounts, endpoints, granted, name, kind, owner)
    username = settings.get("username") or granted.username
    if not username:
        raise InvalidRequest("the sign-in did not say which address signed in: pass --username")
    merged = imap_settings(endpoints.provider, username, endpoints.account_oauth()) | {
        k: v for k, v in settings.items() if v is not None
    }
    return accounts.add(
        kind,
        name,
        merged,
        secret=granted.secret(endpoints.client_secret),
        owner=owner,
        addresses=[username] if "@" in username else [],
        sync_interval_seconds=sync_interval_seconds,
    )


def sign_in_again(
    app: App,
    account: Account,
    *,
    show: Callable[[str], None],
    client_secret: str | None = None,
    wait_seconds: float = 300.0,
) -> Account:
    """Give an OAuth account a new grant (after its old one was revoked); its state goes
    back to ok, so periodic syncs resume."""
    endpoints = _account_endpoints(app, account, client_secret)
    if endpoints.provider == "microsoft":
        code = start_device_flow(endpoints, timeout=REQUEST_TIMEOUT)
        show(code.instructions)
        granted = poll_device_flow(endpoints, code, timeout=REQUEST_TIMEOUT)
    else:
        granted = loopback_sign_in(
            endpoints, show=show, timeout=REQUEST_TIMEOUT, wait_seconds=wait_seconds
        )
    return registry(app).update(account.id, secret=granted.secret(endpoints.client_secret))


def oauth_provider(account: Account) -> str:
    """Which provider ``account`` signs in with (google or microsoft); another account
    cannot sign in (409)."""
    provider = (account_oauth(account.settings) or {}).get("provider")
    if provider not in PROVIDERS:
        raise InvalidState(
            f"account {account.name!r} does not sign in with Google or Microsoft: give it a "
            "new secret instead"
        )
    return str(provider)


def start_device_sign_in(
    app: App,
    *,
    owner: str,
    name: str | None = None,
    kind: str = "imap",
    client_id: str | None = None,
    tenant: str = "common",
    account: Account | None = None,
) -> Job:
    """Queue a ``sign_in`` job (Microsoft's device code): its progress message shows the
    code and URL, its result the account's id. With ``account``, that account signs in
    again; otherwise a new one named ``name`` is made."""
    if account is None:
        microsoft_endpoints(app.settings, client_id=client_id, tenant=tenant)  # checks them now
        if kind == "graph" and not graph_available():
            raise InvalidState("this installation has no Graph provider")
        params: dict[str, Any] = {"name": name, "kind": kind, "tenant": tenant}
        if client_id:
            params["client_id"] = client_id
        return app.queue.enqueue("sign_in", params, owner=owner)
    if oauth_provider(account) != "microsoft":
        raise InvalidRequest("only a Microsoft account signs in with a device code")
    return app.queue.enqueue("sign_in", {}, owner=owner, account_id=account.id)


@dataclass(frozen=True)
class WebSignIn:
    """A started browser sign-in: where to send the person, and the nonce their browser
    keeps (a cookie) until the callback."""

    url: str
    nonce: str


def begin_web_sign_in(
    app: App,
    provider: str,
    *,
    user_id: str,
    owner_filter: str | None,
    callback_url: str,
    name: str = "",
    account: Account | None = None,
) -> WebSignIn:
    """Start the authorization-code flow with PKCE through the server's callback, for a
    new account named ``name`` or to sign ``account`` in again (the caller's own)."""
    again: dict[str, Any] = {}
    if account is not None:
        oauth = account.settings.get("oauth") or {}
        if oauth.get("provider") != provider:
            raise InvalidRequest(f"account {account.name!r} does not sign in with {provider}")
        again = {"account": account.id, "owner": owner_filter}
    elif not name.strip():
        raise InvalidRequest("an account needs a name")
    endpoints = _account_endpoints(app, account) if account else _endpoints(app, provider)
    verifier, _ = pkce_pair()
    nonce = secrets.token_urlsafe(24)
    state = registry(app).vault.seal(
        {
            "user": user_id,
            "provider": provider,
            "name": name.strip(),
            "verifier": verifier,
            "nonce": nonce,
            "redirect_uri": callback_url,
            "expires": time.time() + AUTHORIZATION_TTL.total_seconds(),
        }
        | again
    )
    started = begin_authorization(endpoints, callback_url, state=state, verifier=verifier)
    return WebSignIn(url=started.url, nonce=nonce)


def finish_web_sign_in(
    app: App, provider: str, params: dict[str, str], *, nonce: str | None
) -> Account:
    """Check the callback's state (sealed by this server, unexpired, for this provider and
    this browser), exchange the code with its verifier and store the new account."""
    state = params.get("state", "")
    try:
        sealed = registry(app).vault.open(state) if state else None
    except ConfigError:
        sealed = None
    if (
        sealed is None
        or sealed.get("provider") != provider
        or float(sealed.get("expires", 0)) < time.time()
        or not nonce
        or not secrets.compare_digest(str(sealed.get("nonce", "")), nonce)
    ):
        # Not this server's, not this browser's, or stale: nothing to finish for this caller.
        raise Forbidden("this sign-in was not started here, or too long ago: start again")
    accounts = registry(app)
    again = (
        accounts.get(str(sealed["account"]), owner=sealed.get("owner"))
        if sealed.get("account")
        else None
    )
    endpoints = _account_endpoints(app, again) if again else _endpoints(app, provider)
    try:
        code = code_from_redirect(params, state)
        granted = redeem_code(
            endpoints,
            code,
            str(sealed["verifier"]),
            str(sealed["redirect_uri"]),
            timeout=REQUEST_TIMEOUT,
        )
        if again is not None:
            return accounts.update(again.id, secret=granted.secret(endpoints.client_secret))
        return add_signed_in(
            accounts, endpoints, granted, str(sealed["name"]), "imap", str(sealed["user"])
        )
    except (PermanentError, RetryableError) as exc:
        # The person is at a browser: say what went wrong as a refused request.
        raise InvalidRequest(exc.message) from exc
