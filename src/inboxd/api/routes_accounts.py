"""``/api/accounts``: mail accounts of the caller (all of them for an admin)."""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio
from fastapi import APIRouter, Response

from inboxd.actions import accounts as actions
from inboxd.actions import messages as message_actions
from inboxd.api.auth import CurrentUser
from inboxd.api.errors import rate_limited
from inboxd.api.schemas import (
    Accepted,
    AccountCreate,
    AccountOut,
    AccountUpdate,
    CategoryCountsOut,
    FolderOut,
    ProbeOut,
    error_responses,
)
from inboxd.api.state import ApiState, State
from inboxd.store.users import User

router = APIRouter(prefix="/api/accounts", tags=["accounts"])

#: Retry-After of a test refused because every test slot is busy.
TEST_RETRY_SECONDS = 5.0


def owned_account(state: ApiState, user: User, account_id: str) -> actions.Account:
    """The account if the caller may see it, else NotFound (404)."""
    return actions.get_account(state.app, account_id, owner=user.owner_filter())


@router.get("", response_model=list[AccountOut], responses=error_responses(401))
def list_accounts(user: CurrentUser, state: State) -> Any:
    """The caller's accounts with their live state."""
    return actions.views(state.app, actions.list_accounts(state.app, owner=user.owner_filter()))


@router.post(
    "",
    status_code=201,
    response_model=AccountOut,
    responses=error_responses(400, 401, 403, 422),
)
def create_account(body: AccountCreate, user: CurrentUser, state: State) -> Any:
    """Connect a mail account (owned by the caller)."""
    account = actions.add_account(
        state.app,
        body.provider,
        body.name,
        dict(body.settings),
        owner=user.id,
        admin=user.is_admin,
        secret=body.secret.model_dump(exclude_none=True) if body.secret else None,
        addresses=body.addresses,
        owner_name=body.owner_name,
        sync_interval_seconds=body.sync_interval_seconds,
    )
    return actions.views(state.app, [account])[0]


@router.get(
    "/{account_id}", response_model=AccountOut, responses=error_responses(400, 401, 404, 422)
)
def get_account(account_id: str, user: CurrentUser, state: State) -> Any:
    """One account."""
    return actions.views(state.app, [owned_account(state, user, account_id)])[0]


@router.get(
    "/{account_id}/folders",
    response_model=list[FolderOut],
    responses=error_responses(400, 401, 404, 422),
)
def list_folders(account_id: str, user: CurrentUser, state: State) -> Any:
    """The account's folders with their message counts, by name (from the local copy)."""
    counts = actions.detail(state.app, owned_account(state, user, account_id))["folders"]
    return [{"name": name, "messages": n} for name, n in counts.items()]


@router.get(
    "/{account_id}/categories",
    response_model=CategoryCountsOut,
    responses=error_responses(400, 401, 404, 422),
)
def category_counts(account_id: str, user: CurrentUser, state: State) -> Any:
    """The account's messages per category (every category, 0 included) and how many are
    not triaged yet."""
    return message_actions.category_counts(state.app, account_id, owner=user.owner_filter())


@router.patch(
    "/{account_id}", response_model=AccountOut, responses=error_responses(400, 401, 403, 404, 422)
)
def update_account(account_id: str, body: AccountUpdate, user: CurrentUser, state: State) -> Any:
    """Change an account."""
    account = owned_account(state, user, account_id)
    changes = body.model_dump(exclude_unset=True, exclude={"secret"})
    changes = {k: v for k, v in changes.items() if v is not None or k == "owner_name"}
    updated = actions.update_account(
        state.app,
        account,
        admin=user.is_admin,
        secret=body.secret.model_dump(exclude_none=True) if body.secret else None,
        **changes,
    )
    return actions.views(state.app, [updated])[0]


@router.delete(
    "/{account_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, 401, 403, 404, 422),
)
def delete_account(account_id: str, user: CurrentUser, state: State) -> Response:
    """Remove an account and its local copy (mail on the server is not touched)."""
    actions.remove_account(state.app, owned_account(state, user, account_id))
    return Response(status_code=204)


@router.post(
    "/{account_id}/test",
    response_model=ProbeOut,
    responses=error_responses(400, 401, 403, 404, 422, 429),
)
async def test_account(account_id: str, user: CurrentUser, state: State) -> Any:
    """Connect, list folders and counts; say plainly what is wrong."""
    account = await anyio.to_thread.run_sync(owned_account, state, user, account_id)
    wait = state.test_limiter.take(user.id)
    if wait is not None:
        raise rate_limited(wait)
    if state.test_slots.available_tokens < 1:
        # Refused at once: a queue of tests waiting on silent servers helps nobody.
        raise rate_limited(TEST_RETRY_SECONDS)
    # Its own small pool: tests wait on mail servers, and the shared pool serves every
    # other request of every user.
    timeout = min(15.0, state.app.settings.imap_timeout_seconds)
    probe = partial(actions.test_account, state.app, account, timeout=timeout)
    return await anyio.to_thread.run_sync(probe, limiter=state.test_slots)


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
    job = actions.sync_now(state.app, account)
    return {"job_id": job.id, "status": job.status.value}
