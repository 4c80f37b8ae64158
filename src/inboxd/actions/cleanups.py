"""Clean-ups as people run them: propose (a read-only discovery job), show the proposal,
list them, and approve it (all candidates, only some, or all but some). Only a person
approves: the API's signed-in user or key, or the operator at the command line; approving
twice does nothing twice. Another user's clean-up is "not found"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from inboxd.app import App
from inboxd.db.engine import reading, writing
from inboxd.errors import InvalidField, InvalidRequest, InvalidState, NotFound
from inboxd.jobs.model import Job, JobStatus
from inboxd.jobs.registry import get_task
from inboxd.pipeline.changes import read_only_reason
from inboxd.pipeline.cleanup import CleanupParams, criteria_of
from inboxd.store import cleanups as store
from inboxd.store.accounts import Account, Accounts
from inboxd.store.search import parse_query
from inboxd.vocabulary import CleanupAction, ItemRole

__all__ = ["approve", "list_cleanups", "propose", "show", "start_cleanup_job"]

#: Actions that change mail (an unsubscribe only posts to the list's server).
CHANGING = frozenset({CleanupAction.ARCHIVE, CleanupAction.MARK_READ, CleanupAction.LABEL})


def _refuse_read_only(app: App, account: Account, action: CleanupAction) -> None:
    if action not in CHANGING:
        return
    why = read_only_reason(app.engine, app.settings, account)
    if why is not None:
        raise InvalidRequest(f"{why} (a clean-up that would {action.value} cannot run here)")


def propose(
    app: App,
    account: Account,
    *,
    categories: Sequence[str] = (),
    older_than: str | None = None,
    query: str | None = None,
    action: str = CleanupAction.ARCHIVE.value,
) -> Job:
    """Start a clean-up's discovery: a job that finds candidates, protects what must not be
    touched and waits for a person's approval (nothing on the server changes before)."""
    try:
        params = CleanupParams(
            account_id=account.id,
            action=action,
            categories=[c.strip().lower() for c in categories if c.strip()],
            older_than=older_than,
            query=query,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidField(f"{where}: {first['msg']}") from None
    _refuse_read_only(app, account, params.cleanup_action)
    if params.query is not None:
        parse_query(params.query)  # a bad query is refused now, not by a failed job later
    job = app.queue.enqueue(
        "cleanup",
        params.model_dump(mode="json", exclude_defaults=True) | {"action": params.action},
        owner=account.owner,
        account_id=account.id,
    )
    with writing(app.engine) as conn:
        store.create(
            conn,
            job_id=job.id,
            account_id=account.id,
            owner=account.owner,
            action=params.action,
            criteria=criteria_of(params),
        )
    return job


def start_cleanup_job(app: App, params: dict[str, Any], account: Account) -> Job:
    """A clean-up asked for as a generic job (``POST /api/jobs``): the same proposal."""
    checked = CleanupParams.model_validate(
        get_task("cleanup").validate({"account_id": account.id} | params)
    )
    if checked.account_id != account.id:
        raise InvalidField("params.account_id must be the job's account_id")
    return propose(
        app,
        account,
        categories=checked.categories,
        older_than=checked.older_than,
        query=checked.query,
        action=checked.action,
    )


def _view(app: App, found: store.Cleanup, job: Job | None) -> dict[str, Any]:
    return {
        "job_id": found.job_id,
        "account_id": found.account_id,
        "status": job.status.value if job is not None else None,
        "action": found.action,
        "criteria": found.criteria,
        "counts": {"candidates": found.candidates, "protected": found.protected},
        "proposed_at": found.proposed_at.isoformat() if found.proposed_at else None,
        "approved_at": found.approved_at.isoformat() if found.approved_at else None,
        "approved_by": found.approved_by,
        "approved_count": found.approved_count,
        "created_at": found.created_at.isoformat(),
    }


def _job(app: App, job_id: str) -> Job | None:
    try:
        return app.queue.get(job_id)
    except NotFound:  # the job was pruned by retention: the clean-up's record stays
        return None


def _release(app: App, job_id: str) -> Job:
    """Let the parked job run; a concurrent approval may have done so a moment ago."""
    try:
        return app.queue.approve(job_id)
    except InvalidState:
        return app.queue.get(job_id)


def show(app: App, job_id: str, *, owner: str | None) -> dict[str, Any]:
    """A clean-up with its proposal: counts, senders, a preview, every candidate with its
    reasons and every protected message with why; the execution's outcome once it ran."""
    with reading(app.engine) as conn:
        found = store.get(conn, job_id, owner=owner, any_owner=owner is None)
        candidates = store.items(conn, job_id, ItemRole.CANDIDATE)
        protected = store.items(conn, job_id, ItemRole.PROTECTED)
        senders = store.senders(conn, job_id)
        execution = store.execution(conn, job_id)
    preview = [
        {"id": c["id"], "from": c["from"], "subject": c["subject"]}
        for c in candidates[: store.PREVIEW]
    ]
    unsubscribe = found.summary.get("unsubscribe")
    return _view(app, found, _job(app, job_id)) | {
        "senders": senders,
        "preview": preview,
        "candidates": candidates,
        "protected": protected,
        "execution": execution,
        "unsubscribe": unsubscribe if isinstance(unsubscribe, dict) else None,
    }


def list_cleanups(app: App, *, owner: str | None, limit: int = 100) -> list[dict[str, Any]]:
    """The user's clean-ups (an admin's or the operator's: everyone's), newest first."""
    with reading(app.engine) as conn:
        found = store.list_cleanups(conn, owner=owner, any_owner=owner is None, limit=limit)
    return [_view(app, c, _job(app, c.job_id)) for c in found]


def _check_ids(roles: dict[int, str], only: Sequence[int] | None, exclude: Sequence[int]) -> None:
    for pk in (*(only or ()), *exclude):
        if pk not in roles:
            raise InvalidField(f"message {pk} is not part of this clean-up")
    for pk in only or ():
        if roles[pk] != ItemRole.CANDIDATE.value:
            raise InvalidField(f"message {pk} is protected: it cannot be approved")


def approve(
    app: App,
    job_id: str,
    *,
    owner: str | None,
    by: str | None,
    only: Sequence[int] | None = None,
    exclude: Sequence[int] = (),
) -> dict[str, Any]:
    """Approve a proposal (``only`` these candidates, or all but ``exclude``) and let the
    job carry it out. A clean-up approved already is left as it is
    (``already_approved``)."""
    with reading(app.engine) as conn:
        found = store.get(conn, job_id, owner=owner, any_owner=owner is None)
        roles = store.roles_of(conn, job_id) if found.approved_at is None else {}
    job = app.queue.get(job_id)
    if found.approved_at is not None:
        return _again(app, found, job)
    if job.status != JobStatus.AWAITING_APPROVAL or found.proposed_at is None:
        raise InvalidState(
            f"clean-up {job_id} is {job.status.value}: there is no proposal waiting for approval"
        )
    account = Accounts(app.engine, app.settings).get(found.account_id)
    _refuse_read_only(app, account, CleanupAction(found.action))
    _check_ids(roles, only, exclude)
    with writing(app.engine) as conn:
        approved = store.approve(conn, job_id, by=by, only=only, exclude=exclude)
    if approved is None:  # another approval won the race
        with reading(app.engine) as conn:
            found = store.get(conn, job_id, owner=None, any_owner=True)
        return _again(app, found, app.queue.get(job_id))
    job = _release(app, job_id)
    return {
        "job_id": job_id,
        "status": job.status.value,
        "approved": approved,
        "already_approved": False,
    }


def _again(app: App, found: store.Cleanup, job: Job) -> dict[str, Any]:
    """The answer to an approval of an approved clean-up; a job left parked by an approval
    that stopped half-way (stored, but the job not yet let go) is let go now."""
    if job.status == JobStatus.AWAITING_APPROVAL:
        job = _release(app, job.id)
    return {
        "job_id": found.job_id,
        "status": job.status.value,
        "approved": found.approved_count or 0,
        "already_approved": True,
    }
