"""Mail accounts as people act on them: the rules shared by the API, the CLI and MCP."""

from __future__ import annotations

from typing import Any

from inboxd.activity import activity, latest_jobs
from inboxd.app import App
from inboxd.errors import Forbidden, InvalidField, InvalidRequest, NotFound
from inboxd.jobs.model import Job
from inboxd.pipeline.changes import read_only_reason
from inboxd.pipeline.labels import enqueue_label
from inboxd.providers.probe import probe_account
from inboxd.store.accounts import Account, Accounts
from inboxd.sync.task import enqueue_sync

#: Providers that read files on the server's own host.
LOCAL_PROVIDERS = ("maildir", "mbox")

__all__ = [
    "LOCAL_PROVIDERS",
    "Account",
    "add_account",
    "check_may_use",
    "detail",
    "find_account",
    "get_account",
    "graph_settings",
    "list_accounts",
    "remove_account",
    "secret_from_input",
    "sync_now",
    "test_account",
    "update_account",
    "views",
]


def registry(app: App) -> Accounts:
    """The account registry of ``app``."""
    return Accounts(app.engine, app.settings)


def check_may_use(provider: str, *, admin: bool) -> None:
    """A path account reads files of the server's host: only an admin may point at one."""
    if provider in LOCAL_PROVIDERS and not admin:
        raise Forbidden(f"only an admin may add {provider} accounts")


def secret_from_input(settings: dict[str, Any], value: str) -> dict[str, Any]:
    """What a person's one secret is for an account with ``settings``: a password, an access
    token (XOAUTH2), or a refresh token (XOAUTH2 with an OAuth client)."""
    if settings.get("oauth"):
        return {"refresh_token": value}
    return {"token" if settings.get("auth") == "xoauth2" else "password": value}


def _with_auth(
    provider: str, settings: dict[str, Any], secret: dict[str, Any] | None
) -> dict[str, Any]:
    """Settings with the login method the secret implies: a token without a password means
    XOAUTH2 unless the settings say otherwise."""
    if provider != "imap":
        return settings
    if not secret:
        raise InvalidField(
            "an IMAP account needs secret.password, .token or (with settings.oauth) .refresh_token"
        )
    if "password" not in secret and ("token" in secret or "refresh_token" in secret):
        return {"auth": "xoauth2"} | settings if settings.get("auth") is None else settings
    return settings


def graph_settings(
    app: App, settings: dict[str, Any], secret: dict[str, Any] | None
) -> dict[str, Any]:
    """A Graph account's settings with the service's Microsoft endpoints (the settings
    ``graph_authority`` and ``graph_url``, never a client's: tokens are sent there)."""
    if not secret or not secret.get("refresh_token"):
        raise InvalidField("a Graph account needs secret.refresh_token")
    return settings | {
        "authority": app.settings.graph_authority,
        "graph_url": app.settings.graph_url,
    }


def add_account(
    app: App,
    provider: str,
    name: str,
    settings: dict[str, Any],
    *,
    owner: str,
    admin: bool,
    secret: dict[str, Any] | None = None,
    addresses: list[str] | None = None,
    owner_name: str | None = None,
    sync_interval_seconds: int | None = None,
) -> Account:
    """Connect a mail account owned by ``owner``; its secret is sealed before it is stored."""
    check_may_use(provider, admin=admin)
    clean = {k: v for k, v in settings.items() if v is not None}
    if provider == "graph":
        clean = graph_settings(app, clean, secret)
    return registry(app).add(
        provider,
        name,
        _with_auth(provider, clean, secret),
        secret=secret,
        owner=owner,
        addresses=addresses,
        owner_name=owner_name,
        sync_interval_seconds=sync_interval_seconds,
    )


def get_account(app: App, account_id: str, *, owner: str | None = None) -> Account:
    """One account by id; ``owner`` limits the search to that owner's accounts."""
    return registry(app).get(account_id, owner=owner)


def find_account(app: App, ref: str, *, owner: str | None = None) -> Account:
    """An account by id, or by its name when exactly one account has it."""
    accounts = registry(app)
    try:
        return accounts.get(ref, owner=owner)
    except NotFound:
        named = [a for a in accounts.list(owner=owner) if a.name == ref]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            raise InvalidRequest(f"several accounts are named {ref!r}; use the id") from None
        raise


def list_accounts(app: App, *, owner: str | None = None) -> list[Account]:
    """Accounts, oldest first."""
    return registry(app).list(owner=owner)


def views(app: App, found: list[Account]) -> list[dict[str, Any]]:
    """Accounts as clients show them: settings without secrets, message count, live state."""
    ids = [a.id for a in found]
    latest = latest_jobs(app.engine, ids)
    counts = registry(app).message_counts(ids)
    return [
        a.to_dict()
        | {
            "message_count": counts.get(a.id, 0),
            "activity": activity(latest.get(a.id), a.state, a.state_message),
        }
        for a in found
    ]


def detail(app: App, account: Account) -> dict[str, Any]:
    """An account with its counts in all and per folder."""
    return account.to_dict() | registry(app).counts(account.id)


def update_account(
    app: App,
    account: Account,
    *,
    admin: bool,
    secret: dict[str, Any] | None = None,
    **changes: Any,
) -> Account:
    """Change name, schedule, settings, secret or label policy (``labels``); new settings
    or a new secret bring an account that needs attention back to periodic syncs, and
    turning labels on queues a label job for the mail triaged so far."""
    if changes.get("settings") is not None:
        check_may_use(account.provider, admin=admin)
    if secret is not None and account.provider != "imap":
        raise InvalidRequest(f"a {account.provider} account has no password")
    labels = changes.pop("labels", None)
    if labels is not None:
        read_only = read_only_reason(app.engine, app.settings, account) if labels else None
        if read_only is not None:
            raise InvalidRequest(f"{read_only}, so it cannot write labels to them")
        changes["labels_enabled"] = bool(labels)
    updated = registry(app).update(account.id, secret=secret, **changes)
    if labels:
        enqueue_label(app.queue, updated)
    return updated


def remove_account(app: App, account: Account) -> None:
    """Remove an account and its local copy (mail on the server is not touched)."""
    registry(app).remove(account.id)


def test_account(app: App, account: Account, *, timeout: float | None = None) -> dict[str, Any]:
    """Connect, list folders and counts; ``{"ok", "summary"|"error", "folders"}``."""
    limit = app.settings.imap_timeout_seconds if timeout is None else timeout
    return probe_account(registry(app), account, limit)


def sync_now(app: App, account: Account) -> Job:
    """Queue a sync of ``account`` now (or give back the one already queued or running)."""
    return enqueue_sync(app.queue, account)
