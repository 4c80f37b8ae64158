"""``/api/accounts``: mail accounts of the caller (all of them for an admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import func, select

from inboxd.activity import activity, latest_jobs
from inboxd.api.auth import CurrentUser
from inboxd.api.errors import ApiError, rate_limited
from inboxd.api.schemas import (
    Accepted,
    AccountCreate,
    AccountOut,
    AccountUpdate,
    ProbeOut,
    error_responses,
)
from inboxd.api.state import ApiState, State
from inboxd.db.engine import reading
from inboxd.db.tables import messages
from inboxd.providers.probe import probe_account
from inboxd.store.accounts import Account
from inboxd.store.users import User
from inboxd.sync.task import enqueue_sync

router = APIRouter(prefix="/api/accounts", tags=["accounts"])

_LOCAL = ("maildir", "mbox")


def _views(state: ApiState, found: list[Account]) -> list[dict[str, Any]]:
    ids = [a.id for a in found]
    latest = latest_jobs(state.app.engine, ids)
    counts: dict[str, int] = {}
    if ids:
        with reading(state.app.engine) as conn:
            rows = conn.execute(
                select(messages.c.account_id, func.count())
                .where(messages.c.account_id.in_(ids), messages.c.expunged_at.is_(None))
                .group_by(messages.c.account_id)
            )
            counts = {account_id: int(n) for account_id, n in rows}
    return [
        a.to_dict()
        | {
            "message_count": counts.get(a.id, 0),
            "activity": activity(latest.get(a.id), a.state, a.state_message),
        }
        for a in found
    ]


def owned_account(state: ApiState, user: User, account_id: str) -> Account:
    """The account if the caller may see it, else NotFound (404)."""
    return state.accounts.get(account_id, owner=user.owner_filter())


def _check_local_path(user: User, provider: str) -> None:
    # A path account reads files of the server's host: only an admin may point at one.
    if provider in _LOCAL and not user.is_admin:
        raise ApiError(403, "forbidden", f"only an admin may add {provider} accounts")


@router.get("", response_model=list[AccountOut], responses=error_responses(401))
def list_accounts(user: CurrentUser, state: State) -> Any:
    """The caller's accounts with their live state."""
    return _views(state, state.accounts.list(owner=user.owner_filter()))


@router.post(
    "",
    status_code=201,
    response_model=AccountOut,
    responses=error_responses(400, 401, 403, 422),
)
def create_account(body: AccountCreate, user: CurrentUser, state: State) -> Any:
    """Connect a mail account (owned by the caller)."""
    _check_local_path(user, body.provider)
    secret = body.secret.model_dump(exclude_none=True) if body.secret else None
    if body.provider == "imap" and not secret:
        raise ApiError(
            422,
            "invalid_request",
            "an IMAP account needs secret.password, .token or (with settings.oauth) .refresh_token",
        )
    settings = dict(body.settings)
    if secret and "password" not in secret and ("token" in secret or "refresh_token" in secret):
        settings.setdefault("auth", "xoauth2")
    account = state.accounts.add(
        body.provider,
        body.name,
        settings,
        secret=secret,
        owner=user.id,
        addresses=body.addresses,
        owner_name=body.owner_name,
        sync_interval_seconds=body.sync_interval_seconds,
    )
    return _views(state, [account])[0]


@router.get(
    "/{account_id}", response_model=AccountOut, responses=error_responses(400, 401, 404, 422)
)
def get_account(account_id: str, user: CurrentUser, state: State) -> Any:
    """One account."""
    return _views(state, [owned_account(state, user, account_id)])[0]


@router.patch(
    "/{account_id}", response_model=AccountOut, responses=error_responses(400, 401, 403, 404, 422)
)
def update_account(account_id: str, body: AccountUpdate, user: CurrentUser, state: State) -> Any:
    """Change an account."""
    account = owned_account(state, user, account_id)
    if body.settings is not None:
        _check_local_path(user, account.provider)
    changes = body.model_dump(exclude_unset=True, exclude={"secret"})
    changes = {k: v for k, v in changes.items() if v is not None or k == "owner_name"}
    secret = body.secret.model_dump(exclude_none=True) if body.secret else None
    updated = state.accounts.update(account.id, secret=secret, **changes)
    return _views(state, [updated])[0]


@router.delete(
    "/{account_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, 401, 403, 404, 422),
)
def delete_account(account_id: str, user: CurrentUser, state: State) -> Response:
    """Remove an account and its local copy (mail on the server is not touched)."""
    state.accounts.remove(owned_account(state, user, account_id).id)
    return Response(status_code=204)


@router.post(
    "/{account_id}/test",
    response_model=ProbeOut,
    responses=error_responses(400, 401, 403, 404, 422),
)
def test_account(account_id: str, user: CurrentUser, state: State) -> Any:
    """Connect, list folders and counts; say plainly what is wrong."""
    account = owned_account(state, user, account_id)
    # Runs on a worker thread of the server (this handler is sync), bounded by a timeout.
    timeout = min(15.0, state.app.settings.imap_timeout_seconds)
    return probe_account(state.accounts, account, timeout)


@router.post(
    "/{account_id}/sync",
    status_code=202,
    response_model=Accepted,
    responses=error_responses(400, 401, 403, 404, 409, 422, 429),
)
def sync_account(account_id: str, user: CurrentUser, state: State) -> Any:
    """Queue a sync now (or answer with the one already queued or running)."""
    account = owned_account(state, user, account_id)
    wait = state.job_limiter.take(user.id)
    if wait is not None:
        raise rate_limited(wait)
    job = enqueue_sync(state.app.queue, account)
    return {"job_id": job.id, "status": job.status.value}
