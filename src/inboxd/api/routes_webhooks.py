"""``/api/webhooks``: a user's URLs told when their jobs finish or fail, and the log of what
was sent. Webhooks are personal (an admin too sees only their own): another user's is 404.
The signing secret is in the answer to the creation only."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from inboxd.actions import webhooks as actions
from inboxd.api.auth import CurrentUser
from inboxd.api.errors import rate_limited
from inboxd.api.schemas import _In, error_responses
from inboxd.api.state import State

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])

WebhookId = Annotated[str, Path(min_length=1, max_length=36, description="the webhook's id")]
Event = Literal["job.finished", "job.failed"]
#: The shape of a webhook URL; the server checks the rest (a host, no credentials).
_URL = r"^https?://\S+$"
_ALL_EVENTS: list[Event] = ["job.finished", "job.failed"]
AccountIds = list[Annotated[str, Field(min_length=1, max_length=36)]]
Kinds = list[Annotated[str, Field(min_length=1, max_length=64)]]


class WebhookCreate(_In):
    """Where to POST, which events, and optionally only some accounts' or kinds' jobs."""

    url: str = Field(min_length=1, max_length=2000, pattern=_URL, description="http or https URL")
    events: list[Event] = Field(
        default_factory=lambda: list(_ALL_EVENTS), min_length=1, max_length=2
    )
    account_ids: AccountIds | None = Field(default=None, max_length=100)
    kinds: Kinds | None = Field(default=None, max_length=50)
    description: str | None = Field(default=None, max_length=200)


class WebhookChange(_In):
    """What to change; ``enabled: true`` re-enables a webhook disabled after failures."""

    enabled: bool | None = None
    url: str | None = Field(default=None, min_length=1, max_length=2000, pattern=_URL)
    events: list[Event] | None = Field(default=None, min_length=1, max_length=2)
    account_ids: AccountIds | None = Field(default=None, max_length=100)
    kinds: Kinds | None = Field(default=None, max_length=50)
    description: str | None = Field(default=None, max_length=200)


class WebhookOut(BaseModel):
    """A webhook (never its secret)."""

    id: str
    owner: str | None
    url: str
    events: list[str]
    account_ids: list[str] | None
    kinds: list[str] | None
    description: str | None
    enabled: bool
    consecutive_failures: int
    disabled_reason: str | None
    created_at: str
    updated_at: str


class WebhookCreated(WebhookOut):
    """The new webhook and its signing secret: store it now, it is not shown again."""

    secret: str


class WebhookList(BaseModel):
    """The caller's webhooks, oldest first."""

    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    """One event sent (or being sent) to a webhook."""

    id: int
    webhook_id: str
    job_id: str | None
    delivery_job_id: str | None
    event: str
    payload: dict[str, Any]
    status: str = Field(description="pending, delivered or failed")
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: str
    last_attempt_at: str | None
    delivered_at: str | None


class DeliveryList(BaseModel):
    """A webhook's deliveries, newest first."""

    deliveries: list[DeliveryOut]


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    responses=error_responses(400, 401, 404, 422),
)
def create(body: WebhookCreate, user: CurrentUser, state: State) -> Any:
    """Add a webhook for the caller's jobs; the answer holds its secret, this once."""
    return actions.add(
        state.app,
        owner=user.id,
        url=body.url,
        events=body.events,
        account_ids=body.account_ids,
        kinds=body.kinds,
        description=body.description,
    )


@router.get("", response_model=WebhookList, responses=error_responses(401))
def list_webhooks(user: CurrentUser, state: State) -> Any:
    """The caller's webhooks."""
    return {"webhooks": actions.list_webhooks(state.app, owner=user.id)}


@router.get("/{webhook_id}", response_model=WebhookOut, responses=error_responses(401, 404, 422))
def show(webhook_id: WebhookId, user: CurrentUser, state: State) -> Any:
    """One webhook, with its failure count and why it was disabled, if it was."""
    return actions.get(state.app, webhook_id, owner=user.id)


@router.patch(
    "/{webhook_id}", response_model=WebhookOut, responses=error_responses(400, 401, 404, 422)
)
def change(webhook_id: WebhookId, body: WebhookChange, user: CurrentUser, state: State) -> Any:
    """Enable or disable, or change the URL, events or filters (``null`` filter: all)."""
    # null clears a filter or the description; elsewhere it means "unchanged".
    changes = {
        name: value
        for name, value in body.model_dump(exclude_unset=True).items()
        if value is not None or name in ("account_ids", "kinds", "description")
    }
    return actions.change(state.app, webhook_id, changes, owner=user.id)


@router.delete("/{webhook_id}", status_code=204, responses=error_responses(401, 404, 422))
def remove(webhook_id: WebhookId, user: CurrentUser, state: State) -> Response:
    """Remove a webhook and its delivery log."""
    actions.remove(state.app, webhook_id, owner=user.id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryList,
    responses=error_responses(401, 404, 422),
)
def deliveries(
    webhook_id: WebhookId,
    user: CurrentUser,
    state: State,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """The webhook's deliveries, newest first: event, status, attempts, last answer."""
    found = actions.deliveries(state.app, webhook_id, owner=user.id, limit=limit)
    return {"deliveries": found}


@router.post(
    "/{webhook_id}/test",
    status_code=202,
    response_model=DeliveryOut,
    responses=error_responses(401, 404, 422, 429),
)
def test(webhook_id: WebhookId, user: CurrentUser, state: State) -> Any:
    """Queue a ``webhook.test`` delivery (also while disabled); watch the delivery log."""
    # Each test is a job: it counts against the caller's job rate like any other.
    wait = state.job_limiter.take(user.id)
    if wait is not None:
        raise rate_limited(wait)
    return actions.send_test(state.app, webhook_id, owner=user.id)
