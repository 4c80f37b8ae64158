"""The ``sign_in`` job: a Microsoft device-code sign-in, run by a worker.

The person may take minutes to approve, so the web process never waits for it: the job
asks for a code, shows it (and the URL) as its progress message, polls the token endpoint
and, once approved, stores a new account with the grant (or gives the job's account its new
grant). Its result is the account's id. The device code itself never leaves the worker.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from inboxd.errors import InvalidParams, PermanentError
from inboxd.jobs.progress import TaskContext
from inboxd.jobs.registry import task
from inboxd.providers import registry as providers
from inboxd.providers.oauth_flows import (
    GRAPH_SCOPE,
    Endpoints,
    SignedIn,
    account_oauth,
    endpoints_for_account,
    graph_account_settings,
    imap_settings,
    microsoft_endpoints,
    poll_device_flow,
    start_device_flow,
)
from inboxd.store.accounts import Account, Accounts
from inboxd.vocabulary import Step

#: How long one token request may take.
REQUEST_TIMEOUT = 30.0


class SignInParams(BaseModel, extra="forbid"):
    """Parameters of ``sign_in``: a new account's name and kind, or (with the job's
    account_id) nothing: that account signs in again."""

    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"\S")
    kind: Literal["imap", "graph"] = "imap"
    client_id: str | None = Field(default=None, min_length=1, max_length=200)
    tenant: str = Field(
        default="common", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$"
    )


@task("sign_in", params=SignInParams, max_attempts=1)
def sign_in(ctx: TaskContext, params: SignInParams) -> dict[str, Any]:
    """Sign in to Microsoft with a device code; the result names the account."""
    accounts = Accounts(ctx.engine, ctx.settings)
    existing = _job_account(ctx, accounts)
    if existing is None and params.name is None:
        raise InvalidParams("a sign_in job needs a name for the new account (or an account_id)")
    if existing is not None:
        oauth = account_oauth(existing.settings)
        if oauth is None:
            raise PermanentError("this account does not sign in with OAuth")
        endpoints = endpoints_for_account(ctx.settings, oauth, None)
    else:
        scope = GRAPH_SCOPE if params.kind == "graph" else None
        endpoints = microsoft_endpoints(
            ctx.settings, client_id=params.client_id, tenant=params.tenant, mail_scope=scope
        )
        if params.kind == "graph" and "graph" not in providers.names():
            raise PermanentError("this installation has no Graph provider")
    granted = _device_sign_in(ctx, endpoints)
    if existing is not None:
        accounts.update(existing.id, secret=granted.secret(None))
        return {"account_id": existing.id, "username": granted.username}
    assert params.name is not None
    made = add_signed_in(accounts, endpoints, granted, params.name, params.kind, ctx.job.owner)
    return {"account_id": made.id, "username": granted.username}


def _job_account(ctx: TaskContext, accounts: Accounts) -> Account | None:
    if ctx.job.account_id is None:
        return None
    # Whoever queued the job may act on its account: the queue's callers checked that.
    found = accounts.get(ctx.job.account_id)
    oauth = account_oauth(found.settings)
    if not oauth or oauth.get("provider") != "microsoft":
        raise PermanentError("only a Microsoft account signs in with a device code")
    return found


def _device_sign_in(ctx: TaskContext, endpoints: Endpoints) -> SignedIn:
    progress = ctx.progress
    code = start_device_flow(endpoints, timeout=REQUEST_TIMEOUT)
    progress.step(Step.SIGNING_IN, message=code.instructions)
    progress.log(code.instructions, user_code=code.user_code, url=code.verification_uri)

    def wait(seconds: float) -> None:
        # In short waits, so that a cancel or a shutdown ends the job within a second.
        remaining = seconds
        while remaining > 0:
            progress.check_cancelled()
            ctx.progress.cancel_event.wait(min(0.5, remaining))
            remaining -= 0.5
        progress.check_cancelled()

    return poll_device_flow(endpoints, code, timeout=REQUEST_TIMEOUT, wait=wait)


def add_signed_in(
    accounts: Accounts,
    endpoints: Endpoints,
    granted: SignedIn,
    name: str,
    kind: str,
    owner: str | None,
) -> Account:
    """Store a new account holding a fresh grant (its tokens sealed like any secret)."""
    if not granted.username:
        raise PermanentError("the sign-in did not say which address signed in")
    settings: dict[str, Any]
    if kind == "graph":
        settings = graph_account_settings(endpoints, accounts.settings)
    else:
        settings = imap_settings(endpoints.provider, granted.username, endpoints.account_oauth())
    return accounts.add(
        kind,
        name,
        settings,
        secret=granted.secret(endpoints.client_secret),
        owner=owner,
        addresses=[granted.username] if "@" in granted.username else [],
    )
