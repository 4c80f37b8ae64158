"""``/api/cleanups``: clean-ups a person approves. Proposing starts a read-only discovery
job that waits in ``awaiting_approval``; only the signed-in person (or their key) approves
it, which lets the same job carry out the approved part."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from inboxd.actions import cleanups as actions
from inboxd.api.auth import CurrentUser
from inboxd.api.errors import rate_limited
from inboxd.api.routes_accounts import owned_account
from inboxd.api.schemas import (
    Accepted,
    CleanupApprove,
    CleanupApproved,
    CleanupCreate,
    CleanupDetail,
    CleanupList,
    error_responses,
)
from inboxd.api.state import State

router = APIRouter(prefix="/api/cleanups", tags=["cleanups"])

CleanupId = Annotated[str, Path(min_length=1, max_length=36, description="the clean-up's job id")]


@router.post(
    "",
    status_code=202,
    response_model=Accepted,
    responses=error_responses(400, 401, 403, 404, 422, 429),
)
def propose(body: CleanupCreate, user: CurrentUser, state: State) -> Any:
    """Propose a clean-up: a job finds the candidates and what it protects, then waits for
    approval (nothing on the server changes before)."""
    account = owned_account(state, user, body.account_id)
    wait = state.job_limiter.take(user.id)
    if wait is not None:
        raise rate_limited(wait)
    job = actions.propose(
        state.app,
        account,
        categories=[str(c) for c in body.categories],
        older_than=body.older_than,
        query=body.query,
        action=body.action.value,
    )
    return {"job_id": job.id, "status": job.status.value}


@router.get("", response_model=CleanupList, responses=error_responses(401, 422))
def list_cleanups(
    user: CurrentUser, state: State, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> Any:
    """The caller's clean-ups, newest first (an admin: everyone's)."""
    return {"cleanups": actions.list_cleanups(state.app, owner=user.owner_filter(), limit=limit)}


@router.get("/{cleanup_id}", response_model=CleanupDetail, responses=error_responses(401, 404, 422))
def show(cleanup_id: CleanupId, user: CurrentUser, state: State) -> Any:
    """A clean-up's proposal (candidates with reasons, protected messages with why, senders,
    a preview) and, once it ran, what it did."""
    return actions.show(state.app, cleanup_id, owner=user.owner_filter())


@router.post(
    "/{cleanup_id}/approve",
    status_code=202,
    response_model=CleanupApproved,
    responses={
        200: {"model": CleanupApproved, "description": "Approved before: nothing runs again."},
        **error_responses(400, 401, 403, 404, 409, 422),
    },
)
def approve(
    cleanup_id: CleanupId, body: CleanupApprove, user: CurrentUser, state: State, response: Response
) -> Any:
    """Approve the proposal (``only`` these candidates, or all but ``exclude``): its job
    carries it out. A second approval changes nothing (200, ``already_approved``)."""
    done = actions.approve(
        state.app,
        cleanup_id,
        owner=user.owner_filter(),
        by=user.id,
        only=body.only,
        exclude=body.exclude,
    )
    if done["already_approved"]:
        response.status_code = 200
    return done
