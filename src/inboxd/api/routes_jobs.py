"""``/api/jobs``: the caller's jobs (everyone's for an admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from inboxd.api.auth import CurrentUser
from inboxd.api.errors import ApiError, rate_limited
from inboxd.api.routes_accounts import owned_account
from inboxd.api.schemas import Accepted, JobCreate, JobOut, error_responses
from inboxd.api.state import State
from inboxd.errors import UnknownJobKind
from inboxd.jobs.model import JobStatus
from inboxd.jobs.registry import get_task
from inboxd.sync.task import enqueue_sync

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

#: Queues whose kinds only an admin may start by hand (housekeeping).
_ADMIN_QUEUES = {"maintenance"}

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
    found = state.app.queue.list_jobs(
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
    try:
        spec = get_task(body.kind)
    except UnknownJobKind as exc:
        raise ApiError(422, "invalid_request", exc.message) from None
    if spec.queue in _ADMIN_QUEUES and not user.is_admin:
        raise ApiError(403, "forbidden", f"only an admin may start {body.kind!r} jobs")
    account = owned_account(state, user, body.account_id) if body.account_id else None
    wait = state.job_limiter.take(user.id)
    if wait is not None:
        raise rate_limited(wait)
    if body.kind == "sync":
        if account is None:
            raise ApiError(422, "invalid_request", "a sync job needs an account_id")
        job = enqueue_sync(state.app.queue, account)
    else:
        job = state.app.queue.enqueue(
            body.kind,
            body.params,
            owner=account.owner if account else user.id,
            account_id=account.id if account else None,
        )
    return {"job_id": job.id, "status": job.status.value}


@router.get("/{job_id}", response_model=JobOut, responses=error_responses(400, 401, 404, 422))
def get_job(job_id: str, user: CurrentUser, state: State) -> Any:
    """One job's snapshot: status, step, progress, rate, ETA, result or error."""
    return state.app.queue.get(job_id, owner=user.owner_filter()).to_dict()


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def cancel_job(job_id: str, user: CurrentUser, state: State) -> Any:
    """Cancel: at once when waiting, at the next checkpoint when running."""
    return state.app.queue.cancel(job_id, owner=user.owner_filter()).to_dict()


@router.post(
    "/{job_id}/retry",
    response_model=JobOut,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def retry_job(job_id: str, user: CurrentUser, state: State) -> Any:
    """Queue a failed or cancelled job again (same id)."""
    return state.app.queue.retry(job_id, owner=user.owner_filter()).to_dict()
