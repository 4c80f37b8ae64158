"""Webhooks as people manage them: add (the secret shown once), list, show, change, remove,
the delivery log, a test delivery. A webhook is its owner's: another user's is "not found";
``owner=None`` looks at every webhook (the operator's CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inboxd.app import App
from inboxd.errors import InvalidField, UnknownJobKind
from inboxd.jobs.registry import get_task
from inboxd.store.accounts import Accounts
from inboxd.store.webhooks import EVENTS, Webhooks

__all__ = [
    "EVENTS",
    "add",
    "change",
    "deliveries",
    "get",
    "list_webhooks",
    "remove",
    "send_test",
]


def _store(app: App) -> Webhooks:
    return Webhooks(app.engine, app.settings)


def _check_filters(
    app: App, owner: str | None, account_ids: Sequence[str] | None, kinds: Sequence[str] | None
) -> None:
    # A filter naming another user's account would leak nothing, but would never match
    # either: it is refused as "not found" like any look-up of another user's account.
    accounts = Accounts(app.engine, app.settings)
    for account_id in account_ids or ():
        accounts.get(account_id, owner=owner)
    for kind in kinds or ():
        try:
            get_task(kind)
        except UnknownJobKind:
            raise InvalidField(f"kinds: unknown job kind {kind!r}") from None


def add(
    app: App,
    *,
    owner: str | None,
    url: str,
    events: Sequence[str] = EVENTS,
    account_ids: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """A new webhook for ``owner``'s jobs; the answer holds its secret, the only time."""
    _check_filters(app, owner, account_ids, kinds)
    hook, secret = _store(app).create(
        owner=owner,
        url=url,
        events=events,
        account_ids=account_ids,
        kinds=kinds,
        description=description,
    )
    return hook.to_dict() | {"secret": secret}


def list_webhooks(app: App, *, owner: str | None) -> list[dict[str, Any]]:
    """The owner's webhooks (everyone's with ``owner=None``), oldest first."""
    return [h.to_dict() for h in _store(app).all(owner=owner)]


def get(app: App, webhook_id: str, *, owner: str | None) -> dict[str, Any]:
    """One webhook, without its secret."""
    return _store(app).get(webhook_id, owner=owner).to_dict()


def change(
    app: App, webhook_id: str, changes: dict[str, Any], *, owner: str | None
) -> dict[str, Any]:
    """Enable (which forgets past failures) or disable, or change URL, events or filters."""
    hook = _store(app).get(webhook_id, owner=owner)
    _check_filters(app, hook.owner, changes.get("account_ids"), changes.get("kinds"))
    return _store(app).update(webhook_id, changes, owner=owner).to_dict()


def remove(app: App, webhook_id: str, *, owner: str | None) -> None:
    """Remove a webhook and its delivery log."""
    _store(app).remove(webhook_id, owner=owner)


def deliveries(
    app: App, webhook_id: str, *, owner: str | None, limit: int = 50
) -> list[dict[str, Any]]:
    """The webhook's deliveries, newest first."""
    return [d.to_dict() for d in _store(app).deliveries(webhook_id, owner=owner, limit=limit)]


def send_test(app: App, webhook_id: str, *, owner: str | None) -> dict[str, Any]:
    """Queue a test delivery; its outcome shows in the delivery log."""
    return _store(app).send_test(webhook_id, owner=owner).to_dict()
