"""Changing mail: mark a message (``POST /api/messages/{id}/mark``), undo a job's changes
(``POST /api/jobs/{id}/undo``) and read what a job changed (``GET /api/jobs/{id}/journal``).
Changes run as jobs; these answer at once with the job's id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from inboxd.actions import changes as actions
from inboxd.api.auth import CurrentUser
from inboxd.api.errors import rate_limited
from inboxd.api.schemas import Accepted, JournalOut, MarkIn, UndoAccepted, error_responses
from inboxd.api.state import State
from inboxd.vocabulary import JournalState

router = APIRouter(tags=["changes"])

MessageId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the message's id")]


def _take(state: State, user_id: str) -> None:
    wait = state.job_limiter.take(user_id)
    if wait is not None:
        raise rate_limited(wait)


@router.post(
    "/api/messages/{message_id}/mark",
    status_code=202,
    response_model=Accepted,
    responses=error_responses(400, 401, 403, 404, 422, 429),
)
def mark(message_id: MessageId, body: MarkIn, user: CurrentUser, state: State) -> Any:
    """Mark a message read, unread, flagged or unflagged on the server (a journaled,
    undoable job); 400 for a read-only (mbox) account."""
    _take(state, user.id)
    job = actions.mark(state.app, message_id, body.action, owner=user.owner_filter())
    return {"job_id": job.id, "status": job.status.value}


@router.post(
    "/api/jobs/{job_id}/undo",
    status_code=202,
    response_model=UndoAccepted,
    responses=error_responses(400, 401, 403, 404, 409, 422, 429),
)
def undo(job_id: str, user: CurrentUser, state: State) -> Any:
    """Put back what a finished job changed, as a job of its own (itself journaled); 409
    while the job runs, when it changed nothing or is already undone."""
    _take(state, user.id)
    job = actions.undo_job(state.app, job_id, owner=user.owner_filter())
    return {"job_id": job.id, "status": job.status.value, "undoes": job_id}


@router.get(
    "/api/jobs/{job_id}/journal",
    response_model=JournalOut,
    responses=error_responses(400, 401, 404, 422),
)
def journal(
    job_id: str,
    user: CurrentUser,
    state: State,
    journal_state: Annotated[JournalState | None, Query(alias="state")] = None,
    limit: Annotated[int, Query(ge=1, le=actions.MAX_LIMIT)] = actions.DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> Any:
    """What a job changed, message by message: before and after, and why a message was
    skipped; with counts per state and whether it can be undone."""
    return actions.journal_of(
        state.app,
        job_id,
        owner=user.owner_filter(),
        state=journal_state.value if journal_state is not None else None,
        limit=limit,
        offset=offset,
    )
