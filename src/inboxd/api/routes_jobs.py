"""``/api/jobs``: the caller's jobs (everyone's for an admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from inboxd.actions import jobs as actions
from inboxd.api.auth import CurrentUser
from inboxd.api.errors import rate_limited
from inboxd.api.routes_accounts import owned_account
from inboxd.api.schemas import Accepted, JobCreate, JobOut, error_responses
from inboxd.api.state import State
from inboxd.jobs.model import JobStatus

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

StatusFilter = Annotated[list[JobStatus] | None, Query()]


@router.get("", response_model=list[JobOut], responses=error_responses(400, 401, 422))
def list_jobs(
    user: CurrentUser,
    state: State,
    status: StatusFilter = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    account_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Jobs, newest first, filtered by status (repeatable), kind or account."""
    found = actions.list_jobs(
        state.app,
        status=[s.value for s in status] if status else None,
        kind=kind,
        owner=user.owner_filter(),
        account_id=account_id,
        limit=limit,
    )
    return [j.to_dict() for j in found]


@router.post(
    "",
    status_code=202,
    response_model=Accepted,
    responses=error_responses(400, 401, 403, 404, 409, 422, 429),
)
def create_job(body: JobCreate, user: CurrentUser, state: State) -> Any:
    """Start a job of a generic kind; answers at once with its id."""
    # Checked before the rate limit, so a wrong request never spends the caller's budget.
    actions.check_may_start(body.kind, admin=user.is_admin)
    account = owned_account(state, user, body.account_id) if body.account_id else None
    wait = state.job_limiter.take(user.id)
    if wait is not None:
        raise rate_limited(wait)
    job = actions.start_job(
        state.app, body.kind, body.params, user_id=user.id, admin=user.is_admin, account=account
    )
    return {"job_id": job.id, "status": job.status.value}


@router.get("/{job_id}", response_model=JobOut, responses=error_responses(400, 401, 404, 422))
def get_job(job_id: str, user: CurrentUser, state: State) -> Any:
    """One job's snapshot: status, step, progress, rate, ETA, result or error."""
    return actions.get_job(state.app, job_id, owner=user.owner_filter()).to_dict()


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def cancel_job(job_id: str, user: CurrentUser, state: State) -> Any:
    """Cancel: at once when waiting, at the next checkpoint when running."""
    return actions.cancel_job(state.app, job_id, owner=user.owner_filter()).to_dict()


@router.post(
    "/{job_id}/retry",
    response_model=JobOut,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def retry_job(job_id: str, user: CurrentUser, state: State) -> Any:
    """Queue a failed or cancelled job again (same id)."""
    return actions.retry_job(state.app, job_id, owner=user.owner_filter()).to_dict()
