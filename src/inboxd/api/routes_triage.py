"""Steering triage: a message's category (``POST /api/messages/{id}/category``) and the
caller's rules (``/api/rules``). A triage by hand is a generic job (``POST /api/jobs``,
kind ``triage``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from inboxd.actions import triage as actions
from inboxd.api.auth import CurrentUser
from inboxd.api.schemas import (
    Categorized,
    CategoryIn,
    RuleCreate,
    RuleCreated,
    RuleList,
    error_responses,
)
from inboxd.api.state import State

router = APIRouter(tags=["triage"])

MessageId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the message's id")]
RuleId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the rule's id")]


@router.post(
    "/api/messages/{message_id}/category",
    response_model=Categorized,
    responses=error_responses(400, 401, 403, 404, 422),
)
def set_category(message_id: MessageId, body: CategoryIn, user: CurrentUser, state: State) -> Any:
    """File a message under a category, kept by every later triage; with ``sender``, also
    always file its sender's mail so (a sender rule) and re-triage that mail in a job."""
    return actions.categorize(
        state.app,
        message_id,
        body.category,
        owner=user.owner_filter(),
        sender=body.sender,
    )


@router.get("/api/rules", response_model=RuleList, responses=error_responses(401))
def list_rules(user: CurrentUser, state: State) -> Any:
    """The caller's triage rules, newest first (an admin: everyone's)."""
    found = actions.list_rules(state.app, owner=user.owner_filter())
    return {"rules": [rule.to_dict() for rule in found]}


@router.post(
    "/api/rules",
    status_code=201,
    response_model=RuleCreated,
    responses=error_responses(400, 401, 403, 404, 422),
)
def add_rule(body: RuleCreate, user: CurrentUser, state: State) -> Any:
    """Add a rule: messages its match (a search query) finds get its category (and
    priority). Jobs re-triage the matching mail of the accounts it applies to."""
    rule, jobs = actions.add_rule(
        state.app,
        match=body.match,
        category=body.category,
        priority=body.priority,
        account_id=body.account_id,
        user_id=user.id,
        admin=user.is_admin,
    )
    return {"rule": rule.to_dict(), "job_ids": [job.id for job in jobs]}


@router.delete(
    "/api/rules/{rule_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404, 422),
)
def remove_rule(rule_id: RuleId, user: CurrentUser, state: State) -> Response:
    """Remove a rule; the mail it matched is triaged again."""
    actions.remove_rule(state.app, rule_id, owner=user.owner_filter())
    return Response(status_code=204)
