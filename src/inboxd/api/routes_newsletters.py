"""``/api/newsletters/extractions``: the articles behind a user's newsletters, as a job.

Starting answers at once with the job's id; the extraction runs on a worker (its links
filtered before any request, resolved through the guarded client) and its result is stored
with the extraction, which outlives its job: a refresh loses nothing, a second look runs
nothing again, and a second start of the same one while it waits or runs returns it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, BeforeValidator, Field

from inboxd.actions import newsletters as actions
from inboxd.api.auth import CurrentUser
from inboxd.api.errors import ApiError, rate_limited
from inboxd.api.schemas import _In, _integral, error_responses
from inboxd.api.state import State

router = APIRouter(prefix="/api/newsletters/extractions", tags=["newsletters"])

ExtractionId = Annotated[
    str, Path(min_length=1, max_length=36, description="the extraction's job id")
]


class ExtractionCreate(_In):
    """What to extract: a window (hours or days back), how many newsletters, from whom."""

    account_id: str | None = Field(default=None, min_length=1, max_length=36)
    hours_back: Annotated[int, Ge(1), Le(24 * 366), BeforeValidator(_integral)] | None = None
    days_back: Annotated[int, Ge(1), Le(3660), BeforeValidator(_integral)] | None = None
    max_results: Annotated[int, Ge(1), Le(1000), BeforeValidator(_integral)] = 50
    senders: list[Annotated[str, Field(max_length=320)]] = Field(
        default_factory=list, max_length=100
    )


class ExtractionAccepted(BaseModel):
    """The extraction's job was queued (or the same one was waiting or running already)."""

    extraction_id: str
    status: str
    deduplicated: bool = False


class ExtractionOut(BaseModel):
    """An extraction's state and, once completed, its result."""

    extraction_id: str
    status: str
    params: dict[str, Any]
    step: str | None
    progress_current: int
    progress_total: int | None
    message: str | None
    error: str | None
    queue_position: int | None
    created_at: str
    started_at: str | None
    completed_at: str | None
    counts: dict[str, Any] | None
    result: dict[str, Any] | None


class ExtractionList(BaseModel):
    """The caller's extractions, newest first (without their results)."""

    extractions: list[ExtractionOut]


@router.post(
    "",
    status_code=202,
    response_model=ExtractionAccepted,
    responses=error_responses(400, 401, 404, 422, 429),
)
def start(body: ExtractionCreate, user: CurrentUser, state: State) -> Any:
    """Start an extraction; its id comes back at once (poll it for progress and result)."""
    wait = state.job_limiter.take(user.id)
    if wait is not None:
        raise rate_limited(wait)
    try:
        job = actions.start_extraction(
            state.app,
            body.model_dump(exclude_none=True),
            owner=user.id,
            any_account=user.is_admin,
            limit=state.app.settings.newsletter_max_running,
        )
    except actions.AtLimit as exc:
        raise ApiError(429, "rate_limited", exc.message, {"Retry-After": "10"}) from None
    return {
        "extraction_id": job.id,
        "status": job.status.value,
        "deduplicated": job.deduplicated,
    }


@router.get("", response_model=ExtractionList, responses=error_responses(401, 422))
def list_extractions(
    user: CurrentUser, state: State, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> Any:
    """The caller's extractions, newest first (an admin: everyone's)."""
    found = actions.list_extractions(state.app, owner=user.owner_filter(), limit=limit)
    return {"extractions": found}


@router.get(
    "/{extraction_id}", response_model=ExtractionOut, responses=error_responses(401, 404, 422)
)
def show(extraction_id: ExtractionId, user: CurrentUser, state: State) -> Any:
    """An extraction's status, progress, error, times, queue position and, when completed,
    its result."""
    return actions.show(state.app, extraction_id, owner=user.owner_filter())


@router.delete(
    "/{extraction_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 404, 409, 422),
)
def delete(extraction_id: ExtractionId, user: CurrentUser, state: State) -> Response:
    """Remove an ended extraction and its result (409 while it waits or runs: cancel it)."""
    actions.delete_extraction(state.app, extraction_id, owner=user.owner_filter())
    return Response(status_code=204)


_EXPORTS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The result as JSON or plain text.",
        "content": {
            "application/json": {"schema": {}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


@router.get(
    "/{extraction_id}/export",
    response_class=Response,
    responses=_EXPORTS | error_responses(400, 401, 404, 422),
)
def export(
    extraction_id: ExtractionId,
    user: CurrentUser,
    state: State,
    format: Annotated[Literal["json", "text"], Query()] = "json",
) -> Response:
    """A completed extraction's result as a file (JSON, or plain text)."""
    body = actions.export(state.app, extraction_id, owner=user.owner_filter(), fmt=format)
    media = "application/json" if format == "json" else "text/plain; charset=utf-8"
    name = f"newsletters-{extraction_id}.{'json' if format == 'json' else 'txt'}"
    return Response(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
